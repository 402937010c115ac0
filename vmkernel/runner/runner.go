// Package runner runs virtual machines: one QEMU process per VM, started
// from the command line qemu.Cmdline builds, controlled only over QMP, reaped
// promptly, watched for death (child wait, QMP end-of-file, or a pidfd for a
// QEMU re-attached after a vmkernel restart) and restarted when the VM's
// crash policy says so.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/cgroup"
	"github.com/plinth/plinth/vmkernel/guestagent"
	"github.com/plinth/plinth/vmkernel/qmp"
)

// Sentinel errors, for errors.Is.
var (
	// ErrState: the VM is not in a state that allows the operation; the
	// error (a *StateError) says which state it is in.
	ErrState = errors.New("operation not allowed in this state")
	// ErrStartFailed: QEMU could not be started or did not answer QMP.
	ErrStartFailed = errors.New("QEMU start failed")
	// ErrClosed: the Manager has been closed.
	ErrClosed = errors.New("runner closed")
)

// StateError is an operation refused because of the VM's state.
type StateError struct {
	ID, Op string
	State  string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("VM %s: cannot %s: VM is %s", e.ID, e.Op, e.State)
}

// Is makes errors.Is(err, ErrState) true.
func (e *StateError) Is(target error) bool { return target == ErrState }

