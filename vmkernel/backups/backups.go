// Package backups keeps the records of VM backups in datastore folders
// and decides what to do with them: where a backup goes
// (FOLDER/VMID/BACKUPID/, its files and its record backup.json, written
// last: a folder without one is not a backup), which backups a folder
// holds, the chain an incremental one needs, which backups a retention
// count lets go, and when a schedule is due.
package backups

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/datastore"
)

// RecordFile is a backup's record, in its folder.
const RecordFile = "backup.json"

// MaxChain is the most backups an incremental chain holds (the full one
// included): an image chain is at most 16 long, and a restore reads it all.
const MaxChain = 15

// ErrNotFound: no such backup.
var ErrNotFound = errors.New("no such backup")

// ErrBroken: a backup's chain or files are not what its record says.
var ErrBroken = errors.New("backup broken")

// NewID is a backup ID: its time (sortable) and a random part.
func NewID(now time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Dir is where a backup goes: FOLDER/VMID/ID.
func Dir(folder, vmID, id string) string { return path.Join(folder, vmID, id) }

// VMDir is where a VM's backups go.
func VMDir(folder, vmID string) string { return path.Join(folder, vmID) }

// Save writes the backup's record into its folder (atomically: the
// backup exists from this moment).
func Save(ds datastore.Datastore, b api.Backup) error {
	full, err := ds.Resolve(path.Join(b.Path, RecordFile))
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(full, append(data, '\n'), 0o600)
}

// Forget removes the backup's record (it stops counting), then its folder.
func Forget(ds datastore.Datastore, b api.Backup) error {
	full, err := ds.Resolve(b.Path)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(full, RecordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	atomicfile.SyncDir(full)
	return os.RemoveAll(full)
}

// List reads the backups of a datastore folder (of one VM when vmID is
// set), oldest first. A folder without a valid record is left out: the
// remains of a backup that never finished.
func List(ds datastore.Datastore, folder, vmID string) ([]api.Backup, error) {
	var out []api.Backup
	root, err := ds.Resolve(folder)
	if err != nil {
		return nil, err
	}
	vms, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backups in %s:%s: %w", ds.Name, folder, err)
	}
	for _, v := range vms {
		if !v.IsDir() || !api.IsUUID(v.Name()) || vmID != "" && v.Name() != vmID {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(root, v.Name()))
		if err != nil {
			continue
		}
		for _, id := range ids {
			if b, err := read(ds, folder, v.Name(), id.Name()); err == nil {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b api.Backup) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// read reads and checks one record: it must describe the folder it is in.
func read(ds datastore.Datastore, folder, vmID, id string) (api.Backup, error) {
	dir := Dir(folder, vmID, id)
	f, _, err := ds.Open(path.Join(dir, RecordFile))
	if err != nil {
		return api.Backup{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return api.Backup{}, err
	}
	var b api.Backup
	if err := json.Unmarshal(data, &b); err != nil {
		return api.Backup{}, fmt.Errorf("%s: %w: %v", dir, ErrBroken, err)
	}
	if b.ID != id || b.VMID != vmID || b.Path != dir || b.Datastore != ds.Name {
		return api.Backup{}, fmt.Errorf("%s: %w: its record describes another backup", dir, ErrBroken)
	}
	for _, f := range b.Files() {
		if path.Dir(f.File) != dir || api.CheckRelPath(f.File) != "" {
			return api.Backup{}, fmt.Errorf("%s: %w: file %q is not in its folder", dir, ErrBroken, f.File)
		}
	}
	return b, nil
}

// Find is the backup id among list.
func Find(list []api.Backup, id string) (api.Backup, error) {
	for _, b := range list {
		if b.ID == id {
			return b, nil
		}
	}
	return api.Backup{}, fmt.Errorf("backup %q: %w", id, ErrNotFound)
}

// Chain is the backups a restore of id reads: its full backup first, id
// last.
func Chain(list []api.Backup, id string) ([]api.Backup, error) {
	var chain []api.Backup
	for id != "" {
		b, err := Find(list, id)
		if err != nil {
			if len(chain) > 0 {
				return nil, fmt.Errorf("backup %s builds on %s, which is gone: %w", chain[0].ID, id, ErrBroken)
			}
			return nil, err
		}
		chain = append([]api.Backup{b}, chain...)
		if len(chain) > MaxChain {
			return nil, fmt.Errorf("backup %s: a chain longer than %d: %w", chain[len(chain)-1].ID, MaxChain, ErrBroken)
		}
		if b.Kind == api.BackupFull {
			return chain, nil
		}
		id = b.Parent
	}
	return nil, fmt.Errorf("backup %s: an incremental backup with no parent: %w", chain[len(chain)-1].ID, ErrBroken)
}

// Expired are the backups of one VM (list, oldest first) that a retention
// of keep lets go: all but the newest keep and those they build on. keep
// 0 keeps all.
func Expired(list []api.Backup, keep int) []api.Backup {
	if keep <= 0 || len(list) <= keep {
		return nil
	}
	kept := map[string]bool{}
	for _, b := range list[len(list)-keep:] {
		chain, err := Chain(list, b.ID)
		if err != nil {
			kept[b.ID] = true
			continue
		}
		for _, c := range chain {
			kept[c.ID] = true
		}
	}
	var out []api.Backup
	for i := len(list) - 1; i >= 0; i-- { // newest first: dependents before their parents
		if !kept[list[i].ID] {
			out = append(out, list[i])
		}
	}
	return out
}

// Due reports whether a backup is due under schedule when the last one
// was taken at last (zero: never).
func Due(schedule string, last, now time.Time) bool {
	every, daily, err := api.ParseSchedule(schedule)
	if err != nil {
		return false
	}
	if last.IsZero() {
		return true
	}
	if every > 0 {
		return !now.Before(last.Add(every))
	}
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), daily/60, daily%60, 0, 0, time.UTC)
	if now.Before(today) {
		today = today.AddDate(0, 0, -1)
	}
	return last.Before(today)
}
