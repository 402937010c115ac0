package vmkernel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/backups"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/qmp"
	"github.com/plinth/plinth/vmkernel/runner"
)

// Backups of a VM go to a datastore folder (package backups says where
// and keeps their records). A running VM is backed up by its QEMU: each
// disk's target, a qcow2 image vmkernel makes in the backup folder (for an
// incremental backup an overlay on the parent's, made with CreateOverlay so
// the chain is Plinth's own), is handed over as a descriptor (add-fd) and
// added as a node, and one transaction starts a blockdev-backup job per
// disk and a new persistent dirty bitmap per disk, "plinth-" + the backup's
// ID: from that moment it tracks what the next incremental backup copies
// (sync "bitmap", bitmap-mode "never": the parent's bitmap is dropped only
// once this backup's record is written, so a backup that never finishes
// costs the next one nothing). A stopped VM's disks are copied whole by
// qemu-img, and given a fresh bitmap. Each file's SHA-256 goes into the
// record, which is written last; a restore checks the whole chain against
// it before it writes anything.

// Bounds of backups; variables so tests could change them.
var (
	backupMargin  int64 = 64 << 20
	backupTimeout       = 12 * time.Hour
)

// backupNodePrefix names the nodes of backup targets in a VM's QEMU.
const backupNodePrefix = "plinth-bk-"

// backupDisk is one disk of a backup to be made.
type backupDisk struct {
	index    int
	ds       datastore.Datastore // the VM's disk's
	rel      string
	node     string
	readOnly bool
	qcow2    bool
	virtual  int64
	// file is the disk's file in the backup; parentFile the parent's
	// (an incremental backup's file is an overlay on it).
	file, parentFile string
}

// backupPlan is a backup to be made.
type backupPlan struct {
	id     string
	target datastore.Datastore
	folder string
	kind   string
	parent *api.Backup
	reason string
	disks  []backupDisk
	need   int64
}

// backupTarget is the datastore and folder of a request (or the VM's policy).
func (s *Server) backupTarget(spec api.VMSpec, dsName, folder string) (datastore.Datastore, string, error) {
	if dsName == "" && spec.Backup != nil {
		dsName, folder = spec.Backup.Datastore, spec.Backup.Folder
	}
	if folder == "" {
		folder = api.DefaultBackupFolder
	}
	var probs []api.FieldProblem
	root, ok := s.cfg.Datastores[dsName]
	switch {
	case dsName == "":
		probs = append(probs, api.FieldProblem{Field: "datastore", Message: "required (the VM has no backup policy naming one)"})
	case !ok:
		probs = append(probs, api.FieldProblem{Field: "datastore", Message: fmt.Sprintf("datastore %q is not known on this host", dsName)})
	}
	if msg := api.CheckRelPath(folder); msg != "" {
		probs = append(probs, api.FieldProblem{Field: "folder", Message: msg})
	}
	if probs != nil {
		return datastore.Datastore{}, "", &api.ValidationError{Subject: "backup request", Problems: probs}
	}
	return datastore.Datastore{Name: dsName, Root: root}, folder, nil
}

// listVMBackups serves GET /v1/vms/{id}/backups (?datastore=&folder=,
// else the VM's policy's).
func (s *Server) listVMBackups(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	ds, folder, err := s.backupTarget(spec, r.URL.Query().Get("datastore"), r.URL.Query().Get("folder"))
	if err != nil {
		s.problem(w, err)
		return
	}
	list, err := backups.List(ds, folder, spec.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, append([]api.Backup{}, list...))
}

// listBackups serves GET /v1/backups?datastore=NAME&folder=DIR: every
// backup kept there, of VMs defined or gone.
func (s *Server) listBackups(w http.ResponseWriter, r *http.Request) {
	ds, folder, err := s.backupTarget(api.VMSpec{}, r.URL.Query().Get("datastore"), r.URL.Query().Get("folder"))
	if err != nil {
		s.problem(w, err)
		return
	}
	list, err := backups.List(ds, folder, "")
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, append([]api.Backup{}, list...))
}

