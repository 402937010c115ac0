package api

import "time"

// Paths of upgrades.
const (
	VMKernelUpgradePath  = "/v1/host/upgrade"
	VMKernelRollbackPath = "/v1/host/upgrade/rollback"
	MgmtdUpgradePath     = "/api/v1/host/upgrade"
	MgmtdRollbackPath    = "/api/v1/host/upgrade/rollback"
)

// Wire types of system image upgrades (package upgrade does the work). The
// boot disk's ESP holds two banks, A and B, each a kernel and initramfs of
// one Plinth version. An upgrade is written to the bank not running, booted
// on trial, and kept only once the new system has come up; a trial that
// does not come up falls back to the other bank by itself.
//
//	GET  /api/v1/host/upgrade           UpgradeStatus
//	POST /api/v1/host/upgrade           body: the signed image; a task
//	POST /api/v1/host/upgrade/rollback  UpgradeRollbackRequest

// Bank states.
const (
	BankActive  = "active"  // the bank this boot came from
	BankStandby = "standby" // a good version, not running: the rollback target
	BankTrial   = "trial"   // written by an upgrade, to be booted on trial
	BankFailed  = "failed"  // its trial did not come up
	BankEmpty   = "empty"   // holds no system
)

// Upgrade results (UpgradeResult.Result).
const (
	UpgradePending    = "pending"     // written; its trial boot is next
	UpgradeSucceeded  = "succeeded"   // the new version came up and was kept
	UpgradeRolledBack = "rolled-back" // its trial failed; the old bank runs again
	UpgradeManual     = "manual-rollback"
)

// Bank is one of the boot disk's two system banks.
type Bank struct {
	Name    string `json:"name"` // "A" or "B"
	State   string `json:"state"`
	Version string `json:"version,omitempty"`
	// TriesLeft is the number of trial boots left for a bank on trial
	// (UEFI boot counting); absent otherwise.
	TriesLeft *int `json:"tries_left,omitempty"`
}

// UpgradeResult is what the last upgrade (or rollback) came to.
type UpgradeResult struct {
	Result      string    `json:"result"`
	FromVersion string    `json:"from_version,omitempty"`
	ToVersion   string    `json:"to_version,omitempty"`
	Bank        string    `json:"bank,omitempty"` // the bank the upgrade went to
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// UpgradeStatus is GET /api/v1/host/upgrade.
type UpgradeStatus struct {
	// Supported is false on hosts without a Plinth boot disk (booted live,
	// from an ISO or the network); Reason then says why.
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
	Version   string `json:"version"`     // the running version
	Active    string `json:"active_bank"` // "A", "B"; "" when not booted from a bank
	// Firmware is "uefi" or "bios": which boot path the trial uses.
	Firmware string         `json:"firmware,omitempty"`
	Banks    []Bank         `json:"banks,omitempty"`
	Pending  *UpgradeResult `json:"pending,omitempty"` // an upgrade written, its trial not yet done
	Last     *UpgradeResult `json:"last,omitempty"`
}

// UpgradeProgress is one progress report of an upgrade task.
type UpgradeProgress struct {
	Step    string `json:"step"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Message string `json:"message,omitempty"`
}

// UpgradeRollbackRequest asks to boot the standby bank from now on.
type UpgradeRollbackRequest struct {
	// Reboot restarts the host at once (else at the next reboot).
	Reboot bool `json:"reboot"`
}
