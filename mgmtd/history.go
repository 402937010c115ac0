package mgmtd

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// The history keeps the last hour at one sample every historyStep and the
// last day at one every historyStep*coarseEvery (20 s and 5 min).
const (
	historyStep = 20 * time.Second
	coarseEvery = 15
	fineKeep    = 180 // an hour
	coarseKeep  = 288 // a day
)

// history samples vmkernel's counters and keeps the rates, for the web
// client's charts and anyone reading GET /api/v1/host/history.
type history struct {
	step   time.Duration
	mu     sync.Mutex
	prev   *api.Stats
	fine   []api.HostSample
	coarse []api.HostSample
	acc    []api.HostSample // fine samples not yet averaged into coarse
}

// run samples every step until ctx ends. Until the first snapshot is
// taken (at boot mgmtd may ask before vmkernel answers) it asks again
// every retry, so the first sample comes a step after vmkernel answers,
// not up to two.
func (h *history) run(ctx context.Context, stats func(context.Context) (api.Stats, error)) {
	step := h.step
	retry := min(time.Second, step)
	tick := time.NewTicker(step)
	defer tick.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, step)
		st, err := stats(sctx)
		cancel()
		wait := tick.C
		if err == nil {
			if !h.based() {
				tick.Reset(step) // the steps count from the base
			}
			h.add(st)
		} else if !h.based() {
			wait = time.After(retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		}
	}
}

// based reports whether the first snapshot, the base of the first
// sample's rates, has been taken.
func (h *history) based() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.prev != nil
}

// add takes one snapshot of the counters; the first only sets the base.
func (h *history) add(st api.Stats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.prev
	h.prev = &st
	if prev == nil {
		return
	}
	s, ok := rates(*prev, st)
	if !ok {
		return
	}
	h.fine = keep(append(h.fine, s), fineKeep)
	h.acc = append(h.acc, s)
	if len(h.acc) == coarseEvery {
		h.coarse = keep(append(h.coarse, average(h.acc)), coarseKeep)
		h.acc = nil
	}
}

func keep(s []api.HostSample, n int) []api.HostSample {
	if len(s) > n {
		return append(s[:0:0], s[len(s)-n:]...)
	}
	return s
}

// rates is the sample between two snapshots: CPU busy over the interval,
// memory at its end, and the VMs' traffic per second.
func rates(a, b api.Stats) (api.HostSample, bool) {
	dt := b.Time.Sub(a.Time).Seconds()
	if dt <= 0 {
		return api.HostSample{}, false
	}
	s := api.HostSample{Time: b.Time, MemoryTotalBytes: b.Host.MemoryTotalBytes}
	if b.Host.MemoryTotalBytes >= b.Host.MemoryAvailableBytes {
		s.MemoryUsedBytes = b.Host.MemoryTotalBytes - b.Host.MemoryAvailableBytes
	}
	ca, cb := a.Host.CPUSeconds, b.Host.CPUSeconds
	total := func(c api.HostCPUSeconds) float64 {
		return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
	}
	if d := total(cb) - total(ca); d > 0 {
		idle := (cb.Idle + cb.IOWait) - (ca.Idle + ca.IOWait)
		s.CPUPercent = max(0, min(100, 100*(1-idle/d)))
	}
	old := map[string]api.VMStats{}
	for _, v := range a.VMs {
		old[v.ID] = v
	}
	var rx, tx, rd, wr uint64
	for _, v := range b.VMs {
		if v.Running {
			s.RunningVMs++
		}
		// A VM not in the last snapshot started since: its counters began
		// at zero then. So did a device's whose counters went back (its
		// QEMU restarted).
		o := old[v.ID]
		for _, d := range v.Disks {
			var od api.VMBlockStats
			for _, x := range o.Disks {
				if x.Device == d.Device && x.NodeName == d.NodeName {
					od = x
				}
			}
			rd += delta(od.RdBytes, d.RdBytes)
			wr += delta(od.WrBytes, d.WrBytes)
		}
		for _, n := range v.NICs {
			var on api.VMNICStats
			for _, x := range o.NICs {
				if x.Index == n.Index && x.Tap == n.Tap {
					on = x
				}
			}
			// the tap's tx is what the guest received
			rx += delta(on.TxBytes, n.TxBytes)
			tx += delta(on.RxBytes, n.RxBytes)
		}
	}
	s.NetRxBytesPerSecond, s.NetTxBytesPerSecond = float64(rx)/dt, float64(tx)/dt
	s.DiskReadBytesPerSecond, s.DiskWriteBytesPerSecond = float64(rd)/dt, float64(wr)/dt
	return s, true
}

// delta is what a counter counted from a to b; one that went back began
// again from zero.
func delta(a, b uint64) uint64 {
	if b < a {
		return b
	}
	return b - a
}

// average folds fine samples into one coarse sample at the last one's time.
func average(ss []api.HostSample) api.HostSample {
	var a api.HostSample
	n := float64(len(ss))
	var used float64
	for _, s := range ss {
		a.CPUPercent += s.CPUPercent / n
		used += float64(s.MemoryUsedBytes) / n
		a.NetRxBytesPerSecond += s.NetRxBytesPerSecond / n
		a.NetTxBytesPerSecond += s.NetTxBytesPerSecond / n
		a.DiskReadBytesPerSecond += s.DiskReadBytesPerSecond / n
		a.DiskWriteBytesPerSecond += s.DiskWriteBytesPerSecond / n
		a.RunningVMs = max(a.RunningVMs, s.RunningVMs)
	}
	last := ss[len(ss)-1]
	a.Time, a.MemoryTotalBytes, a.MemoryUsedBytes = last.Time, last.MemoryTotalBytes, uint64(used)
	return a
}

// snapshot is a copy of one range.
func (h *history) snapshot(r string) api.HostHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r == api.HistoryDay {
		return api.HostHistory{Range: r, StepSeconds: int(h.step.Seconds()) * coarseEvery, Samples: append([]api.HostSample{}, h.coarse...)}
	}
	return api.HostHistory{Range: api.HistoryHour, StepSeconds: int(h.step.Seconds()), Samples: append([]api.HostSample{}, h.fine...)}
}

// hostHistory serves GET /api/v1/host/history?range=hour|day.
func (s *Server) hostHistory(w http.ResponseWriter, r *http.Request) {
	rg := r.URL.Query().Get("range")
	switch rg {
	case "", api.HistoryHour, api.HistoryDay:
	default:
		fieldProblem(w, api.FieldProblem{Field: "range", Message: "must be hour or day"})
		return
	}
	writeJSON(w, http.StatusOK, s.history.snapshot(rg))
}
