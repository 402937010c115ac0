// Package inventory stores VM specs, one JSON file per VM in a directory,
// each written atomically (temp file in the same directory, write, fsync,
// close, rename, fsync the directory) so that a crash at any moment leaves
// either the old or the new spec on disk, never a broken one.
package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// SchemaVersion is the version of the file format written by this package.
const SchemaVersion = 1

// Sentinel errors, for errors.Is.
var (
	// ErrExists: another VM already has this name or ID.
	ErrExists = errors.New("already exists")
	// ErrNotFound: no VM has this ID or name.
	ErrNotFound = errors.New("not found")
)

const (
	fileSuffix = ".json"
	tempPrefix = atomicfile.TempPrefix
)

// record is the on-disk form of one VM.
type record struct {
	SchemaVersion int        `json:"schema_version"`
	Spec          api.VMSpec `json:"spec"`
}

// FileError is a file that Open could not load; the file is left in place.
type FileError struct {
	Name string // base name in the inventory directory
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("inventory file %s: %v", e.Name, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Inventory is the set of defined VMs. It is safe for concurrent use.
type Inventory struct {
	dir     string
	mu      sync.RWMutex
	byID    map[string]api.VMSpec
	skipped []error
	// gen counts changes to byID, so a reader can tell whether what it
	// made from an earlier List is still current.
	gen uint64
	// snap is the sorted list as of snapGen, shared read-only by Snapshot.
	snap    []api.VMSpec
	snapGen uint64
	snapMu  sync.Mutex
	// step, when set, is called after each step of a write; a non-nil error
	// makes the write stop right there, as if the process had died (no clean-up).
	step func(step string) error
}

// Steps of a write (those of atomicfile) or a delete, as passed to the step hook.
const (
	StepCreateTemp = atomicfile.StepCreateTemp
	StepHalfWrite  = atomicfile.StepHalfWrite
	StepWrite      = atomicfile.StepWrite
	StepFsync      = atomicfile.StepFsync
	StepClose      = atomicfile.StepClose
	StepRename     = atomicfile.StepRename
	StepRemove     = "remove"
	StepDirFsync   = atomicfile.StepDirFsync
)

// Open loads every VM file in dir, creating dir if needed. A file that cannot
// be read or parsed is skipped and reported by Skipped, not deleted. Temp
// files left by an interrupted write are removed.
func Open(dir string) (*Inventory, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv := &Inventory{dir: dir, byID: map[string]api.VMSpec{}}
	names := map[string]string{} // VM name -> file
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			// Left by a write that never reached its rename: never a VM.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				inv.skipped = append(inv.skipped, &FileError{name, fmt.Errorf("removing stale temp file: %w", err)})
			}
			continue
		}
		if !strings.HasSuffix(name, fileSuffix) || !e.Type().IsRegular() {
			continue
		}
		spec, err := load(filepath.Join(dir, name))
		switch {
		case err != nil:
		case name != spec.ID+fileSuffix:
			err = fmt.Errorf("holds VM %q, expected file %s", spec.ID, spec.ID+fileSuffix)
		case names[spec.Name] != "":
			err = fmt.Errorf("VM name %q: %w in %s", spec.Name, ErrExists, names[spec.Name])
		}
		if err != nil {
			inv.skipped = append(inv.skipped, &FileError{name, err})
			continue
		}
		names[spec.Name] = name
		inv.byID[spec.ID] = spec
	}
	return inv, nil
}

func load(path string) (api.VMSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return api.VMSpec{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return api.VMSpec{}, fmt.Errorf("corrupt: %w", err)
	}
	if r.SchemaVersion < 1 || r.SchemaVersion > SchemaVersion {
		return api.VMSpec{}, fmt.Errorf("schema version %d, this vmkernel reads 1..%d", r.SchemaVersion, SchemaVersion)
	}
	if r.Spec.ID == "" {
		return api.VMSpec{}, errors.New("corrupt: no VM ID")
	}
	if err := r.Spec.Validate(); err != nil {
		return api.VMSpec{}, err
	}
	return r.Spec, nil
}

// Dir is the inventory's directory.
func (inv *Inventory) Dir() string { return inv.dir }

// Skipped lists the files Open could not load, each a *FileError.
func (inv *Inventory) Skipped() []error {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return append([]error(nil), inv.skipped...)
}

// Create stores a new VM. It assigns a random ID if spec.ID is empty, applies
// the defaults and validates; spec is updated to what was stored. A name or ID
// already in use gives ErrExists.
func (inv *Inventory) Create(spec *api.VMSpec) error { return inv.CreateBy(spec, Change{}) }

