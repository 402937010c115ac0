package vmkernel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner"
)

// Clones, templates and deploys. A clone is a new VM (new ID, name and
// MACs) with the source's definition and copies of its writable disks on
// the same datastores, at NAME/diskN.qcow2; read-only disks are shared.
// A full clone copies each disk whole (qemu-img convert); a linked clone's
// disk is a qcow2 overlay made with datastore.CreateOverlay (so OpenImage
// follows it) on a base that never changes: a template's own disk, or for
// a VM or one of its snapshots a copy made once under bases/ (and removed
// with its last clone). A UEFI VM's variables are always copied. Nothing
// pulls a base from under its clones: a file an overlay rests on counts
// as used (delete, resize, overwrite), and a template with clones stays
// one.

// cloneTimeout bounds one clone or deploy.
const cloneTimeout = 6 * time.Hour

// basesDir holds the frozen bases of linked clones of VMs and snapshots.
const basesDir = "bases"

// cloneSource is what a clone is made of: a VM as it is, or as it was in
// one of its snapshots.
type cloneSource struct {
	vm   api.VMSpec
	snap *api.Snapshot
}

// spec is the definition the clone starts from.
func (c cloneSource) spec() api.VMSpec {
	if c.snap != nil {
		return c.snap.Spec.Clone()
	}
	return c.vm.Clone()
}

func (c cloneSource) tag() string {
	if c.snap != nil {
		return c.snap.ID
	}
	return ""
}

func (c cloneSource) String() string {
	if c.snap != nil {
		return fmt.Sprintf("%s (snapshot %s)", c.vm.Name, c.snap.Name)
	}
	return c.vm.Name
}

// clonePlan is how each writable disk of a source is to be had.
type clonePlan struct {
	src    cloneSource
	linked bool
	// bases are the linked clones' base of each disk index (datastore
	// path): a template's own disk, or a frozen copy made by prepare.
	bases map[int]string
	// makeBases: the bases must be copied out of the source first.
	makeBases bool
}

// planClone checks a source and says how its clones' disks are had, with
// the space they need on each datastore.
func (s *Server) planClone(ctx context.Context, src cloneSource, linked bool, count int) (*clonePlan, map[string]int64, error) {
	p := &clonePlan{src: src, linked: linked, bases: map[int]string{}}
	need := map[string]int64{}
	spec := src.spec()
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			return nil, nil, &api.ValidationError{Subject: "clone", Problems: []api.FieldProblem{{Field: fmt.Sprintf("disks[%d].datastore", i), Message: fmt.Sprintf("datastore %q is not known on this host", d.Datastore)}}}
		}
		ds := datastore.Datastore{Name: d.Datastore, Root: root}
		info, err := ds.DiskInfo(ctx, d.Path)
		if err != nil {
			return nil, nil, imageFieldProblem(fmt.Sprintf("disks[%d].path", i), err)
		}
		if info.Format != api.FormatQcow2 && linked {
			return nil, nil, &api.ValidationError{Subject: "clone", Problems: []api.FieldProblem{{Field: fmt.Sprintf("disks[%d].format", i),
				Message: fmt.Sprintf("%s:%s is %s; a linked clone rests on a qcow2 base (make a full clone)", d.Datastore, d.Path, info.Format)}}}
		}
		size := max(info.ActualSizeBytes, 1<<20)
		switch {
		case !linked:
			need[d.Datastore] += int64(count) * size
		case src.vm.Template && src.snap == nil:
			p.bases[i] = d.Path
		default:
			p.makeBases = true
			p.bases[i] = path.Join(basesDir, src.vm.ID, baseName(src), fmt.Sprintf("disk%d.qcow2", i))
			need[d.Datastore] += size
		}
		need[d.Datastore] += 0
	}
	return p, need, nil
}

// baseName names the frozen bases of a source: its snapshot's tag, or the
// time they were made.
func baseName(src cloneSource) string {
	if src.snap != nil {
		return src.snap.ID
	}
	return "at-" + time.Now().UTC().Format("20060102T150405.000")
}

