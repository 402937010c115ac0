package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
)

// diskOpTimeout bounds one qemu-img run; a request that goes away does not
// abort it half-way.
const diskOpTimeout = 5 * time.Minute

// datastore returns the datastore named in the request's path.
func (s *Server) datastore(r *http.Request) (datastore.Datastore, error) {
	name := r.PathValue("name")
	root, ok := s.cfg.Datastores[name]
	if !ok {
		return datastore.Datastore{}, fmt.Errorf("datastore %q: %w", name, datastore.ErrNotFound)
	}
	return datastore.Datastore{Name: name, Root: root}, nil
}

func (s *Server) listDatastores(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(s.cfg.Datastores))
	for name := range s.cfg.Datastores {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]api.Datastore, 0, len(names))
	for _, name := range names {
		info, err := datastore.Datastore{Name: name, Root: s.cfg.Datastores[name]}.Info()
		if err != nil {
			s.problem(w, err)
			return
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) browseDatastore(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	entries, err := ds.Browse(r.URL.Query().Get("path"))
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (s *Server) diskInfo(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), diskOpTimeout)
	defer cancel()
	info, err := ds.DiskInfo(ctx, r.URL.Query().Get("path"))
	if err != nil {
		s.problem(w, refusedProblem("path", err))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) createDisk(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.CreateDiskRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), diskOpTimeout)
	defer cancel()
	if err := ds.CreateDisk(ctx, req.Path, req.Format, req.SizeBytes); err != nil {
		s.problem(w, err)
		return
	}
	info, err := ds.DiskInfo(ctx, req.Path)
	if err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: disk created", "datastore", ds.Name, "path", req.Path, "format", info.Format, "size", info.VirtualSizeBytes)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) resizeDisk(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.ResizeDiskRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if _, err := ds.Resolve(req.Path); err != nil {
		s.problem(w, err)
		return
	}
	if err := s.fileUsers(ds, true)(req.Path); err != nil {
		s.problem(w, fmt.Errorf("datastore %s: %w", ds.Name, err))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), diskOpTimeout)
	defer cancel()
	if err := ds.ResizeDisk(ctx, req.Path, req.SizeBytes); err != nil {
		s.problem(w, refusedProblem("path", err))
		return
	}
	info, err := ds.DiskInfo(ctx, req.Path)
	if err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: disk resized", "datastore", ds.Name, "path", req.Path, "size", info.VirtualSizeBytes)
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) deleteDatastoreFile(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	rel := r.URL.Query().Get("path")
	if err := ds.DeleteFile(rel, s.fileUsers(ds, false)); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: datastore file deleted", "datastore", ds.Name, "path", rel)
	w.WriteHeader(http.StatusNoContent)
}

// fileUsers returns a check refusing (with datastore.ErrInUse, naming the
// VM) a file of the datastore that a defined VM's spec refers to, or only a
// running VM's when runningOnly. Paths are compared after resolving
// symlinks, so another name for the same file is refused too.
func (s *Server) fileUsers(ds datastore.Datastore, runningOnly bool) func(rel string) error {
	real := func(rel string) string {
		p, err := ds.Resolve(rel)
		if err != nil {
			return ""
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	return func(rel string) error {
		if s.cfg.Inventory == nil {
			return nil
		}
		target := real(rel)
		for _, spec := range s.cfg.Inventory.List() {
			if runningOnly && (s.cfg.Runner == nil || stoppedState(s.cfg.Runner.Status(spec.ID).State)) {
				continue
			}
			for _, p := range filesOf(spec, ds.Name) {
				if p == rel || target != "" && real(p) == target {
					return fmt.Errorf("%q is used by VM %q (%s): %w", rel, spec.Name, spec.ID, datastore.ErrInUse)
				}
			}
		}
		// A base linked clones or incremental backups rest on is theirs.
		if deps, err := ds.Dependents(rel); err != nil {
			return err
		} else if len(deps) > 0 {
			return fmt.Errorf("%q is the base of %s: %w", rel, s.namesOf(ds.Name, deps), datastore.ErrInUse)
		}
		return nil
	}
}

// stoppedState reports whether a VM in this state has no QEMU holding its
// files.
func stoppedState(state string) bool { return state == api.VMStopped || state == api.VMCrashed }

// filesOf lists the files of datastore ds that a VM spec refers to.
func filesOf(spec api.VMSpec, ds string) []string {
	var files []string
	for _, f := range spec.Files() {
		if f.Datastore == ds {
			files = append(files, f.Path)
		}
	}
	return files
}

// decodeSmall decodes a small JSON request body, refusing unknown fields
// and trailing data.
func decodeSmall(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the request", errBadRequest)
	}
	return nil
}
