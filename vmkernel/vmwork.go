package vmkernel

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/inventory"
)

// The long work on one VM (snapshots, reverts, clones, backups, restores)
// runs as tasks, one at a time per VM: each claims the VM first, and a
// second asks in vain (409) until the first has finished.

// errBusy: the VM has work under way (409).
var errBusy = errors.New("the VM is busy")

// errTemplate: a template cannot do that (never starts, never changes: 409).
var errTemplate = errors.New("the VM is a template")

// vmWork is the work under way, by VM ID.
type vmWork struct {
	mu   sync.Mutex
	busy map[string]string // VM ID: what it is doing
}

// claim marks the VM as busy with what, or refuses with errBusy; release
// ends the claim.
func (s *Server) claim(id, what string) (release func(), err error) {
	w := &s.work
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy == nil {
		w.busy = map[string]string{}
	}
	if doing, ok := w.busy[id]; ok {
		return nil, fmt.Errorf("VM %s: %w (%s under way)", id, errBusy, doing)
	}
	w.busy[id] = what
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.busy, id)
			w.mu.Unlock()
		})
	}, nil
}

// vmWorkRoutes are the routes of snapshots, clones, templates, backups and
// definition history.
func (s *Server) vmWorkRoutes() []Route {
	vm := api.VMKernelVMPath + "{id}/"
	return []Route{
		{http.MethodGet, vm + api.VMSnapshots, s.listSnapshots},
		{http.MethodPost, vm + api.VMSnapshots, s.createSnapshot},
		{http.MethodDelete, vm + api.VMSnapshots + "/{snap}", s.deleteSnapshot},
		{http.MethodPost, vm + api.VMSnapshots + "/{snap}/" + api.VMRevert, s.revertSnapshot},
		{http.MethodPost, vm + api.VMClone, s.cloneVM},
		{http.MethodPost, vm + api.VMTemplate, s.markTemplate},
		{http.MethodPost, vm + api.VMDeploy, s.deployTemplate},
		{http.MethodGet, vm + api.VMBackups, s.listVMBackups},
		{http.MethodPost, vm + api.VMBackups, s.backupVM},
		{http.MethodGet, api.VMKernelBackupsPath, s.listBackups},
		{http.MethodPost, api.VMKernelBackupsPath + "/" + api.BackupsRestore, s.restoreBackup},
		{http.MethodGet, vm + api.VMHistory, s.history},
		{http.MethodGet, vm + api.VMHistory + "/" + api.VMDiff, s.historyDiff},
		{http.MethodPost, vm + api.VMHistory + "/" + api.VMRevert, s.revertDefinition},
	}
}

// requestUser is who asked: the user mgmtd names, else "local" (vmkernel's
// socket is root's and mgmtd's alone).
func requestUser(r *http.Request) string {
	u := strings.TrimSpace(r.Header.Get(api.UserHeader))
	if u == "" || len(u) > 64 || strings.ContainsFunc(u, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return api.LocalUser
	}
	return u
}

// startTask records long work for the requester and answers 202 with it.
func (s *Server) startTask(w http.ResponseWriter, r *http.Request, kind, target string) *tasks.Task {
	t := s.tasks.Start(kind, target, requestUser(r), 0)
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
	return t
}

// inventoryChange is a change to a VM's definition by user, for reason.
func inventoryChange(user, reason string) inventory.Change {
	return inventory.Change{User: user, Reason: reason}
}

// requestReason is the request's ?reason= (bounded, one line).
func requestReason(r *http.Request) (string, error) {
	reason := r.URL.Query().Get(api.ReasonQuery)
	if len(reason) > api.MaxReasonLen || strings.ContainsFunc(reason, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "", &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: api.ReasonQuery,
			Message: fmt.Sprintf("at most %d bytes on one line", api.MaxReasonLen)}}}
	}
	return reason, nil
}