// backupVM serves POST /v1/vms/{id}/backups: everything is checked (the
// VM's state and disks, the target, the free space for what will be
// copied) before anything is written; the backup is then a task.
func (s *Server) backupVM(w http.ResponseWriter, r *http.Request) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.BackupRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	ds, folder, err := s.backupTarget(spec, req.Datastore, req.Folder)
	if err != nil {
		s.problem(w, err)
		return
	}
	_, t, err := s.startBackup(spec, ds, folder, req.Full, requestUser(r))
	if err != nil {
		s.problem(w, err)
		return
	}
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}

// startBackup plans the backup and starts it as a task (also the
// scheduler's way in); done is closed when it has ended.
func (s *Server) startBackup(spec api.VMSpec, ds datastore.Datastore, folder string, full bool, user string) (done chan struct{}, t *tasks.Task, err error) {
	release, err := s.claim(spec.ID, "a backup")
	if err != nil {
		return nil, nil, err
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
		return nil, nil, &runner.StateError{ID: spec.ID, Op: "back up", State: state}
	}
	ctx, cancel := context.WithTimeout(s.bg, backupTimeout)
	p, err := s.planBackup(ctx, spec, ds, folder, full, live)
	var unreserve func()
	if err == nil {
		unreserve, err = s.reserveAll(map[string]int64{ds.Name: p.need}, backupMargin)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	started = true
	t = s.tasks.Start("backup", fmt.Sprintf("%s -> %s:%s (%s)", spec.Name, ds.Name, folder, p.kind), user, p.need)
	done = make(chan struct{})
	s.cfg.Log.Info("vmkernel: backing up", "vm", spec.Name, "kind", p.kind, "reason", p.reason, "to", ds.Name+":"+folder, "task", t.ID())
	go func() {
		defer close(done)
		defer release()
		defer unreserve()
		defer cancel()
		t0 := time.Now()
		b, err := s.runBackup(ctx, spec, p, live, t)
		if err == nil {
			s.tasks.AddResult(t, b.ID)
			s.retain(spec, ds, folder)
			detail := fmt.Sprintf("%s backup %s to %s:%s, %d bytes copied in %v", b.Kind, b.ID, ds.Name, b.Path, b.CopiedBytes, time.Since(t0).Round(time.Millisecond))
			if b.Reason != "" {
				detail += " (full: " + b.Reason + ")"
			}
			s.publish(api.EventBackup, spec, detail)
		}
		s.tasks.Finish(t, err)
		s.cfg.Log.Info("vmkernel: backup ended", "vm", spec.Name, "took", time.Since(t0), "err", err)
	}()
	return done, t, nil
}

// planBackup decides the backup's kind (full, or incremental on the last
// one, and if full where it could have been incremental, why), its files
// and the space it needs; the remains of backups that never finished go.
func (s *Server) planBackup(ctx context.Context, spec api.VMSpec, ds datastore.Datastore, folder string, full, live bool) (*backupPlan, error) {
	p := &backupPlan{id: backups.NewID(time.Now()), target: ds, folder: folder, kind: api.BackupIncremental}
	dir := backups.Dir(folder, spec.ID, p.id)
	list, err := backups.List(ds, folder, spec.ID)
	if err != nil {
		return nil, err
	}
	s.dropUnfinished(ds, folder, spec.ID, list)
	if len(list) > 0 {
		last := list[len(list)-1]
		p.parent = &last
	}
	setFull := func(reason string) {
		if p.kind != api.BackupFull {
			p.kind, p.reason = api.BackupFull, reason
		}
	}
	switch {
	case full:
		setFull("")
	case p.parent == nil:
		setFull(fmt.Sprintf("no earlier backup of the VM in %s:%s", ds.Name, folder))
	case !live:
		setFull("the VM is stopped: a stopped VM's disks are copied whole")
	}
	if p.kind == api.BackupIncremental {
		if chain, err := backups.Chain(list, p.parent.ID); err != nil || len(chain) >= backups.MaxChain {
			setFull(fmt.Sprintf("the chain of backup %s is at its longest (%d) or broken", p.parent.ID, backups.MaxChain))
		} else if !sameDisks(p.parent.Spec.Disks, spec.Disks) {
			setFull(fmt.Sprintf("the VM's disks changed since backup %s", p.parent.ID))
		}
	}
	var bitmaps map[string][]onlineBitmap
	if live && p.kind == api.BackupIncremental {
		mon, err := s.cfg.Runner.Monitor(spec.ID)
		if err != nil {
			return nil, err
		}
		if bitmaps, err = onlineBitmaps(ctx, mon); err != nil {
			return nil, err
		}
	}
	for i, d := range spec.Disks {
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			return nil, &api.ValidationError{Subject: "backup", Problems: []api.FieldProblem{{Field: fmt.Sprintf("disks[%d].datastore", i), Message: fmt.Sprintf("datastore %q is not known on this host", d.Datastore)}}}
		}
		dds := datastore.Datastore{Name: d.Datastore, Root: root}
		info, err := dds.DiskInfo(ctx, d.Path)
		if err != nil {
			return nil, imageFieldProblem(fmt.Sprintf("disks[%d].path", i), err)
		}
		bd := backupDisk{index: i, ds: dds, rel: d.Path, node: runner.DiskNode(i), readOnly: d.ReadOnly,
			qcow2: info.Format == api.FormatQcow2, virtual: info.VirtualSizeBytes, file: path.Join(dir, fmt.Sprintf("disk%d.qcow2", i))}
		p.disks = append(p.disks, bd)
		if p.kind == api.BackupFull || d.ReadOnly {
			continue
		}
		if !bd.qcow2 {
			setFull(fmt.Sprintf("disks[%d] is %s: only qcow2 disks track their changes", i, info.Format))
			continue
		}
		var mine *onlineBitmap
		for _, b := range bitmaps[bd.node] {
			if b.Name == backupBitmapPrefix+p.parent.ID {
				mine = &b
			}
		}
		switch {
		case mine == nil && crashedSince(s.cfg.Runner.Status(spec.ID).LastExit, p.parent.CreatedAt):
			// A bitmap added while QEMU ran is written to the image only
			// when QEMU closes it: a QEMU killed took it along.
			setFull(fmt.Sprintf("the change tracking of disks[%d] was lost: QEMU stopped without a clean shutdown since backup %s", i, p.parent.ID))
		case mine == nil:
			setFull(fmt.Sprintf("disks[%d] tracks no change since backup %s (a revert, a restore, or a change while the VM was stopped)", i, p.parent.ID))
		case mine.Inconsistent:
			setFull(fmt.Sprintf("the change tracking of disks[%d] was lost: QEMU stopped without a clean shutdown since backup %s", i, p.parent.ID))
		default:
			p.need += mine.Count
		}
	}
	if p.kind == api.BackupFull {
		p.parent = nil
		p.need = 0
		for _, bd := range p.disks {
			info, _ := bd.ds.DiskInfo(ctx, bd.rel)
			p.need += max(info.ActualSizeBytes, 1<<20)
		}
	} else {
		for i := range p.disks {
			p.disks[i].parentFile = p.parent.Disks[i].File
		}
	}
	if spec.UEFI() {
		p.need += 1 << 20
	}
	return p, nil
}

