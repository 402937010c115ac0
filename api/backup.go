package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Paths of backups not tied to a defined VM (the VM may be gone).
const (
	// VMKernelBackupsPath: GET the Backups kept in a datastore folder
	// (?datastore=NAME&folder=DIR, folder default "backups").
	VMKernelBackupsPath = "/v1/backups"
	MgmtdBackupsPath    = "/api/v1/backups"
	// BackupsRestore: POST a RestoreRequest to VMKernelBackupsPath + "/" +
	// BackupsRestore (a task).
	BackupsRestore = "restore"
)

// Backup kinds.
const (
	BackupFull        = "full"
	BackupIncremental = "incremental"
)

// DefaultBackupFolder is where in a datastore backups go by default.
const DefaultBackupFolder = "backups"

// BackupPolicy is where a VM's backups go, how many are kept, and when
// they are taken by themselves.
type BackupPolicy struct {
	// Datastore and Folder are where backups go (folder default "backups").
	Datastore string `json:"datastore"`
	Folder    string `json:"folder,omitempty"`
	// Keep is how many backups are kept (with the older ones the kept
	// incrementals need); 0 keeps all.
	Keep int `json:"keep,omitempty"`
	// Schedule is when backups are taken: "every DURATION" (e.g.
	// "every 6h", at least 5m) or "daily HH:MM" (the host's clock, UTC);
	// empty: only when asked.
	Schedule string `json:"schedule,omitempty"`
}

// ParseSchedule reads a BackupPolicy.Schedule: an interval ("every 6h"),
// or a time of day ("daily 02:30", as minutes after midnight, UTC).
func ParseSchedule(s string) (every time.Duration, daily int, err error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), " ")
	arg = strings.TrimSpace(arg)
	switch kind {
	case "every":
		d, err := time.ParseDuration(arg)
		if err != nil || d < 5*time.Minute || d > 366*24*time.Hour {
			return 0, 0, fmt.Errorf("%q: want a duration between 5m and 8784h, e.g. every 6h", arg)
		}
		return d, -1, nil
	case "daily":
		h, m, ok := strings.Cut(arg, ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
			return 0, 0, fmt.Errorf("%q: want HH:MM, e.g. daily 02:30", arg)
		}
		return 0, hh*60 + mm, nil
	}
	return 0, 0, fmt.Errorf("%q: want \"every DURATION\" or \"daily HH:MM\"", s)
}

func (v *validator) backupPolicy(field string, p *BackupPolicy) {
	if p == nil {
		return
	}
	v.name(field+".datastore", p.Datastore)
	if p.Folder != "" {
		v.path(field+".folder", p.Folder)
	}
	if p.Keep < 0 || p.Keep > 1000 {
		v.add(field+".keep", "must be between 0 (keep all) and 1000")
	}
	if p.Schedule != "" {
		if _, _, err := ParseSchedule(p.Schedule); err != nil {
			v.add(field+".schedule", err.Error())
		}
	}
}

// BackupRequest is the optional body of POST .../backups.
type BackupRequest struct {
	// Datastore and Folder are where the backup goes (default: the VM's
	// backup policy's; a datastore is required without one).
	Datastore string `json:"datastore,omitempty"`
	Folder    string `json:"folder,omitempty"`
	// Full makes a full backup even where an incremental one could be.
	Full bool `json:"full,omitempty"`
}

// Backup is one backup of a VM: a folder of its datastore holding a copy
// of each disk (whole, or for an incremental one the data that changed
// since its parent, as a qcow2 image on the parent's), its UEFI variables,
// and this record (backup.json), written last: a folder without it is not
// a backup.
type Backup struct {
	ID     string `json:"id"`
	VMID   string `json:"vm_id"`
	VMName string `json:"vm_name"`
	// Kind is "full" or "incremental".
	Kind string `json:"kind"`
	// Parent is the backup an incremental one builds on.
	Parent string `json:"parent,omitempty"`
	// Reason says why a backup is full when it need not have been asked
	// to be (no earlier backup, the VM's change tracking lost after an
	// unclean stop, a revert or restore, a stopped VM, a chain at its end).
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Datastore and Path are where the backup is (Path: its folder).
	Datastore string `json:"datastore"`
	Path      string `json:"path"`
	// Spec is the VM's definition when it was taken.
	Spec  VMSpec       `json:"spec"`
	Disks []BackupFile `json:"disks"`
	// Vars is the UEFI VM's variables, copied whole.
	Vars *BackupFile `json:"vars,omitempty"`
	// SizeBytes is what the backup's files take; CopiedBytes the data
	// read from the VM's disks to make it.
	SizeBytes   int64 `json:"size_bytes"`
	CopiedBytes int64 `json:"copied_bytes"`
}

// Files are the backup's files: its disks', then its UEFI variables.
func (b Backup) Files() []BackupFile {
	out := append([]BackupFile(nil), b.Disks...)
	if b.Vars != nil {
		out = append(out, *b.Vars)
	}
	return out
}

// BackupFile is one file of a backup, with the checksum a restore checks.
type BackupFile struct {
	// Disk is the index of the disk in Spec.Disks.
	Disk int `json:"disk"`
	// File is datastore-relative.
	File             string `json:"file"`
	SHA256           string `json:"sha256"`
	SizeBytes        int64  `json:"size_bytes"`
	VirtualSizeBytes int64  `json:"virtual_size_bytes"`
}

// RestoreRequest is the body of POST /v1/backups/restore.
type RestoreRequest struct {
	// Datastore and Folder are where the backup is (folder default "backups").
	Datastore string `json:"datastore"`
	Folder    string `json:"folder,omitempty"`
	// Backup is the backup's ID.
	Backup string `json:"backup"`
	// Replace restores over the VM the backup was taken of (same ID,
	// stopped): its disks and definition are replaced, its snapshots go.
	// Otherwise a new VM is made, named Name.
	Replace bool   `json:"replace,omitempty"`
	Name    string `json:"name,omitempty"`
	// TargetDatastore holds a new VM's disks (default: Datastore).
	TargetDatastore string `json:"target_datastore,omitempty"`
	// Start starts the VM once restored.
	Start bool `json:"start,omitempty"`
}

// Validate returns the request's problems as a *ValidationError, or nil.
func (r RestoreRequest) Validate() error {
	var v validator
	v.name("datastore", r.Datastore)
	if r.Folder != "" {
		v.path("folder", r.Folder)
	}
	v.name("backup", r.Backup)
	switch {
	case r.Replace && r.Name != "":
		v.add("name", "a restore over the VM keeps its name; leave name out")
	case !r.Replace && r.Name != "":
		v.name("name", r.Name)
	}
	if r.TargetDatastore != "" {
		v.name("target_datastore", r.TargetDatastore)
	}
	return v.err("restore request")
}
