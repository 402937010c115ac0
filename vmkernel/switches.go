package vmkernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/vswitch"
)

// maxSwitchSpecBytes bounds the body of POST /v1/switches.
const maxSwitchSpecBytes = 4096

func (s *Server) switchRoutes() []Route {
	if s.cfg.Switches == nil {
		return nil
	}
	return []Route{
		{http.MethodGet, api.VMKernelSwitchesPath, s.listSwitches},
		{http.MethodPost, api.VMKernelSwitchesPath, s.createSwitch},
		{http.MethodDelete, api.VMKernelSwitchPath + "{name}", s.deleteSwitch},
	}
}

func (s *Server) listSwitches(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Switches.List()
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createSwitch(w http.ResponseWriter, r *http.Request) {
	var spec api.SwitchSpec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSwitchSpecBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		s.problem(w, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		s.problem(w, fmt.Errorf("%w: trailing data after the switch", errBadRequest))
		return
	}
	if msg := vswitch.CheckName(spec.Name); msg != "" {
		s.problem(w, &api.ValidationError{Problems: []api.FieldProblem{{Field: "name", Message: msg}}})
		return
	}
	if err := s.cfg.Switches.Create(spec.Name, spec.Uplink); err != nil {
		if spec.Uplink != "" && (errors.Is(err, vswitch.ErrInvalid) || errors.Is(err, vswitch.ErrNotFound)) {
			err = &api.ValidationError{Problems: []api.FieldProblem{{Field: "uplink", Message: err.Error()}}}
		}
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: switch created", "switch", spec.Name, "uplink", spec.Uplink)
	out := api.Switch{Name: spec.Name, Bridge: vswitch.BridgeName(spec.Name), Uplink: spec.Uplink, Ports: []string{}}
	if list, err := s.cfg.Switches.List(); err == nil {
		for _, sw := range list {
			if sw.Name == spec.Name {
				out = sw
			}
		}
	}
	w.Header().Set("Location", api.VMKernelSwitchPath+spec.Name)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) deleteSwitch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.cfg.Switches.Delete(name); err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Info("vmkernel: switch deleted", "switch", name)
	w.WriteHeader(http.StatusNoContent)
}