// Default OVMF files (Debian's ovmf package). One firmware serves both
// UEFI kinds: the Secure Boot build (SMM, q35), with empty variables for
// "uefi" (no keys: Secure Boot stays off) and with Microsoft's keys
// enrolled for "uefi-secure".
const (
	DefaultOVMFCode       = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	DefaultOVMFVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	DefaultOVMFVarsSecure = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// Files in a VM's state directory.
const (
	RuntimeFile = "runtime.json"
	StderrFile  = "qemu.stderr"
	// VarsFile and VarsSecureFile are a UEFI VM's variables, qcow2 images
	// (see EnsureVars): those of its firmware without keys, and those of its
	// Secure Boot firmware (keys enrolled), apart: switching the firmware
	// back and forth keeps each.
	VarsFile       = "OVMF_VARS.qcow2"
	VarsSecureFile = "OVMF_VARS_SECURE.qcow2"
)

// Timings; variables so tests could shorten them.
var (
	// qmpDialTimeout bounds the wait for QEMU's QMP socket at start (a
	// first start in an appliance under emulation pages QEMU in from the
	// compressed payload: seconds).
	qmpDialTimeout = 30 * time.Second
	// contTimeout bounds the "cont" that lets a started guest run.
	contTimeout = 20 * time.Second
	// quitGrace is how long a hard stop waits after QMP quit before SIGKILL.
	quitGrace = 5 * time.Second
	// restartWindow and maxRestarts: at most maxRestarts crash restarts
	// within restartWindow, then the VM stays crashed.
	restartWindow = time.Minute
	maxRestarts   = 3
	// restartBackoff is the delay before the first restart, doubled for each
	// further one within the window.
	restartBackoff = 500 * time.Millisecond
)

// Config is what a Manager needs.
type Config struct {
	// QEMU is the qemu-system-x86_64 binary.
	QEMU string
	// Accel is "kvm" or "tcg": how every VM runs, unless AccelNow is set.
	Accel string
	// AccelNow, when set, is asked at each VM start instead of Accel: the
	// decision can change while vmkernel runs (the appliance starts it
	// before the KVM module has loaded). It may wait, within ctx, for a
	// decision still being made; its error fails the start.
	AccelNow func(ctx context.Context) (string, error)
	// Datastores maps a datastore name to its absolute root.
	Datastores map[string]string
	// RunRoot holds each running VM's sockets in RunRoot/ID (e.g. /run/plinth/vms).
	RunRoot string
	// StateRoot holds each VM's state (NVRAM, runtime record, QEMU's stderr)
	// in StateRoot/ID; it must survive a vmkernel restart.
	StateRoot string
	// OVMFCode and OVMFVars are the UEFI code (an SMM build) and the
	// template of the per-VM NVRAM vars, OVMFVarsSecure that of a VM with
	// Secure Boot (keys enrolled); empty means the Debian defaults.
	OVMFCode, OVMFVars, OVMFVarsSecure string
	// Log receives what happens to VMs; nil discards.
	Log *slog.Logger
	// Switches puts the taps of NICs on virtual switches (a
	// *vswitch.Manager); nil means no switch support: a VM with a NIC on a
	// switch then does not start.
	Switches Switches
	// OnState, when set, is called on each change of a VM's run state, with
	// the Manager's lock held: it must not block nor call the Manager.
	OnState func(id, name, state, detail string)
	// Cgroups gives each QEMU its cgroup with the VM's resources (a
	// *cgroup.Manager); nil runs VMs without limits.
	Cgroups Cgroups
	// Devices gives host PCI and USB devices to VMs (a
	// *passthrough.Host); nil: a VM with PCI devices does not start, and
	// USB devices are not attached.
	Devices Devices
	// SWTPM is the swtpm binary for VMs with a TPM (DefaultSWTPM when
	// empty); HugePagesDir is the 2 MiB huge page pool's sysfs directory
	// (DefaultHugePagesDir when empty).
	SWTPM, HugePagesDir string
}

// Cgroups places QEMU processes in per-VM cgroups.
type Cgroups interface {
	Place(vmID string, pid int, l cgroup.Limits) (string, error)
	Remove(vmID string) error
	Path(vmID string) string
}

// limits are the cgroup limits of a spec.
func limits(s api.VMSpec) cgroup.Limits {
	return cgroup.Limits{CPUWeight: s.Resources.CPUWeight, CPUPercent: s.Resources.CPULimitPercent,
		MemoryBytes: int64(s.Resources.MemoryLimitMiB) << 20}
}

// Switches attaches VM NICs to virtual switches.
type Switches interface {
	// AddTap makes the tap tapName, puts it on the switch switchName and
	// returns a descriptor attached to it (IFF_TAP, IFF_NO_PI, IFF_VNET_HDR),
	// which QEMU is given.
	AddTap(switchName, tapName string) (*os.File, error)
	// RemoveTap deletes the tap tapName (no error when it is not there).
	RemoveTap(tapName string) error
}

// ErrNoSwitches: a NIC is on a virtual switch but the Manager has no
// Switches.
var ErrNoSwitches = errors.New("virtual switches are not available")

// TapName is the tap of the VM's NIC with this index: "pt", the first 8 hex
// digits of the VM's ID, the index (at most 13 characters).
func TapName(vmID string, index int) string {
	hex := strings.ReplaceAll(vmID, "-", "")
	if len(hex) > 8 {
		hex = hex[:8]
	}
	return fmt.Sprintf("pt%s%d", hex, index)
}

// removeTaps deletes the taps (by NIC index; "" skipped).
func (m *Manager) removeTaps(id string, taps []string) {
	for _, tap := range taps {
		if tap == "" {
			continue
		}
		if err := m.cfg.Switches.RemoveTap(tap); err != nil {
			m.cfg.Log.Warn("runner: removing tap", "id", id, "tap", tap, "err", err)
		}
	}
}

// specTaps are the taps spec's NICs on switches have while QEMU runs.
func specTaps(spec api.VMSpec) []string {
	var taps []string
	for i, n := range spec.NICs {
		if n.Switch != "" {
			if taps == nil {
				taps = make([]string, len(spec.NICs))
			}
			taps[i] = TapName(spec.ID, i)
		}
	}
	return taps
}

// Manager owns the running VMs. It is safe for concurrent use.
type Manager struct {
	cfg Config

	mu     sync.Mutex
	vms    map[string]*vm
	closed bool
	wg     sync.WaitGroup // watchers
	// uidMu orders the allocation of VM users.
	uidMu sync.Mutex
	// varsMu orders the making of UEFI variables images.
	varsMu sync.Mutex
	// hugeMu orders changes to the huge page pool.
	hugeMu sync.Mutex
}

// vm is one VM known to the Manager (it has been started at least once).
type vm struct {
	id    string
	spec  api.VMSpec
	state string
	// inst is the current QEMU process, nil when none runs.
	inst      *instance
	con       *console // the serial console's log and tail
	lastExit  *api.VMExit
	restarts  int
	crashes   []time.Time // crash restarts within restartWindow
	restartAt *time.Timer
	// startPaused: the next launch leaves the guest's vCPUs stopped.
	startPaused bool
}

// instance is one QEMU process.
type instance struct {
	pid       int
	startTime uint64 // /proc/PID/stat field 22
	startedAt time.Time
	mon       *qmp.Monitor
	// exited is closed once the process is gone; exit then holds how it ended.
	exited chan struct{}
	exit   api.VMExit
	// requested: a stop or shutdown was asked for; guest: the guest powered
	// off (SHUTDOWN with guest=true, not a panic); detail: QMP's last word.
	requested bool
	guest     bool
	detail    string
	// cgroup is the QEMU's cgroup ("" without cgroup support).
	cgroup string
	// uid and sandboxed: how QEMU was confined when last looked at.
	uid       int
	sandboxed bool
	// agent is the guest agent's channel; facts what it last said (nil
	// while it does not answer). agentStop ends its poller early.
	agent     *guestagent.Agent
	facts     *api.GuestInfo
	agentStop chan struct{}
	detached  bool // the Manager was closed: not an exit
	// hw is what the process holds of passthrough, TPM, huge pages and
	// hot-plug (nil for none, or a re-attached QEMU).
	hw *instanceHW
	// serial is the console reader's connection (nil without a serial
	// console); serialFirst is its first connection, made before cont.
	serial      *serialConn
	serialFirst net.Conn
}

// New makes a Manager. It does not look for running QEMUs; see Reattach.
func New(cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OVMFCode == "" {
		cfg.OVMFCode = DefaultOVMFCode
	}
	if cfg.OVMFVars == "" {
		cfg.OVMFVars = DefaultOVMFVars
	}
	if cfg.OVMFVarsSecure == "" {
		cfg.OVMFVarsSecure = DefaultOVMFVarsSecure
	}
	if !filepath.IsAbs(cfg.RunRoot) || !filepath.IsAbs(cfg.StateRoot) {
		return nil, fmt.Errorf("runner: run root %q and state root %q must be absolute", cfg.RunRoot, cfg.StateRoot)
	}
	for _, d := range []string{cfg.RunRoot, cfg.StateRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		// Each VM's QEMU, as its own user, makes its sockets in its
		// directory below the run root: it must be able to pass through
		// (not list) the run root and every directory above it.
		if err := os.Chmod(cfg.RunRoot, 0o711); err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
		for d := filepath.Dir(filepath.Clean(cfg.RunRoot)); ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return nil, fmt.Errorf("runner: %w", err)
			}
			if fi.Mode().Perm()&0o001 == 0 {
				return nil, fmt.Errorf("runner: run root %s: %s (mode %04o) does not let the VMs' users through (QEMU runs unprivileged)", cfg.RunRoot, d, fi.Mode().Perm())
			}
			if d == "/" {
				break
			}
		}
	}
	return &Manager{cfg: cfg, vms: map[string]*vm{}}, nil
}

