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

// A management-network change the console applied waits for confirmation
// in the run directory (/run/plinth, a tmpfs: nothing survives a boot):
// PendingFile while it may still be kept or rolled back. Whoever settles it
// first wins, by one atomic file operation each: Confirm (vmkernel, for
// the API) renames PendingFile to ConfirmedFile; Settle (the console,
// keeping it or rolling it back) removes PendingFile, and learns from a
// missing PendingFile beside a ConfirmedFile that the API was first.
const (
	PendingFile   = "network-pending.json"
	ConfirmedFile = "network-confirmed.json"
)

// Change is a management-network change in effect, rolled back at Deadline
// unless kept.
type Change struct {
	Config Config `json:"config"`
	// Address is the new address; only a request arriving on it confirms
	// the change through the API. Invalid: none (then only the console can).
	Address   netip.Prefix `json:"address,omitzero"`
	Interface string       `json:"interface,omitempty"`
	Deadline  time.Time    `json:"deadline"`
	// Previous is what a rollback applies: the configuration before the
	// change. The console that made the change rolls it back; should that
	// console be gone, the Keeper does.
	Previous *Config `json:"previous,omitempty"`
}

// Errors of Confirm.
var (
	ErrNothingPending = errors.New("no management network change is awaiting confirmation")
	ErrExpired        = errors.New("the management network change was not confirmed in time and is being rolled back")
	ErrWrongAddress   = errors.New("the request did not arrive on the new management address")
)

// AddressError is ErrWrongAddress with the addresses.
type AddressError struct {
	Local netip.Addr // where the request arrived
	Want  netip.Addr // the change's new address (invalid: it has none)
}

func (e *AddressError) Error() string {
	if !e.Want.IsValid() {
		return "the management network change has no address yet (DHCP got none): only the console can keep it"
	}
	return fmt.Sprintf("the request arrived on %s, not on the new management address %s: confirm from https://%s/",
		orUnknown(e.Local), e.Want, e.Want)
}

func (e *AddressError) Is(target error) bool { return target == ErrWrongAddress }

func orUnknown(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.String()
}

// MarkPending publishes c as awaiting confirmation in runDir.
func MarkPending(runDir string, c Change) error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	// A confirmation of an earlier change must not count for this one.
	if err := os.Remove(filepath.Join(runDir, ConfirmedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.Write(filepath.Join(runDir, PendingFile), append(b, '\n'), 0o600)
}

func readChange(path string) (Change, error) {
	var c Change
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// ReadPending returns the change awaiting confirmation in runDir (ok false:
// none, or its deadline has passed), or, confirmed true, the one the API
// kept and the console has not yet noticed.
func ReadPending(runDir string, now time.Time) (c Change, confirmed, ok bool, err error) {
	c, err = readChange(filepath.Join(runDir, PendingFile))
	if err == nil {
		return c, false, now.Before(c.Deadline), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return c, false, false, err
	}
	c, err = readChange(filepath.Join(runDir, ConfirmedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Change{}, false, false, nil
	}
	return c, err == nil, err == nil, err
}

// Confirm keeps the change awaiting confirmation in runDir for a request
// that arrived on local, and saves its configuration in stateDir. It fails
// with ErrNothingPending, ErrExpired or an *AddressError (ErrWrongAddress).
func Confirm(runDir, stateDir string, local netip.Addr, now time.Time) (Change, error) {
	pending := filepath.Join(runDir, PendingFile)
	c, err := readChange(pending)
	if errors.Is(err, fs.ErrNotExist) {
		return c, ErrNothingPending
	}
	if err != nil {
		return c, err
	}
	if !now.Before(c.Deadline) {
		return c, ErrExpired
	}
	if !c.Address.IsValid() || local.Unmap() != c.Address.Addr() {
		return c, &AddressError{Local: local.Unmap(), Want: c.Address.Addr()}
	}
	if err := c.Config.Validate(); err != nil {
		return c, fmt.Errorf("the pending change cannot be saved: %w", err)
	}
	// The console may be rolling back right now: the rename decides.
	if err := os.Rename(pending, filepath.Join(runDir, ConfirmedFile)); errors.Is(err, fs.ErrNotExist) {
		return c, ErrExpired
	} else if err != nil {
		return c, err
	}
	if err := Save(stateDir, c.Config); err != nil {
		return c, fmt.Errorf("the change is kept but could not be saved (the console saves it again): %w", err)
	}
	return c, nil
}

// Settle ends the pending change in runDir for the console, which keeps it
// or rolls it back: byAPI reports that the API confirmed it first (then it
// is kept whatever the console meant to do).
func Settle(runDir string) (byAPI bool, err error) {
	confirmed := filepath.Join(runDir, ConfirmedFile)
	err = os.Remove(filepath.Join(runDir, PendingFile))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Remove(confirmed); err == nil {
		return true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return false, nil
}

// Confirmed reports whether the API has confirmed the pending change.
func Confirmed(runDir string) bool {
	_, err := os.Stat(filepath.Join(runDir, ConfirmedFile))
	return err == nil
}
