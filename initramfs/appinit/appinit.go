// Package appinit is Plinth's appliance init, the kernel's first process
// (PID 1: it mounts the root file systems itself, with u-root's libinit
// types, and reaps the orphans it inherits). It mounts the kernel modules'
// image and the VM payload (QEMU and firmware) on /usr, loads the drivers
// the hardware needs, mounts the STATE file system as soon as its disk
// appears (or says loudly that it runs live, with state in RAM, once every
// storage driver has loaded without one), sets the hostname, brings up the
// management network (the configuration saved in STATE, unless the kernel
// command line gives a static address; from then on vmkernel owns and keeps
// it) beside vmkernel and mgmtd, which it
// starts under the supervisor without waiting for the KVM module, and once
// the API answers prints one machine-readable ready line with the boot
// timings. Then it starts what nothing needed before (the DCUIs, the drivers
// held back, the features' modules) and hands the serial console to a DCUI:
// from then on its own lines and the services' go only to the boot log
// (/run/plinth/boot.log), which the DCUI shows. It waits for the ACPI power
// button, SIGTERM or SIGPWR (power off) or SIGUSR1 (restart) and shuts the
// host down cleanly, giving the serial console back to the log lines.
//
// Each step is named; a failing step is reported by name and, unless the
// appliance cannot work without it, the boot goes on.
package appinit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/board/drivers"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/initramfs/supervisor"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// Config is what the init needs to know; Default gives the appliance's values.
type Config struct {
	Console    io.Writer
	Layout     layout.Host // where STATE and the run directory are
	APIPort    int         // 443
	BinDir     string      // where the service binaries are (/bbin)
	ReadyWait  time.Duration
	PowerOff   func() error // the final step; unix.Reboot(POWER_OFF) on the appliance
	Reboot     func() error // the final step of a restart (SIGUSR1)
	Cmdline    Cmdline
	ModulesDir string // /lib/modules/RELEASE
	// PID1 is set when the init is the kernel's first process: it then
	// mounts the root file systems and reaps orphans.
	PID1 bool
}

// Default returns the appliance's configuration.
func Default() Config {
	var u unix.Utsname
	_ = unix.Uname(&u)
	pid1 := os.Getpid() == 1
	var cmdline Cmdline // as PID 1, read by Run once /proc is mounted
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		cmdline = ParseCmdline(string(b))
	}
	return Config{
		Console:    os.Stdout,
		Layout:     layout.Default(),
		APIPort:    443,
		BinDir:     "/bbin",
		ReadyWait:  3 * time.Minute,
		PowerOff:   func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF) },
		Reboot:     func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) },
		Cmdline:    cmdline,
		ModulesDir: filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])),
		PID1:       pid1,
	}
}

type initProc struct {
	cfg   Config
	start time.Time
	marks []mark // step name and uptime (ms) at its end
	sup   *supervisor.Supervisor
	live  bool
	// mode is where the configuration comes from (stateless.go).
	mode api.BootMode
	mods *drivers.Loader
	// disks are the ext file systems found on block devices, by label.
	disks *blockScan
	// datastores are vmkernel's -datastore arguments (NAME=DIR).
	datastores []string
	mu         sync.Mutex // guards marks: steps run concurrently
	net        netconf.Result
	host       string
	// log is the console writer: the serial console until the DCUI owns
	// it, and the boot log always.
	log *bootLog
	// netcfg is the management network configuration, and netsrc where it
	// came from.
	netcfg netconf.Config
	netsrc string
}

type mark struct {
	name string
	ms   int64
}

func (p *initProc) logf(format string, args ...any) {
	fmt.Fprintf(p.cfg.Console, "plinth-init: "+format+"\n", args...)
}

// uptimeMS is the time since the kernel started, in milliseconds.
func uptimeMS() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e6
}

