package mgmtd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/plinth/plinth/api"
)

var vmStates = []string{api.VMStopped, api.VMStarting, api.VMRunning, api.VMPaused, api.VMStopping, api.VMCrashed}

// listVMs lists VMs, filtered by state and name pattern.
func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, pattern := q.Get("state"), q.Get("name")
	if state != "" && !slices.Contains(vmStates, state) {
		fieldProblem(w, api.FieldProblem{Field: "state", Message: fmt.Sprintf("%q is not one of %s", state, strings.Join(vmStates, ", "))})
		return
	}
	if _, err := path.Match(pattern, ""); err != nil {
		fieldProblem(w, api.FieldProblem{Field: "name", Message: fmt.Sprintf("%q is not a valid pattern: %v", pattern, err)})
		return
	}
	if state == "" && pattern == "" {
		// Unfiltered, vmkernel's answer is the answer: pass its bytes on
		// rather than decoding and encoding a thousand VMs.
		s.forward(w, r)
		return
	}
	vms, err := s.vmk.ListVMs(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	out := make([]api.VM, 0, len(vms))
	for _, vm := range vms {
		if state != "" && vm.Runtime.State != state {
			continue
		}
		if pattern != "" {
			if ok, _ := path.Match(pattern, vm.Spec.Name); !ok {
				continue
			}
		}
		out = append(out, vm)
	}
	writeJSON(w, http.StatusOK, out)
}

// hostPower checks the request here (the confirmation is the hostname)
// and has vmkernel carry it out.
func (s *Server) hostPower(w http.ResponseWriter, r *http.Request) {
	var req api.PowerRequest
	if !decodeStrict(w, r, 0, &req) {
		return
	}
	var probs []api.FieldProblem
	if req.Action != api.PowerReboot && req.Action != api.PowerShutdown {
		probs = append(probs, api.FieldProblem{Field: "action", Message: fmt.Sprintf("%q is not %q or %q", req.Action, api.PowerReboot, api.PowerShutdown)})
	}
	if strings.TrimSpace(req.Reason) == "" {
		probs = append(probs, api.FieldProblem{Field: "reason", Message: "is empty: say why, for the audit log"})
	}
	host, err := s.vmk.Host(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	if req.Confirm != host.Hostname {
		probs = append(probs, api.FieldProblem{Field: "confirm", Message: fmt.Sprintf("must be this host's name, %q", host.Hostname)})
	}
	if len(probs) > 0 {
		fieldProblem(w, probs...)
		return
	}
	b, _ := json.Marshal(req)
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	s.log.Warn("mgmtd: host power requested", "action", req.Action, "reason", req.Reason, "user", principalOf(r).User, "remote", remoteIP(r))
	s.forward(w, r)
}
