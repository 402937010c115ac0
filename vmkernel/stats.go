package vmkernel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/vmkernel/hostinfo"
	"github.com/plinth/plinth/vmkernel/runner"
)

// statsQMPTimeout bounds one VM's QMP query for the stats: a VM that does
// not answer in time gets an error, the others their counters.
var statsQMPTimeout = 2 * time.Second

// stats serves GET /v1/stats: the host's and every defined VM's counters.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	src := hostinfo.Source{}
	host, err := src.Stats()
	if err != nil {
		s.problem(w, err)
		return
	}
	out := api.Stats{Time: time.Now().UTC(), Host: host, VMs: []api.VMStats{}}
	if s.cfg.Inventory != nil && s.cfg.Runner != nil {
		out.VMs = s.vmStats(r.Context(), src)
	}
	writeJSON(w, http.StatusOK, out)
}

// vmStats reads every defined VM's counters, the running ones concurrently.
func (s *Server) vmStats(ctx context.Context, src hostinfo.Source) []api.VMStats {
	specs := s.cfg.Inventory.List()
	slices.SortFunc(specs, func(a, b api.VMSpec) int { return strings.Compare(a.Name, b.Name) })
	out := make([]api.VMStats, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		rt := s.cfg.Runner.Status(spec.ID)
		st := api.VMStats{ID: spec.ID, Name: spec.Name, State: rt.State,
			MemoryBytes: uint64(spec.MemoryMiB) << 20, Disks: []api.VMBlockStats{}, NICs: []api.VMNICStats{}}
		st.Running = rt.PID > 0 && !stoppedState(rt.State)
		out[i] = st
		if !st.Running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.runningVMStats(ctx, src, spec, rt.PID, st)
		}()
	}
	wg.Wait()
	return out
}

// runningVMStats fills st for a VM whose QEMU runs as pid; what cannot be
// read is named in st.Error.
func (s *Server) runningVMStats(ctx context.Context, src hostinfo.Source, spec api.VMSpec, pid int, st api.VMStats) api.VMStats {
	var errs []error
	var err error
	if st.CPUSeconds, st.MemoryRSSBytes, err = src.Process(pid); err != nil {
		errs = append(errs, err)
	}
	for i, n := range spec.NICs {
		nic := api.VMNICStats{Index: i, MAC: n.MAC}
		if n.Switch != "" {
			nic.Tap = runner.TapName(spec.ID, i)
			if nic.RxBytes, nic.TxBytes, err = src.TapBytes(nic.Tap); err != nil {
				errs = append(errs, err)
			}
		}
		st.NICs = append(st.NICs, nic)
	}
	qctx, cancel := context.WithTimeout(ctx, statsQMPTimeout)
	defer cancel()
	disks, err := s.cfg.Runner.BlockStats(qctx, spec.ID)
	if err != nil {
		errs = append(errs, err)
	} else {
		st.Disks = disks
	}
	if err := errors.Join(errs...); err != nil {
		st.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return st
}

// hardware serves GET /v1/host/hardware: the board inventory.
func (s *Server) hardware(w http.ResponseWriter, r *http.Request) {
	hw, err := s.readHardware()
	if err != nil {
		s.problem(w, fmt.Errorf("hardware inventory: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, hw)
}

// readHardware is Config.Hardware, or the running host's inventory.
func (s *Server) readHardware() (api.Hardware, error) {
	if s.cfg.Hardware != nil {
		return s.cfg.Hardware()
	}
	return board.Read(board.DefaultRoot())
}

// errNotManaged: host power is not this vmkernel's (501).
var errNotManaged = errors.New("host power is not managed by this vmkernel")

// hostPower serves POST /v1/host/power: an api.PowerRequest (its Confirm
// is mgmtd's to check) handed to Config.Power; 202 once it is.
func (s *Server) hostPower(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Power == nil {
		s.problem(w, errNotManaged)
		return
	}
	var req api.PowerRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	var probs []api.FieldProblem
	if req.Action != api.PowerReboot && req.Action != api.PowerShutdown {
		probs = append(probs, api.FieldProblem{Field: "action", Message: `must be "reboot" or "shutdown"`})
	}
	if strings.TrimSpace(req.Reason) == "" {
		probs = append(probs, api.FieldProblem{Field: "reason", Message: "must say why"})
	}
	if probs != nil {
		s.problem(w, &api.ValidationError{Problems: probs})
		return
	}
	s.cfg.Log.Warn("vmkernel: host power requested", "action", req.Action, "reason", req.Reason)
	if err := s.cfg.Power(req.Action, req.Reason); err != nil {
		s.problem(w, fmt.Errorf("host %s: %w", req.Action, err))
		return
	}
	writeJSON(w, http.StatusAccepted, api.PowerAccepted{Action: req.Action, Reason: req.Reason})
}
