package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/plinth/plinth/atomicfile"
)

// PendingFile, in the run directory (/run/plinth, a tmpfs: nothing
// survives a boot), records a management-network change that is in effect
// and not yet confirmed, so that the one owner of the network (vmkernel)
// restarted meanwhile still rolls it back at its deadline.
const PendingFile = "network-pending.json"

// Change is a management-network change in effect, rolled back at Deadline
// unless kept.
type Change struct {
	ID     int    `json:"id"`
	Config Config `json:"config"`
	// Address is the new address; only a request arriving on it confirms
	// the change through the API. Invalid: none (then only the console can).
	Address   netip.Prefix `json:"address,omitzero"`
	Interface string       `json:"interface,omitempty"`
	Deadline  time.Time    `json:"deadline"`
	// Previous is what a rollback applies: the configuration before the
	// change.
	Previous Config `json:"previous"`
}

// SavePending records c as awaiting confirmation in runDir.
func SavePending(runDir string, c Change) error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(runDir, PendingFile), append(b, '\n'), 0o600)
}

// LoadPending reads the change recorded in runDir (ok false: none).
func LoadPending(runDir string) (c Change, ok bool, err error) {
	path := filepath.Join(runDir, PendingFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, false, fmt.Errorf("read %s: %w", path, err)
	}
	return c, true, nil
}

// ClearPending removes the record of a pending change (settled).
func ClearPending(runDir string) error {
	err := os.Remove(filepath.Join(runDir, PendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