// crashedSince reports whether the VM's last QEMU ended without being
// asked to (killed, crashed) after t.
func crashedSince(e *api.VMExit, t time.Time) bool {
	return e != nil && e.Reason == api.ExitCrash && e.Time.After(t)
}

// sameDisks reports whether two disk lists name the same files.
func sameDisks(a, b []api.Disk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Datastore != b[i].Datastore || a[i].Path != b[i].Path {
			return false
		}
	}
	return true
}

// dropUnfinished removes the VM's backup folders that have no record
// (the remains of backups a killed vmkernel left; the VM's claim is held,
// so none is under way).
func (s *Server) dropUnfinished(ds datastore.Datastore, folder, vmID string, list []api.Backup) {
	entries, err := ds.Browse(backups.VMDir(folder, vmID))
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Kind != api.EntryDir {
			continue
		}
		if _, err := backups.Find(list, e.Name); err == nil {
			continue
		}
		s.cfg.Log.Warn("vmkernel: removing an unfinished backup", "datastore", ds.Name, "path", e.Path)
		backups.Forget(ds, api.Backup{Path: e.Path})
	}
}

// runBackup makes the planned backup and writes its record.
func (s *Server) runBackup(ctx context.Context, spec api.VMSpec, p *backupPlan, live bool, t *tasks.Task) (b api.Backup, err error) {
	b = api.Backup{ID: p.id, VMID: spec.ID, VMName: spec.Name, Kind: p.kind, Reason: p.reason, CreatedAt: time.Now().UTC(),
		Datastore: p.target.Name, Path: backups.Dir(p.folder, spec.ID, p.id), Spec: spec}
	if p.parent != nil {
		b.Parent = p.parent.ID
	}
	defer func() {
		if err != nil {
			backups.Forget(p.target, b)
		}
	}()
	// The files first: each disk's target.
	for _, d := range p.disks {
		if p.kind == api.BackupFull {
			if live {
				err = p.target.CreateDisk(ctx, d.file, api.FormatQcow2, d.virtual)
			} else {
				err = s.copyOffline(ctx, d, p)
			}
		} else {
			err = p.target.CreateOverlay(ctx, d.file, d.parentFile)
		}
		if err != nil {
			return b, fmt.Errorf("disks[%d]: %w", d.index, err)
		}
	}
	if live {
		if b.CopiedBytes, err = s.copyOnline(ctx, spec, p, t); err != nil {
			return b, err
		}
	} else {
		for _, d := range p.disks {
			if st, err := p.target.State(ctx, d.file); err == nil {
				b.CopiedBytes += st.ActualSize
			}
		}
		if err := s.trackFrom(ctx, p); err != nil {
			return b, err
		}
	}
	if spec.UEFI() {
		im, err := s.cfg.Runner.OpenVars(spec, false)
		if err != nil {
			return b, err
		}
		err = p.target.CopyImage(ctx, im, path.Join(b.Path, "vars.qcow2"), datastore.ConvertOptions{Format: api.FormatQcow2})
		im.Close()
		if err != nil {
			return b, fmt.Errorf("UEFI variables: %w", err)
		}
		b.Vars = &api.BackupFile{Disk: -1, File: path.Join(b.Path, "vars.qcow2")}
	}
	for _, d := range p.disks {
		b.Disks = append(b.Disks, api.BackupFile{Disk: d.index, File: d.file, VirtualSizeBytes: d.virtual})
	}
	for i := range b.Disks {
		if err := sumFile(p.target, &b.Disks[i]); err != nil {
			return b, err
		}
		b.SizeBytes += b.Disks[i].SizeBytes
	}
	if b.Vars != nil {
		if err := sumFile(p.target, b.Vars); err != nil {
			return b, err
		}
		b.SizeBytes += b.Vars.SizeBytes
	}
	// The record: from here on it is a backup.
	if err := backups.Save(p.target, b); err != nil {
		return b, err
	}
	if live {
		s.dropOldBitmaps(ctx, spec, p)
	}
	return b, nil
}

