package qemutest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board/accel"
	"github.com/plinth/plinth/client"
)

// TestNestedKVMSnapshots is issue 17's main snapshot paths again where
// they run on KVM: inside the appliance (booted under TCG with -cpu max,
// kvm_amd gives vmkernel a nested /dev/kvm). A guest with an ext4 disk
// writes a marker file, a snapshot keeps its memory, the guest overwrites
// the file, the revert brings the guest back running and it reads the first
// marker; a middle snapshot is deleted and the chain is one shorter with the
// data of the last intact. Everything goes through mgmtd's API with the one
// client.
//
// It is not one of make e2e's TestAppliance tests, and it has no UEFI
// guest: the nested KVM runs on the rig's TCG emulation of AMD's SVM,
// which aborts the whole appliance as soon as a nested guest writes CR8
// (OVMF does; the floor's Linux kernel does not). By QEMU's source, its
// helper_write_crN (target/i386/tcg/system/misc_helper.c) raises
// CPU_INTERRUPT_VIRQ after letting go of the big QEMU lock, which
// tcg_handle_interrupt asserts is held ("assertion failed:
// (bql_locked())"): every run of a UEFI variant, four on QEMU 10.0 on
// 2026-12-07 (-cpu max, max,-vgif, max,-x2apic) and two on 7.2 the day
// before; the backtrace is in docs/PERFORMANCE.md. The UEFI paths,
// variables across a revert among them, are make test's under TCG on the
// build host (vmkernel's TestSnapshotUEFIVariables), as are these BIOS
// ones (TestSnapshotRevertWithMemory). On the QEMU 10.0 rig its BIOS
// paths passed in three of three runs on 2026-12-07 (memory snapshot 3.7
// to 4.3 s, revert 6.1 to 8.7 s); on the 7.2 rig in two of three. Run it
// with
//
//	PLINTH_E2E=1 go test -count=1 -v -run TestNestedKVMSnapshots ./qemu-test/
func TestNestedKVMSnapshots(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	// The file-system guest (floorinit's "mark" and "cat" on its serial
	// console) and an ext4 disk for it.
	seed := floorDatastore(t, o.Kernel, dir, "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	ext4Disk(t, filepath.Join(seed, "bios", "disk.qcow2"))
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "768M")
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{"-drive", "file=" + dsImg + ",if=virtio,format=raw"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vm, c := nestedAppliance(t, ctx, o)
	// The point is KVM.
	if a := vmAccel(t, ctx, c); a.Mode != api.AccelKVM {
		t.Fatalf("the appliance's VMs run on %s (%s), not KVM", a.Mode, a.Reason)
	}
	w := vmWork{t: t, ctx: ctx, c: c, vm: vm}

	// BIOS: memory snapshot, overwrite, revert.
	const cmdline = "console=ttyS0 quiet panic=-1 " + NoSelfTests + " plinthfloor=fs,console"
	bios := w.create(api.VMSpec{Name: "snappy", MemoryMiB: 256, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: cmdline},
		Disks:  []api.Disk{{Datastore: "ds1", Path: "bios/disk.qcow2"}}})
	w.start(bios, 1)
	w.say(bios, "mark first", "floor: marked first")
	t0 := time.Now()
	w.task(bios)(c.CreateSnapshot(ctx, bios, api.SnapshotRequest{Name: "first", Memory: true}))
	t.Logf("memory snapshot on KVM: %v", time.Since(t0).Round(time.Millisecond))
	w.running(bios, "after a memory snapshot")
	w.say(bios, "mark second", "floor: marked second")
	w.task(bios)(c.CreateSnapshot(ctx, bios, api.SnapshotRequest{Name: "second"}))
	w.say(bios, "mark third", "floor: marked third")
	w.task(bios)(c.CreateSnapshot(ctx, bios, api.SnapshotRequest{Name: "third", Memory: true}))
	w.say(bios, "mark fourth", "floor: marked fourth")
	t0 = time.Now()
	w.task(bios)(c.RevertSnapshot(ctx, bios, "first", api.RevertRequest{}))
	t.Logf("revert to the memory snapshot on KVM: %v", time.Since(t0).Round(time.Millisecond))
	w.running(bios, "after the revert")
	w.say(bios, "cat", "floor: marker=first")

	// The middle snapshot goes; the chain is one shorter, third's data kept.
	if d := w.depth(bios, "third"); d != 3 {
		t.Fatalf("depth of third %d, want 3 (first, second, third)", d)
	}
	w.task(bios)(c.DeleteSnapshot(ctx, bios, "second"))
	if d := w.depth(bios, "third"); d != 2 {
		t.Fatalf("after deleting the middle snapshot: depth of third %d, want 2", d)
	}
	w.task(bios)(c.RevertSnapshot(ctx, bios, "third", api.RevertRequest{}))
	w.running(bios, "after the revert to third")
	w.say(bios, "cat", "floor: marker=third")
	if _, err := c.VMAction(ctx, bios, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}

// nestedAppliance boots the appliance for a test of nested VMs, sets the
// root password on its DCUI and answers the VM and a client logged in as
// root; the VM is closed when the test ends.
func nestedAppliance(t *testing.T, ctx context.Context, o Options) (*VM, *client.Client) {
	t.Helper()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	if err := SetPasswordViaDCUI(ctx, vm, e2ePassword); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(vm.APIURL(), client.WithInsecureSkipVerify(), client.WithTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, api.RootUser, e2ePassword); err != nil {
		t.Fatal(err)
	}
	return vm, c
}

// vmAccel is how the appliance runs its VMs once vmkernel has decided
// (when kvm_amd has loaded, or not), waiting at most 2 minutes.
func vmAccel(t *testing.T, ctx context.Context, c *client.Client) api.Acceleration {
	t.Helper()
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		h, err := c.Host(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.Acceleration.Reason != accel.PendingReason || time.Now().After(end) {
			return h.Acceleration
		}
	}
}

// ext4Disk makes a 64 MiB ext4 file system labelled "floor" as a qcow2
// image at path (the file-system guest mounts it).
func ext4Disk(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(t.TempDir(), "fs.raw")
	for _, args := range [][]string{
		{"mke2fs", "-q", "-F", "-t", "ext4", "-L", "floor", raw, "64M"},
		{"qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
	}
}

// vmWork drives VMs in the appliance through the client, failing the test
// with the VM's console and vmkernel's log when a step does not happen.
type vmWork struct {
	t   *testing.T
	ctx context.Context
	c   *client.Client
	vm  *VM
}

func (w vmWork) fail(id, format string, args ...any) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	con, err := w.c.VMConsole(ctx, id)
	if len(con) > 4000 {
		con = con[len(con)-4000:]
	}
	msg := fmt.Sprintf("%s\nthe VM's console (%v):\n%s", fmt.Sprintf(format, args...), err, con)
	for _, name := range []string{api.LogVMKernel, api.LogMgmtd} {
		log, err := w.c.LogTail(ctx, name, 6<<10)
		msg += fmt.Sprintf("\n%s's log (%v):\n%s", name, err, log)
	}
	w.t.Fatalf("%s%s", msg, formatTail(w.vm.Tail(TailLines)))
}

func (w vmWork) create(spec api.VMSpec) string {
	w.t.Helper()
	v, err := w.c.CreateVM(w.ctx, spec)
	if err != nil {
		w.t.Fatalf("creating %s: %v", spec.Name, err)
	}
	return v.Spec.ID
}

// start starts the VM and waits for the guest's nth marker.
func (w vmWork) start(id string, n int) {
	w.t.Helper()
	if _, err := w.c.VMAction(w.ctx, id, api.ActionStart); err != nil {
		w.fail(id, "start: %v", err)
	}
	w.marker(id, n)
}

func (w vmWork) console(id string) string {
	w.t.Helper()
	b, err := w.c.VMConsole(w.ctx, id)
	if err != nil {
		w.t.Fatalf("console of %s: %v", id, err)
	}
	return string(b)
}

// marker waits for the guest's nth marker since the console log began.
func (w vmWork) marker(id string, n int) {
	w.t.Helper()
	for end := time.Now().Add(NestedMarkerWait); strings.Count(w.console(id), FloorMarker) < n; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(end) {
			w.fail(id, "no marker #%d from %s in %v", n, id, NestedMarkerWait)
		}
	}
}

