package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/runner"
)

// The VM's devices while it runs (issue 18): disks, NICs and USB devices
// plugged in and out, the balloon's target. A change to a running VM is
// made in QEMU first, then kept in its spec (the next start has it); on a
// stopped VM it only changes the spec. A request that fails leaves the VM
// and its spec as they were.

func (s *Server) deviceRoutes() []Route {
	if s.cfg.Inventory == nil || s.cfg.Runner == nil {
		return nil
	}
	return []Route{
		{http.MethodPost, api.VMKernelVMPath + "{id}/" + api.VMDisks, s.addDisk},
		{http.MethodDelete, api.VMKernelVMPath + "{id}/" + api.VMDisks + "/{index}", s.removeDisk},
		{http.MethodPost, api.VMKernelVMPath + "{id}/" + api.VMNICs, s.addNIC},
		{http.MethodDelete, api.VMKernelVMPath + "{id}/" + api.VMNICs + "/{index}", s.removeNIC},
		{http.MethodPost, api.VMKernelVMPath + "{id}/" + api.VMUSB, s.addUSB},
		{http.MethodDelete, api.VMKernelVMPath + "{id}/" + api.VMUSB + "/{index}", s.removeUSB},
		{http.MethodGet, api.VMKernelVMPath + "{id}/" + api.VMBalloon, s.getBalloon},
		{http.MethodPut, api.VMKernelVMPath + "{id}/" + api.VMBalloon, s.setBalloon},
	}
}

// decodeBody reads a small JSON body strictly into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the body", errBadRequest)
	}
	return nil
}

// liveChange applies change to the VM named in the request: with the spec
// (defaults applied) that would result, and whether the VM runs (then
// apply changes QEMU first). The new spec is validated as a whole and kept.
func (s *Server) liveChange(w http.ResponseWriter, r *http.Request, edit func(spec *api.VMSpec) error,
	apply func(ctx context.Context, id string, spec api.VMSpec) error) {
	s.specMu.Lock()
	defer s.specMu.Unlock()
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	next := spec.Clone()
	if err := edit(&next); err != nil {
		s.problem(w, err)
		return
	}
	next.Defaults()
	if err := s.validate(next, nil); err != nil {
		s.problem(w, err)
		return
	}
	st := s.cfg.Runner.Status(spec.ID).State
	if !stoppedState(st) {
		if st != api.VMRunning && st != api.VMPaused {
			s.problem(w, &runner.StateError{ID: spec.ID, Op: "change the devices of", State: st})
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), powerOpTimeout)
		defer cancel()
		if err := apply(ctx, spec.ID, next); err != nil {
			s.problem(w, err)
			return
		}
	}
	if err := s.cfg.Inventory.UpdateBy(next, inventoryChange(requestUser(r), "")); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: VM devices changed", "vm", next.Name, "id", next.ID, "route", r.Method+" "+r.URL.Path)
	s.publish(api.EventUpdated, next, "devices changed")
	writeJSON(w, http.StatusOK, s.vm(next))
}

// indexOf reads the {index} path value, a field problem when it names no
// element of a list of n.
func indexOf(r *http.Request, what string, n int) (int, error) {
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 || i >= n {
		return 0, &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: "index",
			Message: fmt.Sprintf("%q is not one of the VM's %d %s (0 to %d)", r.PathValue("index"), n, what, n-1)}}}
	}
	return i, nil
}

func (s *Server) addDisk(w http.ResponseWriter, r *http.Request) {
	var d api.Disk
	if err := decodeBody(w, r, &d); err != nil {
		s.problem(w, err)
		return
	}
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		spec.Disks = append(spec.Disks, d)
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		return s.cfg.Runner.AttachDisk(ctx, id, spec.Disks[len(spec.Disks)-1])
	})
}

func (s *Server) removeDisk(w http.ResponseWriter, r *http.Request) {
	var i int
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		var err error
		if i, err = indexOf(r, "disks", len(spec.Disks)); err != nil {
			return err
		}
		spec.Disks = append(spec.Disks[:i:i], spec.Disks[i+1:]...)
		spec.BootOrder = nil // made again from what is left
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		return s.cfg.Runner.DetachDisk(ctx, id, i)
	})
}

func (s *Server) addNIC(w http.ResponseWriter, r *http.Request) {
	var n api.NIC
	if err := decodeBody(w, r, &n); err != nil {
		s.problem(w, err)
		return
	}
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		spec.NICs = append(spec.NICs, n)
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		return s.cfg.Runner.AttachNIC(ctx, id, spec.NICs[len(spec.NICs)-1])
	})
}

func (s *Server) removeNIC(w http.ResponseWriter, r *http.Request) {
	var i int
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		var err error
		if i, err = indexOf(r, "NICs", len(spec.NICs)); err != nil {
			return err
		}
		spec.NICs = append(spec.NICs[:i:i], spec.NICs[i+1:]...)
		spec.BootOrder = nil
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		return s.cfg.Runner.DetachNIC(ctx, id, i)
	})
}

func (s *Server) addUSB(w http.ResponseWriter, r *http.Request) {
	var u api.USBPassthrough
	if err := decodeBody(w, r, &u); err != nil {
		s.problem(w, err)
		return
	}
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		spec.USBDevices = append(spec.USBDevices, u)
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		_, err := s.cfg.Runner.AttachUSB(ctx, id, u)
		return err
	})
}

func (s *Server) removeUSB(w http.ResponseWriter, r *http.Request) {
	var i int
	s.liveChange(w, r, func(spec *api.VMSpec) error {
		var err error
		if i, err = indexOf(r, "USB devices", len(spec.USBDevices)); err != nil {
			return err
		}
		spec.USBDevices = append(spec.USBDevices[:i:i], spec.USBDevices[i+1:]...)
		return nil
	}, func(ctx context.Context, id string, spec api.VMSpec) error {
		// The running VM's list is in the same order as its spec's:
		// attachments at start follow the spec, live ones are appended to both.
		return s.cfg.Runner.DetachUSB(ctx, id, i)
	})
}

func (s *Server) getBalloon(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	st, err := s.cfg.Runner.Balloon(r.Context(), spec.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) setBalloon(w http.ResponseWriter, r *http.Request) {
	var req api.BalloonRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), powerOpTimeout)
	defer cancel()
	if err := s.cfg.Runner.SetBalloon(ctx, spec.ID, req.TargetMiB); err != nil {
		s.problem(w, err)
		return
	}
	st, err := s.cfg.Runner.Balloon(ctx, spec.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
