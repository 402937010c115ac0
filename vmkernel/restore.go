package vmkernel

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/backups"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner"
)

// A restore reads a backup's chain (its full backup and the incremental
// ones on it, each disk an image chain Plinth made in the backup folder)
// and writes each disk flat, as a new VM or over the VM it was taken of.
// Every file of the chain is checked against the SHA-256 in its record
// before anything is written.

// restorePlan is a restore to be made.
type restorePlan struct {
	ds     datastore.Datastore // the backups'
	backup api.Backup
	chain  []api.Backup
	// replace is the VM restored over (nil: a new VM).
	replace *api.VMSpec
	// spec is the definition the VM gets; dests where each disk goes.
	spec  api.VMSpec
	dests []api.DatastoreFile
}

// restoreBackup serves POST /v1/backups/restore.
func (s *Server) restoreBackup(w http.ResponseWriter, r *http.Request) {
	var req api.RestoreRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.problem(w, err)
		return
	}
	ds, folder, err := s.backupTarget(api.VMSpec{}, req.Datastore, req.Folder)
	if err != nil {
		s.problem(w, err)
		return
	}
	list, err := backups.List(ds, folder, "")
	if err != nil {
		s.problem(w, err)
		return
	}
	b, err := backups.Find(list, req.Backup)
	if err != nil {
		s.problem(w, err)
		return
	}
	chain, err := backups.Chain(list, b.ID)
	if err != nil {
		s.problem(w, brokenBackup(err))
		return
	}
	p := &restorePlan{ds: ds, backup: b, chain: chain}
	claimID := b.VMID
	if req.Replace {
		vm, err := s.cfg.Inventory.Get(b.VMID)
		if err != nil {
			s.problem(w, fmt.Errorf("the VM of backup %s is gone (restore it as a new VM): %w", b.ID, err))
			return
		}
		p.replace = &vm
	} else {
		claimID = api.NewUUID() // the new VM's
	}
	release, err := s.claim(claimID, "a restore")
	if err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.bg, backupTimeout)
	unreserve, err := s.planRestore(ctx, p, req, claimID)
	if err != nil {
		cancel()
		release()
		s.problem(w, err)
		return
	}
	t := s.startTask(w, r, "restore", fmt.Sprintf("%s:%s -> %s", ds.Name, b.Path, p.spec.Name))
	user := requestUser(r)
	go func() {
		defer release()
		defer unreserve()
		defer cancel()
		t0 := time.Now()
		err := s.restore(ctx, p, user, req.Start, t)
		s.tasks.Finish(t, err)
		s.cfg.Log.Info("vmkernel: restore ended", "backup", b.ID, "vm", p.spec.Name, "took", time.Since(t0), "err", err)
	}()
}

// planRestore checks what can be checked cheaply (the VM's state, names,
// the chain's images, the definition, the space) and decides where each
// disk goes; the checksums are the task's first step.
func (s *Server) planRestore(ctx context.Context, p *restorePlan, req api.RestoreRequest, id string) (func(), error) {
	b := p.backup
	spec := b.Spec.Clone()
	if p.replace != nil {
		if st := s.cfg.Runner.Status(p.replace.ID).State; !stoppedState(st) {
			return nil, &runner.StateError{ID: p.replace.ID, Op: "be restored over", State: st}
		}
		if p.replace.Template {
			return nil, fmt.Errorf("VM %q: %w (a template never changes)", p.replace.Name, errTemplate)
		}
		spec = restoredSpec(*p.replace, spec)
	} else {
		spec.ID, spec.Name, spec.Template = id, req.Name, false
		if spec.Name == "" {
			spec.Name = b.VMName
		}
		if err := s.checkNames("name", []string{spec.Name}); err != nil {
			return nil, err
		}
		for i := range spec.NICs {
			spec.NICs[i].MAC = ""
		}
	}
	if len(b.Disks) != len(spec.Disks) {
		return nil, brokenBackup(fmt.Errorf("backup %s: %d disk files for %d disks: %w", b.ID, len(b.Disks), len(spec.Disks), backups.ErrBroken))
	}
	target := req.TargetDatastore
	if target == "" {
		target = req.Datastore
	}
	need := map[string]int64{}
	for i, f := range b.Disks {
		// The chain must open as Plinth's own (each link recorded when it
		// was made); a file swapped for another is refused here.
		im, err := p.ds.OpenImage(f.File, false)
		if err != nil {
			return nil, brokenBackup(err)
		}
		var size int64 // at most what the chain holds
		for _, link := range im.Chain() {
			size += link.Size
		}
		im.Close()
		dest := api.DatastoreFile{Datastore: spec.Disks[i].Datastore, Path: spec.Disks[i].Path}
		if p.replace == nil {
			dest = api.DatastoreFile{Datastore: target, Path: path.Join(spec.Name, fmt.Sprintf("disk%d.qcow2", i))}
			spec.Disks[i].Datastore, spec.Disks[i].Path = dest.Datastore, dest.Path
		}
		need[dest.Datastore] += size
		spec.Disks[i].Format = api.FormatQcow2
		p.dests = append(p.dests, dest)
	}
	if err := s.checkDests(p); err != nil {
		return nil, err
	}
	spec.Defaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkDatastores(spec); err != nil {
		return nil, err
	}
	p.spec = spec
	return s.reserveAll(need, backupMargin)
}