func sumFile(ds datastore.Datastore, f *api.BackupFile) error {
	sum, n, err := ds.Checksum(f.File)
	if err != nil {
		return err
	}
	f.SHA256, f.SizeBytes = sum, n
	return nil
}

// copyOffline copies a stopped VM's disk whole into the backup.
func (s *Server) copyOffline(ctx context.Context, d backupDisk, p *backupPlan) error {
	im, err := d.ds.OpenImage(d.rel, false)
	if err != nil {
		return err
	}
	defer im.Close()
	return p.target.CopyImage(ctx, im, d.file, datastore.ConvertOptions{Format: api.FormatQcow2})
}

// trackFrom gives a stopped VM's qcow2 disks a fresh bitmap (and drops the
// old), so that the backup after its next start can be incremental on this
// one.
func (s *Server) trackFrom(ctx context.Context, p *backupPlan) error {
	for _, d := range p.disks {
		if d.readOnly || !d.qcow2 {
			continue
		}
		im := snapImage{store: d.ds, rel: d.rel}
		if err := dropBitmapsOffline(ctx, im); err != nil {
			return err
		}
		if err := d.ds.Bitmap(ctx, d.rel, "--add", backupBitmapPrefix+p.id); err != nil {
			return err
		}
	}
	return nil
}