// imageFieldProblem makes a refused or missing image a problem of field.
func imageFieldProblem(field string, err error) error {
	if errors.Is(err, datastore.ErrRefused) || errors.Is(err, datastore.ErrNotFound) || errors.Is(err, datastore.ErrEscapes) || errors.Is(err, datastore.ErrInvalid) {
		return &api.ValidationError{Subject: "clone", Problems: []api.FieldProblem{{Field: field, Message: err.Error()}}}
	}
	return err
}

// prepare makes the frozen bases a plan needs (a base already made of the
// same snapshot is reused).
func (s *Server) prepare(ctx context.Context, p *clonePlan, undo *[]func()) error {
	if !p.makeBases {
		return nil
	}
	spec := p.src.spec()
	for i, base := range p.bases {
		d := spec.Disks[i]
		ds := datastore.Datastore{Name: d.Datastore, Root: s.cfg.Datastores[d.Datastore]}
		if im, err := ds.OpenImage(base, false); err == nil {
			im.Close()
			continue
		}
		if err := s.copyDisk(ctx, ds, d.Path, base, p.src.tag()); err != nil {
			return err
		}
		*undo = append(*undo, func() { s.removeIfUnused(ds, base) })
	}
	return nil
}

// copyDisk copies the disk src (as it was in snapshot tag, when set) into
// the new qcow2 image dst of the same datastore.
func (s *Server) copyDisk(ctx context.Context, ds datastore.Datastore, src, dst, tag string) error {
	im, err := ds.OpenImage(src, false)
	if err != nil {
		return err
	}
	defer im.Close()
	return ds.CopyImage(ctx, im, dst, datastore.ConvertOptions{Format: api.FormatQcow2, Snapshot: tag})
}

// removeIfUnused deletes a frozen base no clone rests on any more.
func (s *Server) removeIfUnused(ds datastore.Datastore, rel string) {
	if deps, err := ds.Dependents(rel); err != nil || len(deps) > 0 {
		return
	}
	if err := ds.DeleteFile(rel, s.fileUsers(ds, false)); err == nil {
		s.cfg.Log.Info("vmkernel: a base no clone rests on is removed", "datastore", ds.Name, "path", rel)
		full, _ := ds.Resolve(rel)
		for dir := path.Dir(full); strings.HasPrefix(dir, ds.Root+"/"+basesDir); dir = path.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	}
}

// makeClone makes one clone named name (its files, then its definition)
// and returns it; undo gets what removes the files made.
func (s *Server) makeClone(ctx context.Context, p *clonePlan, name, user string, undo *[]func()) (api.VMSpec, error) {
	spec := p.src.spec()
	spec.ID, spec.Name, spec.Template = api.NewUUID(), name, false
	spec.Autostart.Enabled = false
	for i := range spec.NICs {
		spec.NICs[i].MAC = "" // the clone's own, from its ID
	}
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		ds := datastore.Datastore{Name: d.Datastore, Root: s.cfg.Datastores[d.Datastore]}
		dst := path.Join(name, fmt.Sprintf("disk%d.qcow2", i))
		if full, err := ds.Resolve(dst); err == nil {
			if _, err := os.Lstat(full); err == nil {
				return api.VMSpec{}, fmt.Errorf("datastore %s: %q: %w", ds.Name, dst, datastore.ErrExists)
			}
		}
		var err error
		if p.linked {
			err = ds.CreateOverlay(ctx, dst, p.bases[i])
		} else {
			err = s.copyDisk(ctx, ds, d.Path, dst, p.src.tag())
		}
		if err != nil {
			return api.VMSpec{}, fmt.Errorf("disks[%d]: %w", i, err)
		}
		*undo = append(*undo, func() { ds.DeleteFile(dst, nil) })
		spec.Disks[i].Path, spec.Disks[i].Format = dst, api.FormatQcow2
	}
	if spec.UEFI() {
		if err := s.copyVars(ctx, p.src, spec); err != nil {
			return api.VMSpec{}, err
		}
		*undo = append(*undo, func() { os.RemoveAll(s.cfg.Runner.StateStore(spec.ID).Root) })
	}
	reason := "clone of " + p.src.String()
	if p.linked {
		reason = "linked " + reason
	}
	if err := s.cfg.Inventory.CreateBy(&spec, inventoryChange(user, reason)); err != nil {
		return api.VMSpec{}, err
	}
	return spec, nil
}