func (p *initProc) step(name string, fn func() error) error {
	t0 := time.Now()
	err := fn()
	p.mu.Lock()
	p.marks = append(p.marks, mark{name, uptimeMS()})
	p.mu.Unlock()
	if err != nil {
		p.logf("step %s failed after %s: %v", name, time.Since(t0).Round(time.Millisecond), err)
		return fmt.Errorf("step %s: %w", name, err)
	}
	p.logf("step %s done in %s", name, time.Since(t0).Round(time.Millisecond))
	return nil
}

// Run is the appliance init. It returns only when the host is powering off, or
// with an error when a step the appliance cannot live without has failed.
//
// The steps overlap wherever one does not need another: only what the API
// needs is on the way to the ready line. Drivers load in the background
// (the KVM module too: vmkernel decides KVM or TCG once it has loaded, and
// the services do not wait for it); STATE is mounted as soon as a disk with
// its label appears, or the host runs without it once every storage driver
// has loaded without one; the network is configured from STATE and comes up
// beside the services; drivers nobody needs yet, the DCUIs and the serial
// console's hand-over follow the ready line.
func Run(cfg Config) error {
	cfg.Console = newBootLog(cfg.Console)
	p := &initProc{cfg: cfg, start: time.Now(), log: cfg.Console.(*bootLog)}
	p.marks = append(p.marks, mark{"init_start", uptimeMS()})
	if cfg.PID1 {
		// The kernel left an initramfs with nothing mounted.
		_ = p.step("rootfs", setUpRoot)
		// Kernel messages on the console: notice and worse (each line is
		// written to the serial port synchronously).
		_ = os.WriteFile("/proc/sys/kernel/printk", []byte("5"), 0o644)
	}
	if p.cfg.Cmdline == nil {
		b, _ := os.ReadFile("/proc/cmdline")
		p.cfg.Cmdline = ParseCmdline(string(b))
	}
	p.logf("Plinth %s starting", api.Version)
	// Libraries log through the standard logger; keep their messages to
	// one line each on the console.
	log.SetFlags(0)
	log.SetPrefix("plinth-init: ")
	log.SetOutput(firstLineWriter{cfg.Console})

	// Power-off requests are honoured from the first moment: the power button
	// and SIGTERM/SIGINT/SIGPWR; SIGUSR1 is a restart (vmkernel and the DCUI
	// send it).
	power := make(chan string, 4)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR, syscall.SIGUSR1)
	// The init outlives its consoles: a serial DCUI that ends leaves the
	// console's foreground to a dead process group (the init's writes are
	// then a background group's: SIGTTOU) and can hang the terminal up
	// (SIGHUP, which a Go program dies of unless it says otherwise).
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTTOU, syscall.SIGTTIN)
	go func() { s := <-sigs; power <- "signal " + s.String() }()

	_ = p.step("filesystems", p.filesystems)
	p.log.openFile(p.cfg.Layout.BootLog())

	// Drivers: the module image first, then the cold-plug in the background.
	_ = p.step("modules_image", func() error {
		dev, err := mountModules(p.cfg.ModulesDir)
		if err != nil {
			return err
		}
		p.logf("modules: %s on %s (%s)", ModulesImage, p.cfg.ModulesDir, dev)
		if p.cfg.PID1 {
			made, err := staticNodes("/dev", p.cfg.ModulesDir, "tun", "vhost_net")
			if err != nil {
				p.logf("modules: device nodes for on-demand loading: %v", err)
			}
			if len(made) > 0 {
				p.logf("modules: device nodes for on-demand loading: %s", strings.Join(made, " "))
			}
		}
		return nil
	})
	l, err := drivers.NewLoader(p.cfg.ModulesDir, "/sys", p.logf)
	if err != nil {
		p.logf("modules: %v; booting without loading drivers", err)
	}
	p.mods = l
	kvmMarker := p.cfg.Layout.KVMLoading()
	if err := os.WriteFile(kvmMarker, nil, 0o644); err != nil {
		p.logf("KVM: %v", err)
	}
	coldplugged := make(chan struct{})
	go func() {
		defer close(coldplugged)
		if l != nil {
			_ = p.step("modules", p.loadModules)
		}
	}()
	quiet := func(skip func(string) bool) {
		if l != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			l.WaitQuiet(ctx, skip)
			cancel()
		}
	}
	// storageSettled: every driver the ready line needs has loaded, and
	// with them the disks they found.
	storageSettled := make(chan struct{})
	go func() {
		defer close(storageSettled)
		quiet(drivers.IsKVM)
	}()
	go func() {
		// KVM is for the VMs: it loads once the storage and NIC drivers
		// have (until then the CPUs are theirs), beside the services;
		// vmkernel decides KVM or TCG once the marker is gone.
		<-storageSettled
		if ci, err := board.ReadCPUInfo("/proc"); err == nil && ci.KVMModule() != "" && l != nil {
			if _, err := l.Load(ci.KVMModule()); err != nil {
				p.logf("KVM: %v", err)
			}
		}
		p.mu.Lock()
		p.marks = append(p.marks, mark{"kvm", uptimeMS()})
		p.mu.Unlock()
		os.Remove(kvmMarker)
	}()
	nicsUp := make(chan struct{}) // the NIC drivers have loaded
	go func() {
		defer close(nicsUp)
		quiet(func(path string) bool { return drivers.IsStorage(path) || drivers.IsKVM(path) })
	}()
	go func() {
		quiet(drivers.IsKVM)
		watchPowerButton(p.logf, power)
	}()
	payloaded := make(chan struct{})
	go func() {
		defer close(payloaded)
		_ = p.step("payload", func() error {
			dev, err := mountPayload(PayloadImage, "/usr")
			if err != nil {
				return fmt.Errorf("%w; VMs cannot run", err)
			}
			p.logf("payload: %s on /usr (%s)", PayloadImage, dev)
			return checkPayload("/usr")
		})
	}()

	_ = p.step("state", func() error { return p.mountState(storageSettled) })
	trial := p.reconcileUpgrade()
	// The management network, configured from STATE (or the command
	// line), comes up beside the services; the ready line waits for it.
	var netErr error
	p.netcfg, p.netsrc, netErr = networkConfig(p.cfg.Layout.State, p.cfg.Cmdline, p.logf)
	networked := make(chan struct{})
	go func() {
		defer close(networked)
		<-nicsUp
		_ = p.step("network", func() error {
			if netErr != nil {
				return netErr
			}
			return p.applyNetwork()
		})
	}()
	// A stateless host's configuration, fetched over that network, comes
	// before the services and the host name that use it; so does an
	// unattended install's answer file named by URL.
	if p.mode.Mode == api.BootStateless || strings.HasPrefix(p.cfg.Cmdline["plinth.answer"], "http") {
		<-networked
	}
	p.bootMode()
	<-nicsUp // the default host name comes from the first NIC's MAC
	_ = p.step("hostname", p.setHostname)
	<-storageSettled
	_ = p.step("datastores", p.mountDatastores)
	<-payloaded
	if done, reboot := p.installUnattended(); done {
		return p.shutdown("unattended install finished", reboot)
	}
	if p.cfg.PID1 {
		// Every orphan on the host is the init's to reap (a QEMU whose
		// vmkernel died); the services are the supervisor's to wait for.
		go supervisor.ReapOrphans(context.Background(), nil)
	}
	p.sup = supervisor.New(p.cfg.Console)
	if err := p.step("services", p.startServices); err != nil {
		p.logf("the API will not come up; the troubleshooting shell is on the console")
	}
	go func() {
		err := p.step("api", p.waitAPI)
		<-networked
		if err != nil {
			fmt.Fprintf(p.cfg.Console, "PLINTH-NOT-READY %v\n", err)
			if trial {
				p.failTrial(err.Error(), power)
				return
			}
		} else {
			fmt.Fprintln(p.cfg.Console, p.readyLine())
			if trial {
				if err := p.keepTrial(); err != nil {
					p.failTrial(err.Error(), power)
					return
				}
			}
		}
		// What nobody needed before the ready line: the DCUI on the
		// monitor, the serial console's DCUI, the drivers of the
		// appliance's own features.
		if _, err := os.Stat("/dev/tty1"); err == nil {
			if err := p.startDCUI("tty1", "linux"); err != nil {
				p.logf("DCUI on tty1: %v", err)
			}
		}
		p.startSerialDCUIs()
		<-coldplugged
		p.loadLaterModules()
	}()

	why := <-power
	return p.shutdown(why, strings.HasPrefix(why, rebootWhy) || strings.Contains(why, syscall.SIGUSR1.String()))
}

