package vmkernel

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
)

// convertTimeout bounds one disk conversion.
const convertTimeout = 6 * time.Hour

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.tasks.List())
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tasks.Get(r.PathValue("id"))
	if !ok {
		WriteProblem(w, api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("no task %q", r.PathValue("id"))})
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// convertDisk starts a qemu-img convert as a task and answers 202 with it.
func (s *Server) convertDisk(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.ConvertDiskRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	var probs []api.FieldProblem
	if req.Path == "" {
		probs = append(probs, api.FieldProblem{Field: "path", Message: "is empty"})
	}
	if req.Target == "" {
		probs = append(probs, api.FieldProblem{Field: "target", Message: "is empty"})
	}
	if req.Format != "" && req.Format != api.FormatQcow2 && req.Format != api.FormatRaw {
		probs = append(probs, api.FieldProblem{Field: "format", Message: fmt.Sprintf("%q is not qcow2 or raw", req.Format)})
	}
	if len(probs) > 0 {
		s.problem(w, &api.ValidationError{Problems: probs})
		return
	}
	// Check what can be checked now, so a bad request is a 4xx, not a
	// failed task: the source must be a disk, the target free.
	ictx, cancel := context.WithTimeout(r.Context(), diskOpTimeout)
	info, err := ds.DiskInfo(ictx, req.Path)
	cancel()
	if err != nil {
		s.problem(w, refusedProblem("path", err))
		return
	}
	full, err := ds.Resolve(req.Target)
	if err != nil {
		s.problem(w, err)
		return
	}
	if _, err := os.Lstat(full); err == nil {
		s.problem(w, fmt.Errorf("datastore %s: %q: %w", ds.Name, req.Target, datastore.ErrExists))
		return
	}
	// A raw copy takes the virtual size; a qcow2 one at most what the
	// source holds, whose allocation stands in for it.
	need := info.VirtualSizeBytes
	if req.Format != api.FormatRaw {
		need = min(need, max(info.ActualSizeBytes, 1<<20))
	}
	res, err := s.space.reserve(ds, need, uploadMargin)
	if err != nil {
		s.problem(w, err)
		return
	}
	t := s.tasks.Start("convert", ds.Name+":"+req.Path+" -> "+req.Target, "", info.VirtualSizeBytes)
	s.cfg.Log.Info("vmkernel: converting disk", "datastore", ds.Name, "path", req.Path, "target", req.Target, "task", t.ID())
	go func() {
		defer res.release()
		ctx, cancel := context.WithTimeout(s.bg, convertTimeout)
		defer cancel()
		var written int64
		err := ds.ConvertDisk(ctx, req.Path, req.Target, req.Format, func(p float64) {
			t.SetDone(int64(p / 100 * float64(info.VirtualSizeBytes)))
			if done := int64(p / 100 * float64(need)); done > written {
				res.wrote(done - written)
				written = done
			}
		})
		if err == nil {
			t.SetDone(info.VirtualSizeBytes)
		}
		s.tasks.Finish(t, err)
		s.cfg.Log.Info("vmkernel: disk conversion ended", "task", t.ID(), "err", err)
	}()
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}
