package api

import "time"

// VM run states.
const (
	VMStopped  = "stopped"
	VMStarting = "starting"
	VMRunning  = "running"
	VMPaused   = "paused"
	VMStopping = "stopping"
	VMCrashed  = "crashed"
)

// Why a QEMU process ended (VMExit.Reason).
const (
	// ExitRequested: a stop or shutdown was asked for through the API.
	ExitRequested = "requested"
	// ExitGuest: the guest powered itself off.
	ExitGuest = "guest-shutdown"
	// ExitCrash: QEMU died without being asked to (killed, crashed, guest panic).
	ExitCrash = "crash"
)

// VM is a defined VM and what it is doing (GET /v1/vms, /v1/vms/{id}).
type VM struct {
	Spec    VMSpec    `json:"spec"`
	Runtime VMRuntime `json:"runtime"`
}

// VMRuntime is the run state of a VM.
type VMRuntime struct {
	// State is one of stopped, starting, running, paused, stopping, crashed.
	State string `json:"state"`
	// PID is QEMU's process ID while it runs.
	PID int `json:"pid,omitempty"`
	// StartedAt is when the current QEMU process started.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Restarts counts restarts by the on_crash policy since the last start
	// asked for through the API.
	Restarts int `json:"restarts,omitempty"`
	// Cgroup is the cgroup v2 group QEMU runs in, "" when the host has none.
	Cgroup string `json:"cgroup,omitempty"`
	// User is the unprivileged user QEMU runs as, the VM's own (absent when
	// vmkernel itself does not run as root and QEMU runs as its user).
	User int `json:"user,omitempty"`
	// Sandboxed says QEMU was seen, once it started, under its seccomp
	// filter with no_new_privs and no capability; a start where it is not
	// fails.
	Sandboxed bool `json:"sandboxed,omitempty"`
	// USB lists the host USB devices given to the running VM, each with
	// whether it is still on the host.
	USB []USBAttachment `json:"usb,omitempty"`
	// PCI lists the host addresses of the PCI devices the running VM holds.
	PCI []string `json:"pci,omitempty"`
	// TPM is true while the VM's software TPM runs.
	TPM bool `json:"tpm,omitempty"`
	// LastExit is how the previous QEMU process ended, if one did.
	LastExit *VMExit `json:"last_exit,omitempty"`
	// Guest is what the guest agent (qemu-ga) in the VM last said of the
	// guest, while it runs and its agent answers.
	Guest *GuestInfo `json:"guest,omitempty"`
}

// GuestInfo is what a VM's guest agent says of its guest (its word, shown
// as such).
type GuestInfo struct {
	AgentVersion string `json:"agent_version"`
	// OS is the OS's pretty name ("Debian GNU/Linux 12 (bookworm)"), OSID
	// its short id ("debian"), Kernel its kernel release.
	OS         string           `json:"os,omitempty"`
	OSID       string           `json:"os_id,omitempty"`
	Kernel     string           `json:"kernel,omitempty"`
	Hostname   string           `json:"hostname,omitempty"`
	Interfaces []GuestInterface `json:"interfaces,omitempty"`
	// UpdatedAt is when the agent last answered.
	UpdatedAt time.Time `json:"updated_at"`
}

// GuestInterface is one of the guest's network interfaces.
type GuestInterface struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	// Addresses are CIDRs (loopback left out).
	Addresses []string `json:"addresses,omitempty"`
}

// VMExit records the end of a QEMU process.
type VMExit struct {
	Time time.Time `json:"time"`
	// Reason is "requested", "guest-shutdown" or "crash".
	Reason string `json:"reason"`
	// Status is the wait status in words, e.g. "exit status 0" or
	// "signal: killed"; "unknown" for a re-attached QEMU (not vmkernel's child).
	Status string `json:"status"`
	// Code is the exit code, -1 when killed by a signal or unknown.
	Code int `json:"code"`
	// Detail adds what QMP said last (e.g. the SHUTDOWN reason) and the
	// last lines of QEMU's stderr.
	Detail string `json:"detail,omitempty"`
}

// ShutdownRequest is the optional body of POST /v1/vms/{id}/shutdown.
type ShutdownRequest struct {
	// TimeoutSeconds is how long the guest gets to power off after the ACPI
	// power button before QEMU is stopped hard (default 60).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}