// checkDests refuses destinations a restore must not write: a new VM's
// that exist, and over a VM, files another VM uses or clones rest on.
func (s *Server) checkDests(p *restorePlan) error {
	for i, d := range p.dests {
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			return &api.ValidationError{Subject: "restore", Problems: []api.FieldProblem{{Field: fmt.Sprintf("disks[%d].datastore", i), Message: fmt.Sprintf("datastore %q is not known on this host", d.Datastore)}}}
		}
		ds := datastore.Datastore{Name: d.Datastore, Root: root}
		full, err := ds.Resolve(d.Path)
		if err != nil {
			return err
		}
		if p.replace == nil {
			if _, err := os.Lstat(full); err == nil {
				return fmt.Errorf("datastore %s: %q: %w", ds.Name, d.Path, datastore.ErrExists)
			}
			continue
		}
		for _, vm := range s.cfg.Inventory.List() {
			if vm.ID == p.replace.ID {
				continue
			}
			for _, f := range vm.Files() {
				if f == d {
					return fmt.Errorf("%s:%s is used by VM %q: %w", d.Datastore, d.Path, vm.Name, datastore.ErrInUse)
				}
			}
		}
		if deps, err := ds.Dependents(d.Path); err == nil && len(deps) > 0 {
			return fmt.Errorf("%s:%s is the base of %s: %w", d.Datastore, d.Path, s.namesOf(ds.Name, deps), datastore.ErrInUse)
		}
	}
	return nil
}

// restore checks the chain's checksums, then writes the disks and the
// definition.
func (s *Server) restore(ctx context.Context, p *restorePlan, user string, start bool, t *tasks.Task) (err error) {
	var total int64
	for _, b := range p.chain {
		for _, f := range b.Files() {
			total += f.SizeBytes
		}
	}
	s.tasks.SetTotal(t, 2*total)
	for _, b := range p.chain {
		for _, f := range b.Files() {
			sum, n, err := p.ds.Checksum(f.File)
			if err != nil {
				return err
			}
			if sum != f.SHA256 || n != f.SizeBytes {
				return fmt.Errorf("backup %s: %s:%s is not the file its record describes (SHA-256 %s, %d bytes; recorded %s, %d bytes): %w",
					b.ID, p.ds.Name, f.File, sum, n, f.SHA256, f.SizeBytes, backups.ErrBroken)
			}
			t.Add(n)
		}
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	stamp := fmt.Sprintf(".plinth-restore-%d-", time.Now().UnixNano())
	var temps []string
	for i, f := range p.backup.Disks {
		d := p.dests[i]
		ds := datastore.Datastore{Name: d.Datastore, Root: s.cfg.Datastores[d.Datastore]}
		dst := d.Path
		if p.replace != nil {
			dst = path.Join(path.Dir(d.Path), stamp+path.Base(d.Path))
		}
		im, err := p.ds.OpenImage(f.File, false)
		if err != nil {
			return err
		}
		err = ds.CopyImage(ctx, im, dst, datastore.ConvertOptions{Format: api.FormatQcow2})
		im.Close()
		if err != nil {
			return fmt.Errorf("disks[%d]: %w", i, err)
		}
		undo = append(undo, func() { ds.DeleteFile(dst, nil) })
		temps = append(temps, dst)
		t.Add(f.SizeBytes)
	}
	if v := p.backup.Vars; v != nil && p.spec.UEFI() {
		st := s.cfg.Runner.StateStore(p.spec.ID)
		if err := os.MkdirAll(st.Root, 0o700); err != nil {
			return err
		}
		vars := s.cfg.Runner.VarsPath(p.spec)
		dst := stamp + vars
		im, err := p.ds.OpenImage(v.File, false)
		if err != nil {
			return err
		}
		err = st.CopyImage(ctx, im, dst, datastore.ConvertOptions{Format: api.FormatQcow2})
		im.Close()
		if err != nil {
			return fmt.Errorf("UEFI variables: %w", err)
		}
		undo = append(undo, func() { st.DeleteFile(dst, nil) })
		if err := st.Rename(dst, vars); err != nil {
			return err
		}
	}
	reason := fmt.Sprintf("restored from backup %s (%s, taken %s)", p.backup.ID, p.backup.Kind, p.backup.CreatedAt.Format(time.RFC3339))
	if p.replace == nil {
		spec := p.spec
		if err := s.cfg.Inventory.CreateBy(&spec, inventoryChange(user, reason)); err != nil {
			return err
		}
		s.tasks.AddResult(t, spec.ID)
		s.publish(api.EventCreated, spec, reason)
		p.spec = spec
	} else {
		// Over the VM: its disks replaced in one step each, its
		// definition restored; its snapshots were in the old files.
		for i, d := range p.dests {
			ds := datastore.Datastore{Name: d.Datastore, Root: s.cfg.Datastores[d.Datastore]}
			if err := ds.Rename(temps[i], d.Path); err != nil {
				return err
			}
		}
		undo = nil
		if s.cfg.Snapshots != nil {
			s.cfg.Snapshots.Delete(p.spec.ID)
		}
		if err := s.restoreDefinition(p.spec, user, reason); err != nil {
			return err
		}
		s.tasks.AddResult(t, p.spec.ID)
	}
	s.publish(api.EventBackup, p.spec, reason)
	if start {
		s.specMu.RLock()
		err := s.cfg.Runner.Start(ctx, p.spec)
		s.specMu.RUnlock()
		if err != nil {
			return fmt.Errorf("restored, but the start failed: %w", err)
		}
	}
	return nil
}
