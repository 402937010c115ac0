package hostconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/tlscert"
)

// The root password, lockdown and the certificate live in mgmtd's
// directory (layout.Host.AuthDir), which mgmtd reads on every request: a
// change made here holds at once. A password change ends every session
// and API token (package auth binds them to the password's epoch).

// PasswordStatus says whether the root password is set.
func (h *Host) PasswordStatus() (api.PasswordStatus, error) {
	set, err := auth.PasswordSet(h.cfg.Layout.AuthDir())
	st := api.PasswordStatus{Set: set}
	if set && err == nil {
		var at time.Time
		if at, err = auth.PasswordChanged(h.cfg.Layout.AuthDir()); !at.IsZero() {
			st.ChangedAt = &at
		}
	}
	return st, err
}

// SetPassword sets the root password (422 naming "password" when weak).
func (h *Host) SetPassword(password string) error {
	if err := auth.CheckStrength(api.RootUser, password); err != nil {
		return invalid("password", "password", "%v", err)
	}
	if err := os.MkdirAll(h.cfg.Layout.AuthDir(), 0o700); err != nil {
		return err
	}
	if err := auth.SetPassword(h.cfg.Layout.AuthDir(), api.RootUser, password); err != nil {
		return err
	}
	h.log.Warn("hostconf: the root password was changed; every session and API token ends")
	return nil
}

// VerifyPassword checks the root password for a login that is not
// mgmtd's: ErrDenied when wrong. The console ("console") is never held
// back, as on ESXi; any other client (an address) is throttled as mgmtd's
// logins are.
func (h *Host) VerifyPassword(client, password string) error {
	var attempt *auth.Attempt
	if client != "console" {
		var wait time.Duration
		if attempt, wait = h.throttle.Begin(client, api.RootUser); attempt == nil {
			return fmt.Errorf("%w: too many wrong passwords from %s: try again in %s", ErrDenied, client, wait.Round(time.Second))
		}
	}
	err := auth.Verify(h.cfg.Layout.AuthDir(), api.RootUser, password)
	switch {
	case err == nil:
		if attempt != nil {
			attempt.Succeeded()
		}
		return nil
	case errors.Is(err, auth.ErrBadCredentials):
		h.log.Warn("hostconf: wrong root password", "from", client)
		return fmt.Errorf("%w: wrong password", ErrDenied)
	}
	if attempt != nil {
		attempt.Undo()
	}
	if errors.Is(err, auth.ErrNoPassword) {
		return conflict("%v", err)
	}
	return err
}

// Lockdown says whether lockdown mode is on.
func (h *Host) Lockdown() (api.LockdownStatus, error) {
	on, err := auth.Lockdown(h.cfg.Layout.AuthDir())
	return api.LockdownStatus{Enabled: on}, err
}

// SetLockdown turns lockdown mode on or off; on turns SSH off.
func (h *Host) SetLockdown(on bool) error {
	if err := os.MkdirAll(h.cfg.Layout.AuthDir(), 0o700); err != nil {
		return err
	}
	if on {
		if err := h.sshOffForLockdown(); err != nil {
			return fmt.Errorf("turn SSH off: %w", err)
		}
	}
	if err := auth.SetLockdown(h.cfg.Layout.AuthDir(), on); err != nil {
		return err
	}
	h.log.Warn("hostconf: lockdown mode", "on", on)
	return nil
}

// Certificate describes mgmtd's TLS certificate.
func (h *Host) Certificate() (api.CertificateInfo, error) {
	return tlscert.Read(h.cfg.Layout.TLSDir())
}

// SetCertificate replaces mgmtd's TLS certificate; mgmtd serves it to new
// connections within a second.
func (h *Host) SetCertificate(req api.CertificateRequest) (api.CertificateInfo, error) {
	info, err := tlscert.Install(h.cfg.Layout.TLSDir(), req, h.now())
	var inv tlscert.Invalid
	if errors.As(err, &inv) {
		return info, &api.ValidationError{Subject: "certificate", Problems: inv}
	}
	if err == nil {
		h.log.Warn("hostconf: TLS certificate replaced", "fingerprint", info.Fingerprint)
	}
	return info, err
}

// BootMode is where the host's configuration comes from, as the init
// decided at boot (unknown: empty).
func (h *Host) BootMode() api.BootMode {
	var m api.BootMode
	if b, err := os.ReadFile(h.cfg.Layout.BootModeFile()); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// signalAgent sends SIGTERM to the agent name (its supervisor starts it
// again), found through the pid file its supervisor keeps; the process's
// name must match, so a stale file never hits another process.
func (h *Host) signalAgent(name string) error {
	if h.cfg.SignalAgent != nil {
		return h.cfg.SignalAgent(name)
	}
	path := h.cfg.Layout.PIDFile(name)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %s is not supervised here (%v)", ErrUnavailable, name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: %q is not a pid", path, b)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != name {
		return conflict("%s is not running (pid %d is not it)", name, pid)
	}
	return syscall.Kill(pid, syscall.SIGTERM)
}