// say types line on the VM's serial console (mgmtd's websocket) and waits
// until the console shows want once more than before.
func (w vmWork) say(id, line, want string) {
	w.t.Helper()
	n := strings.Count(w.console(id), want)
	ws, err := w.c.ConsoleWebsocket(w.ctx, id)
	if err != nil {
		w.fail(id, "console websocket: %v", err)
	}
	defer ws.Close()
	if _, err := ws.Write([]byte(line + "\n")); err != nil {
		w.fail(id, "typing %q: %v", line, err)
	}
	for end := time.Now().Add(90 * time.Second); strings.Count(w.console(id), want) <= n; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(end) {
			w.fail(id, "typed %q; no %q in 90 s", line, want)
		}
	}
}

// task answers a function that waits for a task the API started on the
// VM id and fails the test if it failed.
func (w vmWork) task(id string) func(api.Task, error) {
	return func(task api.Task, err error) {
		w.t.Helper()
		if err != nil {
			w.fail(id, "starting a task: %v", err)
		}
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Minute)
		defer cancel()
		done, err := w.c.WaitTask(ctx, task.ID, 200*time.Millisecond, nil)
		if err != nil {
			w.fail(id, "task %s (%s): %v", task.ID, task.Kind, err)
		}
		if done.State != api.TaskSucceeded {
			w.fail(id, "task %s (%s): %s %s", task.ID, task.Kind, done.State, done.Error)
		}
	}
}

