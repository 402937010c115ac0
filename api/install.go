package api

// Wire types of installing Plinth to a disk (package installer does the
// work): GET /api/v1/host/install lists the targets, POST starts an install
// as a task (vmkernel does it, as root).

// InstallCandidate is one disk as a possible install target.
type InstallCandidate struct {
	Disk HostDisk `json:"disk"`
	// BootMedium is true for the disk Plinth runs from.
	BootMedium bool `json:"boot_medium"`
	// Refused says why the disk cannot be a target; "" when it can.
	Refused string `json:"refused,omitempty"`
	// Warnings say what an install would destroy.
	Warnings []string `json:"warnings,omitempty"`
}

// InstallRequest asks for an install to Disk ("sdb"). Overwrite must be
// true for a disk with warnings.
type InstallRequest struct {
	Disk      string `json:"disk"`
	Overwrite bool   `json:"overwrite"`
}

// InstallProgress is one progress report of an install: the step's name,
// bytes done of total when the step has a size, and a message.
type InstallProgress struct {
	Step    string `json:"step"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Message string `json:"message,omitempty"`
}
