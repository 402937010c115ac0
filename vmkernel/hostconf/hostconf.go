// Package hostconf is the one owner of a Plinth host's configuration, a
// room in vmkernel (root): the management network with its commit-confirm
// rollback, the root password and lockdown, mgmtd's TLS certificate, the
// clock (an NTP client), remote logging (syslog), the SSH service, the
// management agents, a reset of the configuration and the support bundle.
// It holds each setting, validates it (every problem names its field),
// keeps it in STATE (layout.Host) and applies it. vmkernel's local API
// serves it; mgmtd forwards those routes with audit and lockdown; the DCUI,
// the CLI and the web client are its clients, so no other process writes
// a host setting.
//
// Nothing here speaks HTTP: methods return plain values or errors that
// are an *api.ValidationError (422), or wrap ErrConflict (409), ErrNotFound
// (404), ErrDenied (401) or ErrUnavailable (501).
package hostconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/remotelog"
)

// Error kinds the API maps to statuses.
var (
	ErrConflict    = errors.New("conflict")
	ErrNotFound    = errors.New("not found")
	ErrDenied      = errors.New("denied")
	ErrUnavailable = errors.New("not available on this host")
)

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, a...))
}

// invalid is a 422 naming one field.
func invalid(subject, field, format string, a ...any) error {
	return &api.ValidationError{Subject: subject, Problems: []api.FieldProblem{{Field: field, Message: fmt.Sprintf(format, a...)}}}
}

// Config is what a Host needs.
type Config struct {
	// Layout is where STATE and the run directory are.
	Layout layout.Host
	// Net is the management network (netconf.Host for this host's own).
	Net *netconf.Host
	// Log hears of every change; nil discards.
	Log *slog.Logger
	// Power restarts the host (action api.PowerReboot) after a reset; nil:
	// a reset is not offered (501).
	Power func(action, reason string) error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ApplyDelay is how long a network change waits after it is accepted
	// before it is applied, so the answer reaches the client over the old
	// address first (1 s when 0).
	ApplyDelay time.Duration
	// Hostname is the host's name as the API reports it (os.Hostname when
	// nil): a reset is confirmed with it.
	Hostname func() string
	// Hardware reads the board inventory (its NICs are the management
	// network's candidates); nil: none.
	Hardware func() (api.Hardware, error)
	// SetClock moves the system clock by the offset an NTP server gave
	// (nil: slewed or stepped through the kernel; tests record it).
	SetClock func(offset time.Duration) error
	// NoTimeKeeper: Run does not start the NTP client's rounds (tests ask
	// for them through the API).
	NoTimeKeeper bool
	// SSHAddr is where the SSH service listens when on (":22" when empty);
	// SSHCommands what each session kind runs (api.SSHSessionDCUI: the
	// DCUI on the session's terminal, api.SSHSessionShell: a shell).
	SSHAddr     string
	SSHCommands map[string][]string
	// SignalAgent signals a management agent by name (api.ServiceMgmtd),
	// normally through its pid file in the run directory; nil: by pid file.
	SignalAgent func(name string) error
}

// Host is a host's configuration and the services that apply it.
type Host struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	// throttle slows down wrong root passwords on the console and SSH.
	throttle *auth.Throttle

	mu sync.Mutex
	// net is the network change in flight and the last one settled.
	net netState
	// time is the NTP client's state.
	time timeState
	// syslog sends the host's log lines to remote servers.
	syslog *remotelog.Forwarder
	// ssh is the SSH service.
	ssh sshState
	// bg is the context of the background work Run started.
	bg context.Context
}

// New makes the Host for cfg. Run starts what keeps the settings in effect.
func New(cfg Config) *Host {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Hostname == nil {
		cfg.Hostname = func() string { n, _ := os.Hostname(); return n }
	}
	if cfg.ApplyDelay == 0 {
		cfg.ApplyDelay = time.Second
	}
	h := &Host{cfg: cfg, log: cfg.Log, now: cfg.Now, throttle: auth.NewThrottle(cfg.Now), bg: context.Background(),
		syslog: remotelog.New(cfg.Hostname, cfg.Log)}
	return h
}

// Run starts the background work that keeps the settings in effect, until
// ctx ends: the management network's keeper (DHCP renewals) and a change
// left pending by an earlier vmkernel (rolled back at its deadline), the
// NTP client, remote logging, SSH. It returns at once; nothing it starts
// blocks the boot.
func (h *Host) Run(ctx context.Context) {
	h.mu.Lock()
	h.bg = ctx
	h.mu.Unlock()
	if h.cfg.Net != nil {
		h.resumePending()
		go h.cfg.Net.Keep(ctx, &netconf.Keeper{})
	}
	if !h.cfg.NoTimeKeeper {
		go h.keepTime(ctx)
	}
	h.runSyslog(ctx)
	h.runSSH()
	go func() {
		<-ctx.Done()
		h.stopSSH()
	}()
}

// Settings is every setting at once.
func (h *Host) Settings(ctx context.Context) api.HostSettings {
	out := api.HostSettings{Network: h.Network()}
	out.Password, _ = h.PasswordStatus()
	out.Lockdown, _ = h.Lockdown()
	out.Certificate, _ = h.Certificate()
	out.BootMode = h.BootMode()
	out.Time = h.Time()
	out.Syslog = h.Syslog()
	out.SSH = h.SSH()
	return out
}

// loadJSON reads the JSON file path into v; found is false when there is
// none (v is left as it was).
func loadJSON(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("read %s: %w", path, err)
	}
	return true, nil
}

// saveJSON writes v to path as JSON, atomically.
func saveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
