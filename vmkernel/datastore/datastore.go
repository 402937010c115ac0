// Package datastore is a datastore: a directory that holds VM disks and ISO
// files. It resolves datastore-relative paths without letting them leave the
// root (also through symlinks), reports the space, lists directories, and
// creates, grows, inspects and deletes disk images with qemu-img.
package datastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/diskimage"
)

// Errors callers test with errors.Is; the API maps them to statuses.
var (
	// ErrEscapes: a path that is malformed or would leave the datastore.
	ErrEscapes = errors.New("path escapes its datastore")
	// ErrExists: the file to create is already there.
	ErrExists = errors.New("file exists")
	// ErrNotFound: no such datastore or file.
	ErrNotFound = errors.New("not found")
	// ErrInUse: a VM uses the file.
	ErrInUse = errors.New("file in use")
	// ErrShrink: a resize that would make a disk smaller.
	ErrShrink = errors.New("disks can only grow")
	// ErrInvalid: a bad format, size or kind of file for the operation.
	ErrInvalid = errors.New("invalid request")
)

// Datastore is a named directory of disks and ISO files.
type Datastore struct {
	Name string
	// Root is the datastore's absolute directory.
	Root string
	// QEMUImg is the qemu-img binary; empty means "qemu-img" on PATH.
	QEMUImg string
}

// Resolve maps a datastore-relative path to an absolute one. It refuses
// paths that are not clean and relative (api.CheckRelPath), and paths whose
// nearest existing ancestor (the file itself when it exists) resolves,
// through symlinks, outside the root.
func (d Datastore) Resolve(rel string) (string, error) {
	if msg := api.CheckRelPath(rel); msg != "" {
		return "", fmt.Errorf("datastore %s: path %q: %s: %w", d.Name, rel, msg, ErrEscapes)
	}
	return d.resolve(rel)
}

// resolve is Resolve without the syntax check ("" is the root).
func (d Datastore) resolve(rel string) (string, error) {
	if !filepath.IsAbs(d.Root) {
		return "", fmt.Errorf("datastore %s: root %q is not absolute", d.Name, d.Root)
	}
	root := filepath.Clean(d.Root)
	full, err := Join(root, rel)
	if err != nil {
		return "", fmt.Errorf("datastore %s: %w", d.Name, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("datastore %s: root: %w", d.Name, err)
	}
	// The nearest existing ancestor decides where the path really lands.
	for p := full; ; p = filepath.Dir(p) {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			if !inside(realRoot, real) {
				return "", fmt.Errorf("datastore %s: path %q leads to %s through a symlink: %w", d.Name, rel, real, ErrEscapes)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("datastore %s: path %q: %w", d.Name, rel, err)
		}
		if p == root {
			return "", fmt.Errorf("datastore %s: root: %w", d.Name, err)
		}
	}
	return full, nil
}

// Join is the lexical half of Resolve, for callers that may not touch the
// disk (QEMU's command-line builder): root joined with rel, refused with
// ErrEscapes when the result is not root or below it.
func Join(root, rel string) (string, error) {
	root = filepath.Clean(root)
	full := filepath.Join(root, filepath.FromSlash(rel))
	if !inside(root, full) {
		return "", fmt.Errorf("path %q: %w", rel, ErrEscapes)
	}
	return full, nil
}

// inside reports whether p is root or below it (both clean and absolute).
func inside(root, p string) bool {
	r, err := filepath.Rel(root, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, "../") && !filepath.IsAbs(r)
}

// Info reports the datastore's name, root and space.
func (d Datastore) Info() (api.Datastore, error) {
	info := api.Datastore{Name: d.Name, Root: d.Root}
	var st unix.Statfs_t
	if err := unix.Statfs(d.Root, &st); err != nil {
		return info, fmt.Errorf("datastore %s: statfs %s: %w", d.Name, d.Root, err)
	}
	info.CapacityBytes = st.Blocks * uint64(st.Bsize)
	info.FreeBytes = st.Bavail * uint64(st.Bsize)
	return info, nil
}

// Browse lists the directory rel ("" for the root), sorted by name.
func (d Datastore) Browse(rel string) ([]api.DatastoreEntry, error) {
	var dir string
	var err error
	if rel == "" {
		dir, err = d.resolve("")
	} else {
		dir, err = d.Resolve(rel)
	}
	if err != nil {
		return nil, err
	}
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datastore %s: directory %q: %w", d.Name, rel, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("datastore %s: listing %q: %w", d.Name, rel, err)
	}
	out := make([]api.DatastoreEntry, 0, len(des))
	for _, de := range des {
		e := api.DatastoreEntry{Name: de.Name(), Path: path.Join(rel, de.Name()), Kind: api.EntryOther}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		switch {
		case fi.IsDir():
			e.Kind = api.EntryDir
		case fi.Mode().IsRegular():
			e.Kind, e.SizeBytes, e.Format = api.EntryFile, fi.Size(), recordedFormat(filepath.Join(dir, de.Name()))
		}
		out = append(out, e)
	}
	return out, nil
}