// copyOnline runs the backup jobs in the VM's QEMU and returns the bytes
// they copied.
func (s *Server) copyOnline(ctx context.Context, spec api.VMSpec, p *backupPlan, t *tasks.Task) (copied int64, err error) {
	mon, err := s.cfg.Runner.Monitor(spec.ID)
	if err != nil {
		return 0, err
	}
	if err := settleJobs(ctx, mon); err != nil {
		return 0, err
	}
	cleanBackupNodes(ctx, mon)
	newBitmap := backupBitmapPrefix + p.id
	var fdsets []int
	var nodes []string
	var jobs []string
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err != nil {
			for _, j := range jobs {
				mon.Run(cctx, "block-job-cancel", map[string]any{"device": j, "force": true}, nil)
				mon.WaitJob(cctx, j, nil)
			}
			for _, d := range p.disks {
				if !d.readOnly && d.qcow2 {
					mon.Run(cctx, "block-dirty-bitmap-remove", map[string]string{"node": d.node, "name": newBitmap}, nil)
				}
			}
		}
		for _, n := range nodes {
			mon.Run(cctx, "blockdev-del", map[string]string{"node-name": n}, nil)
		}
		for _, f := range fdsets {
			mon.Run(cctx, "remove-fd", map[string]int{"fdset-id": f}, nil)
		}
	}()
	var actions []map[string]any
	for _, d := range p.disks {
		if !d.readOnly && d.qcow2 {
			actions = append(actions, map[string]any{"type": "block-dirty-bitmap-add",
				"data": map[string]any{"node": d.node, "name": newBitmap, "persistent": true}})
		}
		if p.kind == api.BackupIncremental && d.readOnly {
			continue // unchanged: its overlay on the parent's is the copy
		}
		im, err := p.target.OpenImage(d.file, true)
		if err != nil {
			return 0, err
		}
		var set struct {
			ID int `json:"fdset-id"`
		}
		err = mon.RunWithFile(ctx, "add-fd", map[string]any{"opaque": "backup " + p.id + " " + d.file}, &set, im.File)
		im.Close() // QEMU has its own
		if err != nil {
			return 0, err
		}
		fdsets = append(fdsets, set.ID)
		node := fmt.Sprintf("%s%d", backupNodePrefix, d.index)
		bd, err := qemu.Node{Format: api.FormatQcow2, Filename: qemu.FDSetName(set.ID)}.Blockdev(qemu.NodeOptions{Name: node})
		if err != nil {
			return 0, err
		}
		if err := mon.Run(ctx, "blockdev-add", bd, nil); err != nil {
			return 0, fmt.Errorf("disks[%d]: the backup target: %w", d.index, err)
		}
		nodes = append(nodes, node)
		job := jobPrefix + "bk-" + p.id + "-" + fmt.Sprint(d.index)
		data := map[string]any{"job-id": job, "device": d.node, "target": node, "sync": "full", "auto-dismiss": false}
		if p.kind == api.BackupIncremental {
			data["sync"], data["bitmap"], data["bitmap-mode"] = "bitmap", backupBitmapPrefix+p.parent.ID, "never"
		}
		actions = append(actions, map[string]any{"type": "blockdev-backup", "data": data})
		jobs = append(jobs, job)
	}
	// The backup's moment: one transaction starts every copy and every
	// new bitmap, the guest's file systems frozen around it.
	thaw := s.freeze(ctx, spec)
	err = mon.Run(ctx, "transaction", map[string]any{"actions": actions}, nil)
	thaw()
	if err != nil {
		jobs = nil
		return 0, err
	}
	var mu sync.Mutex
	done, total := map[string]int64{}, map[string]int64{}
	for _, j := range jobs {
		err := mon.WaitJob(ctx, j, func(d, tt int64) {
			mu.Lock()
			defer mu.Unlock()
			done[j], total[j] = d, tt
			var sd, st int64
			for k := range done {
				sd, st = sd+done[k], st+total[k]
			}
			s.tasks.SetTotal(t, st)
			t.SetDone(sd)
		})
		if err != nil {
			return 0, err
		}
	}
	jobs = nil
	for _, n := range done {
		copied += n
	}
	return copied, nil
}

// cleanBackupNodes removes the backup targets a killed vmkernel left in
// the VM's QEMU.
func cleanBackupNodes(ctx context.Context, mon *qmp.Monitor) {
	var nodes []struct {
		NodeName string `json:"node-name"`
	}
	if mon.Run(ctx, "query-named-block-nodes", map[string]bool{"flat": true}, &nodes) == nil {
		for _, n := range nodes {
			if strings.HasPrefix(n.NodeName, backupNodePrefix) && !strings.HasSuffix(n.NodeName, "-file") {
				mon.Run(ctx, "blockdev-del", map[string]string{"node-name": n.NodeName}, nil)
			}
		}
	}
	var sets []struct {
		ID  int `json:"fdset-id"`
		FDs []struct {
			Opaque string `json:"opaque"`
		} `json:"fds"`
	}
	if mon.Run(ctx, "query-fdsets", nil, &sets) == nil {
		for _, s := range sets {
			for _, fd := range s.FDs {
				if strings.HasPrefix(fd.Opaque, "backup ") {
					mon.Run(ctx, "remove-fd", map[string]int{"fdset-id": s.ID}, nil)
					break
				}
			}
		}
	}
}