// applyNetwork brings the management network up with p.netcfg.
func (p *initProc) applyNetwork() error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	a := netconf.System(p.logf)
	a.SetHostname = nil // the hostname step decides
	a.RunDir = p.cfg.Layout.Run
	r, err := a.Apply(ctx, p.netcfg)
	if err != nil {
		return err
	}
	p.net = r
	p.logf("management network: %s %s (%s)", r.Interface, r.Address, r.Method)
	p.logf("network configuration from %s", p.netsrc)
	return nil
}

// filesystems sets up what an init that is not PID 1 (started by hand, or
// by another init) may lack: /run, cgroup v2, and the kernel's module
// helper in every case.
func (p *initProc) filesystems() error {
	if err := os.MkdirAll("/run", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount /run: %w", err)
	}
	if err := os.MkdirAll(p.cfg.Layout.Run, 0o755); err != nil {
		return err
	}
	if err := cgroup2(); err != nil {
		p.logf("cgroup v2: %v; VMs run without CPU and memory limits", err)
	}
	// The kernel asks this helper for modules it needs on demand (a bridge
	// for vmkernel's first virtual switch, isofs for the first ISO mount).
	helper := filepath.Join(p.cfg.BinDir, "modprobe")
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(helper+"\n"), 0o644); err != nil {
		return fmt.Errorf("set the kernel's modprobe helper to %s: %w", helper, err)
	}
	return nil
}