// Status is the run state of the VM with this ID (stopped if never started).
func (m *Manager) Status(id string) api.VMRuntime {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.vms[id]
	if v == nil {
		return api.VMRuntime{State: api.VMStopped}
	}
	r := api.VMRuntime{State: v.state, Restarts: v.restarts}
	if v.inst != nil {
		r.PID = v.inst.pid
		r.Cgroup = v.inst.cgroup
		r.User, r.Sandboxed = v.inst.uid, v.inst.sandboxed
		if g := v.inst.facts; g != nil {
			c := *g
			c.Interfaces = append([]api.GuestInterface(nil), g.Interfaces...)
			r.Guest = &c
		}
		t := v.inst.startedAt
		r.StartedAt = &t
		v.inst.hw.runtime(&r)
	}
	if v.lastExit != nil {
		e := *v.lastExit
		r.LastExit = &e
	}
	return r
}

// IDs lists the VMs the Manager knows, sorted.
func (m *Manager) IDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.vms))
	for id := range m.vms {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Forget drops a VM that is not running (stopped or crashed) from the
// Manager, e.g. when it is deleted.
func (m *Manager) Forget(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.vms[id]
	if v == nil {
		return nil
	}
	if v.inst != nil || (v.state != api.VMStopped && v.state != api.VMCrashed) {
		return &StateError{id, "delete", v.state}
	}
	if v.restartAt != nil {
		v.restartAt.Stop()
	}
	v.con.closeFile()
	delete(m.vms, id)
	return nil
}

// Start starts the VM: QEMU with -S, QMP negotiated, then cont. It returns
// once QEMU runs the guest (or failed, having cleaned up).
func (m *Manager) Start(ctx context.Context, spec api.VMSpec) error {
	return m.start(ctx, spec, false)
}

// StartPaused is Start without the cont: QEMU runs with the guest's vCPUs
// stopped (state paused), for work that must come before the guest runs
// (loading a memory snapshot); Resume lets it run.
func (m *Manager) StartPaused(ctx context.Context, spec api.VMSpec) error {
	return m.start(ctx, spec, true)
}

func (m *Manager) start(ctx context.Context, spec api.VMSpec, paused bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	v := m.vms[spec.ID]
	if v == nil {
		v = &vm{id: spec.ID, state: api.VMStopped, con: newConsole(filepath.Join(m.cfg.StateRoot, spec.ID))}
		m.vms[spec.ID] = v
	}
	if v.state != api.VMStopped && v.state != api.VMCrashed {
		m.mu.Unlock()
		return &StateError{spec.ID, "start", v.state}
	}
	if v.restartAt != nil {
		v.restartAt.Stop()
		v.restartAt = nil
	}
	v.spec = spec.Clone()
	m.setState(v, api.VMStarting)
	v.restarts, v.crashes = 0, nil
	v.startPaused = paused
	m.mu.Unlock()
	return m.launch(ctx, v)
}

// launch starts QEMU for v, which the caller has put in state starting.
func (m *Manager) launch(ctx context.Context, v *vm) error {
	m.mu.Lock()
	paused := v.startPaused
	v.startPaused = false // a crash restart runs the guest
	m.mu.Unlock()
	inst, err := m.spawn(ctx, v.spec, paused)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		state := api.VMStopped
		if v.lastExit != nil && v.lastExit.Reason == api.ExitCrash {
			state = api.VMCrashed
		}
		// The event says why (an autostart has no caller to tell).
		m.setStateDetail(v, state, "start failed: "+err.Error())
		return err
	}
	v.inst = inst
	switch {
	case v.state != api.VMStarting: // events may have said more already
	case paused:
		m.setState(v, api.VMPaused)
	default:
		m.setState(v, api.VMRunning)
	}
	m.wg.Add(1)
	go m.watch(v, inst)
	if inst.serial != nil {
		m.wg.Add(1)
		go m.readConsole(v, inst, inst.serialFirst)
		inst.serialFirst = nil
	}
	m.startAgent(v, inst)
	m.cfg.Log.Info("runner: VM started", "vm", v.spec.Name, "id", v.id, "pid", inst.pid)
	return nil
}

