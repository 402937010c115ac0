// Package snapshots keeps the tree of each VM's snapshots: one JSON file
// per VM, written atomically, naming each snapshot (its tag inside the
// VM's qcow2 images, its name, description, time, parent, whether it kept
// memory, the VM's definition then) and the one the VM's present state
// came from.
//
// The snapshots themselves are qcow2 internal snapshots (see
// docs/SNAPSHOTS.md for why): QEMU or qemu-img writes them into each image.
// A snapshot is entered here as pending before any image is touched and
// marked done only once every image holds it, so a vmkernel killed half-way
// leaves a pending entry, never a half-made snapshot counted as one;
// Pending lists them for clean-up (their tags removed from the images
// where present, then the entry).
package snapshots

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("no such snapshot")
	ErrExists   = errors.New("a snapshot of that name exists")
	ErrFull     = errors.New("too many snapshots")
)

// Pending operations.
const (
	// Creating: the tag may be in some of the images; clean-up removes it.
	Creating = "creating"
	// Deleting: the tag may still be in some of the images; clean-up
	// removes it, then the entry.
	Deleting = "deleting"
)

// Entry is one snapshot as kept: the API's view plus its state here.
type Entry struct {
	api.Snapshot
	// Pending is "" for a complete snapshot, else the operation under way.
	Pending string `json:"pending,omitempty"`
}

// Tree is one VM's snapshots.
type Tree struct {
	Entries []Entry `json:"entries"`
	Current string  `json:"current,omitempty"`
}

// Store keeps the trees, one file per VM in a directory.
type Store struct{ dir string }

// Open makes the directory if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(vmID string) string { return filepath.Join(s.dir, vmID+".json") }

// Load reads the VM's tree (empty when it has none).
func (s *Store) Load(vmID string) (Tree, error) {
	if !api.IsUUID(vmID) {
		return Tree{}, fmt.Errorf("snapshots: VM ID %q is not a UUID", vmID)
	}
	b, err := os.ReadFile(s.path(vmID))
	if errors.Is(err, fs.ErrNotExist) {
		return Tree{}, nil
	}
	if err != nil {
		return Tree{}, fmt.Errorf("snapshots of VM %s: %w", vmID, err)
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return Tree{}, fmt.Errorf("snapshots of VM %s: corrupt: %w", vmID, err)
	}
	return t, nil
}

// Save writes the VM's tree atomically (an empty tree removes the file).
func (s *Store) Save(vmID string, t Tree) error {
	if len(t.Entries) == 0 {
		if err := os.Remove(s.path(vmID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshots of VM %s: %w", vmID, err)
		}
		return atomicfile.SyncDir(s.dir)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path(vmID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("snapshots of VM %s: %w", vmID, err)
	}
	return nil
}

// Delete forgets the VM's tree.
func (s *Store) Delete(vmID string) error { return s.Save(vmID, Tree{}) }

// API is the tree as the API shows it: complete snapshots only, oldest first.
func (t Tree) API() api.SnapshotTree {
	out := api.SnapshotTree{Snapshots: []api.Snapshot{}, Current: t.Current}
	for _, e := range t.Entries {
		if e.Pending == "" {
			out.Snapshots = append(out.Snapshots, e.Snapshot)
		}
	}
	return out
}

// Find is the complete snapshot named ref (its ID or its name).
func (t Tree) Find(ref string) (api.Snapshot, error) {
	for _, e := range t.Entries {
		if e.Pending == "" && (e.ID == ref || e.Name == ref) {
			return e.Snapshot, nil
		}
	}
	return api.Snapshot{}, fmt.Errorf("snapshot %q: %w", ref, ErrNotFound)
}

// Pending lists the entries of operations that did not finish.
func (t Tree) Pending() []Entry {
	var out []Entry
	for _, e := range t.Entries {
		if e.Pending != "" {
			out = append(out, e)
		}
	}
	return out
}

// Add enters a new snapshot as pending (Creating), a child of Current,
// with a fresh ID (its tag in the images). A name in use, or the tree at
// its limit, is refused.
func (t *Tree) Add(s api.Snapshot) (api.Snapshot, error) {
	n := 0
	for _, e := range t.Entries {
		if e.Name == s.Name {
			return api.Snapshot{}, fmt.Errorf("snapshot %q: %w", s.Name, ErrExists)
		}
		n++
	}
	if n >= api.MaxSnapshots {
		return api.Snapshot{}, fmt.Errorf("%d snapshots, at most %d: delete one first: %w", n, api.MaxSnapshots, ErrFull)
	}
	s.ID = NewTag()
	s.Parent = t.Current
	t.Entries = append(t.Entries, Entry{Snapshot: s, Pending: Creating})
	return s, nil
}

// Done marks the snapshot complete and the VM's state as coming from it.
func (t *Tree) Done(id string) {
	for i := range t.Entries {
		if t.Entries[i].ID == id {
			t.Entries[i].Pending = ""
			t.Current = id
		}
	}
}

// MarkDeleting marks the snapshot as being deleted: it no longer counts.
func (t *Tree) MarkDeleting(id string) {
	for i := range t.Entries {
		if t.Entries[i].ID == id {
			t.Entries[i].Pending = Deleting
		}
	}
}

// Remove drops the entry id: its children become children of its
// parent, and Current moves to its parent if it was the one.
func (t *Tree) Remove(id string) {
	i := slices.IndexFunc(t.Entries, func(e Entry) bool { return e.ID == id })
	if i < 0 {
		return
	}
	parent := t.Entries[i].Parent
	t.Entries = slices.Delete(t.Entries, i, i+1)
	for j := range t.Entries {
		if t.Entries[j].Parent == id {
			t.Entries[j].Parent = parent
		}
	}
	if t.Current == id {
		t.Current = parent
	}
}

// Depth is the number of snapshots from id up to its root, itself included.
func (t Tree) Depth(id string) int {
	n := 0
	for id != "" && n <= len(t.Entries) {
		i := slices.IndexFunc(t.Entries, func(e Entry) bool { return e.ID == id })
		if i < 0 {
			break
		}
		n++
		id = t.Entries[i].Parent
	}
	return n
}

// NewTag is a fresh snapshot ID: 16 hexadecimal digits, also its tag in
// the images (a qcow2 snapshot's name).
func NewTag() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// IsTag reports whether s has a tag's form (what this package makes).
func IsTag(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