// mountState mounts STATE as soon as a block device with its label
// appears; once settled is closed (every storage driver has loaded) without
// one, the host has none: a tmpfs takes its place (stateless.go says how).
func (p *initProc) mountState(settled <-chan struct{}) error {
	if err := os.MkdirAll(p.cfg.Layout.State, 0o755); err != nil {
		return err
	}
	p.disks = newBlockScan("/sys", "/dev")
	loadingExt4 := false
	var dev string
	for {
		final := false
		select {
		case <-settled:
			final = true
		default:
		}
		p.disks.scan()
		if p.disks.ext > 0 && !loadingExt4 && p.mods != nil {
			loadingExt4 = true // for STATE and the datastores, beside the scan
			go p.mods.Load("ext4")
		}
		var ok bool
		if dev, ok = p.disks.labels[StateLabel]; ok || final {
			break
		}
		select {
		case <-settled:
		case <-time.After(20 * time.Millisecond):
		}
	}
	var err error
	if dev == "" {
		err = fmt.Errorf("no block device holds an ext4 file system labelled %s", StateLabel)
	} else {
		if p.mods != nil {
			p.mods.Load("ext4") // waits for the load started above
		}
		if err = unix.Mount(dev, p.cfg.Layout.State, "ext4", unix.MS_NOATIME, ""); err == nil {
			p.logf("STATE: %s mounted on %s", dev, p.cfg.Layout.State)
			if u := p.cfg.Cmdline[ConfigKey]; u != "" {
				p.logf("%s=%s ignored: the host has STATE", ConfigKey, u)
			}
			return nil
		}
		err = fmt.Errorf("mount %s (label %s) on %s: %w", dev, StateLabel, p.cfg.Layout.State, err)
	}
	p.live = true
	if mErr := unix.Mount("tmpfs", p.cfg.Layout.State, "tmpfs", 0, "mode=0755"); mErr != nil {
		return fmt.Errorf("%v; and tmpfs for live mode: %w", err, mErr)
	}
	p.noState(err) // stateless or live (stateless.go)
	return nil
}