// dialQMP dials the QMP socket until it answers, ctx ends or QEMU exits.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmp.Monitor, error) {
	delay := 2 * time.Millisecond
	for {
		mon, err := qmp.Dial(ctx, path)
		if err == nil {
			return mon, nil
		}
		select {
		case <-exited:
			return nil, errors.New("QEMU exited before QMP answered")
		case <-ctx.Done():
			return nil, fmt.Errorf("QMP did not answer: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// watch follows inst's QMP events until the process is gone, then records
// the exit and applies the crash policy.
func (m *Manager) watch(v *vm, inst *instance) {
	defer m.wg.Done()
	events := inst.mon.Events()
	exited := inst.exited
	var drain <-chan time.Time
	for events != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				break
			}
			m.event(v, inst, ev)
		case <-exited:
			// Take the events QEMU sent before dying (the socket's EOF
			// follows at once), but do not wait long for them.
			exited = nil
			drain = time.After(200 * time.Millisecond)
		case <-drain:
			events = nil
		}
	}
	m.mu.Lock()
	detached := inst.detached
	m.mu.Unlock()
	if detached {
		return
	}
	// QMP ended: QEMU is on its way out. A QEMU that closed QMP but lingers
	// is killed after the grace period.
	select {
	case <-inst.exited:
	case <-time.After(quitGrace):
		m.cfg.Log.Warn("runner: QMP closed but QEMU still runs; killing it", "id", v.id, "pid", inst.pid)
		killGroup(inst.pid)
		<-inst.exited
	}
	inst.mon.Close()
	m.exited(v, inst)
}

