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
	"github.com/plinth/plinth/vmkernel/diskimage"
)

// ErrShortBody: an upload ended before its announced size.
var ErrShortBody = errors.New("upload ended early")

// WriteFile stores exactly size bytes of r as the file rel, creating
// missing parent directories, and records its format as established from
// its content (see OpenImage): an image whose header names another file
// is refused with a *RefusedError. The bytes go to a temp file (named with
// atomicfile.TempPrefix) in the same directory, which is fsynced and
// renamed into place, then the directory fsynced; an upload that fails or
// ends early leaves nothing behind (not even the directories it made). An
// existing file is refused with ErrExists unless overwrite, and then only
// when inUse (if not nil) agrees; a directory in the way is ErrInvalid.
func (d Datastore) WriteFile(rel string, r io.Reader, size int64, overwrite bool, inUse func(rel string) error) (_ api.DatastoreEntry, err error) {
	return d.WriteFileChecked(rel, r, size, overwrite, inUse, nil)
}

// WriteFileChecked is WriteFile with a last word: check (when not nil) is
// called once every byte is written and synced, before the file takes its
// name, and an error from it (a checksum that does not match) leaves
// nothing behind.
func (d Datastore) WriteFileChecked(rel string, r io.Reader, size int64, overwrite bool, inUse func(rel string) error, check func() error) (_ api.DatastoreEntry, err error) {
	full, err := d.Resolve(rel)
	if err != nil {
		return api.DatastoreEntry{}, err
	}
	if err := d.checkTarget(rel, full, overwrite, inUse); err != nil {
		return api.DatastoreEntry{}, err
	}
	dir := filepath.Dir(full)
	made, err := d.mkdirs(rel, full)
	if err != nil {
		return api.DatastoreEntry{}, err
	}
	defer func() {
		if err != nil && made != "" {
			os.RemoveAll(made)
		}
	}()
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
	// The file's format, from its content, is established now; an image
	// naming another file is refused at the door.
	h, err := diskimage.Inspect(f, size)
	if err != nil {
		return api.DatastoreEntry{}, d.refused(rel, "%v", err)
	}
	for _, ref := range h.Refs {
		return api.DatastoreEntry{}, d.refused(rel, "its header names the %s; an uploaded image must be self-contained", ref)
	}
	if err := Record(f, h.Format); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if err := f.Sync(); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: sync: %w", d.Name, rel, err)
	}
	if err := f.Close(); err != nil {
		return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if check != nil {
		if err := check(); err != nil {
			return api.DatastoreEntry{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
		}
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
		SizeBytes: size, Format: h.Format}, nil
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
// regular file) gives ErrInvalid, a missing one ErrNotFound, a path that
// leads out of the datastore ErrEscapes.
func (d Datastore) Open(rel string) (*os.File, fs.FileInfo, error) {
	return d.openFile(rel, false)
}

// WriteNew makes the new file rel (refused if it exists) from what fill
// writes, under a temporary name in its directory until fill is done and
// the file synced, then linked into place; its format is established from
// its content as for an upload. A fill that fails leaves nothing behind.
func (d Datastore) WriteNew(rel string, fill func(f *os.File) error) (err error) {
	full, err := d.Resolve(rel)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(full); err == nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrExists)
	}
	made, err := d.mkdirs(rel, full)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && made != "" {
			os.RemoveAll(made)
		}
	}()
	f, err := os.CreateTemp(filepath.Dir(full), atomicfile.TempPrefix+filepath.Base(full)+"-*")
	if err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := diskimage.Inspect(f, fi.Size())
	if err != nil {
		return d.refused(rel, "%v", err)
	}
	if err := Record(f, h.Format); err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("datastore %s: %q: sync: %w", d.Name, rel, err)
	}
	if err := os.Link(tmp, full); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrExists)
		}
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	os.Remove(tmp)
	return atomicfile.SyncDir(filepath.Dir(full))
}
