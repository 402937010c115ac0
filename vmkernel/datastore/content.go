package datastore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// ErrShortBody: an upload ended before its announced size.
var ErrShortBody = errors.New("upload ended early")

// WriteFile stores exactly size bytes of r as the file rel, creating
// missing parent directories. The bytes go to a temp file (named with
// atomicfile.TempPrefix) in the same directory, which is fsynced and
// renamed into place, then the directory fsynced; an upload that fails or
// ends early leaves nothing behind (not even the directories it made). An
// existing file is refused with ErrExists unless overwrite, and then only
// when inUse (if not nil) agrees; a directory in the way is ErrInvalid.
func (d Datastore) WriteFile(rel string, r io.Reader, size int64, overwrite bool, inUse func(rel string) error) (_ api.DatastoreEntry, err error) {
	full, err := d.Resolve(rel)
	if err != nil {
		return api.DatastoreEntry{}, err
	}
	if err := d.checkTarget(rel, full, overwrite, inUse); err != nil {
		return api.DatastoreEntry{}, err
	}
	dir := filepath.Dir(full)
	var made string // the topmost directory made here: removed on failure
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		made = p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: directory of %q: %w", d.Name, rel, err)
	}
	defer func() {
		if err != nil && made != "" {
			os.RemoveAll(made)
		}
	}()
	// The directories just made could have been swapped for symlinks.
	if _, err := d.Resolve(rel); err != nil {
		return api.DatastoreEntry{}, err
	}
	f, err := os.CreateTemp(dir, atomicfile.TempPrefix+filepath.Base(full)+"-*")
	if err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: after %d of %d bytes: %w", d.Name, rel, n, size, err)
	}
	if n < size {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %d of %d bytes: %w", d.Name, rel, n, size, ErrShortBody)
	}
	if err := f.Chmod(0o644); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if err := f.Sync(); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: sync: %w", d.Name, rel, err)
	}
	if err := f.Close(); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	// Checked again: the upload took time, and a VM may have started on
	// the file or another upload taken the name.
	if err := d.checkTarget(rel, full, overwrite, inUse); err != nil {
		return api.DatastoreEntry{}, err
	}
	if overwrite {
		err = os.Rename(tmp, full)
	} else {
		// A link never replaces a file that appeared meanwhile.
		if err = os.Link(tmp, full); errors.Is(err, fs.ErrExist) {
			return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrExists)
		}
		if err == nil {
			os.Remove(tmp)
		}
	}
	if err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: sync directory: %w", d.Name, rel, err)
	}
	return api.DatastoreEntry{Name: filepath.Base(full), Path: path.Clean(rel), Kind: api.EntryFile,
		SizeBytes: size, Format: formatOf(full)}, nil
}

// checkTarget refuses writing the file at full unless it is absent, or a
// file and overwrite is set and inUse agrees.
func (d Datastore) checkTarget(rel, full string, overwrite bool, inUse func(string) error) error {
	fi, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	case fi.IsDir():
		return fmt.Errorf("datastore %s: %q is a directory: %w", d.Name, rel, ErrInvalid)
	case !overwrite:
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrExists)
	}
	if inUse != nil {
		if err := inUse(rel); err != nil {
			return fmt.Errorf("datastore %s: %w", d.Name, err)
		}
	}
	return nil
}

// Open opens the file rel for reading; a directory (or anything but a
// regular file) gives ErrInvalid, a missing one ErrNotFound.
func (d Datastore) Open(rel string) (*os.File, fs.FileInfo, error) {
	full, err := d.Resolve(rel)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		kind := "not a file"
		if fi.IsDir() {
			kind = "a directory"
		}
		return nil, nil, fmt.Errorf("datastore %s: %q is %s: %w", d.Name, rel, kind, ErrInvalid)
	}
	return f, fi, nil
}