// event applies one QMP event to the VM's state.
func (m *Manager) event(v *vm, inst *instance, ev qmp.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.inst != inst && v.inst != nil {
		return
	}
	switch ev.Name {
	case "RESUME", "RUNNING": // QEMU says RESUME (after a snapshot or a migration stopped the vCPUs)
		if v.state != api.VMStopping {
			m.setState(v, api.VMRunning)
		}
	case "STOP":
		if v.state != api.VMStopping {
			m.setState(v, api.VMPaused)
		}
	case "SHUTDOWN":
		var d struct {
			Guest  bool   `json:"guest"`
			Reason string `json:"reason"`
		}
		jsonUnmarshal(ev.Data, &d)
		inst.detail = "SHUTDOWN " + d.Reason
		if d.Guest && d.Reason != "guest-panic" {
			inst.guest = true
		}
		m.setState(v, api.VMStopping)
	case "GUEST_PANICKED":
		inst.detail = "GUEST_PANICKED"
	case "RESET", "POWERDOWN":
	case "DEVICE_DELETED":
		if inst.hw != nil {
			inst.hw.hot.event(ev)
		}
	}
	m.cfg.Log.Debug("runner: QMP event", "id", v.id, "event", ev.Name)
}

// exited records the end of inst and restarts the VM if its policy says so.
func (m *Manager) exited(v *vm, inst *instance) {
	stateDir := filepath.Join(m.cfg.StateRoot, v.id)
	os.Remove(filepath.Join(stateDir, RuntimeFile))
	atomicfile.SyncDir(stateDir)
	m.mu.Lock()
	spec := v.spec
	m.mu.Unlock()
	if taps := specTaps(spec); taps != nil && m.cfg.Switches != nil {
		m.removeTaps(v.id, taps)
	}
	if m.cfg.Cgroups != nil {
		if err := m.cfg.Cgroups.Remove(v.id); err != nil {
			m.cfg.Log.Warn("runner: VM cgroup left behind", "id", v.id, "err", err)
		}
	}
	m.releaseHW(v.id, inst)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := inst.exit
	e.Detail = inst.detail
	switch {
	case inst.requested:
		e.Reason = api.ExitRequested
	case inst.guest:
		e.Reason = api.ExitGuest
	default:
		e.Reason = api.ExitCrash
		if tail := tailFile(filepath.Join(stateDir, StderrFile), 1024); tail != "" {
			e.Detail = strings.TrimSpace(e.Detail + "; stderr: " + tail)
		}
	}
	v.lastExit = &e
	v.inst = nil
	v.con.endViewers()
	if e.Reason != api.ExitCrash {
		m.setState(v, api.VMStopped)
		m.cfg.Log.Info("runner: VM stopped", "id", v.id, "reason", e.Reason, "status", e.Status)
		return
	}
	m.setState(v, api.VMCrashed)
	m.cfg.Log.Warn("runner: VM crashed", "id", v.id, "status", e.Status, "detail", e.Detail)
	if v.spec.OnCrash != api.OnCrashRestart || m.closed {
		return
	}
	now := time.Now()
	recent := v.crashes[:0]
	for _, t := range v.crashes {
		if now.Sub(t) < restartWindow {
			recent = append(recent, t)
		}
	}
	v.crashes = recent
	if len(recent) >= maxRestarts {
		m.cfg.Log.Error("runner: VM keeps crashing; not restarting it", "id", v.id, "restarts", len(recent), "window", restartWindow)
		return
	}
	delay := restartBackoff << len(recent)
	v.crashes = append(v.crashes, now)
	var timer *time.Timer
	timer = time.AfterFunc(delay, func() {
		m.mu.Lock()
		if m.closed || v.restartAt != timer || v.state != api.VMCrashed {
			m.mu.Unlock()
			return
		}
		v.restartAt = nil
		m.setState(v, api.VMStarting)
		v.restarts++
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), qmpDialTimeout+5*time.Second)
		defer cancel()
		if err := m.launch(ctx, v); err != nil {
			m.cfg.Log.Error("runner: restarting crashed VM", "id", v.id, "err", err)
		}
	})
	v.restartAt = timer
}