// mountDatastores mounts every PLINTH-DS* file system for vmkernel.
func (p *initProc) mountDatastores() error {
	var errs []error
	if p.disks == nil {
		p.disks = newBlockScan("/sys", "/dev")
	}
	p.disks.scan() // the disks that came after STATE
	if p.disks.ext > 0 && p.mods != nil {
		p.mods.Load("ext4")
	}
	for label, dev := range p.disks.labels {
		name := datastoreName(label)
		if name == "" {
			continue
		}
		dir := filepath.Join(layout.Datastores, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(dev, dir, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
			errs = append(errs, fmt.Errorf("mount datastore %s (%s) on %s: %w", label, dev, dir, err))
			continue
		}
		p.datastores = append(p.datastores, name+"="+dir)
		p.logf("datastore %s: %s mounted on %s", name, dev, dir)
	}
	sort.Strings(p.datastores)
	if len(p.datastores) == 0 && len(errs) == 0 {
		p.logf("no datastore (no ext4 file system labelled %s<N>)", DatastorePrefix)
	}
	return errors.Join(errs...)
}

func (p *initProc) setHostname() error {
	h := ""
	src := ""
	if p.netcfg.Hostname != "" {
		h, src = p.netcfg.Hostname, "network configuration"
	} else if b, err := os.ReadFile(p.cfg.Layout.HostnameFile()); err == nil {
		h, src = strings.TrimSpace(string(b)), "STATE"
	}
	if v := p.cfg.Cmdline["plinth.hostname"]; h == "" && v != "" {
		h, src = v, "kernel command line"
	}
	if h != "" && !validHostname(h) {
		p.logf("hostname %q from %s is not a valid host name; using the default", h, src)
		h = ""
	}
	if h == "" {
		h, src = defaultHostname("/sys"), "default"
	}
	if err := unix.Sethostname([]byte(h)); err != nil {
		return fmt.Errorf("sethostname %q: %w", h, err)
	}
	p.host = h
	p.logf("hostname %s (%s)", h, src)
	return nil
}

func (p *initProc) startServices() error {
	logDir := p.cfg.Layout.LogDir()
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		return err
	}
	vmkState := p.cfg.Layout.ServiceState(layout.VMKernel)
	mgmtState := p.cfg.Layout.ServiceState(layout.Mgmtd)
	for _, d := range []string{vmkState, mgmtState} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// mgmtd runs unprivileged: it owns its state and nothing else. What
	// is in there may have been written as root (by the DCUI, an installer
	// or an answer file), so the whole tree is given over.
	if err := chownTree(mgmtState, api.MgmtdUID, api.MgmtdGID); err != nil {
		return fmt.Errorf("chown %s: %w", mgmtState, err)
	}
	sock := p.cfg.Layout.VMKernelSocket()
	// Host power through the API reaches this process: vmkernel signals it.
	vmkArgs := []string{"-socket", sock, "-state", vmkState, "-run", p.cfg.Layout.VMRunDir(),
		"-init-pid", strconv.Itoa(os.Getpid()), "-installer", "-upgrades", "-ksm", p.ksmMode(),
		"-kvm-loading", p.cfg.Layout.KVMLoading(), "-accel", p.accelMode()}
	for _, d := range p.datastores {
		vmkArgs = append(vmkArgs, "-datastore", d)
	}
	if err := p.sup.Start(supervisor.Spec{
		Name: "vmkernel", Path: filepath.Join(p.cfg.BinDir, "vmkernel"),
		Args:    vmkArgs,
		LogFile: p.cfg.Layout.ServiceLog(layout.VMKernel),
	}); err != nil {
		return err
	}
	// The init binds :443 as root and hands the socket to mgmtd as fd 3, so
	// mgmtd never needs a privilege to listen on a low port.
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(p.cfg.APIPort))
	if err != nil {
		return fmt.Errorf("listen on :%d for mgmtd: %w", p.cfg.APIPort, err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return fmt.Errorf("listener file: %w", err)
	}
	if err := p.sup.Start(supervisor.Spec{
		Name: "mgmtd", Path: filepath.Join(p.cfg.BinDir, "mgmtd"),
		Args:       []string{"-listen-fd", "3", "-state", mgmtState, "-vmkernel", sock},
		Credential: &syscall.Credential{Uid: api.MgmtdUID, Gid: api.MgmtdGID},
		ExtraFiles: []*os.File{lf},
		LogFile:    p.cfg.Layout.ServiceLog(layout.Mgmtd),
		PIDFile:    p.cfg.Layout.PIDFile(layout.Mgmtd),
	}); err != nil {
		return err
	}
	return nil
}

