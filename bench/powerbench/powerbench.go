// Package powerbench measures vmkernel's power-on latency against a floor,
// and the time to list many defined VMs through the local API (see
// bench/poweron and docs/PERFORMANCE.md).
//
//   - Floor: exec bare qemu-system-x86_64 with the very command line vmkernel
//     would generate for the guest (qemu.Cmdline, plus -S, as the runner
//     does), until its QMP socket answers qmp_capabilities.
//   - Plinth: POST /v1/vms/{id}/start on an in-process vmkernel server over
//     its unix socket, until the call returns: the runner has started QEMU,
//     negotiated QMP and had "cont" acknowledged, so QMP reports the VM
//     running (the returned runtime state is checked to say so).
//   - libvirt (with Options.Libvirt): `virsh start` of the same guest as a
//     defined libvirt domain (DomainXML), until virsh returns: libvirtd has
//     started QEMU, set it up over QMP and resumed its CPUs (the domain
//     state is checked to be running, untimed).
//
// Runs are interleaved (floor, Plinth, libvirt, floor, ...) after one
// discarded warm-up of each; every VM is stopped before the next run.
package powerbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/stats"
	"github.com/plinth/plinth/client"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/cgroup"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/qmp"
	"github.com/plinth/plinth/vmkernel/runner"
)

// Options configures Run.
type Options struct {
	QEMU   string // qemu-system-x86_64 binary
	Kernel string // guest kernel (direct boot)
	// Initrd is the guest's initramfs (qemu-test's floor); empty: built
	// here, which needs the go command and this repository.
	Initrd string
	// Cgroups runs the in-process vmkernel as the appliance does: every
	// QEMU in its cgroup v2 group (cgroup.Parent), the VM with a memory
	// limit. It needs cgroup v2 with the memory controller (the appliance
	// has it; a host with cgroup v1 for memory does not).
	Cgroups   bool
	Accel     api.Acceleration
	Runs      int // power-ons of each kind
	MemoryMiB int
	// ListVMs is how many VMs to define for the listing benchmark (0: none);
	// they are listed Runs times.
	ListVMs int
	// Libvirt adds the libvirt peer; SetupLibvirt must have run. Self is
	// this program, which runs libvirtd under Reap when started with
	// reaperEnv set (bench/poweron's main calls IsReaper and Reap).
	Libvirt bool
	Self    string
	Logf    func(format string, args ...any)
}

// Result is what Run measured.
type Result struct {
	Options Options
	Date    time.Time
	Floor   []time.Duration // exec to QMP answering
	Plinth  []time.Duration // start call to running
	Libvirt []time.Duration // virsh start to its return, if asked for
	// LibvirtVersion is libvirtd's and QEMU's, as `virsh version --daemon`
	// says them.
	LibvirtVersion string
	// Define is the time to define the ListVMs VMs in a fresh inventory;
	// List the time of each ListVMs call returning all of them when
	// nothing changed since the one before (vmkernel answers from its list
	// cache), ListCold of one right after a change to one VM (vmkernel
	// encodes the list afresh).
	Define   time.Duration
	List     []time.Duration
	ListCold []time.Duration
}

