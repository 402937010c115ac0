package hostconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/netconf"
)

// restartable are the services a ServicesRestartRequest may name.
var restartable = []string{api.ServiceMgmtd}

// Services lists the host's services and their state.
func (h *Host) Services() []api.ServiceStatus {
	mgmtd := "stopped"
	if h.agentRunning(api.ServiceMgmtd) {
		mgmtd = "running"
	}
	return []api.ServiceStatus{
		{Name: api.ServiceVMKernel, State: "running", Description: "VMs, storage, switches and the host's settings (root)"},
		{Name: api.ServiceMgmtd, State: mgmtd, Description: "the management API (HTTPS)", Restartable: true},
	}
}

// agentRunning reports whether the supervised agent name runs.
func (h *Host) agentRunning(name string) bool {
	b, err := os.ReadFile(h.cfg.Layout.PIDFile(name))
	if err != nil {
		return false
	}
	comm, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == name
}

// RestartServices restarts the named services (none: the management
// agent, mgmtd). mgmtd is signalled a second later, so that the answer to
// a request it forwarded goes out first; its sessions end.
func (h *Host) RestartServices(names []string) error {
	if len(names) == 0 {
		names = []string{api.ServiceMgmtd}
	}
	for _, n := range names {
		if !slices.Contains(restartable, n) {
			return invalid("services restart", "services", "%q is not one of %s", n, strings.Join(restartable, ", "))
		}
	}
	for _, n := range names {
		switch n {
		case api.ServiceMgmtd:
			if !h.agentRunning(n) && h.cfg.SignalAgent == nil {
				return conflict("%s is not running under the init's supervisor here", n)
			}
			go func() {
				time.Sleep(time.Second)
				if err := h.signalAgent(n); err != nil {
					h.log.Error("hostconf: restarting "+n, "err", err)
				}
			}()
		}
		h.log.Warn("hostconf: service restart requested", "service", n)
	}
	return nil
}

// Reset forgets the host's configuration (confirm must be the host's
// name) and restarts the host: the management network, host name, root
// password, lockdown, API tokens, time, remote logging, SSH and its keys
// go; VMs, datastores, the TLS certificate and the SSH host key stay.
func (h *Host) Reset(confirm string) error {
	name := h.cfg.Hostname()
	if confirm != name {
		return invalid("reset request", "confirm", "must be this host's name, %q", name)
	}
	if h.cfg.Power == nil {
		return fmt.Errorf("%w: this vmkernel cannot restart the host (it runs with -init-pid on the appliance)", ErrUnavailable)
	}
	l := h.cfg.Layout
	var errs []error
	for _, p := range []string{
		filepath.Join(l.State, netconf.FileName),
		l.HostnameFile(), l.NTPFile(), l.SSHKeysFile(),
		l.TimeFile(), l.SyslogFile(), l.SSHFile(),
		filepath.Join(l.AuthDir(), auth.PasswdFile),
		filepath.Join(l.AuthDir(), auth.SecurityFile),
		filepath.Join(l.AuthDir(), auth.TokensFile),
	} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset the configuration: %w", err)
	}
	h.log.Warn("hostconf: the host's configuration was reset; restarting")
	go func() {
		time.Sleep(time.Second)
		if err := h.cfg.Power(api.PowerReboot, "configuration reset"); err != nil {
			h.log.Error("hostconf: restart after the reset", "err", err)
		}
	}()
	return nil
}
