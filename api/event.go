package api

import "time"

// VMKernelEventsPath is vmkernel's event stream (GET, text/event-stream):
// one server-sent event per Event, a ":" heartbeat comment every 15 s.
const VMKernelEventsPath = "/v1/events"

// Event types (the SSE "event:" field and Event.Type).
const (
	// EventState: a VM's run state changed (State holds the new one).
	EventState = "state"
	// EventCreated, EventUpdated, EventDeleted: a VM's definition changed.
	EventCreated = "created"
	EventUpdated = "updated"
	EventDeleted = "deleted"
	// EventSnapshot: a snapshot was taken, reverted to or deleted;
	// EventClone: a VM was made of another (clone, deploy, template);
	// EventBackup: a backup was taken or restored (Detail says which).
	EventSnapshot = "snapshot"
	EventClone    = "clone"
	EventBackup   = "backup"
	// EventOverflow is the last event a subscriber that fell behind gets
	// before its stream is closed.
	EventOverflow = "overflow"
)

// Event is one thing that happened to a VM (GET /v1/events).
type Event struct {
	Type string `json:"type"`
	VMID string `json:"vm_id,omitempty"`
	Name string `json:"name,omitempty"`
	// State is the VM's run state after the event (for created, updated
	// and deleted events: the state the VM was in).
	State  string    `json:"state,omitempty"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail,omitempty"`
}

// DeleteVMResult is the answer of DELETE /v1/vms/{id}?disks=true: the disk
// files removed along with the VM.
type DeleteVMResult struct {
	RemovedFiles []DatastoreFile `json:"removed_files"`
	// KeptFiles are disk files left in place because another VM uses them.
	KeptFiles []DatastoreFile `json:"kept_files,omitempty"`
}

// DatastoreFile names a file on a datastore.
type DatastoreFile struct {
	Datastore string `json:"datastore"`
	Path      string `json:"path"`
}