// dropOldBitmaps drops the VM's backup bitmaps but this backup's: the
// next incremental one builds on it.
func (s *Server) dropOldBitmaps(ctx context.Context, spec api.VMSpec, p *backupPlan) {
	mon, err := s.cfg.Runner.Monitor(spec.ID)
	if err != nil {
		return
	}
	bitmaps, err := onlineBitmaps(ctx, mon)
	if err != nil {
		return
	}
	for _, d := range p.disks {
		for _, b := range bitmaps[d.node] {
			if b.Name != backupBitmapPrefix+p.id {
				mon.Run(ctx, "block-dirty-bitmap-remove", map[string]string{"node": d.node, "name": b.Name}, nil)
			}
		}
	}
}

// retain lets the backups the VM's policy no longer keeps go.
func (s *Server) retain(spec api.VMSpec, ds datastore.Datastore, folder string) {
	pol := spec.Backup
	if pol == nil || pol.Keep <= 0 || pol.Datastore != ds.Name || (pol.Folder != "" && pol.Folder != folder) || (pol.Folder == "" && folder != api.DefaultBackupFolder) {
		return
	}
	list, err := backups.List(ds, folder, spec.ID)
	if err != nil {
		return
	}
	for _, b := range backups.Expired(list, pol.Keep) {
		if err := backups.Forget(ds, b); err != nil {
			s.cfg.Log.Warn("vmkernel: an expired backup stays", "vm", spec.Name, "backup", b.ID, "err", err)
			continue
		}
		s.cfg.Log.Info("vmkernel: expired backup removed", "vm", spec.Name, "backup", b.ID, "keep", pol.Keep)
	}
}

// brokenBackup makes the error of a backup whose files are not what its
// record says, or that names an image Plinth did not make, a 422.
func brokenBackup(err error) error {
	if errors.Is(err, backups.ErrBroken) || errors.Is(err, datastore.ErrRefused) {
		return &api.ValidationError{Subject: "backup", Problems: []api.FieldProblem{{Field: "backup", Message: err.Error()}}}
	}
	return err
}

// scheduleRetry is how long a VM whose scheduled backup failed waits
// before the scheduler tries again.
const scheduleRetry = 15 * time.Minute

// scheduleBackups takes the backups VMs' policies schedule: every tick,
// each VM whose backup is due (by its newest backup in its policy's
// folder) gets one, one VM at a time; a VM busy with other work, or a
// datastore short of room, waits for a later tick; a backup that failed
// is tried again after scheduleRetry.
func (s *Server) scheduleBackups(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := map[string]time.Time{}   // VM ID: its newest backup's time
	failed := map[string]time.Time{} // VM ID: when its last scheduled backup failed
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		for _, spec := range s.cfg.Inventory.List() {
			if spec.Backup == nil || spec.Backup.Schedule == "" {
				continue
			}
			ds, folder, err := s.backupTarget(spec, "", "")
			if err != nil {
				continue
			}
			if _, ok := last[spec.ID]; !ok {
				if list, err := backups.List(ds, folder, spec.ID); err == nil && len(list) > 0 {
					last[spec.ID] = list[len(list)-1].CreatedAt
				}
			}
			if !backups.Due(spec.Backup.Schedule, last[spec.ID], time.Now()) || time.Since(failed[spec.ID]) < scheduleRetry {
				continue
			}
			done, task, err := s.startBackup(spec, ds, folder, false, "scheduler")
			if err != nil {
				s.cfg.Log.Warn("vmkernel: a scheduled backup waits", "vm", spec.Name, "err", err)
				continue
			}
			select {
			case <-done:
			case <-s.bg.Done():
				return
			}
			if got, ok := s.tasks.Get(task.ID()); ok && got.State == api.TaskSucceeded {
				last[spec.ID] = time.Now()
				delete(failed, spec.ID)
			} else {
				failed[spec.ID] = time.Now() // not again at every tick
			}
		}
	}
}
