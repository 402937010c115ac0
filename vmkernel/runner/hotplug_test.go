package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// hwRig is a rig whose guest has the drivers of hot-plugged virtio disks
// and NICs and of the balloon.
func hwRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t)
	kernel := runnertest.Kernel(t, "../../build/vmlinuz")
	runnertest.InstallWithModules(t, kernel, runnertest.Modules(t, "../../build"), r.ds, runnertest.HardwareModules...)
	return r
}

func guestConsole(r *rig, id string) func() ([]byte, error) {
	return func() ([]byte, error) { return r.m.ConsoleTail(id, 0) }
}

// TestHotplugDiskAndNIC plugs a disk and a NIC into a running guest, which
// sees them appear, then unplugs both, which it sees go; each change
// through descriptors sent over QMP. Bad requests are refused and leave
// the VM running as it was.
func TestHotplugDiskAndNIC(t *testing.T) {
	r := hwRig(t)
	spec := guestSpec("hot", api.OnCrashStayStopped)
	spec.Machine = api.MachineQ35
	spec.Kernel.Cmdline = runnertest.FloorCmdline("watch,hang")
	if err := r.m.Start(ctxT(t, 60*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	waitMarker(t, r.m, spec.ID, 180*time.Second)
	disk := filepath.Join(r.ds, "hot", "extra.raw")
	os.MkdirAll(filepath.Dir(disk), 0o755)
	if err := os.WriteFile(disk, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	d := api.Disk{Bus: api.BusVirtioBlk, Datastore: "ds", Path: "hot/extra.raw", Format: api.FormatRaw, Cache: api.CacheWriteback}
	if err := r.m.AttachDisk(ctxT(t, 30*time.Second), spec.ID, d); err != nil {
		t.Fatal(err)
	}
	qemuTook := time.Since(t0)
	runnertest.WaitConsole(t, guestConsole(r, spec.ID), "PLINTH-DISK vda 8388608", 60*time.Second)
	t.Logf("disk: QEMU took it in %v, the guest saw it %v after the request", qemuTook.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	mac := "02:18:18:18:18:01"
	if err := r.m.AttachNIC(ctxT(t, 30*time.Second), spec.ID, api.NIC{Model: api.NICVirtio, NAT: true, MAC: mac}); err != nil {
		t.Fatal(err)
	}
	qemuTook = time.Since(t0)
	runnertest.WaitConsole(t, guestConsole(r, spec.ID), "PLINTH-NIC eth0 "+mac, 60*time.Second)
	t.Logf("NIC: QEMU took it in %v, the guest saw it %v after the request", qemuTook.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	// Refused, the VM left as it was.
	pid := r.m.Status(spec.ID).PID
	var ve *api.ValidationError
	if err := r.m.AttachDisk(ctxT(t, 30*time.Second), spec.ID, api.Disk{Bus: api.BusVirtioBlk, Datastore: "ds", Path: "hot/missing.raw", Format: api.FormatRaw}); !errors.As(err, &ve) {
		t.Errorf("a disk that does not exist: %v, want a validation problem", err)
	}
	if err := r.m.AttachDisk(ctxT(t, 30*time.Second), spec.ID, api.Disk{Bus: api.BusSATA, Datastore: "ds", Path: "hot/extra.raw", Format: api.FormatRaw}); !errors.As(err, &ve) {
		t.Errorf("a SATA disk: %v, want a validation problem", err)
	}
	if err := r.m.DetachDisk(ctxT(t, 30*time.Second), spec.ID, 3); !errors.As(err, &ve) {
		t.Errorf("a disk the VM does not have: %v, want a validation problem", err)
	}
	if st := r.m.Status(spec.ID); st.State != api.VMRunning || st.PID != pid {
		t.Fatalf("after refused changes the VM is %+v", st)
	}

	t0 = time.Now()
	if err := r.m.DetachDisk(ctxT(t, 90*time.Second), spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsole(t, guestConsole(r, spec.ID), "PLINTH-GONE vda", 30*time.Second)
	t.Logf("disk unplugged in %v", time.Since(t0).Round(time.Millisecond))
	if err := r.m.DetachNIC(ctxT(t, 90*time.Second), spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsole(t, guestConsole(r, spec.ID), "PLINTH-GONE eth0", 30*time.Second)
	// The slots are free again: the disk goes back in.
	if err := r.m.AttachDisk(ctxT(t, 30*time.Second), spec.ID, d); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsoleCount(t, guestConsole(r, spec.ID), "PLINTH-DISK vda 8388608", 2, 60*time.Second)
	if st := r.m.Status(spec.ID); st.State != api.VMRunning || st.PID != pid {
		t.Fatalf("the VM is %+v", st)
	}
}

// TestBalloon lowers a running guest's balloon target: the guest's memory
// shrinks, live, as its own /proc/meminfo says; a target below the
// balloon's minimum is refused and the VM runs on as it was.
func TestBalloon(t *testing.T) {
	r := hwRig(t)
	spec := guestSpec("balloon", api.OnCrashStayStopped)
	spec.Machine = api.MachineQ35
	spec.MemoryMiB = 512
	spec.Balloon = &api.Balloon{MinMiB: 192}
	spec.Kernel.Cmdline = runnertest.FloorCmdline("mem,hang")
	if err := r.m.Start(ctxT(t, 60*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	waitMarker(t, r.m, spec.ID, 180*time.Second)
	memRE := regexp.MustCompile(`PLINTH-MEM total_kb=(\d+) free_kb=(\d+)`)
	last := func() (total, free int) {
		con, _ := r.m.ConsoleTail(spec.ID, 0)
		all := memRE.FindAllStringSubmatch(string(con), -1)
		if len(all) == 0 {
			return 0, 0
		}
		m := all[len(all)-1]
		total, _ = strconv.Atoi(m[1])
		free, _ = strconv.Atoi(m[2])
		return total, free
	}
	total0, free0 := last()
	st, err := r.m.Balloon(ctxT(t, 10*time.Second), spec.ID)
	if err != nil || st.ActualMiB != 512 || st.MinMiB != 192 || st.MaxMiB != 512 {
		t.Fatalf("balloon before: %+v, %v", st, err)
	}

	pid := r.m.Status(spec.ID).PID
	var ve *api.ValidationError
	if err := r.m.SetBalloon(ctxT(t, 10*time.Second), spec.ID, 100); !errors.As(err, &ve) || !strings.Contains(err.Error(), "192") {
		t.Errorf("a target below the minimum: %v, want a validation problem naming the minimum", err)
	}

	t0 := time.Now()
	if err := r.m.SetBalloon(ctxT(t, 10*time.Second), spec.ID, 256); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		total, free := last()
		// The balloon takes 256 MiB from the guest: its free memory (and,
		// with this driver, its total) drop by most of that.
		if free0-free > 200<<10 {
			t.Logf("guest memory %d -> %d kB total, %d -> %d kB free, %v after the target was lowered", total0, total, free0, free, time.Since(t0).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			con, _ := r.m.ConsoleTail(spec.ID, 0)
			t.Fatalf("guest free memory %d -> %d kB after 90 s: %s", free0, free, con[max(0, len(con)-600):])
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		st, err = r.m.Balloon(ctxT(t, 10*time.Second), spec.ID)
		if err == nil && st.TargetMiB == 256 && st.ActualMiB <= 260 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("balloon 60 s after: %+v, %v", st, err)
		}
	}
	if st.GuestFreeMiB == nil {
		t.Errorf("no guest memory statistics from the balloon driver: %+v", st)
	} else {
		t.Logf("the balloon driver says %s", fmt.Sprintf("free %d MiB of %v", *st.GuestFreeMiB, deref(st.GuestTotalMiB)))
	}
	if s := r.m.Status(spec.ID); s.State != api.VMRunning || s.PID != pid {
		t.Fatalf("the VM is %+v", s)
	}
}

func deref(p *int) any {
	if p == nil {
		return "?"
	}
	return *p
}
