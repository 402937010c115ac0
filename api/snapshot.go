package api

import "time"

// Sub-resources of a VM, below VMKernelVMPath + ID + "/" (vmkernel) and
// MgmtdVMsPath + "/" + ID + "/" (mgmtd): both APIs spell them the same.
const (
	// VMSnapshots: GET the SnapshotTree, POST a SnapshotRequest (a task);
	// VMSnapshots + "/" + snapshot: DELETE it (a task);
	// VMSnapshots + "/" + snapshot + "/" + VMRevert: POST a RevertRequest (a task).
	VMSnapshots = "snapshots"
	VMRevert    = "revert"
	// VMClone: POST a CloneRequest (a task).
	VMClone = "clone"
	// VMTemplate: POST a TemplateRequest (mark or unmark a template).
	VMTemplate = "template"
	// VMDeploy: POST a DeployRequest to a template (a task).
	VMDeploy = "deploy"
	// VMBackups: GET the VM's Backups, POST a BackupRequest (a task).
	VMBackups = "backups"
	// VMHistory: GET the VM's SpecVersions; VMHistory + "/" + VMDiff: GET
	// the SpecDiff between two (?from=N&to=M); VMHistory + "/" + VMRevert:
	// POST a RevertDefinitionRequest.
	VMHistory = "history"
	VMDiff    = "diff"
)

// Snapshot is a point a VM can be taken back to: its disks, its UEFI
// variables, with Memory its running state, and its definition, as they
// were.
type Snapshot struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// Parent is the snapshot the VM's state came from when this one was
	// taken ("" for a root of the tree).
	Parent string `json:"parent,omitempty"`
	// Memory: the VM's memory and devices are kept too; a revert resumes
	// the guest where it was.
	Memory bool `json:"memory"`
	// State is the VM's run state when it was taken (running, paused,
	// stopped): a revert to a memory snapshot puts the VM back in it.
	State string `json:"state"`
	// MemoryBytes is the size of the kept memory state, 0 without.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Spec is the VM's definition when it was taken; a revert restores it.
	Spec VMSpec `json:"spec"`
}

// SnapshotTree is a VM's snapshots (GET .../snapshots), oldest first.
type SnapshotTree struct {
	Snapshots []Snapshot `json:"snapshots"`
	// Current is the snapshot the VM's present state came from (the
	// parent of the next one), "" when none.
	Current string `json:"current,omitempty"`
}

// Bounds of snapshots.
const (
	MaxSnapshots      = 64
	MaxDescriptionLen = 1024
)

// SnapshotRequest is the body of POST .../snapshots.
type SnapshotRequest struct {
	// Name is unique among the VM's snapshots (as a VM name is spelt).
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Memory keeps the running VM's memory too (refused for a stopped VM).
	Memory bool `json:"memory,omitempty"`
}

// Validate returns the request's problems as a *ValidationError, or nil.
func (r SnapshotRequest) Validate() error {
	var v validator
	v.name("name", r.Name)
	v.description("description", r.Description)
	return v.err("snapshot request")
}

// RevertRequest is the optional body of POST .../snapshots/{snap}/revert.
type RevertRequest struct {
	// Start starts the VM after a revert to a snapshot without memory
	// (which leaves it stopped, as the snapshot's disks were not a running
	// system's); a memory snapshot puts the VM back in its own state.
	Start bool `json:"start,omitempty"`
}

// description records a problem with a free-text field: too long, or
// with control characters other than newline and tab.
func (v *validator) description(field, s string) {
	if len(s) > MaxDescriptionLen {
		v.add(field, "longer than 1024 bytes")
	}
	for _, c := range s {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			v.add(field, "contains a control character")
			return
		}
	}
}

// err is the validator's problems as a *ValidationError of subject, or nil.
func (v *validator) err(subject string) error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems, Subject: subject}
}