// copyVars copies the source's UEFI variables (as they were in its
// snapshot, when it is one) into the clone's state directory.
func (s *Server) copyVars(ctx context.Context, src cloneSource, clone api.VMSpec) error {
	from := src.spec()
	from.ID = src.vm.ID
	if err := s.cfg.Runner.EnsureVars(ctx, from); err != nil {
		return err
	}
	im, err := s.cfg.Runner.OpenVars(from, false)
	if err != nil {
		return err
	}
	defer im.Close()
	st := s.cfg.Runner.StateStore(clone.ID)
	if err := os.MkdirAll(st.Root, 0o700); err != nil {
		return err
	}
	tag := src.tag()
	if tag != "" {
		// A variables image made after the snapshot does not hold it.
		if state, err := s.cfg.Runner.StateStore(from.ID).State(ctx, im.Path); err != nil || !hasSnapshot(state, tag) {
			tag = ""
		}
	}
	return st.CopyImage(ctx, im, s.cfg.Runner.VarsPath(clone), datastore.ConvertOptions{Format: api.FormatQcow2, Snapshot: tag})
}

func hasSnapshot(st datastore.ImageState, tag string) bool {
	_, ok := st.Snapshots[tag]
	return ok
}

// source reads the request's VM, and its snapshot ref (when not ""), as a
// clone source; the VM must be stopped unless a snapshot is cloned.
func (s *Server) source(r *http.Request, ref string) (cloneSource, error) {
	vm, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		return cloneSource{}, err
	}
	src := cloneSource{vm: vm}
	if ref != "" {
		if s.cfg.Snapshots == nil {
			return src, fmt.Errorf("snapshots: %w", errNotManaged)
		}
		tree, err := s.cfg.Snapshots.Load(vm.ID)
		if err != nil {
			return src, err
		}
		snap, err := tree.Find(ref)
		if err != nil {
			return src, err
		}
		src.snap = &snap
		return src, nil
	}
	if st := s.cfg.Runner.Status(vm.ID).State; !stoppedState(st) {
		return src, &runner.StateError{ID: vm.ID, Op: "clone (stop it first, or clone one of its snapshots)", State: st}
	}
	return src, nil
}

// checkNames refuses names in use.
func (s *Server) checkNames(field string, names []string) error {
	for _, n := range names {
		if _, err := s.cfg.Inventory.Get(n); err == nil {
			return &api.ValidationError{Subject: "clone", Problems: []api.FieldProblem{{Field: field, Message: fmt.Sprintf("a VM named %q exists", n)}}}
		}
	}
	return nil
}

// cloneVM serves POST /v1/vms/{id}/clone.
func (s *Server) cloneVM(w http.ResponseWriter, r *http.Request) {
	var req api.CloneRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.problem(w, err)
		return
	}
	src, err := s.source(r, req.Snapshot)
	if err != nil {
		s.problem(w, err)
		return
	}
	s.startClones(w, r, src, []string{req.Name}, "name", req.Linked, req.Start)
}

// deployTemplate serves POST /v1/vms/{id}/deploy: Count clones of a
// template, linked unless Full, in one task; if one fails, those made go.
func (s *Server) deployTemplate(w http.ResponseWriter, r *http.Request) {
	var req api.DeployRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	names, err := req.Names()
	if err != nil {
		s.problem(w, err)
		return
	}
	src, err := s.source(r, "")
	if err != nil {
		s.problem(w, err)
		return
	}
	if !src.vm.Template {
		s.problem(w, fmt.Errorf("VM %q is not a template (mark it one first, or clone it): %w", src.vm.Name, errNotTemplate))
		return
	}
	s.startClones(w, r, src, names, "name_pattern", !req.Full, req.Start)
}

// errNotTemplate: deploy asks for a template (409).
var errNotTemplate = errors.New("not a template")

