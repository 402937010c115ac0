package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/backups"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/passthrough"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/snapshots"
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
	routes := []Route{
		{http.MethodGet, api.VMKernelVMsPath, s.listVMs},
		{http.MethodPost, api.VMKernelVMsPath, s.createVM},
		{http.MethodGet, api.VMKernelVMPath + "{id}", s.getVM},
		{http.MethodPut, api.VMKernelVMPath + "{id}", s.updateVM},
		{http.MethodDelete, api.VMKernelVMPath + "{id}", s.deleteVM},
		{http.MethodGet, api.VMKernelVMPath + "{id}/" + api.VMKernelConsole, s.consoleTail},
		{http.MethodGet, api.VMKernelVMPath + "{id}/" + api.ConsoleStream, s.consoleStream},
		{http.MethodGet, api.VMKernelVMPath + "{id}/" + api.VNCStream, s.vncStream},
	}
	// One route per action (not {id}/{action}, whose method-less 405
	// pattern would conflict with every other route one level down).
	for _, a := range []string{api.ActionStart, api.ActionStop, api.ActionShutdown, api.ActionReset, api.ActionPause, api.ActionResume} {
		routes = append(routes, Route{http.MethodPost, api.VMKernelVMPath + "{id}/" + a, s.vmAction(a)})
	}
	return append(routes, s.vmWorkRoutes()...)
}

func (s *Server) vm(spec api.VMSpec) api.VM {
	rt := s.cfg.Runner.Status(spec.ID)
	if len(rt.USB) > 0 {
		rt.USB = s.cfg.Runner.USB(spec.ID) // each checked to be still on the host
	}
	return api.VM{Spec: spec, Runtime: rt}
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	specs, gen := s.cfg.Inventory.Snapshot()
	s.vmList.write(w, r, gen, specs, s.cfg.Runner.Status)
}

func (s *Server) createVM(w http.ResponseWriter, r *http.Request) {
	spec, err := decodeSpec(w, r)
	if err != nil {
		s.problem(w, err)
		return
	}
	check := spec.Clone()
	if check.ID == "" {
		check.ID = api.NewUUID()
	}
	if err := s.validate(check, nil); err != nil {
		s.problem(w, err)
		return
	}
	reason, err := requestReason(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	if err := s.cfg.Inventory.CreateBy(&spec, inventoryChange(requestUser(r), reason)); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: VM created", "vm", spec.Name, "id", spec.ID)
	s.publish(api.EventCreated, spec, "")
	w.Header().Set("Location", api.VMKernelVMPath+spec.ID)
	writeJSON(w, http.StatusCreated, s.vm(spec))
}

// decodeSpec reads a VM spec body, refusing unknown fields and trailing data.
func decodeSpec(w http.ResponseWriter, r *http.Request) (api.VMSpec, error) {
	var spec api.VMSpec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return spec, fmt.Errorf("%w: trailing data after the VM spec", errBadRequest)
	}
	return spec, nil
}

// validate applies the defaults to a copy of spec and returns every problem
// of it (extra first, then the spec's own, then what this host knows) as one
// *api.ValidationError, or nil.
func (s *Server) validate(spec api.VMSpec, extra []api.FieldProblem) error {
	spec.Defaults()
	probs := append([]api.FieldProblem(nil), extra...)
	var verr *api.ValidationError
	if err := spec.Validate(); errors.As(err, &verr) {
		probs = append(probs, verr.Problems...)
	} else if err != nil {
		return err
	}
	if err := s.checkDatastores(spec); errors.As(err, &verr) {
		probs = append(probs, verr.Problems...)
	}
	if len(probs) == 0 { // only a spec otherwise sound has its images opened
		if err := s.checkImages(spec); errors.As(err, &verr) {
			probs = append(probs, verr.Problems...)
		}
	}
	if len(probs) > 0 {
		return &api.ValidationError{Problems: probs}
	}
	return nil
}

