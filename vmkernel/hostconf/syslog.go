package hostconf

import (
	"context"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/remotelog"
)

// Remote logging (package remotelog): the lines of vmkernel's and
// mgmtd's logs, the init's (the boot log less the services' lines, which
// come from their own logs) and mgmtd's audit log go to each configured
// syslog server from the moment it is configured (or vmkernel starts).

// logPoll is how often the logs are read for new lines.
const logPoll = time.Second

// Syslog is remote logging's configuration and each target's state.
func (h *Host) Syslog() api.SyslogStatus { return h.syslog.Status() }

// SetSyslog replaces remote logging's configuration (no targets: off).
func (h *Host) SetSyslog(cfg api.SyslogConfig) (api.SyslogStatus, error) {
	if cfg.Targets == nil {
		cfg.Targets = []string{}
	}
	if probs := remotelog.Check(cfg); len(probs) > 0 {
		return api.SyslogStatus{}, &api.ValidationError{Subject: "remote logging", Problems: probs}
	}
	if err := saveJSON(h.cfg.Layout.SyslogFile(), cfg); err != nil {
		return api.SyslogStatus{}, err
	}
	if err := h.syslog.Configure(cfg); err != nil {
		return api.SyslogStatus{}, err
	}
	h.log.Info("hostconf: remote logging", "targets", len(cfg.Targets))
	return h.Syslog(), nil
}

// runSyslog starts the saved targets and follows the logs until ctx ends.
func (h *Host) runSyslog(ctx context.Context) {
	var cfg api.SyslogConfig
	if _, err := loadJSON(h.cfg.Layout.SyslogFile(), &cfg); err != nil {
		h.log.Error("hostconf: remote logging not started", "err", err)
	} else if len(cfg.Targets) > 0 {
		if err := h.syslog.Configure(cfg); err != nil {
			h.log.Error("hostconf: remote logging not started", "err", err)
		}
	}
	l := h.cfg.Layout
	sources := []remotelog.Source{
		{Path: l.ServiceLog(layout.VMKernel), Parse: remotelog.ServiceLine(layout.VMKernel)},
		{Path: l.ServiceLog(layout.Mgmtd), Parse: remotelog.ServiceLine(layout.Mgmtd)},
		{Path: l.BootLog(), Parse: remotelog.BootLine(layout.VMKernel, layout.Mgmtd)},
		{Path: l.AuditLog(), Parse: remotelog.AuditLine},
	}
	go func() {
		remotelog.Follow(ctx, sources, logPoll, h.syslog.Active, h.syslog.Send)
		h.syslog.Close()
	}()
}