// startClones checks everything (names, the source's disks, the space),
// then makes the clones as one task.
func (s *Server) startClones(w http.ResponseWriter, r *http.Request, src cloneSource, names []string, field string, linked, start bool) {
	if err := s.checkNames(field, names); err != nil {
		s.problem(w, err)
		return
	}
	release, err := s.claim(src.vm.ID, "cloning")
	if err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.bg, cloneTimeout)
	p, need, err := s.planClone(ctx, src, linked, len(names))
	var unreserve func()
	if err == nil {
		unreserve, err = s.reserveAll(need, snapshotMargin)
	}
	if err != nil {
		cancel()
		release()
		s.problem(w, err)
		return
	}
	kind := "clone"
	if len(names) > 1 || field == "name_pattern" {
		kind = "deploy"
	}
	t := s.startTask(w, r, kind, src.String()+" -> "+strings.Join(names, ", "))
	user := requestUser(r)
	go func() {
		defer release()
		defer unreserve()
		defer cancel()
		t0 := time.Now()
		made, err := s.clones(ctx, p, names, user, start, t)
		s.tasks.Finish(t, err)
		s.cfg.Log.Info("vmkernel: "+kind+" ended", "source", src.String(), "made", len(made), "linked", linked, "took", time.Since(t0), "err", err)
	}()
}

// clones makes the clones one after the other; when one fails, those made
// are deleted with their files.
func (s *Server) clones(ctx context.Context, p *clonePlan, names []string, user string, start bool, t *tasks.Task) ([]api.VMSpec, error) {
	var undo []func()
	var made []api.VMSpec
	fail := func(err error) ([]api.VMSpec, error) {
		for _, m := range made {
			s.cfg.Inventory.Delete(m.ID)
			s.publish(api.EventDeleted, m, "its deploy failed")
		}
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	s.tasks.SetTotal(t, int64(len(names)))
	if err := s.prepare(ctx, p, &undo); err != nil {
		return fail(err)
	}
	for i, name := range names {
		spec, err := s.makeClone(ctx, p, name, user, &undo)
		if err != nil {
			return fail(fmt.Errorf("clone %q: %w", name, err))
		}
		made = append(made, spec)
		s.tasks.AddResult(t, spec.ID)
		s.publish(api.EventClone, spec, "made of "+p.src.String())
		t.SetDone(int64(i + 1))
	}
	if start {
		for _, spec := range made {
			s.specMu.RLock()
			err := s.cfg.Runner.Start(ctx, spec)
			s.specMu.RUnlock()
			if err != nil {
				return made, fmt.Errorf("clone %q made, but its start failed: %w", spec.Name, err)
			}
		}
	}
	return made, nil
}

// markTemplate serves POST /v1/vms/{id}/template.
func (s *Server) markTemplate(w http.ResponseWriter, r *http.Request) {
	var req api.TemplateRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	old, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	if st := s.cfg.Runner.Status(old.ID).State; !stoppedState(st) && req.Template {
		s.problem(w, &runner.StateError{ID: old.ID, Op: "become a template", State: st})
		return
	}
	spec := old.Clone()
	spec.Template = req.Template
	reason := "made a template"
	if !req.Template {
		reason = "no longer a template"
	} else {
		spec.Autostart.Enabled = false
	}
	s.applyUpdate(w, old, spec, nil, inventoryChange(requestUser(r), reason), false)
}

// refuseIfClones refuses (ErrInUse, naming them) when linked clones rest
// on one of the VM's disks.
func (s *Server) refuseIfClones(spec api.VMSpec, what string) error {
	for i, d := range spec.Disks {
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			continue
		}
		deps, err := datastore.Datastore{Name: d.Datastore, Root: root}.Dependents(d.Path)
		if err != nil {
			return err
		}
		if len(deps) > 0 {
			return fmt.Errorf("VM %q cannot %s: linked clones rest on disks[%d] (%s:%s): %s: %w",
				spec.Name, what, i, d.Datastore, d.Path, s.namesOf(d.Datastore, deps), datastore.ErrInUse)
		}
	}
	return nil
}

// namesOf names the VMs (else the files) among paths of datastore ds.
func (s *Server) namesOf(ds string, paths []string) string {
	var out []string
	for _, p := range paths {
		name := ds + ":" + p
		for _, vm := range s.cfg.Inventory.List() {
			for _, d := range vm.Disks {
				if d.Datastore == ds && d.Path == p {
					name = "VM " + vm.Name
				}
			}
		}
		out = append(out, name)
	}
	return strings.Join(out, ", ")
}
