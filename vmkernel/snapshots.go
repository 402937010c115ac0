package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/qmp"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/snapshots"
)

// Snapshots are qcow2 internal snapshots (docs/SNAPSHOTS.md says why):
// every disk that is not read-only and a UEFI VM's variables hold the
// same tag; a memory snapshot keeps the VM's state in its first disk.
// A running VM's are made, loaded and deleted by its QEMU over QMP
// (snapshot-save, snapshot-load and snapshot-delete jobs; a disk-only
// snapshot is one transaction of blockdev-snapshot-internal-sync), a
// stopped VM's by qemu-img through the datastore's runner. The tree is
// package snapshots'.

// Bounds of snapshot work; variables so tests could change them.
var (
	// snapshotMargin is the free space a snapshot must leave on each
	// datastore it writes to (besides the memory it keeps).
	snapshotMargin  int64 = 64 << 20
	snapshotTimeout       = 30 * time.Minute
)

// jobPrefix starts the ID of every QEMU job vmkernel starts.
const jobPrefix = "plinth-"

// snapImage is one image that holds a VM's snapshots.
type snapImage struct {
	store datastore.Datastore
	rel   string
	// node is the image's block node in the VM's QEMU.
	node string
}

// snapImages opens and checks each image of spec that holds its
// snapshots: its disks that are not read-only, each of which must be
// qcow2, and a UEFI VM's variables (made now if the VM never started).
// An image that cannot be used is a field problem (422).
func (s *Server) snapImages(ctx context.Context, spec api.VMSpec) ([]snapImage, error) {
	var out []snapImage
	var probs []api.FieldProblem
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		field := fmt.Sprintf("disks[%d]", i)
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			probs = append(probs, api.FieldProblem{Field: field + ".datastore", Message: fmt.Sprintf("datastore %q is not known on this host", d.Datastore)})
			continue
		}
		ds := datastore.Datastore{Name: d.Datastore, Root: root}
		im, err := ds.OpenImage(d.Path, false)
		if err != nil {
			if errors.Is(err, datastore.ErrRefused) || errors.Is(err, datastore.ErrNotFound) || errors.Is(err, datastore.ErrEscapes) || errors.Is(err, datastore.ErrInvalid) {
				probs = append(probs, api.FieldProblem{Field: field + ".path", Message: err.Error()})
				continue
			}
			return nil, err
		}
		format := im.Format
		im.Close()
		if format != api.FormatQcow2 {
			probs = append(probs, api.FieldProblem{Field: field + ".format", Message: fmt.Sprintf(
				"%s:%s is %s: only qcow2 disks hold snapshots; convert it, or make it read-only", d.Datastore, d.Path, format)})
			continue
		}
		out = append(out, snapImage{store: ds, rel: d.Path, node: runner.DiskNode(i)})
	}
	if len(probs) > 0 {
		return nil, &api.ValidationError{Subject: "snapshot", Problems: probs}
	}
	if spec.UEFI() {
		if err := s.cfg.Runner.EnsureVars(ctx, spec); err != nil {
			return nil, err
		}
		im, err := s.cfg.Runner.OpenVars(spec, false)
		if err != nil {
			return nil, err
		}
		im.Close()
		out = append(out, snapImage{store: s.cfg.Runner.StateStore(spec.ID), rel: s.cfg.Runner.VarsPath(spec), node: runner.VarsNode})
	}
	return out, nil
}

func nodesOf(imgs []snapImage) []string {
	out := make([]string, len(imgs))
	for i, im := range imgs {
		out[i] = im.node
	}
	return out
}

// isLive reports whether a VM in this state has a QEMU to do the work.
func isLive(state string) bool { return state == api.VMRunning || state == api.VMPaused }