// recordedFormat is the format recorded for the file at full (see
// OpenImage), "" when none is yet.
func recordedFormat(full string) string {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(full, xattrFormat, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// CreateDisk makes a new disk image of size bytes with qemu-img, creating
// missing parent directories, and records its format. It refuses an
// existing file and, when it fails, removes the file and directories it
// made.
func (d Datastore) CreateDisk(ctx context.Context, rel, format string, size int64) (err error) {
	if format == "" {
		format = api.FormatQcow2
	}
	if format != api.FormatQcow2 && format != api.FormatRaw {
		return fmt.Errorf("datastore %s: disk format %q: want qcow2 or raw: %w", d.Name, format, ErrInvalid)
	}
	if size <= 0 {
		return fmt.Errorf("datastore %s: disk size %d: must be positive: %w", d.Name, size, ErrInvalid)
	}
	return d.create(ctx, rel, func(f *os.File) error {
		r := &imgRun{}
		if _, err := d.run(ctx, r, "create", "-q", "-f", format, r.fd(f), fmt.Sprint(size)); err != nil {
			return fmt.Errorf("datastore %s: creating disk %q: %w", d.Name, rel, err)
		}
		return Record(f, format)
	})
}

// CreateOverlay makes a new qcow2 image rel whose backing image is the
// existing image backing (raw or qcow2, itself checked as OpenImage
// checks), of the same size, and records both: the overlay's format and
// the backing image Plinth wrote into its header, which is what lets
// OpenImage follow it. The backing name in the header is relative to the
// overlay's directory, so the chain stays inside the datastore.
func (d Datastore) CreateOverlay(ctx context.Context, rel, backing string) error {
	b, err := d.OpenImage(backing, false)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.CheckFormat("a backing image", diskimage.Qcow2, diskimage.Raw); err != nil {
		return err
	}
	name, err := filepath.Rel(path.Dir(rel), backing)
	if err != nil {
		return fmt.Errorf("datastore %s: overlay %q on %q: %w", d.Name, rel, backing, err)
	}
	name = filepath.ToSlash(name)
	return d.create(ctx, rel, func(f *os.File) error {
		r := &imgRun{}
		// -u: qemu-img does not open the backing image (it is given its
		// size instead); Plinth checked it above.
		if _, err := d.run(ctx, r, "create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", b.Format,
			r.fd(f), fmt.Sprint(b.Header.VirtualSize)); err != nil {
			return fmt.Errorf("datastore %s: creating overlay %q: %w", d.Name, rel, err)
		}
		if err := Record(f, diskimage.Qcow2); err != nil {
			return err
		}
		return recordBacking(f, name, backing)
	})
}

// create makes the new file rel (refusing an existing one), with missing
// parent directories, and has fill write it; on failure the file and the
// directories made are removed.
func (d Datastore) create(ctx context.Context, rel string, fill func(*os.File) error) (err error) {
	full, err := d.Resolve(rel)
	if err != nil {
		return err
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
	// O_EXCL claims the name, so an existing file is never overwritten.
	f, err := os.OpenFile(full, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("datastore %s: creating %q: %w", d.Name, rel, err)
	}
	defer f.Close()
	defer func() {
		if err != nil {
			os.Remove(full)
		}
	}()
	if err := share(f); err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("datastore %s: %q: sync: %w", d.Name, rel, err)
	}
	return atomicfile.SyncDir(filepath.Dir(full))
}

// mkdirs makes the missing parent directories of full (root's only, mode
// 0700: nothing but vmkernel walks a datastore's directories) and returns
// the topmost one it made ("" if none), for the caller to remove on
// failure.
func (d Datastore) mkdirs(rel, full string) (string, error) {
	var made string
	for p := filepath.Dir(full); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		made = p
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return "", fmt.Errorf("datastore %s: directory of %q: %w", d.Name, rel, err)
	}
	// The directories just made could have been swapped for symlinks.
	if _, err := d.Resolve(rel); err != nil {
		if made != "" {
			os.RemoveAll(made)
		}
		return "", err
	}
	return made, nil
}

// ResizeDisk grows a raw or qcow2 disk image to size bytes; a smaller size
// is refused with ErrShrink, the same size is a no-op.
func (d Datastore) ResizeDisk(ctx context.Context, rel string, size int64) error {
	im, err := d.OpenImage(rel, true)
	if err != nil {
		return err
	}
	defer im.Close()
	if err := im.CheckFormat("resizing", diskimage.Raw, diskimage.Qcow2); err != nil {
		return err
	}
	if size < im.Header.VirtualSize {
		return fmt.Errorf("datastore %s: disk %q is %d bytes, cannot make it %d: %w", d.Name, rel, im.Header.VirtualSize, size, ErrShrink)
	}
	if size == im.Header.VirtualSize {
		return nil
	}
	r := &imgRun{}
	spec, err := r.spec(im, true)
	if err != nil {
		return err
	}
	if _, err := d.run(ctx, r, "resize", "-q", spec, fmt.Sprint(size)); err != nil {
		return fmt.Errorf("datastore %s: resizing disk %q: %w", d.Name, rel, err)
	}
	return nil
}

// DeleteFile removes a file (never a directory) after inUse (when not nil)
// agrees; inUse gets rel and returns an error wrapping ErrInUse to refuse.
func (d Datastore) DeleteFile(rel string, inUse func(rel string) error) error {
	full, err := d.Resolve(rel)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("datastore %s: %q is a directory: %w", d.Name, rel, ErrInvalid)
	}
	if inUse != nil {
		if err := inUse(rel); err != nil {
			return fmt.Errorf("datastore %s: %w", d.Name, err)
		}
	}
	if err := os.Remove(full); err != nil {
		return fmt.Errorf("datastore %s: deleting %q: %w", d.Name, rel, err)
	}
	return nil
}