// setState changes v's run state (m.mu held) and reports a change to OnState.
func (m *Manager) setState(v *vm, state string) {
	var detail string
	if (state == api.VMStopped || state == api.VMCrashed) && v.lastExit != nil {
		detail = v.lastExit.Reason + ": " + v.lastExit.Status
		if v.lastExit.Detail != "" {
			detail += " (" + v.lastExit.Detail + ")"
		}
	}
	m.setStateDetail(v, state, detail)
}

// setStateDetail is setState with the event's detail given.
func (m *Manager) setStateDetail(v *vm, state, detail string) {
	if v.state == state {
		return
	}
	v.state = state
	if m.cfg.OnState != nil {
		m.cfg.OnState(v.id, v.spec.Name, state, detail)
	}
}

// running returns v's instance if v is in one of states, else a StateError.
func (m *Manager) running(id, op string, states ...string) (*vm, *instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	v := m.vms[id]
	if v == nil {
		return nil, nil, &StateError{id, op, api.VMStopped}
	}
	for _, s := range states {
		if v.state == s && v.inst != nil {
			return v, v.inst, nil
		}
	}
	return nil, nil, &StateError{id, op, v.state}
}

// Stop stops the VM hard: QMP quit, then SIGKILL to QEMU's process group if
// it has not exited within 5 s. It returns once QEMU is gone.
func (m *Manager) Stop(ctx context.Context, id string) error {
	v, inst, err := m.running(id, "stop", api.VMRunning, api.VMPaused, api.VMStopping)
	if err != nil {
		return err
	}
	m.mu.Lock()
	inst.requested = true
	m.setState(v, api.VMStopping)
	m.mu.Unlock()
	return m.hardStop(ctx, v, inst)
}

func (m *Manager) hardStop(ctx context.Context, v *vm, inst *instance) error {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	err := inst.mon.Run(qctx, "quit", nil, nil)
	cancel()
	if err != nil && !errors.Is(err, qmp.ErrClosed) {
		m.cfg.Log.Warn("runner: QMP quit failed; killing QEMU", "id", v.id, "err", err)
		killGroup(inst.pid)
	}
	select {
	case <-inst.exited:
	case <-time.After(quitGrace):
		killGroup(inst.pid)
	case <-ctx.Done():
		killGroup(inst.pid)
	}
	return m.waitGone(ctx, v, inst)
}

// waitGone waits until watch has recorded inst's exit.
func (m *Manager) waitGone(ctx context.Context, v *vm, inst *instance) error {
	// After SIGKILL a process is gone in milliseconds; bound the wait anyway.
	t := time.NewTimer(quitGrace)
	defer t.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		m.mu.Lock()
		gone := v.inst != inst
		m.mu.Unlock()
		if gone {
			return nil
		}
		select {
		case <-tick.C:
		case <-t.C:
			return fmt.Errorf("VM %s: QEMU (pid %d) did not go away", v.id, inst.pid)
		}
	}
}