// vmForWork reads the VM of the request and refuses a template.
func (s *Server) vmForWork(r *http.Request, what string) (api.VMSpec, error) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		return spec, err
	}
	if spec.Template {
		return spec, fmt.Errorf("VM %q: %w: %s (a template never changes; deploy or clone it)", spec.Name, errTemplate, what)
	}
	if s.cfg.Snapshots == nil {
		return spec, fmt.Errorf("snapshots: %w", errNotManaged)
	}
	return spec, nil
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	if s.cfg.Snapshots == nil {
		writeJSON(w, http.StatusOK, api.SnapshotTree{Snapshots: []api.Snapshot{}})
		return
	}
	tree, err := s.cfg.Snapshots.Load(spec.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tree.API())
}

// createSnapshot serves POST /v1/vms/{id}/snapshots: everything is
// checked (the request, the VM's state, its images, the free space)
// before anything changes; then the snapshot is taken as a task.
func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	spec, err := s.vmForWork(r, "no snapshots")
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.SnapshotRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.problem(w, err)
		return
	}
	release, err := s.claim(spec.ID, "a snapshot")
	if err != nil {
		s.problem(w, err)
		return
	}
	started := false
	defer func() {
		if !started {
			release()
		}
	}()
	state := s.cfg.Runner.Status(spec.ID).State
	live := isLive(state)
	if !live && !stoppedState(state) {
		s.problem(w, &runner.StateError{ID: spec.ID, Op: "snapshot", State: state})
		return
	}
	if req.Memory && !live {
		s.problem(w, &api.ValidationError{Subject: "snapshot request", Problems: []api.FieldProblem{{Field: "memory", Message: "the VM is stopped: it has no memory to keep"}}})
		return
	}
	ctx, cancel := context.WithTimeout(s.bg, snapshotTimeout)
	imgs, err := s.snapImages(ctx, spec)
	if err == nil && req.Memory && (len(imgs) == 0 || imgs[0].node == runner.VarsNode) {
		err = &api.ValidationError{Subject: "snapshot request", Problems: []api.FieldProblem{{Field: "memory", Message: "the VM has no qcow2 disk to keep its memory in"}}}
	}
	if err != nil {
		cancel()
		s.problem(w, err)
		return
	}
	tree, err := s.cfg.Snapshots.Load(spec.ID)
	if err == nil {
		err = s.cleanSnapshots(ctx, spec, &tree, imgs, live)
	}
	if err != nil {
		cancel()
		s.problem(w, err)
		return
	}
	need := map[string]int64{}
	for _, im := range imgs {
		if _, ok := s.cfg.Datastores[im.store.Name]; ok {
			need[im.store.Name] += 0
		}
	}
	if req.Memory {
		need[imgs[0].store.Name] += int64(spec.MemoryMiB) << 20
	}
	unreserve, err := s.reserveAll(need, snapshotMargin)
	if err != nil {
		cancel()
		s.problem(w, err)
		return
	}
	snap, err := tree.Add(api.Snapshot{Name: req.Name, Description: req.Description, CreatedAt: time.Now().UTC(),
		Memory: req.Memory, State: state, Spec: spec})
	if err == nil {
		err = s.cfg.Snapshots.Save(spec.ID, tree)
	}
	if err != nil {
		unreserve()
		cancel()
		s.problem(w, err)
		return
	}
	started = true
	t := s.startTask(w, r, "snapshot", spec.Name+": "+req.Name)
	s.cfg.Log.Info("vmkernel: taking a snapshot", "vm", spec.Name, "snapshot", req.Name, "memory", req.Memory, "task", t.ID())
	go func() {
		defer release()
		defer unreserve()
		defer cancel()
		start := time.Now()
		mem, err := s.takeSnapshot(ctx, spec, imgs, snap, live, t)
		if err != nil {
			if cerr := s.cleanTag(ctx, spec, imgs, snap.ID, live); cerr != nil {
				s.cfg.Log.Warn("vmkernel: a failed snapshot left its tag; it goes with the next snapshot work", "vm", spec.Name, "err", cerr)
				err = errors.Join(err, cerr)
			} else {
				tree.Remove(snap.ID)
			}
		} else {
			for i := range tree.Entries {
				if tree.Entries[i].ID == snap.ID {
					tree.Entries[i].MemoryBytes = mem
				}
			}
			tree.Done(snap.ID)
		}
		if serr := s.cfg.Snapshots.Save(spec.ID, tree); serr != nil {
			err = errors.Join(err, serr)
		}
		s.tasks.Finish(t, err)
		if err == nil {
			s.publish(api.EventSnapshot, spec, fmt.Sprintf("snapshot %q taken in %v", snap.Name, time.Since(start).Round(time.Millisecond)))
		}
		s.cfg.Log.Info("vmkernel: snapshot ended", "vm", spec.Name, "snapshot", snap.Name, "took", time.Since(start), "err", err)
	}()
}