// CreateBy is Create keeping the definition as the VM's version 1, with
// who made it and why.
func (inv *Inventory) CreateBy(spec *api.VMSpec, ch Change) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	s := spec.Clone()
	if s.ID == "" {
		s.ID = api.NewUUID()
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		return err
	}
	if _, ok := inv.byID[s.ID]; ok {
		return fmt.Errorf("VM ID %s: %w", s.ID, ErrExists)
	}
	if other, ok := inv.byNameLocked(s.Name); ok {
		return fmt.Errorf("VM name %q (ID %s): %w", s.Name, other.ID, ErrExists)
	}
	if err := inv.write(s); err != nil {
		return err
	}
	inv.byID[s.ID] = s
	inv.gen++
	*spec = s.Clone()
	return inv.keepVersion(api.VMSpec{}, s, ch)
}

// Update replaces the spec of the VM with spec.ID (after defaults and
// validation). Renaming to a name in use gives ErrExists.
func (inv *Inventory) Update(spec api.VMSpec) error { return inv.UpdateBy(spec, Change{}) }

// UpdateBy is Update keeping the new definition as a version of the VM,
// with who changed it and why (an update that changes nothing keeps none).
func (inv *Inventory) UpdateBy(spec api.VMSpec, ch Change) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	s := spec.Clone()
	s.Defaults()
	if err := s.Validate(); err != nil {
		return err
	}
	if _, ok := inv.byID[s.ID]; !ok {
		return fmt.Errorf("VM ID %q: %w", s.ID, ErrNotFound)
	}
	if other, ok := inv.byNameLocked(s.Name); ok && other.ID != s.ID {
		return fmt.Errorf("VM name %q (ID %s): %w", s.Name, other.ID, ErrExists)
	}
	old := inv.byID[s.ID]
	if err := inv.write(s); err != nil {
		return err
	}
	inv.byID[s.ID] = s
	inv.gen++
	return inv.keepVersion(old, s, ch)
}

// Delete removes the VM with this ID.
func (inv *Inventory) Delete(id string) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if _, ok := inv.byID[id]; !ok {
		return fmt.Errorf("VM ID %q: %w", id, ErrNotFound)
	}
	if err := os.Remove(filepath.Join(inv.dir, id+fileSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("inventory: deleting VM %s: %w", id, err)
	}
	delete(inv.byID, id)
	inv.gen++
	inv.dropHistory(id)
	if err := inv.hook(StepRemove); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(inv.dir); err != nil {
		return fmt.Errorf("inventory: deleting VM %s: %w", id, err)
	}
	return inv.hook(StepDirFsync)
}

// Get returns the VM with this ID or, failing that, this name.
func (inv *Inventory) Get(idOrName string) (api.VMSpec, error) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	if s, ok := inv.byID[idOrName]; ok {
		return s.Clone(), nil
	}
	if s, ok := inv.byNameLocked(idOrName); ok {
		return s.Clone(), nil
	}
	return api.VMSpec{}, fmt.Errorf("VM %q: %w", idOrName, ErrNotFound)
}

// List returns every VM, sorted by name.
func (inv *Inventory) List() []api.VMSpec {
	out, _ := inv.ListGen()
	return out
}

// Snapshot is ListGen without the copies: the slice and the specs in it
// are shared and must not be modified. It is rebuilt only after a change.
func (inv *Inventory) Snapshot() ([]api.VMSpec, uint64) {
	inv.snapMu.Lock()
	defer inv.snapMu.Unlock()
	inv.mu.RLock()
	gen := inv.gen
	inv.mu.RUnlock()
	if inv.snap != nil && inv.snapGen == gen {
		return inv.snap, gen
	}
	list, gen := inv.ListGen()
	inv.snap, inv.snapGen = list, gen
	return list, gen
}

// ListGen is List with the inventory's generation, a number that changes
// with every change to the inventory.
func (inv *Inventory) ListGen() ([]api.VMSpec, uint64) {
	inv.mu.RLock()
	out := make([]api.VMSpec, 0, len(inv.byID))
	for _, s := range inv.byID {
		out = append(out, s.Clone())
	}
	gen := inv.gen
	inv.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, gen
}

func (inv *Inventory) byNameLocked(name string) (api.VMSpec, bool) {
	for _, s := range inv.byID {
		if s.Name == name {
			return s, true
		}
	}
	return api.VMSpec{}, false
}

func (inv *Inventory) hook(step string) error {
	if inv.step == nil {
		return nil
	}
	return inv.step(step)
}

// write stores s atomically as <id>.json.
func (inv *Inventory) write(s api.VMSpec) error {
	data, err := json.MarshalIndent(record{SchemaVersion: SchemaVersion, Spec: s}, "", "  ")
	if err != nil {
		return fmt.Errorf("inventory: encoding VM %s: %w", s.ID, err)
	}
	data = append(data, '\n')
	final := filepath.Join(inv.dir, s.ID+fileSuffix)
	err = atomicfile.WriteHooked(final, data, 0o600, inv.hook)
	if errors.Is(err, atomicfile.ErrNotDurable) {
		// The new file is in place (and what a reload would see) but maybe
		// not durable yet: keep memory equal to the disk, and say so.
		inv.byID[s.ID] = s
	}
	if err != nil {
		return fmt.Errorf("inventory: writing VM %s: %w", s.ID, err)
	}
	return nil
}