// Shutdown presses the VM's ACPI power button, asks its guest agent to
// power off too where the agent answers, and waits until QEMU exits or
// timeout passes, then stops it hard.
func (m *Manager) Shutdown(ctx context.Context, id string, timeout time.Duration) error {
	v, inst, err := m.running(id, "shut down", api.VMRunning, api.VMPaused)
	if err != nil {
		return err
	}
	m.mu.Lock()
	inst.requested = true
	m.setState(v, api.VMStopping)
	m.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = inst.mon.Run(qctx, "system_powerdown", nil, nil)
	cancel()
	// And through the guest agent, where it answers: a guest that ignores
	// the ACPI button (no acpid, a minimal image) still powers off.
	if m.agentShutdown(ctx, inst) {
		m.cfg.Log.Info("runner: asked the guest agent to power off too", "id", id)
		err = nil
	}
	if err == nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-inst.exited:
			return m.waitGone(ctx, v, inst)
		case <-t.C:
			m.cfg.Log.Info("runner: guest did not power off in time; stopping it hard", "id", id, "timeout", timeout)
		case <-ctx.Done():
		}
	}
	return m.hardStop(ctx, v, inst)
}

// Reset resets the VM (QMP system_reset).
func (m *Manager) Reset(ctx context.Context, id string) error {
	_, inst, err := m.running(id, "reset", api.VMRunning, api.VMPaused)
	if err != nil {
		return err
	}
	return inst.mon.Run(ctx, "system_reset", nil, nil)
}

// Pause stops the VM's vCPUs (QMP stop).
func (m *Manager) Pause(ctx context.Context, id string) error {
	return m.vcpus(ctx, id, "pause", "stop", api.VMRunning, api.VMPaused)
}

// Resume lets a paused VM run again (QMP cont).
func (m *Manager) Resume(ctx context.Context, id string) error {
	return m.vcpus(ctx, id, "resume", "cont", api.VMPaused, api.VMRunning)
}

func (m *Manager) vcpus(ctx context.Context, id, op, cmd, from, to string) error {
	v, inst, err := m.running(id, op, from)
	if err != nil {
		return err
	}
	if err := inst.mon.Run(ctx, cmd, nil, nil); err != nil {
		return fmt.Errorf("VM %s: %s: %w", id, op, err)
	}
	m.mu.Lock()
	if v.inst == inst && v.state == from {
		m.setState(v, to)
	}
	m.mu.Unlock()
	return nil
}

// StopAll stops every running VM hard (for tests and a host power-off).
func (m *Manager) StopAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, id := range m.IDs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.mu.Lock()
			if v := m.vms[id]; v != nil && v.restartAt != nil {
				v.restartAt.Stop()
				v.restartAt = nil
			}
			m.mu.Unlock()
			m.Stop(ctx, id)
		}()
	}
	wg.Wait()
}

// Close detaches from every QEMU without stopping it (their runtime records
// stay, for Reattach by the next vmkernel) and stops crash restarts.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var mons []*qmp.Monitor
	var serials []*serialConn
	var cons []*console
	for _, v := range m.vms {
		if v.restartAt != nil {
			v.restartAt.Stop()
		}
		if v.inst != nil {
			v.inst.detached = true
			close(v.inst.agentStop)
			mons = append(mons, v.inst.mon)
			if v.inst.serial != nil {
				serials = append(serials, v.inst.serial)
			}
		}
		cons = append(cons, v.con)
		v.con.endViewers()
	}
	m.mu.Unlock()
	for _, s := range serials {
		s.stop()
	}
	for _, mon := range mons {
		mon.Close()
	}
	m.wg.Wait()
	for _, c := range cons {
		c.closeFile()
	}
	return nil
}

// exitFromWait turns a child's wait result into a VMExit (Reason unset).
func exitFromWait(ps *os.ProcessState, err error) api.VMExit {
	e := api.VMExit{Time: time.Now(), Code: -1}
	if ps == nil {
		e.Status = fmt.Sprintf("unknown (%v)", err)
		return e
	}
	e.Status = ps.String()
	e.Code = ps.ExitCode()
	return e
}

// killGroup sends SIGKILL to QEMU's process group (QEMU leads it).
func killGroup(pid int) {
	if pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func copyIfMissing(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFrom(dst, in, 0o600)
}

// tailFile returns the last n bytes of a file, trimmed, "" if none.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return strings.TrimSpace(string(b))
}