// Run runs the benchmarks. Every QEMU it starts is gone when it returns.
func Run(ctx context.Context, o Options) (_ *Result, err error) {
	if o.Runs <= 0 {
		o.Runs = 20
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 256
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	base, err := os.MkdirTemp("", "pb") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil { // the VMs' users pass through to their run directories
		return nil, err
	}
	ds := filepath.Join(base, "ds")
	if err := os.MkdirAll(ds, 0o755); err != nil {
		return nil, err
	}
	build := qemutest.BuildFloor
	if o.Initrd != "" {
		build = func(dir string) (string, error) { // a copy: InstallGuest moves it
			b, err := os.ReadFile(o.Initrd)
			if err != nil {
				return "", err
			}
			p := filepath.Join(dir, "init.cpio")
			return p, os.WriteFile(p, b, 0o644)
		}
	}
	if err := qemutest.InstallGuest(o.Kernel, ds, build); err != nil {
		return nil, err
	}
	datastores := map[string]string{"ds": ds}
	res := &Result{Options: o, Date: time.Now()}

	srv, err := serve(base, "vk", datastores, o)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	spec := guest("poweron", o.MemoryMiB)
	if o.Cgroups {
		spec.Resources.MemoryLimitMiB = 2 * o.MemoryMiB
	}
	vm, err := srv.c.CreateVM(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("creating the VM: %w", err)
	}
	floorSpec := vm.Spec
	floorSpec.ID = api.NewUUID() // its own run directory
	// The floor is bare QEMU as a user would run it: the guest's files by
	// name, as root.
	floorEnv := qemu.Env{QEMU: o.QEMU, Accel: o.Accel.Mode, RunDir: filepath.Join(base, "floor"),
		Kernel: filepath.Join(ds, floorSpec.Kernel.Kernel)}
	if floorSpec.Kernel.Initrd != "" {
		floorEnv.Initrd = filepath.Join(ds, floorSpec.Kernel.Initrd)
	}
	if err := os.MkdirAll(floorEnv.RunDir, 0o700); err != nil {
		return nil, err
	}
	var lv *peer
	if o.Libvirt {
		lvSpec := vm.Spec
		lvSpec.ID = api.NewUUID()
		lvSpec.Name = "plinth-poweron"
		dir := filepath.Join(base, "libvirt")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if lv, err = startPeer(ctx, o.Self, dir, LibvirtGuest{Spec: lvSpec, Accel: o.Accel.Mode, Datastores: datastores,
			Emulator: o.QEMU, SerialSock: filepath.Join(dir, qemu.SerialSocket)}); err != nil {
			return nil, fmt.Errorf("libvirt: %w", err)
		}
		defer lv.close()
		res.LibvirtVersion = lv.version
		logf("libvirt: %s", lv.version)
	}
	for i := 0; i <= o.Runs; i++ { // run 0 is the warm-up
		f, err := floor(ctx, floorSpec, floorEnv)
		if err != nil {
			return nil, fmt.Errorf("floor run %d: %w", i, err)
		}
		t0 := time.Now()
		got, err := srv.c.VMAction(ctx, vm.Spec.ID, api.ActionStart)
		p := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("Plinth run %d: %w", i, err)
		}
		if got.Runtime.State != api.VMRunning {
			return nil, fmt.Errorf("Plinth run %d: state %q after start, want running", i, got.Runtime.State)
		}
		if _, err := srv.c.VMAction(ctx, vm.Spec.ID, api.ActionStop); err != nil {
			return nil, fmt.Errorf("Plinth run %d: stop: %w", i, err)
		}
		var l time.Duration
		if lv != nil {
			if l, err = lv.start(ctx); err != nil {
				return nil, fmt.Errorf("libvirt run %d: %w", i, err)
			}
		}
		if i == 0 {
			logf("warm-up: floor %v, Plinth %v, libvirt %v (not counted)", f, p, l)
			continue
		}
		res.Floor = append(res.Floor, f)
		res.Plinth = append(res.Plinth, p)
		if lv != nil {
			res.Libvirt = append(res.Libvirt, l)
		}
		logf("run %d/%d: floor %v, Plinth %v, libvirt %v", i, o.Runs, f.Round(time.Microsecond), p.Round(time.Microsecond), l.Round(time.Microsecond))
	}

	if o.ListVMs > 0 {
		ls, err := serve(base, "ls", datastores, o)
		if err != nil {
			return nil, err
		}
		defer ls.close()
		t0 := time.Now()
		for i := range o.ListVMs {
			spec := guest(fmt.Sprintf("vm%04d", i), o.MemoryMiB)
			if err := ls.inv.Create(&spec); err != nil {
				return nil, fmt.Errorf("defining VM %d: %w", i, err)
			}
		}
		res.Define = time.Since(t0)
		logf("defined %d VMs in %v", o.ListVMs, res.Define)
		list := func() (time.Duration, []api.VM, error) {
			t0 := time.Now()
			vms, err := ls.c.ListVMs(ctx)
			d := time.Since(t0)
			if err == nil && len(vms) != o.ListVMs {
				err = fmt.Errorf("listing gave %d VMs, want %d", len(vms), o.ListVMs)
			}
			return d, vms, err
		}
		_, vms, err := list() // opens the connection
		if err != nil {
			return nil, fmt.Errorf("listing: %w", err)
		}
		for i := 0; i < o.Runs; i++ {
			// A change to one VM: the next answer is encoded afresh...
			spec := vms[i%len(vms)].Spec
			spec.MemoryMiB += 1 - 2*(i/len(vms)%2)
			if _, err := ls.c.UpdateVM(ctx, spec); err != nil {
				return nil, fmt.Errorf("listing: changing VM %s: %w", spec.Name, err)
			}
			cold, got, err := list()
			if err != nil {
				return nil, fmt.Errorf("listing: %w", err)
			}
			// ...and the one after it comes from the cache.
			warm, _, err := list()
			if err != nil {
				return nil, fmt.Errorf("listing: %w", err)
			}
			vms = got
			res.ListCold, res.List = append(res.ListCold, cold), append(res.List, warm)
		}
		logf("listed %d VMs: median %v from the cache, %v right after a change", o.ListVMs, stats.Median(res.List), stats.Median(res.ListCold))
	}
	return res, nil
}

