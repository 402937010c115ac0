// Command vmkernel is Plinth's root VM service: it decides the host's
// acceleration (KVM or TCG) once (when the KVM module has loaded, if the
// init is still loading it: -kvm-loading), loads the VM inventory, re-attaches to the
// QEMU processes a previous vmkernel left running, then serves the local API
// on a unix socket until SIGTERM or SIGINT (which leaves the VMs running),
// starting meanwhile the stopped VMs flagged for autostart, in their order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/board/accel"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/upgrade"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/cgroup"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/events"
	"github.com/plinth/plinth/vmkernel/hostconf"
	"github.com/plinth/plinth/vmkernel/hostinfo"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/passthrough"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/vswitch"
)

// reattachTimeout bounds the re-attaching of the VMs a previous vmkernel
// left running, the QMP of a busy QEMU waited for.
const reattachTimeout = 10 * time.Minute

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("vmkernel: exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("vmkernel", flag.ContinueOnError)
	where := layout.Default()
	socket := fs.String("socket", where.VMKernelSocket(), "unix socket of the local API")
	state := fs.String("state", where.ServiceState(layout.VMKernel), "state directory")
	qemuBin := fs.String("qemu", "qemu-system-x86_64", "QEMU binary")
	gid := fs.Int("socket-gid", api.MgmtdGID, "group that may connect to the socket (applied when running as root)")
	runRoot := fs.String("run", where.VMRunDir(), "directory of the running VMs' sockets (one subdirectory per VM)")
	accelMode := fs.String("accel", "auto", "acceleration: auto (detect), kvm (refused unless detected) or tcg (force emulation)")
	kvmLoading := fs.String("kvm-loading", "", "a file that exists while the init is still loading the KVM module: the acceleration is decided once it is gone, and VM starts wait for that (the appliance sets it); empty: decide at start")
	offerInstall := fs.Bool("installer", false, "offer installing Plinth to one of this host's disks through the API (the appliance sets it)")
	offerUpgrades := fs.Bool("upgrades", false, "offer system upgrades and rollback of the boot disk's banks through the API (the appliance sets it)")
	ksm := fs.String("ksm", "keep", "KSM (merging identical memory pages of VMs): on, off, or keep (leave the kernel's setting; the appliance sets on)")
	initPID := fs.Int("init-pid", 0, "serve host reboot and shutdown by signalling the appliance init at this pid (SIGUSR1 reboots, SIGTERM shuts down); 0: host power is not managed here")
	fs.StringVar(&where.State, "host-state", where.State, "the STATE directory, where the host's settings are kept (network.json, config/, mgmtd/)")
	fs.StringVar(&where.Run, "host-run", where.Run, "the run directory (the record of the management network, boot.log, pid files)")
	resolvConf := fs.String("resolv-conf", layout.ResolvConf, "the resolver's file, which the management network writes")
	setHostname := fs.Bool("set-hostname", true, "apply the configured host name to the system (tests turn it off)")
	sshAddr := fs.String("ssh-addr", ":22", "where the SSH service listens when it is on")
	sshDCUI := fs.String("ssh-dcui", "/bbin/dcui", "the DCUI binary an SSH login runs on its terminal")
	sshShell := fs.String("ssh-shell", "/bbin/gosh", "the shell an SSH login runs")
	setClock := fs.Bool("set-clock", true, "let the NTP client set the system clock (tests turn it off)")
	datastores := datastoreFlag{}
	fs.Var(datastores, "datastore", "a datastore as NAME=DIR (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	for name, dir := range datastores {
		if os.Geteuid() == 0 {
			// Only vmkernel walks a datastore: QEMU and qemu-img are
			// handed descriptors, and no other user may pass through.
			if err := os.Chmod(dir, 0o700); err != nil {
				log.Error("vmkernel: datastore root mode", "datastore", name, "err", err)
			}
		}
		// What writes cut short by a crash left (uploads, conversions,
		// imports): never a file of the datastore.
		if removed, err := (datastore.Datastore{Name: name, Root: dir}).Sweep(); err != nil {
			log.Error("vmkernel: sweeping the datastore", "datastore", name, "err", err)
		} else if len(removed) > 0 {
			log.Warn("vmkernel: removed what interrupted writes left", "datastore", name, "files", removed)
		}
	}

	if _, err := chooseAccel(api.Acceleration{Mode: api.AccelKVM}, *accelMode); err != nil {
		return err // a bad -accel value
	}
	decider := accel.NewDecider(accel.DeciderConfig{
		Loading: *kvmLoading,
		Detect: func() api.Acceleration {
			a, err := chooseAccel(accel.Detect(), *accelMode)
			if err != nil { // -accel kvm on a host without it: no VM starts
				a.Mode, a.Reason = "", err.Error()
			}
			return a
		},
		OnDecided: func(acc api.Acceleration, waited time.Duration) {
			switch acc.Mode {
			case api.AccelTCG:
				log.Warn("vmkernel: WARNING: virtual machines will run under TCG emulation (slow)", "reason", acc.Reason, "decided_after", waited.Round(time.Millisecond))
			case api.AccelKVM:
				log.Info("vmkernel: acceleration", "mode", acc.Mode, "reason", acc.Reason, "decided_after", waited.Round(time.Millisecond))
			default:
				log.Error("vmkernel: virtual machines cannot start", "reason", acc.Reason)
			}
		},
	})
	accelNow := func(ctx context.Context) (string, error) {
		a, err := decider.Wait(ctx)
		if err == nil && a.Mode == "" {
			err = errors.New(a.Reason)
		}
		return a.Mode, err
	}
	if *accelMode == api.AccelKVM { // insisting on KVM: fail now, not at the first VM start
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := accelNow(ctx)
		cancel()
		if err != nil {
			return err
		}
	}

	// Asking QEMU its version proves it loads; in the appliance that first run
	// also pages QEMU in from the compressed payload image, which takes seconds
	// under TCG, so it runs beside the API rather than before it (and the first
	// VM start then finds QEMU warm).
	var qemu atomic.Value
	qemu.Store("")
	go func() {
		v, err := qemuVersion(*qemuBin, log, time.Minute)
		if err != nil {
			log.Warn("vmkernel: WARNING: QEMU does not run; virtual machines cannot start", "err", err)
			return
		}
		qemu.Store(v)
		log.Info("vmkernel: QEMU", "version", v)
	}()
	src := hostinfo.Source{}
	host := func() (api.Host, error) {
		h, err := src.Gather()
		h.Acceleration = decider.Current()
		h.QEMU = qemu.Load().(string)
		return h, err
	}
	inv, err := inventory.Open(filepath.Join(*state, "vms"))
	if err != nil {
		return err
	}
	for _, e := range inv.Skipped() {
		log.Error("vmkernel: VM file not loaded", "err", e)
	}
	// Virtual switches live in the host's network namespace; without them
	// (netlink refused) VMs still run, on user-mode NAT only.
	var switches runner.Switches
	vs, err := vswitch.Open(vswitch.Config{Dir: filepath.Join(*state, "switches"), Log: log})
	if err != nil {
		log.Error("vmkernel: virtual switches unavailable; NICs on switches cannot start", "err", err)
	} else {
		defer vs.Close()
		switches = vs
		for _, e := range vs.Problems() {
			log.Error("vmkernel: virtual switch not ready", "err", e)
		}
	}
	// Per-VM CPU weight and limits need cgroup v2 with cpu and memory (the
	// appliance mounts it; a development host may have them in v1).
	var cgroups runner.Cgroups
	if cg, err := openCgroups(); err != nil {
		log.Warn("vmkernel: WARNING: VMs run without CPU and memory limits", "err", err)
	} else {
		cgroups = cg
		log.Info("vmkernel: cgroup v2", "parent", filepath.Join(cg.Root, cgroup.Parent), "cpu_controller", cg.CPU)
		if !cg.CPU {
			log.Warn("vmkernel: WARNING: no cpu controller in cgroup v2: VMs asking for a CPU weight or cap will not start")
		}
	}
	broker := events.New(0)
	// Host devices go to VMs only when vmkernel can bind drivers and give
	// device nodes away: as root.
	var devices runner.Devices
	if os.Geteuid() == 0 {
		devices = passthrough.NewHost(log)
	}
	if err := hostinfo.SetKSM(*ksm); err != nil {
		log.Warn("vmkernel: KSM", "err", err)
	}
	mgr, err := runner.New(runner.Config{
		QEMU: *qemuBin, AccelNow: accelNow, Datastores: datastores,
		RunRoot: *runRoot, StateRoot: filepath.Join(*state, "vm-state"), Log: log,
		Switches: switches, OnState: broker.StateHook, Cgroups: cgroups, Devices: devices,
	})
	if err != nil {
		return err
	}
	defer mgr.Close() // detach only: the VMs keep running for the next vmkernel
	// Long: a QEMU that was saving a snapshot when the last vmkernel died
	// answers only when the save is done.
	actx, acancel := context.WithTimeout(context.Background(), reattachTimeout)
	ids, err := mgr.Reattach(actx, inv.List())
	acancel()
	if err != nil {
		log.Error("vmkernel: re-attaching running VMs", "err", err)
	}
	log.Info("vmkernel: VMs", "defined", len(inv.List()), "re-attached", len(ids), "datastores", len(datastores))
	var power func(action, reason string) error
	if *initPID > 0 {
		power = signalInit(log, *initPID)
	}
	var inst *installer.Env
	if *offerInstall {
		e := installer.DefaultEnv()
		inst = &e
	}
	var upg *vmkernel.Upgrades
	if *offerUpgrades {
		upg = &vmkernel.Upgrades{Open: openBanks, PublicKey: upgrade.PublicKey, StageDir: where.UpgradeStage()}
	}
	// The host's settings: vmkernel owns them and keeps the management
	// network (DHCP renewals, a change's rollback) from now on.
	ap := netconf.System(func(format string, a ...any) { log.Info("vmkernel: " + fmt.Sprintf(format, a...)) })
	ap.RunDir, ap.ResolvConf = where.Run, *resolvConf
	if !*setHostname {
		ap.SetHostname = nil
	}
	var clock func(time.Duration) error
	if !*setClock {
		clock = func(off time.Duration) error {
			log.Info("vmkernel: the clock is left alone (-set-clock=false)", "offset", off)
			return nil
		}
	}
	hc := hostconf.New(hostconf.Config{Layout: where, Net: &netconf.Host{Applier: ap}, Log: log, Power: power,
		Hardware: func() (api.Hardware, error) { return board.Read(board.DefaultRoot()) },
		SetClock: clock, SSHAddr: *sshAddr, SSHCommands: map[string][]string{
			api.SSHSessionDCUI:  {*sshDCUI, "-vmkernel", *socket, "-shell", *sshShell},
			api.SSHSessionShell: {*sshShell},
		}})
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	hc.Run(hctx)
	srv := vmkernel.New(vmkernel.Config{Host: host, Log: log, Inventory: inv, Runner: mgr, Datastores: datastores,
		Switches: vs, Events: broker, Power: power, Installer: inst, Upgrades: upg, HostConf: hc})
	l, err := vmkernel.Listen(*socket, *gid)
	if err != nil {
		return err
	}
	log.Info("vmkernel: serving", "socket", *socket, "version", api.Version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	// Autostart beside the API (re-attached VMs are running, so left alone).
	autoDone := make(chan struct{})
	go func() {
		defer close(autoDone)
		autostart(ctx, log, inv.List(), inv.Get, mgr)
	}()
	defer func() { // before mgr.Close (deferred earlier)
		select {
		case <-autoDone:
		case <-time.After(5 * time.Second):
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("vmkernel: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	os.Remove(*socket)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// signalInit is host power by signals to the appliance's init (pid): it
// maps SIGTERM to a shutdown and SIGUSR1 to a reboot.
func signalInit(log *slog.Logger, pid int) func(action, reason string) error {
	return func(action, reason string) error {
		var sig syscall.Signal
		switch action {
		case api.PowerShutdown:
			sig = syscall.SIGTERM
		case api.PowerReboot:
			sig = syscall.SIGUSR1
		default:
			return fmt.Errorf("host power action %q: want reboot or shutdown", action)
		}
		log.Warn("vmkernel: host "+action+" requested; signalling init", "reason", reason, "pid", pid, "signal", sig)
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("signalling init (pid %d): %w", pid, err)
		}
		return nil
	}
}

// chooseAccel applies the -accel flag to the detected acceleration: auto
// takes it, tcg forces emulation, kvm insists on KVM and fails when the host
// cannot give it.
func chooseAccel(detected api.Acceleration, mode string) (api.Acceleration, error) {
	switch mode {
	case "auto":
		return detected, nil
	case api.AccelTCG:
		if detected.Mode != api.AccelTCG {
			detected.Reason = "tcg: forced by -accel tcg (KVM is available)"
		}
		detected.Mode = api.AccelTCG
		return detected, nil
	case api.AccelKVM:
		if detected.Mode != api.AccelKVM {
			return detected, fmt.Errorf("-accel kvm: this host cannot use KVM: %s", detected.Reason)
		}
		return detected, nil
	}
	return detected, fmt.Errorf("-accel %q: want auto, kvm or tcg", mode)
}

// datastoreFlag collects -datastore NAME=DIR flags.
type datastoreFlag map[string]string

func (d datastoreFlag) String() string {
	var parts []string
	for k, v := range d {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (d datastoreFlag) Set(s string) error {
	name, dir, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not NAME=DIR", s)
	}
	if msg := api.CheckName(name); msg != "" {
		return fmt.Errorf("datastore name %q: %s", name, msg)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("datastore %s: directory %q is not absolute", name, dir)
	}
	if _, dup := d[name]; dup {
		return fmt.Errorf("datastore %s given twice", name)
	}
	d[name] = filepath.Clean(dir)
	return nil
}

// openCgroups finds the cgroup2 mount and prepares Plinth's parent group.
func openCgroups() (*cgroup.Manager, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	root, err := cgroup.Find(f)
	if err != nil {
		return nil, err
	}
	// A controller freed from a cgroup v1 hierarchy that was just unmounted
	// (the appliance's init does that) reaches v2 only once the kernel has
	// torn the old hierarchy down: give it a few seconds.
	var m *cgroup.Manager
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m, err = cgroup.Open(root); err == nil || time.Now().After(deadline) || root != "/sys/fs/cgroup" {
			return m, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openBanks mounts the boot disk's ESP for the upgrade routes: the running
// bank from the kernel command line, STATE where the appliance keeps it.
func openBanks(write bool) (upgrade.Host, func(), error) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return upgrade.Host{}, nil, err
	}
	rel, err := upgrade.ParseRelease(api.Release)
	if err != nil {
		return upgrade.Host{}, nil, fmt.Errorf("this build's %w", err)
	}
	esp, release, err := upgrade.Mount(installer.DefaultEnv(), layout.Default().UpgradeMount(), write)
	if err != nil {
		return upgrade.Host{}, nil, err
	}
	return upgrade.Host{ESP: esp, StateDir: layout.StateDir, Running: upgrade.RunningBank(string(cmdline)),
		Version: api.Version, Release: rel, Firmware: upgrade.Firmware("/sys")}, release, nil
}

// qemuVersion asks QEMU its version, and asks again when an answer is
// slow rather than wrong: the first run pages QEMU in from the payload
// image, which under TCG on a busy host took longer than the 20 s it once
// had (what a killed try read stays in the page cache, so the next is
// quicker). Five slow tries, or any other failure, and QEMU does not run.
func qemuVersion(bin string, log *slog.Logger, perTry time.Duration) (string, error) {
	const tries = 5
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), perTry)
		v, err := hostinfo.QEMUVersion(ctx, bin)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || try == tries {
			return v, err
		}
		log.Info("vmkernel: QEMU is slow to answer --version (paging in); asking again", "try", try, "of", tries, "each", perTry)
	}
}