// waitAPI polls the API's /healthz until it answers 200.
func (p *initProc) waitAPI() error {
	c := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // our own cert, on loopback
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", p.cfg.APIPort)
	deadline := time.Now().Add(p.cfg.ReadyWait)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("API did not answer %s within %s (last: %s)", url, p.cfg.ReadyWait, last)
}

// readyLine is the one stable, machine-readable line that says the host is up.
// Times are milliseconds since the kernel started (CLOCK_BOOTTIME); the firmware
// time before that is invisible from inside.
func (p *initProc) readyLine() string {
	kv := []string{api.ReadyPrefix,
		"version=" + api.Version,
		"hostname=" + p.host,
		"addr=" + orDash(p.net.Address),
		"mode=" + p.mode.Mode,
	}
	if b, err := readKmsg(); err == nil {
		tl := KernelTimeline(bytes.NewReader(b))
		for _, k := range []string{"unpack_start", "unpack_end", "userspace"} {
			if v, ok := tl[k]; ok {
				kv = append(kv, fmt.Sprintf("%s_ms=%d", k, v))
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.marks {
		kv = append(kv, fmt.Sprintf("%s_ms=%d", m.name, m.ms))
	}
	return strings.Join(kv, " ")
}

// readKmsg returns the kernel log records buffered in /dev/kmsg. It reads
// with raw syscalls: through os.File, Go's poller would wait on EAGAIN for
// the next kernel message instead of returning at the end of the buffer.
func readKmsg() ([]byte, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 8192)
	for len(out) < 4<<20 {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) {
			continue // records were overwritten while we read; go on
		}
		if err != nil || n <= 0 {
			break // EAGAIN: the end of the buffer
		}
		out = append(out, buf[:n]...)
		if buf[n-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out, nil
}

// firstLineWriter writes only the first line of each message.
type firstLineWriter struct{ w io.Writer }

func (f firstLineWriter) Write(b []byte) (int, error) {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i+1]
	}
	_, err := f.w.Write(line)
	return len(b), err
}

// cgroup2 makes sure /sys/fs/cgroup is the unified cgroup v2 hierarchy,
// where vmkernel gives each VM its CPU weight and limits. As PID 1 the init
// mounted it so at once; an init started otherwise (by hand, or by another
// init that mounted cgroup v1 hierarchies on a tmpfs there) replaces what
// is there. A controller can only be in one hierarchy, so v1 ones must go
// first.
func cgroup2() error {
	const dir = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var v1 []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup" && strings.HasPrefix(f[4], dir+"/") {
			v1 = append(v1, f[4])
		}
	}
	for i := len(v1) - 1; i >= 0; i-- {
		// Detached: the kernel answers EBUSY to a plain unmount of some
		// of them; the hierarchy is gone once nothing refers to it.
		if err := unix.Unmount(v1[i], unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount v1 hierarchy %s: %w", v1[i], err)
		}
	}
	_ = unix.Unmount(dir, unix.MNT_DETACH) // u-root's tmpfs under them
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "nsdelegate"); err != nil {
		return fmt.Errorf("mount cgroup2 on %s: %w", dir, err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ksmMode is KSM's setting for vmkernel: on (merge identical pages of VMs,
// as Proxmox does by default) unless plinth.ksm=off asks otherwise.
func (p *initProc) ksmMode() string {
	switch v, ok := p.cfg.Cmdline["plinth.ksm"]; {
	case !ok || v == "on":
		return "on"
	case v == "off":
		return "off"
	default:
		p.logf("plinth.ksm=%q: want on or off; KSM stays on", v)
		return "on"
	}
}

// accelMode is vmkernel's -accel: auto (KVM when the host has it) unless
// plinth.accel=kvm or tcg asks otherwise; tcg runs the VMs emulated on a
// host whose KVM misbehaves (or a nested one that is only emulated itself).
func (p *initProc) accelMode() string {
	switch v, ok := p.cfg.Cmdline["plinth.accel"]; {
	case !ok:
		return "auto"
	case v == "auto" || v == api.AccelKVM || v == api.AccelTCG:
		return v
	default:
		p.logf("plinth.accel=%q: want auto, kvm or tcg; using auto", v)
		return "auto"
	}
}

// shutdownVMs asks vmkernel to shut every running VM down (ACPI power button,
// then a hard stop after plinth.vm_shutdown_timeout seconds, default 60), all
// at once, before the services stop: a host going down takes its guests down
// cleanly rather than leaving QEMU to be killed with the power.
func (p *initProc) shutdownVMs() {
	timeout := 60 * time.Second
	if v, ok := p.cfg.Cmdline["plinth.vm_shutdown_timeout"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			timeout = time.Duration(n) * time.Second
		} else {
			p.logf("plinth.vm_shutdown_timeout=%q is not a number of seconds; using %s", v, timeout)
		}
	}
	c, err := client.NewVMKernel(p.cfg.Layout.VMKernelSocket(), client.WithTimeout(timeout+15*time.Second))
	if err != nil {
		p.logf("shutting down VMs: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	vms, err := c.ListVMs(ctx)
	if err != nil {
		p.logf("shutting down VMs: vmkernel does not answer: %v", err)
		return
	}
	var wg sync.WaitGroup
	for _, vm := range vms {
		if st := vm.Runtime.State; st != api.VMRunning && st != api.VMPaused && st != api.VMStarting {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.logf("shutting down VM %s (up to %s)", vm.Spec.Name, timeout)
			if _, err := c.ShutdownVM(ctx, vm.Spec.ID, timeout); err != nil {
				p.logf("shutting down VM %s: %v", vm.Spec.Name, err)
			}
		}()
	}
	wg.Wait()
}

func (p *initProc) shutdown(why string, reboot bool) error {
	p.releaseSerial()
	p.logf("shutting down (%s)", why)
	if p.sup != nil {
		p.shutdownVMs()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := p.sup.StopAll(ctx); err != nil {
			p.logf("stopping services: %v", err)
		}
		cancel()
	}
	unix.Sync()
	for _, d := range p.datastores {
		_, dir, _ := strings.Cut(d, "=")
		if err := unix.Unmount(dir, 0); err != nil {
			p.logf("unmount datastore %s: %v", dir, err)
		}
	}
	if !p.live {
		if err := unix.Unmount(p.cfg.Layout.State, 0); err != nil {
			p.logf("unmount STATE: %v (remounting read-only)", err)
			_ = unix.Mount("", p.cfg.Layout.State, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	if reboot && p.cfg.Reboot != nil {
		p.logf("restarting")
		return p.cfg.Reboot()
	}
	p.logf("powering off")
	return p.cfg.PowerOff()
}

// chownTree gives dir and everything below it to uid:gid, without following
// symbolic links.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