// takeSnapshot writes the tag into every image and returns the size of the
// memory state kept (0 without).
func (s *Server) takeSnapshot(ctx context.Context, spec api.VMSpec, imgs []snapImage, snap api.Snapshot, live bool, t *tasks.Task) (int64, error) {
	if len(imgs) == 0 {
		return 0, nil
	}
	if !live {
		s.tasks.SetTotal(t, int64(len(imgs)))
		for i, im := range imgs {
			if err := im.store.Snapshot(ctx, im.rel, datastore.SnapshotCreate, snap.ID); err != nil {
				return 0, err
			}
			t.SetDone(int64(i + 1))
		}
		return 0, nil
	}
	mon, err := s.cfg.Runner.Monitor(spec.ID)
	if err != nil {
		return 0, err
	}
	if err := settleJobs(ctx, mon); err != nil {
		return 0, err
	}
	if !snap.Memory {
		// One transaction: every image has the snapshot, or none has. The
		// guest's file systems are frozen around it when its agent answers.
		thaw := s.freeze(ctx, spec)
		var actions []map[string]any
		for _, im := range imgs {
			actions = append(actions, map[string]any{"type": "blockdev-snapshot-internal-sync",
				"data": map[string]string{"device": im.node, "name": snap.ID}})
		}
		err := mon.Run(ctx, "transaction", map[string]any{"actions": actions}, nil)
		thaw()
		return 0, err
	}
	job := jobPrefix + "snap-" + snap.ID
	args := map[string]any{"job-id": job, "tag": snap.ID, "vmstate": imgs[0].node, "devices": nodesOf(imgs)}
	if err := mon.Run(ctx, "snapshot-save", args, nil); err != nil {
		return 0, err
	}
	if err := mon.WaitJob(ctx, job, jobProgress(s, t)); err != nil {
		return 0, err
	}
	st, err := imgs[0].store.State(ctx, imgs[0].rel)
	if err != nil {
		return 0, nil // the snapshot is made; its size is a detail
	}
	return st.Snapshots[snap.ID], nil
}

// jobProgress reports a QEMU job's progress in a task.
func jobProgress(s *Server, t *tasks.Task) func(done, total int64) {
	return func(done, total int64) {
		if total > 0 {
			s.tasks.SetTotal(t, total)
		}
		t.SetDone(done)
	}
}

// freeze freezes the guest's file systems when its agent answers, and
// returns the thaw (a no-op otherwise).
func (s *Server) freeze(ctx context.Context, spec api.VMSpec) func() {
	agent, err := s.cfg.Runner.GuestAgent(spec.ID)
	if err != nil {
		return func() {}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := agent.Freeze(fctx); err != nil {
		s.cfg.Log.Warn("vmkernel: the guest's file systems could not be frozen; the snapshot is crash-consistent", "vm", spec.Name, "err", err)
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		agent.Thaw(tctx)
		cancel()
		return func() {}
	}
	return func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := agent.Thaw(tctx); err != nil {
			s.cfg.Log.Error("vmkernel: thawing the guest's file systems", "vm", spec.Name, "err", err)
		}
	}
}

