package mgmtd_test

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/hostinfo"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestKSMMergesIdenticalGuests: with KSM on (as the appliance's vmkernel
// sets it), two identical guests running side by side share pages, and
// the saving appears in /metrics. KSM is the whole host's: the test puts
// its settings back, unmerging what it merged, when it ends.
func TestKSMMergesIdenticalGuests(t *testing.T) {
	testenv.Root(t, "KSM's switch is in sysfs, root's to write")
	// The kernel's default pace (100 pages every 20 ms) takes minutes over
	// two guests under TCG; the test scans faster and puts the pace back.
	vmkerneltest.FastKSM(t)

	vr := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}})
	runnertest.Install(t, runnertest.Kernel(t, "../build/vmlinuz"), vr.DS["ds1"])
	r := startMgmtd(t, t.TempDir(), vr.Socket, nil)
	c := loggedIn(t, r)
	metric := func() float64 {
		t.Helper()
		_, body := getMetrics(t, r, c)
		m := regexp.MustCompile(`(?m)^plinth_host_ksm_saved_bytes (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no plinth_host_ksm_saved_bytes:\n%s", body)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	before := metric()
	if err := hostinfo.SetKSM("on"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"twin-a", "twin-b"} {
		vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: name, MemoryMiB: 256, Serial: true,
			Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.VMAction(deadline(t), vm.Spec.ID, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.VMAction(context.Background(), vm.Spec.ID, api.ActionStop) })
	}
	// The guests' kernels and initramfs are the same bytes in both: 16 MiB
	// shared is well under what two booted twins have in common.
	const want = 16 << 20
	t0 := time.Now()
	for {
		now := metric()
		if now-before >= want {
			t.Logf("KSM saved %.1f MiB (%.1f before the twins) %v after their start", now/(1<<20), before/(1<<20), time.Since(t0).Round(time.Second))
			break
		}
		if time.Since(t0) > 180*time.Second {
			t.Fatalf("/metrics: KSM saved %.0f bytes 180 s after two identical guests started (%.0f before); want %d more", now, before, want)
		}
		time.Sleep(2 * time.Second)
	}
}