// DiskInfo opens a disk image as OpenImage does (refusing one that names
// a file Plinth did not make) and asks qemu-img about it; it also works on
// the disk of a running VM (the image lock is shared).
func (d Datastore) DiskInfo(ctx context.Context, rel string) (api.DiskInfo, error) {
	im, err := d.OpenImage(rel, false)
	if err != nil {
		return api.DiskInfo{}, err
	}
	defer im.Close()
	if err := im.CheckFormat("qemu-img", ConvertibleFormats...); err != nil {
		return api.DiskInfo{}, err
	}
	r := &imgRun{}
	spec, err := r.spec(im, false)
	if err != nil {
		return api.DiskInfo{}, err
	}
	out, err := d.run(ctx, r, "info", "-U", "--output=json", spec)
	if err != nil {
		return api.DiskInfo{}, fmt.Errorf("datastore %s: disk %q: %w", d.Name, rel, err)
	}
	var qi struct {
		VirtualSize int64 `json:"virtual-size"`
		ActualSize  int64 `json:"actual-size"`
	}
	if err := json.Unmarshal(out, &qi); err != nil {
		return api.DiskInfo{}, fmt.Errorf("datastore %s: disk %q: qemu-img info answer: %w", d.Name, rel, err)
	}
	info := api.DiskInfo{Path: rel, Format: im.Format, VirtualSizeBytes: qi.VirtualSize, ActualSizeBytes: qi.ActualSize}
	if im.Backing != nil {
		info.BackingFile = im.Backing.Path
	}
	return info, nil
}

// Sweep removes what writes interrupted by a crash left behind: files
// whose names start with atomicfile.TempPrefix (uploads, conversions,
// imports and exports not finished), never counted as files of the
// datastore. Call it before any write can start (vmkernel does at start).
func (d Datastore) Sweep() ([]string, error) {
	root, err := d.resolve("")
	if err != nil {
		return nil, err
	}
	var removed []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil // a directory that cannot be read is left alone
		}
		if de.Type().IsRegular() && atomicfile.IsTemp(de.Name()) {
			if os.Remove(p) == nil {
				rel, _ := filepath.Rel(root, p)
				removed = append(removed, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return removed, err
}