// settleJobs waits for the jobs a vmkernel that died left in the VM's
// QEMU and dismisses them: a later one must not trip over them.
func settleJobs(ctx context.Context, mon *qmp.Monitor) error {
	jobs, err := mon.Jobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if strings.HasPrefix(j.ID, jobPrefix) {
			mon.WaitJob(ctx, j.ID, nil) // its outcome is cleaned up after
		}
	}
	return nil
}

// cleanTag removes the tag from every image that has it.
func (s *Server) cleanTag(ctx context.Context, spec api.VMSpec, imgs []snapImage, tag string, live bool) error {
	ctx = context.WithoutCancel(ctx) // a clean-up outlives a cancelled task
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	if live {
		mon, err := s.cfg.Runner.Monitor(spec.ID)
		if err == nil {
			return deleteTagOnline(ctx, mon, imgs, tag)
		}
		// The VM stopped meanwhile: clean its images offline.
	}
	for _, im := range imgs {
		if err := im.store.Snapshot(ctx, im.rel, datastore.SnapshotDelete, tag); err != nil {
			return err
		}
	}
	return nil
}

func deleteTagOnline(ctx context.Context, mon *qmp.Monitor, imgs []snapImage, tag string) error {
	if len(imgs) == 0 {
		return nil
	}
	if err := settleJobs(ctx, mon); err != nil {
		return err
	}
	job := jobPrefix + "del-" + tag
	// snapshot-delete passes over an image without the tag.
	if err := mon.Run(ctx, "snapshot-delete", map[string]any{"job-id": job, "tag": tag, "devices": nodesOf(imgs)}, nil); err != nil {
		return err
	}
	return mon.WaitJob(ctx, job, nil)
}

// cleanSnapshots finishes what a killed vmkernel left pending in the tree:
// the tags of a snapshot half-made or half-deleted go from the images,
// then its entry.
func (s *Server) cleanSnapshots(ctx context.Context, spec api.VMSpec, tree *snapshots.Tree, imgs []snapImage, live bool) error {
	pending := tree.Pending()
	for _, e := range pending {
		s.cfg.Log.Warn("vmkernel: cleaning up a snapshot left half-done", "vm", spec.Name, "snapshot", e.Name, "was", e.Pending)
		if err := s.cleanTag(ctx, spec, imgs, e.ID, live); err != nil {
			return fmt.Errorf("cleaning up snapshot %q left %s: %w", e.Name, e.Pending, err)
		}
		tree.Remove(e.ID)
	}
	if len(pending) == 0 {
		return nil
	}
	return s.cfg.Snapshots.Save(spec.ID, *tree)
}

// reserveAll reserves need[ds] bytes (plus margin) on each datastore, or
// nothing (errNoSpace naming the one short of room).
func (s *Server) reserveAll(need map[string]int64, margin int64) (func(), error) {
	var held []*reservation
	undo := func() {
		for _, r := range held {
			r.release()
		}
	}
	names := make([]string, 0, len(need))
	for name := range need {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		root, ok := s.cfg.Datastores[name]
		if !ok {
			continue // a VM's state directory: what it holds is small
		}
		r, err := s.space.reserve(datastore.Datastore{Name: name, Root: root}, need[name], margin)
		if err != nil {
			undo()
			return nil, err
		}
		held = append(held, r)
	}
	return undo, nil
}

// snapshotOf reads the request's VM and its complete snapshot {snap}.
func (s *Server) snapshotOf(r *http.Request, what string) (api.VMSpec, snapshots.Tree, api.Snapshot, error) {
	spec, err := s.vmForWork(r, what)
	if err != nil {
		return spec, snapshots.Tree{}, api.Snapshot{}, err
	}
	tree, err := s.cfg.Snapshots.Load(spec.ID)
	if err != nil {
		return spec, tree, api.Snapshot{}, err
	}
	snap, err := tree.Find(r.PathValue("snap"))
	return spec, tree, snap, err
}

