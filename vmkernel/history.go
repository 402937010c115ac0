package vmkernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
)

// A VM's definition is versioned (package inventory keeps every version
// with who, when and why): its history is listed, any two versions are
// compared, an update can be tried (dry_run: what would change, and
// whether that needs a restart), and an earlier version made current again.

// liveFields are the fields of a definition that change nothing in the
// running QEMU: a change to any other takes effect at the VM's next start,
// and is refused while it runs.
var liveFields = []string{"name", "autostart", "backup"}

// needsRestart reports whether a change to field takes effect only when
// QEMU starts again.
func needsRestart(field string) bool {
	top, _, _ := strings.Cut(field, ".")
	top, _, _ = strings.Cut(top, "[")
	return !slices.Contains(liveFields, top)
}

// specDiff lists the fields that differ between two definitions (both
// with their defaults), as JSON paths with their JSON values.
func specDiff(from, to api.VMSpec) api.SpecDiff {
	var a, b any
	ja, _ := json.Marshal(from)
	jb, _ := json.Marshal(to)
	json.Unmarshal(ja, &a)
	json.Unmarshal(jb, &b)
	d := api.SpecDiff{Changes: []api.SpecChange{}}
	walkDiff("", a, b, func(field string, old, new any) {
		c := api.SpecChange{Field: field, Restart: needsRestart(field)}
		if old != nil {
			c.Old, _ = json.Marshal(old)
		}
		if new != nil {
			c.New, _ = json.Marshal(new)
		}
		d.Changes = append(d.Changes, c)
		d.NeedsRestart = d.NeedsRestart || c.Restart
	})
	return d
}

// walkDiff calls change for every leaf (or whole subtree present on one
// side only) that differs between a and b.
func walkDiff(path string, a, b any, change func(field string, old, new any)) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			walkDiff(join(k), av[k], bv[k], change)
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		for i := range max(len(av), len(bv)) {
			var x, y any
			if i < len(av) {
				x = av[i]
			}
			if i < len(bv) {
				y = bv[i]
			}
			walkDiff(fmt.Sprintf("%s[%d]", path, i), x, y, change)
		}
		return
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		change(path, a, b)
	}
}

// applyUpdate makes spec the VM's definition (or, with dryRun, answers what
// that would change): a change that needs a restart is refused while the
// VM runs, a template with linked clones stays one.
func (s *Server) applyUpdate(w http.ResponseWriter, old, spec api.VMSpec, extra []api.FieldProblem, ch inventory.Change, dryRun bool) {
	spec.ID = old.ID
	s.specMu.Lock()
	defer s.specMu.Unlock()
	next := spec.Clone()
	next.Defaults()
	diff := specDiff(old, next)
	st := s.cfg.Runner.Status(old.ID).State
	diff.Running = !stoppedState(st)
	if vs, err := s.cfg.Inventory.History(old.ID); err == nil && len(vs) > 0 {
		diff.From = vs[len(vs)-1].Version
	}
	if err := s.validate(spec, extra); err != nil {
		s.problem(w, err)
		return
	}
	if dryRun {
		writeJSON(w, http.StatusOK, diff)
		return
	}
	if diff.Running && diff.NeedsRestart {
		var fields []string
		for _, c := range diff.Changes {
			if c.Restart {
				fields = append(fields, c.Field)
			}
		}
		s.problem(w, &runner.StateError{ID: old.ID, Op: "change " + strings.Join(fields, ", ") + " (taken only at a start: stop it first)", State: st})
		return
	}
	if old.Template && !next.Template {
		if err := s.refuseIfClones(old, "stop being a template"); err != nil {
			s.problem(w, err)
			return
		}
	}
	if err := s.cfg.Inventory.UpdateBy(spec, ch); err != nil {
		s.problem(w, err)
		return
	}
	spec, err := s.cfg.Inventory.Get(old.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	detail := ch.Reason
	if spec.Name != old.Name {
		detail = strings.TrimPrefix(detail+fmt.Sprintf("; renamed from %q", old.Name), "; ")
	}
	s.cfg.Log.Info("vmkernel: VM updated", "vm", spec.Name, "id", spec.ID, "user", ch.User, "reason", ch.Reason)
	s.publish(api.EventUpdated, spec, detail)
	writeJSON(w, http.StatusOK, s.vm(spec))
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	vs, err := s.cfg.Inventory.History(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vs)
}

// version finds version n of the history (0: the newest).
func version(vs []api.SpecVersion, n int) (api.SpecVersion, error) {
	if len(vs) == 0 {
		return api.SpecVersion{}, fmt.Errorf("the VM has no history: %w", inventory.ErrNoVersion)
	}
	if n == 0 {
		return vs[len(vs)-1], nil
	}
	for _, v := range vs {
		if v.Version == n {
			return v, nil
		}
	}
	return api.SpecVersion{}, fmt.Errorf("version %d (the VM has %d to %d): %w", n, vs[0].Version, vs[len(vs)-1].Version, inventory.ErrNoVersion)
}

// historyDiff serves GET .../history/diff?from=N&to=M (to: default the
// newest; from: default the one before to).
func (s *Server) historyDiff(w http.ResponseWriter, r *http.Request) {
	vs, err := s.cfg.Inventory.History(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	num := func(name string) (int, error) {
		q := r.URL.Query().Get(name)
		if q == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return 0, &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: name, Message: "must be a version number (1 or more)"}}}
		}
		return n, nil
	}
	fromN, err := num("from")
	if err != nil {
		s.problem(w, err)
		return
	}
	toN, err := num("to")
	if err != nil {
		s.problem(w, err)
		return
	}
	to, err := version(vs, toN)
	if err != nil {
		s.problem(w, err)
		return
	}
	if fromN == 0 {
		fromN = to.Version - 1
	}
	var from api.SpecVersion
	if fromN >= 1 {
		if from, err = version(vs, fromN); err != nil {
			s.problem(w, err)
			return
		}
	}
	d := specDiff(from.Spec, to.Spec)
	d.From, d.To = from.Version, to.Version
	d.Running = !stoppedState(s.cfg.Runner.Status(to.Spec.ID).State)
	writeJSON(w, http.StatusOK, d)
}

// revertDefinition serves POST .../history/revert: version N's definition
// becomes the VM's again (as a new version), as an update would make it.
func (s *Server) revertDefinition(w http.ResponseWriter, r *http.Request) {
	old, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.RevertDefinitionRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if len(req.Reason) > api.MaxReasonLen || strings.ContainsFunc(req.Reason, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		s.problem(w, &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: "reason", Message: fmt.Sprintf("at most %d bytes on one line", api.MaxReasonLen)}}})
		return
	}
	vs, err := s.cfg.Inventory.History(old.ID)
	if err != nil {
		s.problem(w, err)
		return
	}
	if req.Version < 1 {
		s.problem(w, &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: "version", Message: "required: the version to go back to"}}})
		return
	}
	v, err := version(vs, req.Version)
	if err != nil {
		s.problem(w, err)
		return
	}
	reason := req.Reason
	if reason == "" {
		reason = fmt.Sprintf("back to version %d", v.Version)
	}
	s.applyUpdate(w, old, v.Spec, nil, inventoryChange(requestUser(r), reason), req.DryRun)
}
