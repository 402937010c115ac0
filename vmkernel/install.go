package vmkernel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/installer"
)

// installTimeout bounds one install to disk.
const installTimeout = time.Hour

// errNoInstaller: this vmkernel does not install (501).
var errNoInstaller = errors.New("installing Plinth to a disk is not offered by this vmkernel (it runs with -installer on the appliance)")

// installCandidates reads the disks the installer may target.
func (s *Server) installCandidates() ([]installer.Candidate, error) {
	hw, err := s.readHardware()
	if err != nil {
		return nil, fmt.Errorf("hardware inventory: %w", err)
	}
	return installer.Candidates(hw, *s.cfg.Installer), nil
}

// listInstallTargets serves GET /v1/host/install: every disk with whether
// it can be a target and what installing would destroy.
func (s *Server) listInstallTargets(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Installer == nil {
		s.problem(w, errNoInstaller)
		return
	}
	cands, err := s.installCandidates()
	if err != nil {
		s.problem(w, err)
		return
	}
	out := make([]api.InstallCandidate, 0, len(cands))
	for _, c := range cands {
		out = append(out, api.InstallCandidate{Disk: c.Disk, BootMedium: c.BootMedium, Refused: c.Refused, Warnings: c.Warnings})
	}
	writeJSON(w, http.StatusOK, out)
}

// install serves POST /v1/host/install: the target and the boot medium are
// checked now (a refusal is a 4xx naming the field), then the install runs
// as a task whose progress is the bytes written and checked.
func (s *Server) install(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Installer == nil {
		s.problem(w, errNoInstaller)
		return
	}
	var req api.InstallRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if req.Disk == "" {
		s.problem(w, &api.ValidationError{Subject: "install request", Problems: []api.FieldProblem{{Field: "disk", Message: "is empty: name the target disk, e.g. sdb"}}})
		return
	}
	cands, err := s.installCandidates()
	if err != nil {
		s.problem(w, err)
		return
	}
	target, err := installer.Select(cands, installer.DiskSelector{Path: req.Disk}, req.Overwrite)
	if err != nil {
		field := "disk"
		if errors.Is(err, installer.ErrNeedsForce) {
			field = "overwrite"
		}
		s.problem(w, &api.ValidationError{Subject: "install request", Problems: []api.FieldProblem{{Field: field, Message: err.Error()}}})
		return
	}
	plan, err := installer.NewPlan(*s.cfg.Installer, target, installer.Config{})
	if err != nil {
		s.problem(w, &api.ValidationError{Subject: "install request", Problems: []api.FieldProblem{{Field: "disk", Message: err.Error()}}})
		return
	}
	t := s.tasks.Start("install", "disk "+target.Disk.Name, "", 0)
	s.cfg.Log.Warn("vmkernel: installing Plinth to a disk", "disk", target.Disk.Name, "task", t.ID())
	go func() {
		ctx, cancel := context.WithTimeout(s.bg, installTimeout)
		defer cancel()
		var done, total int64 // over the steps: bytes of each sized step, added up
		err := installer.Install(ctx, plan, func(p installer.Progress) {
			if p.Total > 0 && p.Done == 0 {
				total += p.Total
				s.tasks.SetTotal(t, total)
			}
			if p.Total > 0 {
				t.SetDone(done + p.Done)
				if p.Done >= p.Total {
					done += p.Total
				}
			}
		})
		s.tasks.Finish(t, err)
		s.cfg.Log.Warn("vmkernel: install ended", "disk", target.Disk.Name, "task", t.ID(), "err", err)
	}()
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}
