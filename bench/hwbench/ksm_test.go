package hwbench

import (
	"context"
	"fmt"
	"github.com/plinth/plinth/bench/barevm"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/hostinfo"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// BenchmarkKSM: the memory KSM saves (pages_sharing, what vmkernel's
// /metrics reports as plinth_host_ksm_saved_bytes) with N = 1, 2, 4
// identical idle guests (the floor guest, 256 MiB, q35) started through
// vmkernel, against the same N guests as bare QEMU processes: for each N,
// Plinth's set then the bare set, KSM unmerged and restarted between sets,
// the figure taken once ksmd has passed twice over all memory after the
// guests printed their marker and a further pass adds under 2%, as the
// median of 5 readings 1 s apart, less what KSM saved before the set
// started (other processes on the host).
// A warm-up set (N = 1 on each side) is discarded. The host's KSM settings
// are put back at the end (its run mode last, unmerging if it was off).
func BenchmarkKSM(b *testing.B) {
	testenv.Command(b, "qemu-system-x86_64")
	testenv.Root(b, "KSM's switch is in sysfs, root's to write")
	vmkerneltest.FastKSM(b)
	kernel := runnertest.Kernel(b, "../../build/vmlinuz")
	rig := vmkerneltest.Start(b, vmkerneltest.Options{})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.Install(b, kernel, ds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const memMiB = 256
	var cpu string

	ksm := func() *api.HostKSM {
		b.Helper()
		k, err := hostinfo.Source{}.KSM()
		if err != nil || k == nil {
			b.Fatalf("KSM: %v", err)
		}
		return k
	}
	// restart turns KSM off (unmerging everything) and on again.
	restart := func() {
		b.Helper()
		if err := hostinfo.SetKSM("off"); err != nil {
			b.Fatal(err)
		}
		if err := hostinfo.SetKSM("on"); err != nil {
			b.Fatal(err)
		}
	}
	// measure waits for two full scans after now, then takes 5 readings.
	// With base, it is what KSM saves before a set's guests start: ksmd
	// makes no pass when no process has mergeable memory, so a pass not
	// made in 10 s means nothing else on the host is merged (0 saved, as
	// KSM was just restarted).
	measure := func(base bool) float64 {
		b.Helper()
		scans := ksm().FullScans
		for end := time.Now().Add(180 * time.Second); ksm().FullScans < scans+2; time.Sleep(200 * time.Millisecond) {
			if base && time.Now().After(end.Add(-170*time.Second)) {
				return float64(ksm().SavedBytes)
			}
			if time.Now().After(end) {
				b.Fatalf("ksmd made no two full scans in 180 s")
			}
		}
		// Merging takes more than one pass (a page is merged once its
		// checksum held over a pass): go on while a pass adds more than 2%.
		for end := time.Now().Add(120 * time.Second); !base && time.Now().Before(end); {
			s0, scans := ksm().SavedBytes, ksm().FullScans
			for ksm().FullScans == scans && time.Now().Before(end) {
				time.Sleep(200 * time.Millisecond)
			}
			if s1 := ksm().SavedBytes; float64(s1) <= 1.02*float64(s0) {
				break
			}
		}
		var v []float64
		for i := range 5 {
			if i > 0 {
				time.Sleep(time.Second)
			}
			v = append(v, float64(ksm().SavedBytes))
		}
		slices.Sort(v)
		return v[2]
	}
	rss := func(pids []int) float64 {
		var sum float64
		for _, pid := range pids {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range strings.Split(string(st), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
					kb, _ := strconv.ParseFloat(f[1], 64)
					sum += kb * 1024
				}
			}
		}
		return sum
	}
	type result struct{ saved, base, rss float64 }
	plinthSet := func(n, set int) result {
		b.Helper()
		restart()
		base := measure(true)
		var ids []string
		var pids []int
		for i := range n {
			vm, err := c.CreateVM(ctx, api.VMSpec{Name: fmt.Sprintf("twin%d-%d", set, i), MemoryMiB: memMiB, Machine: api.MachineQ35, Serial: true,
				Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: runnertest.Cmdline}})
			if err != nil {
				b.Fatal(err)
			}
			if vm, err = c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
				b.Fatal(err)
			}
			ids, pids = append(ids, vm.Spec.ID), append(pids, vm.Runtime.PID)
			if cpu == "" {
				if cpu, err = qemuCPU(vm.Runtime.PID); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, id := range ids {
			waitCount(b, func() ([]byte, error) { return c.VMConsole(ctx, id) }, runnertest.Marker, 1, 180*time.Second)
		}
		r := result{saved: measure(false), base: base, rss: rss(pids)}
		for _, id := range ids {
			if _, err := c.VMAction(ctx, id, api.ActionStop); err != nil {
				b.Fatal(err)
			}
			if err := c.DeleteVM(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		return r
	}
	bareSet := func(n, set int) result {
		b.Helper()
		restart()
		base := measure(true)
		var qs []*barevm.VM
		var pids []int
		for i := range n {
			q := startBare(b, ds, fmt.Sprintf("ksm%d-%d", set, i), cpu, memMiB, runnertest.Cmdline)
			qs, pids = append(qs, q), append(pids, q.Cmd.Process.Pid)
		}
		for _, q := range qs {
			waitCount(b, q.Tail, runnertest.Marker, 1, 180*time.Second)
		}
		r := result{saved: measure(false), base: base, rss: rss(pids)}
		for _, q := range qs {
			q.Kill()
		}
		return r
	}

	b.ResetTimer()
	plinthSet(1, 0) // warm-up
	bareSet(1, 0)
	ns := []int{1, 2, 4}
	type row struct{ plinth, floor result }
	rows := map[int]row{}
	for set, n := range ns {
		p := plinthSet(n, set+1)
		f := bareSet(n, set+1)
		rows[n] = row{p, f}
	}
	b.StopTimer()
	mib := func(v float64) float64 { return v / (1 << 20) }
	b.Logf("q35 floor guests of %d MiB (%s) under TCG, idle; KSM at 1000 pages every 20 ms; saved = pages_sharing × 4 KiB after two full scans and until a scan adds under 2%%, median of 5 readings, less the host's before the set", memMiB, cpu)
	for _, n := range ns {
		r := rows[n]
		ps, fs := r.plinth.saved-r.plinth.base, r.floor.saved-r.floor.base
		b.Logf("N=%d: vmkernel %.1f MiB saved (QEMU RSS %.0f MiB, %.1f%% of it; host before %.1f MiB); bare QEMU %.1f MiB (RSS %.0f MiB, %.1f%%; before %.1f MiB); ratio %.2f",
			n, mib(ps), mib(r.plinth.rss), 100*ps/r.plinth.rss, mib(r.plinth.base), mib(fs), mib(r.floor.rss), 100*fs/r.floor.rss, mib(r.floor.base), ps/fs)
		b.ReportMetric(mib(ps), fmt.Sprintf("N%d-plinth-MiB", n))
		b.ReportMetric(mib(fs), fmt.Sprintf("N%d-qemu-MiB", n))
	}
}