// deleteSnapshot serves DELETE /v1/vms/{id}/snapshots/{snap}: the tag goes
// from every image (qcow2 keeps what other snapshots or the present state
// still share: the chain is one shorter, its data intact); the snapshot's
// children rest on its parent.
func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	spec, tree, snap, err := s.snapshotOf(r, "no snapshots")
	if err != nil {
		s.problem(w, err)
		return
	}
	release, err := s.claim(spec.ID, "a snapshot deletion")
	if err != nil {
		s.problem(w, err)
		return
	}
	// Read again under the claim: another task may have changed it.
	if tree, err = s.cfg.Snapshots.Load(spec.ID); err == nil {
		snap, err = tree.Find(snap.ID)
	}
	if err != nil {
		release()
		s.problem(w, err)
		return
	}
	t := s.startTask(w, r, "snapshot-delete", spec.Name+": "+snap.Name)
	go func() {
		defer release()
		ctx, cancel := context.WithTimeout(s.bg, snapshotTimeout)
		defer cancel()
		err := s.removeSnapshot(ctx, spec, &tree, snap)
		s.tasks.Finish(t, err)
		if err == nil {
			s.publish(api.EventSnapshot, spec, fmt.Sprintf("snapshot %q deleted", snap.Name))
		}
		s.cfg.Log.Info("vmkernel: snapshot deletion ended", "vm", spec.Name, "snapshot", snap.Name, "err", err)
	}()
}

func (s *Server) removeSnapshot(ctx context.Context, spec api.VMSpec, tree *snapshots.Tree, snap api.Snapshot) error {
	live := isLive(s.cfg.Runner.Status(spec.ID).State)
	imgs, err := s.snapImages(ctx, spec)
	if err != nil {
		return err
	}
	tree.MarkDeleting(snap.ID)
	if err := s.cfg.Snapshots.Save(spec.ID, *tree); err != nil {
		return err
	}
	if err := s.cleanTag(ctx, spec, imgs, snap.ID, live); err != nil {
		return err
	}
	// Images the VM had then and has no longer keep the tag too.
	if old, err := s.snapImages(ctx, snap.Spec); err == nil {
		for _, im := range old {
			if !slices.ContainsFunc(imgs, func(c snapImage) bool { return c.store.Name == im.store.Name && c.rel == im.rel }) {
				if err := im.store.Snapshot(ctx, im.rel, datastore.SnapshotDelete, snap.ID); err != nil {
					s.cfg.Log.Warn("vmkernel: a snapshot's tag stays in an image the VM no longer has", "vm", spec.Name, "image", im.store.Name+":"+im.rel, "err", err)
				}
			}
		}
	}
	tree.Remove(snap.ID)
	return s.cfg.Snapshots.Save(spec.ID, *tree)
}

// revertSnapshot serves POST /v1/vms/{id}/snapshots/{snap}/revert: the
// VM's disks, UEFI variables and definition become the snapshot's; to a
// memory snapshot the guest resumes where it was (in its state then),
// otherwise the VM is left stopped (started with "start": true).
func (s *Server) revertSnapshot(w http.ResponseWriter, r *http.Request) {
	spec, _, snap, err := s.snapshotOf(r, "no reverts")
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.RevertRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	release, err := s.claim(spec.ID, "a revert")
	if err != nil {
		s.problem(w, err)
		return
	}
	target := restoredSpec(spec, snap.Spec)
	state := s.cfg.Runner.Status(spec.ID).State
	if !isLive(state) && !stoppedState(state) {
		release()
		s.problem(w, &runner.StateError{ID: spec.ID, Op: "revert", State: state})
		return
	}
	// What the start would refuse is refused now, before anything changes.
	if err := s.validate(target, nil); err != nil {
		release()
		s.problem(w, err)
		return
	}
	t := s.startTask(w, r, "revert", spec.Name+": "+snap.Name)
	user := requestUser(r)
	go func() {
		defer release()
		ctx, cancel := context.WithTimeout(s.bg, snapshotTimeout)
		defer cancel()
		start := time.Now()
		err := s.revert(ctx, spec, target, snap, req, user, t)
		s.tasks.Finish(t, err)
		if err == nil {
			s.publish(api.EventSnapshot, target, fmt.Sprintf("reverted to snapshot %q in %v", snap.Name, time.Since(start).Round(time.Millisecond)))
		}
		s.cfg.Log.Info("vmkernel: revert ended", "vm", spec.Name, "snapshot", snap.Name, "took", time.Since(start), "err", err)
	}()
}

