package mgmtd_test

import (
	"context"
	"os"
	"path/filepath"
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
	ksm := "/sys/kernel/mm/ksm"
	if _, err := os.Stat(ksm); err != nil {
		t.Fatalf("this kernel has no KSM (%v); every Debian kernel has it", err)
	}
	// The kernel's default pace (100 pages every 20 ms) takes minutes over
	// two guests under TCG; the test scans faster and puts the pace back.
	saved := map[string][]byte{}
	for _, f := range []string{"pages_to_scan", "sleep_millisecs", "run"} {
		b, err := os.ReadFile(filepath.Join(ksm, f))
		if err != nil {
			t.Fatal(err)
		}
		saved[f] = b
	}
	t.Cleanup(func() {
		if err := hostinfo.SetKSM("off"); err != nil { // unmerges
			t.Error(err)
		}
		for _, f := range []string{"pages_to_scan", "sleep_millisecs", "run"} {
			os.WriteFile(filepath.Join(ksm, f), saved[f], 0)
		}
	})
	for f, v := range map[string]string{"pages_to_scan": "1000", "sleep_millisecs": "20"} {
		if err := os.WriteFile(filepath.Join(ksm, f), []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}

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
			Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: "console=ttyS0 quiet panic=-1 plinthfloor=hang"}})
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
