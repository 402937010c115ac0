package api

import (
	"encoding/json"
	"time"
)

// Who and why of a change to a VM's definition: mgmtd names the user it
// authenticated in UserHeader when it forwards a request (vmkernel's own
// socket is root's and mgmtd's alone; a request without it is "local"),
// and a change may say why in the ReasonQuery parameter.
const (
	UserHeader  = "X-Plinth-User"
	LocalUser   = "local"
	ReasonQuery = "reason"
	// DryRunQuery: PUT .../vms/{id}?dry_run=true answers the SpecDiff the
	// update would make, changing nothing.
	DryRunQuery = "dry_run"
	// MaxReasonLen bounds a reason.
	MaxReasonLen = 512
)

// SpecVersion is one version of a VM's definition: every create, update,
// revert and restore keeps one.
type SpecVersion struct {
	// Version counts from 1 (the VM's creation).
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Reason  string    `json:"reason,omitempty"`
	Spec    VMSpec    `json:"spec"`
}

// SpecChange is one field that differs between two definitions.
type SpecChange struct {
	// Field is a JSON path, e.g. "memory_mib" or "disks[1].path".
	Field string `json:"field"`
	// Old and New are the field's JSON values (absent: not set).
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
	// Restart: the change takes effect only when QEMU starts again.
	Restart bool `json:"restart"`
}

// SpecDiff is what differs between two versions of a VM's definition
// (GET .../history/diff), or what an update would change (dry_run).
type SpecDiff struct {
	From    int          `json:"from"`
	To      int          `json:"to,omitempty"`
	Changes []SpecChange `json:"changes"`
	// NeedsRestart: some change takes effect only at the VM's next start;
	// while the VM runs such an update is refused (stop it first).
	NeedsRestart bool `json:"needs_restart"`
	// Running: the VM runs now.
	Running bool `json:"running"`
}

// RevertDefinitionRequest is the body of POST .../history/revert: the VM's
// definition becomes version Version's again (a new version).
type RevertDefinitionRequest struct {
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
	// DryRun answers the SpecDiff, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
}