// restoredSpec is the definition a revert gives the VM: the snapshot's,
// with the VM's identity, name and policies as they are now.
func restoredSpec(now, then api.VMSpec) api.VMSpec {
	t := then.Clone()
	t.ID, t.Name, t.Autostart, t.Template = now.ID, now.Name, now.Autostart, false
	t.Backup = now.Clone().Backup
	return t
}

// sameMachine reports whether a QEMU started for a could load a memory
// snapshot taken of b (what their definitions give the guest is alike).
func sameMachine(a, b api.VMSpec) bool {
	norm := func(s api.VMSpec) string {
		s = s.Clone()
		s.Name, s.Autostart, s.Backup, s.OnCrash, s.Template = "", api.Autostart{}, nil, "", false
		s.Defaults()
		b, _ := json.Marshal(s)
		return string(b)
	}
	return norm(a) == norm(b)
}

func (s *Server) revert(ctx context.Context, spec, target api.VMSpec, snap api.Snapshot, req api.RevertRequest, user string, t *tasks.Task) error {
	live := isLive(s.cfg.Runner.Status(spec.ID).State)
	inPlace := live && snap.Memory && sameMachine(spec, target)
	if live && !inPlace {
		if err := s.cfg.Runner.Stop(ctx, spec.ID); err != nil {
			return err
		}
		live = false
	}
	if !sameMachine(spec, target) || spec.Name != target.Name {
		if err := s.restoreDefinition(target, user, fmt.Sprintf("reverted to snapshot %q", snap.Name)); err != nil {
			return err
		}
	}
	imgs, err := s.snapImages(ctx, target)
	if err != nil {
		return err
	}
	if snap.Memory {
		if !inPlace {
			s.specMu.RLock()
			err := s.cfg.Runner.StartPaused(ctx, target)
			s.specMu.RUnlock()
			if err != nil {
				return err
			}
		}
		if err := s.loadSnapshot(ctx, target, imgs, snap, t); err != nil {
			return err
		}
	} else {
		for _, im := range imgs {
			if err := dropBitmapsOffline(ctx, im); err != nil {
				return err
			}
			if err := im.store.Snapshot(ctx, im.rel, datastore.SnapshotApply, snap.ID); err != nil {
				return err
			}
		}
		if req.Start {
			s.specMu.RLock()
			err := s.cfg.Runner.Start(ctx, target)
			s.specMu.RUnlock()
			if err != nil {
				return err
			}
		}
	}
	tree, err := s.cfg.Snapshots.Load(spec.ID)
	if err != nil {
		return err
	}
	tree.Current = snap.ID
	return s.cfg.Snapshots.Save(spec.ID, tree)
}