func guest(name string, mem int) api.VMSpec {
	return api.VMSpec{
		Name: name, MemoryMiB: mem, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinuz", Initrd: "init.cpio",
			Cmdline: "console=ttyS0 quiet panic=-1 " + qemutest.FloorHangCmdline},
	}
}

// floor execs QEMU with spec's command line plus -S and times it until QMP
// has answered qmp_capabilities; then it kills QEMU and waits for it.
func floor(ctx context.Context, spec api.VMSpec, env qemu.Env) (time.Duration, error) {
	spec.Defaults()
	args, err := qemu.Cmdline(spec, env)
	if err != nil {
		return 0, err
	}
	args = append(args, "-S")
	sock := filepath.Join(env.RunDir, qemu.QMPSocket)
	for _, s := range []string{qemu.QMPSocket, qemu.SerialSocket, qemu.VNCSocket} {
		os.Remove(filepath.Join(env.RunDir, s))
	}
	var stderr strings.Builder
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = env.RunDir
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		mon, err := qmp.Dial(dctx, sock)
		if err == nil {
			d := time.Since(t0)
			mon.Close()
			return d, nil
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("QEMU exited: %s", stderr.String())
		case <-dctx.Done():
			return 0, fmt.Errorf("QMP did not answer: %w", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// server is an in-process vmkernel on a unix socket, with a client.
type server struct {
	inv  *inventory.Inventory
	m    *runner.Manager
	srv  *vmkernel.Server
	c    *client.Client
	done chan error
}

func serve(base, name string, datastores map[string]string, o Options) (*server, error) {
	dir := filepath.Join(base, name)
	inv, err := inventory.Open(filepath.Join(dir, "vms"))
	if err != nil {
		return nil, err
	}
	cfg := runner.Config{QEMU: o.QEMU, Accel: o.Accel.Mode, Datastores: datastores,
		RunRoot: filepath.Join(dir, "run"), StateRoot: filepath.Join(dir, "vm-state")}
	if o.Cgroups {
		cg, err := openCgroups()
		if err != nil {
			return nil, fmt.Errorf("cgroups as on the appliance: %w", err)
		}
		cfg.Cgroups = cg
	}
	m, err := runner.New(cfg)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "vmkernel.sock")
	l, err := vmkernel.Listen(sock, os.Getgid())
	if err != nil {
		m.Close()
		return nil, err
	}
	s := &server{inv: inv, m: m, done: make(chan error, 1)}
	s.srv = vmkernel.New(vmkernel.Config{Host: func() (api.Host, error) { return api.Host{}, nil },
		Inventory: inv, Runner: m, Datastores: datastores})
	go func() { s.done <- s.srv.Serve(l) }()
	if s.c, err = client.NewVMKernel(sock, client.WithTimeout(time.Minute)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close stops every VM (killing any that resist) and the server.
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, id := range s.m.IDs() {
		if pid := s.m.Status(id).PID; pid > 0 {
			defer syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	s.m.StopAll(ctx)
	s.m.Close()
	s.srv.Shutdown(ctx)
	<-s.done
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// Targets of issue 3.
const (
	TargetRatio        = 1.2
	TargetLibvirtRatio = 0.5 // Plinth at most half of libvirt's
	TargetList         = 20 * time.Millisecond
)

// Markdown writes the result as a section for docs/PERFORMANCE.md.
func (r *Result) Markdown(w io.Writer) {
	o := r.Options
	lv := len(r.Libvirt) > 0
	flag := ""
	if lv {
		flag = " -libvirt"
	}
	fmt.Fprintf(w, "## Power-on latency: vmkernel vs bare QEMU (`go run ./bench/poweron -n %d%s`)\n\n", len(r.Floor), flag)
	fmt.Fprintf(w, "- Date: %s; machine: %s, %d CPUs (runtime.NumCPU)\n", r.Date.Format("2006-01-02"), qemutest.HostCPU(), runtime.NumCPU())
	fmt.Fprintf(w, "- Acceleration: %s (%s)\n", o.Accel.Mode, o.Accel.Reason)
	fmt.Fprintf(w, "- Guest: pc, 1 vCPU, %d MiB, serial console, direct kernel boot of `%s` with the floor initramfs\n", o.MemoryMiB, o.Kernel)
	fmt.Fprintf(w, "- Floor: exec `qemu-system-x86_64` with the command line vmkernel generates (`qemu.Cmdline`) plus `-S`, until QMP answers `qmp_capabilities`.\n")
	fmt.Fprintf(w, "- Plinth: `POST /v1/vms/{id}/start` to an in-process vmkernel over its unix socket, until it returns with the VM running (QEMU started, QMP negotiated, `cont` acknowledged).\n")
	if o.Cgroups {
		fmt.Fprintf(w, "- vmkernel as the appliance runs it: cgroups on (each QEMU in its cgroup v2 group under `plinth.vms`, the VM with a %d MiB memory limit).\n", 2*o.MemoryMiB)
	} else {
		fmt.Fprintf(w, "- vmkernel without cgroups (this host has no cgroup v2 memory controller).\n")
	}
	if lv {
		fmt.Fprintf(w, "- libvirt: `virsh start` of the same guest defined as a libvirt domain (type 'qemu' for TCG with `-cpu max`, 'kvm' with `-cpu host`; same machine, memory, kernel, initrd, serial socket, virtio-rng; no USB, video or balloon), from exec until virsh returns, which libvirtd does once QEMU runs with its CPUs resumed (`cont`); includes virsh's own start and connection. libvirtd runs under a child subreaper, QEMU as root; %s.\n", r.LibvirtVersion)
	}
	fmt.Fprintf(w, "- Runs interleaved after one discarded warm-up of each; the VM is stopped between runs.\n\n")
	if lv {
		fmt.Fprintln(w, "| run | floor (ms) | Plinth (ms) | libvirt (ms) |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	} else {
		fmt.Fprintln(w, "| run | floor (ms) | Plinth (ms) |")
		fmt.Fprintln(w, "| --- | ---: | ---: |")
	}
	for i := range r.Floor {
		fmt.Fprintf(w, "| %d | %s | %s |", i+1, ms(r.Floor[i]), ms(r.Plinth[i]))
		if lv && i < len(r.Libvirt) {
			fmt.Fprintf(w, " %s |", ms(r.Libvirt[i]))
		}
		fmt.Fprintln(w)
	}
	mf, mp, ml := stats.Median(r.Floor), stats.Median(r.Plinth), stats.Median(r.Libvirt)
	if lv {
		fmt.Fprintf(w, "| **median** | **%s** | **%s** | **%s** |\n\n", ms(mf), ms(mp), ms(ml))
	} else {
		fmt.Fprintf(w, "| **median** | **%s** | **%s** |\n\n", ms(mf), ms(mp))
	}
	if mf > 0 {
		ratio := mp.Seconds() / mf.Seconds()
		fmt.Fprintf(w, "Plinth − floor (medians): **%s ms**; Plinth / floor: **%.2f×** (target ≤ %.1f×: %s).\n\n",
			ms(mp-mf), ratio, TargetRatio, verdict(ratio <= TargetRatio))
	}
	if lv && ml > 0 {
		ratio := mp.Seconds() / ml.Seconds()
		fmt.Fprintf(w, "Plinth / libvirt (medians): **%.2f×**, libvirt / Plinth **%.1f×** (target ≤ %.1f×: %s).\n\n",
			ratio, ml.Seconds()/mp.Seconds(), TargetLibvirtRatio, verdict(ratio <= TargetLibvirtRatio))
	}
	if len(r.List) > 0 {
		ml := stats.Median(r.List)
		fmt.Fprintf(w, "## Listing %d defined VMs (`GET /v1/vms` over the unix socket)\n\n", o.ListVMs)
		fmt.Fprintf(w, "- %d VMs defined in a fresh inventory (none running) in %s ms (each written atomically, fsynced).\n", o.ListVMs, ms(r.Define))
		fmt.Fprintf(w, "- `client.ListVMs` on a kept-alive connection (after one discarded call), decoding all %d; %d times *cold*, right after one VM's spec was changed through the API (vmkernel encodes the list afresh), each followed by a *warm* call (vmkernel answers from its list cache, kept while nothing changes).\n\n", o.ListVMs, len(r.List))
		parts := func(ds []time.Duration) string {
			p := make([]string, len(ds))
			for i, d := range ds {
				p[i] = ms(d)
			}
			return strings.Join(p, ", ")
		}
		fmt.Fprintf(w, "Per call (ms), cold: %s.\n\nPer call (ms), warm: %s.\n\n", parts(r.ListCold), parts(r.List))
		mc := stats.Median(r.ListCold)
		fmt.Fprintf(w, "Medians: cold **%s ms** (target < %s ms: %s), warm **%s ms** (%s).\n", ms(mc), ms(TargetList), verdict(mc < TargetList), ms(ml), verdict(ml < TargetList))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// openCgroups opens the cgroup v2 hierarchy as vmkernel does.
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
	return cgroup.Open(root)
}