// updateVM serves PUT /v1/vms/{id}: the VM's new spec, for a VM that is
// stopped or crashed. The ID cannot change; the name can, to one not in use.
func (s *Server) updateVM(w http.ResponseWriter, r *http.Request) {
	old, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	spec, err := decodeSpec(w, r)
	if err != nil {
		s.problem(w, err)
		return
	}
	reason, err := requestReason(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	dryRun := false
	if q := r.URL.Query().Get(api.DryRunQuery); q != "" {
		if dryRun, err = strconv.ParseBool(q); err != nil {
			s.problem(w, fmt.Errorf("%w: %s=%q is not a boolean", errBadRequest, api.DryRunQuery, q))
			return
		}
	}
	var extra []api.FieldProblem
	if spec.ID != "" && spec.ID != old.ID {
		extra = append(extra, api.FieldProblem{Field: "id", Message: fmt.Sprintf("cannot change the VM's ID (%s)", old.ID)})
	}
	s.applyUpdate(w, old, spec, extra, inventoryChange(requestUser(r), reason), dryRun)
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

// checkImages opens and checks the images of spec's disks and CD-ROM that
// exist already (one may be defined before its disk is made; a start checks
// again), refusing what a start would refuse: an image naming another file,
// one whose established format is not the spec's.
func (s *Server) checkImages(spec api.VMSpec) error {
	if s.cfg.Datastores == nil {
		return nil
	}
	var probs []api.FieldProblem
	for i, d := range spec.Disks {
		one := spec
		one.Disks, one.CDROM = []api.Disk{d}, nil
		probs = append(probs, s.imageProblems(one, fmt.Sprintf("disks[%d]", i), "disks[0]")...)
	}
	if spec.CDROM != nil {
		one := spec
		one.Disks = nil
		probs = append(probs, s.imageProblems(one, "cdrom", "cdrom")...)
	}
	if probs != nil {
		return &api.ValidationError{Problems: probs}
	}
	return nil
}

// imageProblems checks the one image of spec (see checkImages), naming its
// field as field instead of as.
func (s *Server) imageProblems(spec api.VMSpec, field, as string) []api.FieldProblem {
	disks, cdrom, err := runner.OpenImages(s.cfg.Datastores, spec, false)
	for _, im := range disks {
		im.Close()
	}
	if cdrom != nil {
		cdrom.Close()
	}
	var verr *api.ValidationError
	if err == nil || errors.Is(err, datastore.ErrNotFound) || !errors.As(err, &verr) {
		return nil // absent (checked at start) or not the image's fault
	}
	probs := verr.Problems
	for i := range probs {
		probs[i].Field = field + strings.TrimPrefix(probs[i].Field, as)
	}
	return probs
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
	withDisks := false
	if q := r.URL.Query().Get("disks"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			s.problem(w, fmt.Errorf("%w: disks=%q is not a boolean", errBadRequest, q))
			return
		}
		withDisks = b
	}
	s.specMu.Lock()
	defer s.specMu.Unlock()
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	release, err := s.claim(spec.ID, "deletion")
	if err != nil {
		s.problem(w, err)
		return
	}
	defer release()
	if withDisks {
		// Its disks would be kept for the clones; refuse rather than
		// delete a template but not its disks.
		if err := s.refuseIfClones(spec, "be deleted with its disks"); err != nil {
			s.problem(w, err)
			return
		}
	}
	if err := s.cfg.Runner.Forget(spec.ID); err != nil {
		s.problem(w, err)
		return
	}
	if err := s.cfg.Inventory.Delete(spec.ID); err != nil {
		s.problem(w, err)
		return
	}
	if s.cfg.Snapshots != nil {
		if err := s.cfg.Snapshots.Delete(spec.ID); err != nil {
			s.cfg.Log.Warn("vmkernel: the snapshot tree of a deleted VM stays", "vm", spec.Name, "err", err)
		}
	}
	s.cfg.Log.Info("vmkernel: VM deleted", "vm", spec.Name, "id", spec.ID)
	if !withDisks {
		s.publish(api.EventDeleted, spec, "")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res := s.deleteDisks(spec)
	s.publish(api.EventDeleted, spec, fmt.Sprintf("with %d disk file(s)", len(res.RemovedFiles)))
	writeJSON(w, http.StatusOK, res)
}

// deleteDisks removes the disk files of a deleted VM (not its CD-ROM ISO
// nor its direct-boot files) that no other VM refers to. A file already
// gone is skipped; one still used, or that cannot be removed, is kept.
func (s *Server) deleteDisks(spec api.VMSpec) api.DeleteVMResult {
	res := api.DeleteVMResult{RemovedFiles: []api.DatastoreFile{}}
	own := map[api.DatastoreFile]bool{} // its non-disk files: never removed
	if spec.CDROM != nil {
		own[api.DatastoreFile{Datastore: spec.CDROM.Datastore, Path: spec.CDROM.Path}] = true
	}
	if k := spec.Kernel; k != nil {
		own[api.DatastoreFile{Datastore: k.Datastore, Path: k.Kernel}] = true
		own[api.DatastoreFile{Datastore: k.Datastore, Path: k.Initrd}] = true
	}
	seen := map[api.DatastoreFile]bool{}
	for _, d := range spec.Disks {
		f := api.DatastoreFile{Datastore: d.Datastore, Path: d.Path}
		if seen[f] {
			continue
		}
		seen[f] = true
		if own[f] {
			res.KeptFiles = append(res.KeptFiles, f)
			continue
		}
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			s.cfg.Log.Warn("vmkernel: disk of a deleted VM on an unknown datastore kept", "vm", spec.Name, "datastore", d.Datastore, "path", d.Path)
			res.KeptFiles = append(res.KeptFiles, f)
			continue
		}
		ds := datastore.Datastore{Name: d.Datastore, Root: root}
		var bases []string // what a linked clone's disk rests on
		if im, err := ds.OpenImage(d.Path, false); err == nil {
			for _, b := range im.Chain()[1:] {
				bases = append(bases, b.Path)
			}
			im.Close()
		}
		err := ds.DeleteFile(d.Path, s.fileUsers(ds, false))
		switch {
		case err == nil:
			for _, b := range bases {
				if strings.HasPrefix(b, basesDir+"/") {
					s.removeIfUnused(ds, b)
				}
			}
			res.RemovedFiles = append(res.RemovedFiles, f)
			s.cfg.Log.Info("vmkernel: disk of a deleted VM removed", "vm", spec.Name, "datastore", ds.Name, "path", d.Path)
		case errors.Is(err, datastore.ErrNotFound):
		default:
			s.cfg.Log.Warn("vmkernel: disk of a deleted VM kept", "vm", spec.Name, "err", err)
			res.KeptFiles = append(res.KeptFiles, f)
		}
	}
	return res
}

// consoleTail serves GET /v1/vms/{id}/console: the console tail the
// runner keeps, as text.
func (s *Server) consoleTail(w http.ResponseWriter, r *http.Request) {
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

// vmAction serves POST /v1/vms/{id}/ACTION, a power action.
func (s *Server) vmAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.powerAction(w, r, action) }
}

