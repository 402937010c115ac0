package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// Every definition a VM has had is kept as a version: one JSON file per
// version in history/ID/ beside the VM files, written atomically after
// the VM's own file, with who made the change, when and why. The newest
// MaxVersions are kept.

// MaxVersions is how many versions of a VM's definition are kept.
const MaxVersions = 1000

const historyDir = "history"

// ErrNoVersion: the VM has no such version.
var ErrNoVersion = errors.New("no such version")

// Change is who changed a VM's definition and why (the time is set when
// zero).
type Change struct {
	User, Reason string
	Time         time.Time
}

func (inv *Inventory) historyOf(id string) string {
	return filepath.Join(inv.dir, historyDir, id)
}

// keepVersion records now as the VM's next version (inv.mu held); before,
// when the VM has no history yet, is recorded first (a VM defined before
// its history was kept). A change that changes nothing is not recorded.
func (inv *Inventory) keepVersion(before, now api.VMSpec, ch Change) error {
	vs, err := inv.versions(now.ID)
	if err != nil {
		return err
	}
	if len(vs) == 0 && before.ID != "" {
		if err := inv.writeVersion(api.SpecVersion{Version: 1, User: "", Reason: "the definition before its history was kept", Spec: before}); err != nil {
			return err
		}
		vs = append(vs, 1)
	}
	next := 1
	if len(vs) > 0 {
		last, err := inv.readVersion(now.ID, vs[len(vs)-1])
		if err == nil && sameSpec(last.Spec, now) {
			return nil
		}
		next = vs[len(vs)-1] + 1
	}
	if ch.Time.IsZero() {
		ch.Time = time.Now().UTC()
	}
	if ch.User == "" {
		ch.User = api.LocalUser
	}
	if err := inv.writeVersion(api.SpecVersion{Version: next, Time: ch.Time, User: ch.User, Reason: ch.Reason, Spec: now}); err != nil {
		return err
	}
	for len(vs)+1 > MaxVersions {
		os.Remove(inv.versionPath(now.ID, vs[0]))
		vs = vs[1:]
	}
	return nil
}

func sameSpec(a, b api.VMSpec) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (inv *Inventory) versionPath(id string, n int) string {
	return filepath.Join(inv.historyOf(id), fmt.Sprintf("%06d.json", n))
}

func (inv *Inventory) writeVersion(v api.SpecVersion) error {
	if err := os.MkdirAll(inv.historyOf(v.Spec.ID), 0o700); err != nil {
		return fmt.Errorf("inventory: history of VM %s: %w", v.Spec.ID, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(inv.versionPath(v.Spec.ID, v.Version), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("inventory: history of VM %s: %w", v.Spec.ID, err)
	}
	return nil
}

// versions lists the VM's version numbers, oldest first.
func (inv *Inventory) versions(id string) ([]int, error) {
	des, err := os.ReadDir(inv.historyOf(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: history of VM %s: %w", id, err)
	}
	var out []int
	for _, de := range des {
		n, err := strconv.Atoi(strings.TrimSuffix(de.Name(), ".json"))
		if err == nil && strings.HasSuffix(de.Name(), ".json") && n > 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (inv *Inventory) readVersion(id string, n int) (api.SpecVersion, error) {
	b, err := os.ReadFile(inv.versionPath(id, n))
	if errors.Is(err, fs.ErrNotExist) {
		return api.SpecVersion{}, fmt.Errorf("VM %s version %d: %w", id, n, ErrNoVersion)
	}
	if err != nil {
		return api.SpecVersion{}, err
	}
	var v api.SpecVersion
	if err := json.Unmarshal(b, &v); err != nil {
		return api.SpecVersion{}, fmt.Errorf("VM %s version %d: corrupt: %w", id, n, err)
	}
	return v, nil
}

// History lists the versions of the VM's definition, oldest first.
func (inv *Inventory) History(idOrName string) ([]api.SpecVersion, error) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	spec, ok := inv.byID[idOrName]
	if !ok {
		if spec, ok = inv.byNameLocked(idOrName); !ok {
			return nil, fmt.Errorf("VM %q: %w", idOrName, ErrNotFound)
		}
	}
	vs, err := inv.versions(spec.ID)
	if err != nil {
		return nil, err
	}
	out := make([]api.SpecVersion, 0, len(vs))
	for _, n := range vs {
		v, err := inv.readVersion(spec.ID, n)
		if err != nil {
			continue // a version a crash left torn is not one
		}
		out = append(out, v)
	}
	return out, nil
}

// dropHistory removes a deleted VM's history.
func (inv *Inventory) dropHistory(id string) {
	if api.IsUUID(id) {
		os.RemoveAll(inv.historyOf(id))
	}
}
