package mgmtd

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func snap(t0 time.Time, sec int, idle, busy float64, wr, tapTx uint64) api.Stats {
	return api.Stats{
		Time: t0.Add(time.Duration(sec) * time.Second),
		Host: api.HostStats{CPUSeconds: api.HostCPUSeconds{Idle: idle, User: busy}, MemoryTotalBytes: 1000, MemoryAvailableBytes: 400},
		VMs: []api.VMStats{{ID: "a", Running: true,
			Disks: []api.VMBlockStats{{Device: "d0", WrBytes: wr}},
			NICs:  []api.VMNICStats{{Index: 0, Tap: "t0", TxBytes: tapTx, RxBytes: 7}}}},
	}
}

// The history turns counter snapshots into rates: CPU busy share, memory
// used, and bytes per second, the tap's tx counted as the guest's receive;
// a counter that goes back (QEMU restarted) counts from zero, and so do the
// counters of a VM that started since the last snapshot.
func TestHistoryRates(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h := &history{step: 20 * time.Second}
	h.add(snap(t0, 0, 100, 100, 0, 0))
	h.add(snap(t0, 20, 115, 105, 20<<20, 40<<20))
	h.add(snap(t0, 40, 135, 105, 1<<20, 40<<20)) // the VM restarted: its counters began again
	got := h.snapshot(api.HistoryHour)
	if got.StepSeconds != 20 || len(got.Samples) != 2 {
		t.Fatalf("%+v", got)
	}
	s := got.Samples[0]
	if s.CPUPercent != 25 || s.MemoryUsedBytes != 600 || s.DiskWriteBytesPerSecond != 1<<20 || s.NetRxBytesPerSecond != 2<<20 || s.NetTxBytesPerSecond != 0 || s.RunningVMs != 1 {
		t.Errorf("first sample %+v", s)
	}
	if s := got.Samples[1]; s.CPUPercent != 0 || s.DiskWriteBytesPerSecond != float64(1<<20)/20 || s.NetRxBytesPerSecond != 0 {
		t.Errorf("after a restart %+v", s)
	}
	// A VM that appears counts from zero.
	st := snap(t0, 60, 155, 105, 1<<20, 40<<20)
	st.VMs = append(st.VMs, api.VMStats{ID: "b", Disks: []api.VMBlockStats{{Device: "d0", WrBytes: 2 << 20}}})
	h2 := &history{step: 20 * time.Second}
	h2.add(snap(t0, 40, 135, 105, 1<<20, 40<<20))
	h2.add(st)
	if s := h2.snapshot(api.HistoryHour).Samples[0]; s.DiskWriteBytesPerSecond != float64(2<<20)/20 {
		t.Errorf("a new VM's writes: %+v", s)
	}
	// The day's range averages every 15 samples.
	for i := 3; i < 16; i++ {
		h.add(snap(t0, 20*i, 135+float64(i), 105, 1<<20, 40<<20))
	}
	day := h.snapshot(api.HistoryDay)
	if day.StepSeconds != 300 || len(day.Samples) != 1 {
		t.Fatalf("day %+v", day)
	}
	want := (float64(1<<20) + float64(1<<20)/20) / 15
	if d := day.Samples[0]; d.DiskWriteBytesPerSecond < want-1 || d.DiskWriteBytesPerSecond > want+1 {
		t.Errorf("day's average write rate %v, want %v", d.DiskWriteBytesPerSecond, want)
	}
}

// Until vmkernel first answers, the history asks again every second, not
// every step: the first snapshot is taken as soon as it can be, and the
// steps count from it.
func TestHistoryFirstSnapshotRetried(t *testing.T) {
	h := &history{step: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx, func(context.Context) (api.Stats, error) {
			if calls.Add(1) < 3 {
				return api.Stats{}, errors.New("vmkernel: connection refused")
			}
			return api.Stats{Time: time.Now()}, nil
		})
	}()
	for end := time.Now().Add(10 * time.Second); !h.based(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no base 10 s after the start with a step of an hour (%d calls)", calls.Load())
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls to take the base, want 3 (two refused, one answered)", n)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls: once based, the history waits its step", n)
	}
	cancel()
	<-done
}