// loadSnapshot loads the memory snapshot into the VM's running QEMU and
// leaves the guest in the state it was in when the snapshot was taken.
func (s *Server) loadSnapshot(ctx context.Context, spec api.VMSpec, imgs []snapImage, snap api.Snapshot, t *tasks.Task) error {
	mon, err := s.cfg.Runner.Monitor(spec.ID)
	if err != nil {
		return err
	}
	if err := settleJobs(ctx, mon); err != nil {
		return err
	}
	// QEMU refuses to load a snapshot into a disk with dirty bitmaps; the
	// backups' change tracking ends here (the next backup is full).
	if err := dropBitmapsOnline(ctx, mon, imgs); err != nil {
		return err
	}
	job := jobPrefix + "load-" + snap.ID
	args := map[string]any{"job-id": job, "tag": snap.ID, "vmstate": imgs[0].node, "devices": nodesOf(imgs)}
	err = mon.Run(ctx, "snapshot-load", args, nil)
	if err == nil {
		err = mon.WaitJob(ctx, job, jobProgress(s, t))
	}
	want := snap.State
	if err != nil {
		// A load refused before it began leaves the guest as it was,
		// stopped: let a running one run on.
		want = api.VMRunning
	}
	var qs struct {
		Running bool `json:"running"`
	}
	if qerr := mon.Run(ctx, "query-status", nil, &qs); qerr != nil {
		return errors.Join(err, qerr)
	}
	switch {
	case want == api.VMRunning && !qs.Running:
		if rerr := mon.Run(ctx, "cont", nil, nil); rerr != nil {
			return errors.Join(err, rerr)
		}
	case want == api.VMPaused && qs.Running:
		if perr := s.cfg.Runner.Pause(ctx, spec.ID); perr != nil {
			return errors.Join(err, perr)
		}
	}
	return err
}

// backupBitmapPrefix starts the names of the dirty bitmaps backups track
// changes with.
const backupBitmapPrefix = "plinth-"

// dropBitmapsOnline removes the backups' dirty bitmaps from the running
// VM's images.
func dropBitmapsOnline(ctx context.Context, mon *qmp.Monitor, imgs []snapImage) error {
	bitmaps, err := onlineBitmaps(ctx, mon)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		for _, b := range bitmaps[im.node] {
			if err := mon.Run(ctx, "block-dirty-bitmap-remove", map[string]string{"node": im.node, "name": b.Name}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// onlineBitmap is a dirty bitmap as QEMU reports it.
type onlineBitmap struct {
	Name         string `json:"name"`
	Count        int64  `json:"count"`
	Granularity  int64  `json:"granularity"`
	Recording    bool   `json:"recording"`
	Persistent   bool   `json:"persistent"`
	Inconsistent bool   `json:"inconsistent"`
}

// onlineBitmaps lists the backups' dirty bitmaps of each block node.
func onlineBitmaps(ctx context.Context, mon *qmp.Monitor) (map[string][]onlineBitmap, error) {
	var nodes []struct {
		NodeName string         `json:"node-name"`
		Bitmaps  []onlineBitmap `json:"dirty-bitmaps"`
	}
	if err := mon.Run(ctx, "query-named-block-nodes", map[string]bool{"flat": true}, &nodes); err != nil {
		return nil, err
	}
	out := map[string][]onlineBitmap{}
	for _, n := range nodes {
		for _, b := range n.Bitmaps {
			if strings.HasPrefix(b.Name, backupBitmapPrefix) {
				out[n.NodeName] = append(out[n.NodeName], b)
			}
		}
	}
	return out, nil
}

// dropBitmapsOffline removes the backups' dirty bitmaps from a stopped
// VM's image.
func dropBitmapsOffline(ctx context.Context, im snapImage) error {
	st, err := im.store.State(ctx, im.rel)
	if err != nil {
		return err
	}
	for name := range st.Bitmaps {
		if strings.HasPrefix(name, backupBitmapPrefix) {
			if err := im.store.Bitmap(ctx, im.rel, "--remove", name); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreDefinition makes spec the VM's definition again (a revert, a
// restore), kept in its history with who and why.
func (s *Server) restoreDefinition(spec api.VMSpec, user, reason string) error {
	s.specMu.Lock()
	defer s.specMu.Unlock()
	if err := s.cfg.Inventory.UpdateBy(spec, inventoryChange(user, reason)); err != nil {
		return err
	}
	s.publish(api.EventUpdated, spec, reason)
	return nil
}

// decodeOptional is decodeSmall for a body that may be empty.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the request", errBadRequest)
	}
	return nil
}