func (w vmWork) running(id, when string) {
	w.t.Helper()
	v, err := w.c.GetVM(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	if v.Runtime.State != api.VMRunning {
		w.fail(id, "%s the VM is %s, want running", when, v.Runtime.State)
	}
}

// depth is the length of the chain from the root snapshot to name.
func (w vmWork) depth(id, name string) int {
	w.t.Helper()
	tree, err := w.c.Snapshots(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	byID := map[string]api.Snapshot{}
	for _, s := range tree.Snapshots {
		byID[s.ID] = s
	}
	for _, s := range tree.Snapshots {
		if s.Name == name {
			n := 0
			for id := s.ID; id != ""; id = byID[id].Parent {
				n++
			}
			return n
		}
	}
	return 0
}

// TestNestedGuestStarts measures how often a nested guest fails to boot in
// the appliance on this machine: it boots the appliance once and starts
// the floor guest (as TestApplianceCLI does: machine pc, 256 MiB, direct
// kernel boot) PLINTH_NESTED_STARTS times (default 10), each to its marker
// within 3 minutes, then stops it. A start that gets no marker is counted
// with the tail of the guest's console, and the loop goes on. It is not one
// of make e2e's tests (it measures the rig, not Plinth);
// PLINTH_NESTED_ACCEL=tcg boots the appliance with plinth.accel=tcg:
//
//	PLINTH_E2E=1 PLINTH_NESTED_STARTS=20 go test -count=1 -v -timeout 90m -run TestNestedGuestStarts ./qemu-test/
func TestNestedGuestStarts(t *testing.T) {
	markerLine := regexp.MustCompile(regexp.QuoteMeta(FloorMarker) + ` uptime_ms=[0-9]+`)
	o := e2eOptions(t)
	starts := 10
	if s := os.Getenv("PLINTH_NESTED_STARTS"); s != "" {
		if _, err := fmt.Sscan(s, &starts); err != nil || starts < 1 {
			t.Fatalf("PLINTH_NESTED_STARTS=%q: want a count", s)
		}
	}
	dir := t.TempDir()
	seed := floorDatastore(t, o.Kernel, dir)
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "160M")
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{"-drive", "file=" + dsImg + ",if=virtio,format=raw"}
	if a := os.Getenv("PLINTH_NESTED_ACCEL"); a != "" { // e.g. tcg: the VMs emulated
		o.Cmdline = "plinth.accel=" + a
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(starts)*4*time.Minute+10*time.Minute)
	defer cancel()
	vm, c := nestedAppliance(t, ctx, o)
	acc := vmAccel(t, ctx, c)
	t.Logf("the appliance's VMs run on %s (%s)", acc.Mode, acc.Reason)
	w := vmWork{t: t, ctx: ctx, c: c, vm: vm}
	id := w.create(api.VMSpec{Name: "inner", MemoryMiB: 256, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio",
			Cmdline: "console=ttyS0 quiet panic=-1 " + NoSelfTests + " " + FloorHangCmdline}})
	var failed int
	var took []time.Duration
	for i := 1; i <= starts; i++ {
		if vm.Exited() {
			t.Fatalf("start %d: the appliance is gone%s", i, formatTail(vm.Tail(TailLines)))
		}
		// The console API gives the log's tail, which slides: a start's
		// marker is a marker line not there before (each has the guest's
		// uptime in ms).
		before := map[string]bool{}
		for _, m := range markerLine.FindAllString(w.console(id), -1) {
			before[m] = true
		}
		t0 := time.Now()
		if _, err := c.VMAction(ctx, id, api.ActionStart); err != nil {
			w.fail(id, "start %d: %v", i, err)
		}
		// The same console as a viewer gets it: mgmtd's websocket.
		ws, err := c.ConsoleWebsocket(ctx, id)
		if err != nil {
			w.fail(id, "start %d: console websocket: %v", i, err)
		}
		viewer := &watchBuffer{seen: make(chan struct{})}
		go io.Copy(viewer, ws)
		isNew := func(con string) bool {
			return slices.ContainsFunc(markerLine.FindAllString(con, -1), func(m string) bool { return !before[m] })
		}
		var inLog, onWS time.Duration
		for end := t0.Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			con := w.console(id)
			if inLog == 0 && isNew(con) {
				inLog = time.Since(t0)
			}
			if onWS == 0 && isNew(viewer.String()) {
				onWS = time.Since(t0)
			}
			if inLog > 0 && onWS > 0 {
				took = append(took, inLog)
				t.Logf("start %d: marker after %v (log), %v (websocket)", i, inLog.Round(100*time.Millisecond), onWS.Round(100*time.Millisecond))
				break
			}
			if time.Now().After(end) {
				failed++
				if len(con) > 1500 {
					con = con[len(con)-1500:]
				}
				v := viewer.String()
				if len(v) > 1500 {
					v = v[len(v)-1500:]
				}
				t.Logf("start %d: NO MARKER in 3 min (log %v, websocket %v); the console log ends:\n%s\nthe websocket's ends:\n%s", i, inLog, onWS, con, v)
				break
			}
		}
		ws.Close()
		if _, err := c.VMAction(ctx, id, api.ActionStop); err != nil {
			w.fail(id, "power off after start %d: %v", i, err)
		}
		for end := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
			v, err := c.GetVM(ctx, id)
			if err == nil && v.Runtime.State == api.VMStopped {
				break
			}
			if time.Now().After(end) {
				w.fail(id, "not stopped a minute after power off (start %d): %+v %v", i, v.Runtime, err)
			}
		}
	}
	t.Logf("%s: %d of %d starts got no marker; marker times %v", acc.Mode, failed, starts, took)
	if failed > 0 {
		t.Errorf("%d of %d nested guest starts got no marker", failed, starts)
	}
}
