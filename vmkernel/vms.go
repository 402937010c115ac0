package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/vswitch"
)

// Bounds of the VM routes.
const (
	maxSpecBytes           = 1 << 20
	defaultShutdownTimeout = 60 * time.Second
	maxShutdownTimeout     = time.Hour
	// powerOpTimeout bounds a start or a hard stop; a request that goes away
	// does not abort one half-way.
	powerOpTimeout = 2 * time.Minute
)

func (s *Server) vmRoutes() []Route {
	if s.cfg.Inventory == nil || s.cfg.Runner == nil {
		return nil
	}
	return []Route{
		{http.MethodGet, api.VMKernelVMsPath, s.listVMs},
		{http.MethodPost, api.VMKernelVMsPath, s.createVM},
		{http.MethodGet, api.VMKernelVMPath + "{id}", s.getVM},
		{http.MethodDelete, api.VMKernelVMPath + "{id}", s.deleteVM},
		{http.MethodPost, api.VMKernelVMPath + "{id}/{action}", s.vmAction},
		// GET on the same pattern (a GET-only .../console pattern would
		// conflict with the method-less 405 pattern of the actions).
		{http.MethodGet, api.VMKernelVMPath + "{id}/{action}", s.vmGetSub},
	}
}

func (s *Server) vm(spec api.VMSpec) api.VM {
	return api.VM{Spec: spec, Runtime: s.cfg.Runner.Status(spec.ID)}
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	specs := s.cfg.Inventory.List()
	out := make([]api.VM, len(specs))
	for i, spec := range specs {
		out[i] = s.vm(spec)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createVM(w http.ResponseWriter, r *http.Request) {
	var spec api.VMSpec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		s.problem(w, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		s.problem(w, fmt.Errorf("%w: trailing data after the VM spec", errBadRequest))
		return
	}
	// Validation first (every problem of the spec), then what this host knows.
	check := spec.Clone()
	if check.ID == "" {
		check.ID = api.NewUUID()
	}
	check.Defaults()
	if err := check.Validate(); err != nil {
		s.problem(w, err)
		return
	}
	if err := s.checkDatastores(check); err != nil {
		s.problem(w, err)
		return
	}
	if err := s.cfg.Inventory.Create(&spec); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: VM created", "vm", spec.Name, "id", spec.ID)
	w.Header().Set("Location", api.VMKernelVMPath+spec.ID)
	writeJSON(w, http.StatusCreated, s.vm(spec))
}

// checkDatastores refuses references to datastores this host does not have
// (when the host's datastores are configured at all).
func (s *Server) checkDatastores(spec api.VMSpec) error {
	if s.cfg.Datastores == nil {
		return nil
	}
	var probs []api.FieldProblem
	check := func(field, name string) {
		if _, ok := s.cfg.Datastores[name]; !ok {
			probs = append(probs, api.FieldProblem{Field: field, Message: fmt.Sprintf("datastore %q is not known on this host", name)})
		}
	}
	for i, d := range spec.Disks {
		check(fmt.Sprintf("disks[%d].datastore", i), d.Datastore)
	}
	if spec.CDROM != nil {
		check("cdrom.datastore", spec.CDROM.Datastore)
	}
	if spec.Kernel != nil {
		check("kernel.datastore", spec.Kernel.Datastore)
	}
	if probs != nil {
		return &api.ValidationError{Problems: probs}
	}
	return nil
}

func (s *Server) getVM(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.vm(spec))
}

func (s *Server) deleteVM(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	if err := s.cfg.Runner.Forget(spec.ID); err != nil {
		s.problem(w, err)
		return
	}
	if err := s.cfg.Inventory.Delete(spec.ID); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: VM deleted", "vm", spec.Name, "id", spec.ID)
	w.WriteHeader(http.StatusNoContent)
}

// vmGetSub serves GET /v1/vms/{id}/console: the console tail the runner
// keeps, as text.
func (s *Server) vmGetSub(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("action") != api.VMKernelConsole {
		WriteProblem(w, api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("no route %s", r.URL.Path)})
		return
	}
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	b, err := s.cfg.Runner.ConsoleTail(spec.ID, 0)
	if err != nil {
		s.problem(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (s *Server) vmAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), powerOpTimeout)
	defer cancel()
	rn := s.cfg.Runner
	switch action {
	case api.ActionStart:
		err = rn.Start(ctx, spec)
	case api.ActionStop:
		err = rn.Stop(ctx, spec.ID)
	case api.ActionShutdown:
		var req api.ShutdownRequest
		body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if rerr == nil && len(body) > 0 {
			rerr = json.Unmarshal(body, &req)
		}
		if rerr != nil {
			s.problem(w, fmt.Errorf("%w: %w", errBadRequest, rerr))
			return
		}
		timeout := defaultShutdownTimeout
		if req.TimeoutSeconds != 0 {
			timeout = time.Duration(req.TimeoutSeconds) * time.Second
		}
		if timeout <= 0 || timeout > maxShutdownTimeout {
			s.problem(w, &api.ValidationError{Problems: []api.FieldProblem{{Field: "timeout_seconds", Message: "must be between 1 and 3600"}}})
			return
		}
		ctx, cancel := context.WithTimeout(ctx, timeout+powerOpTimeout)
		defer cancel()
		err = rn.Shutdown(ctx, spec.ID, timeout)
	case api.ActionReset:
		err = rn.Reset(ctx, spec.ID)
	case api.ActionPause:
		err = rn.Pause(ctx, spec.ID)
	case api.ActionResume:
		err = rn.Resume(ctx, spec.ID)
	default:
		WriteProblem(w, api.Problem{Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no VM action %q; actions are start, stop, shutdown, reset, pause, resume", action)})
		return
	}
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.vm(spec))
}

var errBadRequest = errors.New("malformed request")

// problem maps an error to its problem details: the one place where errors
// become HTTP statuses.
func (s *Server) problem(w http.ResponseWriter, err error) {
	p := api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()}
	var verr *api.ValidationError
	switch {
	case errors.As(err, &verr):
		p.Status = http.StatusUnprocessableEntity
		p.Problems = verr.Problems
		if len(verr.Problems) > 0 {
			p.Field = verr.Problems[0].Field
		}
	case errors.Is(err, errBadRequest):
		p.Status = http.StatusBadRequest
	case errors.Is(err, inventory.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, inventory.ErrExists), errors.Is(err, runner.ErrState):
		p.Status = http.StatusConflict
	case errors.Is(err, qemu.ErrUnknownDatastore), errors.Is(err, qemu.ErrPathEscapes),
		errors.Is(err, qemu.ErrNoTap), errors.Is(err, qemu.ErrNoFirmware):
		p.Status = http.StatusUnprocessableEntity
	case errors.Is(err, runner.ErrClosed):
		p.Status = http.StatusServiceUnavailable
	case errors.Is(err, datastore.ErrEscapes), errors.Is(err, datastore.ErrInvalid):
		p.Status = http.StatusBadRequest
	case errors.Is(err, datastore.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, datastore.ErrExists), errors.Is(err, datastore.ErrInUse):
		p.Status = http.StatusConflict
	case errors.Is(err, datastore.ErrShrink):
		p.Status = http.StatusUnprocessableEntity
	case errors.Is(err, vswitch.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, vswitch.ErrExists), errors.Is(err, vswitch.ErrInUse):
		p.Status = http.StatusConflict
	case errors.Is(err, vswitch.ErrInvalid), errors.Is(err, runner.ErrNoSwitches):
		p.Status = http.StatusUnprocessableEntity
	}
	if p.Status >= 500 {
		s.cfg.Log.Error("vmkernel: request failed", "err", err)
	}
	WriteProblem(w, p)
}