func (s *Server) powerAction(w http.ResponseWriter, r *http.Request, action string) {
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
		// Read the spec again under specMu: an update cannot slip in
		// between reading it and QEMU running it.
		s.specMu.RLock()
		spec, err = s.cfg.Inventory.Get(spec.ID)
		if err == nil && spec.Template {
			err = fmt.Errorf("VM %q: %w: it never starts (deploy or clone it)", spec.Name, errTemplate)
		}
		if err == nil {
			err = rn.Start(ctx, spec)
		}
		s.specMu.RUnlock()
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
	case errors.Is(err, errNotManaged), errors.Is(err, errNoInstaller), errors.Is(err, errNoUpgrades):
		p.Status = http.StatusNotImplemented
	case errors.Is(err, errLengthRequired):
		p.Status = http.StatusLengthRequired
	case errors.Is(err, errNoSpace):
		p.Status = http.StatusInsufficientStorage
	case errors.Is(err, inventory.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, snapshots.ErrNotFound), errors.Is(err, inventory.ErrNoVersion), errors.Is(err, backups.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, errBusy), errors.Is(err, errTemplate), errors.Is(err, errNotTemplate),
		errors.Is(err, snapshots.ErrExists), errors.Is(err, snapshots.ErrFull):
		p.Status = http.StatusConflict
	case errors.Is(err, inventory.ErrExists), errors.Is(err, runner.ErrState),
		errors.Is(err, runner.ErrNoConsole), errors.Is(err, runner.ErrNoVNC):
		p.Status = http.StatusConflict
	case errors.Is(err, qemu.ErrNoTap), errors.Is(err, qemu.ErrNoFirmware), errors.Is(err, qemu.ErrNoImage),
		errors.Is(err, qemu.ErrControlChar), errors.Is(err, datastore.ErrRefused):
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
	case errors.Is(err, passthrough.ErrUnavailable), errors.Is(err, runner.ErrHotplug),
		errors.Is(err, runner.ErrNoSlot), errors.Is(err, runner.ErrBalloon):
		p.Status = http.StatusConflict
	case errors.Is(err, passthrough.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, runner.ErrNoDevices):
		p.Status = http.StatusNotImplemented
	case errors.Is(err, vswitch.ErrInvalid), errors.Is(err, runner.ErrNoSwitches):
		p.Status = http.StatusUnprocessableEntity
	}
	if p.Status >= 500 {
		s.cfg.Log.Error("vmkernel: request failed", "err", err)
	}
	WriteProblem(w, p)
}
