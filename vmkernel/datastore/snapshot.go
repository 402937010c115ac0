package datastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/vmkernel/diskimage"
)

// Internal snapshots and dirty bitmaps of a qcow2 image, offline (the
// image no QEMU has open: a stopped VM's), through qemu-img; a running
// VM's are QEMU's business over QMP. Tags and bitmap names are Plinth's
// own (letters, digits, '-', '_'), never a user's text.

// checkTag refuses a tag or bitmap name that is not Plinth's form.
func checkTag(tag string) error {
	if tag == "" || len(tag) > 64 || tag[0] == '-' || strings.ContainsFunc(tag, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return fmt.Errorf("snapshot or bitmap name %q: %w", tag, ErrInvalid)
	}
	return nil
}

// ImageState is what a qcow2 image holds besides its data.
type ImageState struct {
	// Snapshots are the internal snapshots' names (tags) and the size of
	// the VM state each keeps.
	Snapshots map[string]int64
	// Bitmaps are the persistent dirty bitmaps, true for one left
	// inconsistent (in use when its QEMU stopped uncleanly).
	Bitmaps map[string]bool
	// ActualSize is the bytes the image takes on disk.
	ActualSize int64
}

// State reads the qcow2 image rel's internal snapshots and bitmaps (it may
// be open in a running QEMU: the answer is then as of its last flush).
func (d Datastore) State(ctx context.Context, rel string) (ImageState, error) {
	im, err := d.OpenImage(rel, false)
	if err != nil {
		return ImageState{}, err
	}
	defer im.Close()
	if err := im.CheckFormat("snapshots", diskimage.Qcow2); err != nil {
		return ImageState{}, err
	}
	r := &imgRun{}
	spec, err := r.spec(im, false)
	if err != nil {
		return ImageState{}, err
	}
	out, err := d.run(ctx, r, "info", "-U", "--output=json", spec)
	if err != nil {
		return ImageState{}, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	var qi struct {
		ActualSize int64 `json:"actual-size"`
		Snapshots  []struct {
			Name    string `json:"name"`
			VMState int64  `json:"vm-state-size"`
		} `json:"snapshots"`
		FormatSpecific struct {
			Data struct {
				Bitmaps []struct {
					Name  string   `json:"name"`
					Flags []string `json:"flags"`
				} `json:"bitmaps"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &qi); err != nil {
		return ImageState{}, fmt.Errorf("datastore %s: %q: qemu-img info answer: %w", d.Name, rel, err)
	}
	st := ImageState{Snapshots: map[string]int64{}, Bitmaps: map[string]bool{}, ActualSize: qi.ActualSize}
	for _, s := range qi.Snapshots {
		st.Snapshots[s.Name] = s.VMState
	}
	for _, b := range qi.FormatSpecific.Data.Bitmaps {
		st.Bitmaps[b.Name] = strings.Contains(strings.Join(b.Flags, ","), "in-use")
	}
	return st, nil
}

// Snapshot operations of qemu-img.
const (
	SnapshotCreate = "-c"
	SnapshotApply  = "-a"
	SnapshotDelete = "-d"
)

// Snapshot creates, applies (the image's data becomes the snapshot's) or
// deletes the internal snapshot tag of the qcow2 image rel, which no QEMU
// may have open. Deleting a tag the image lacks is not an error.
func (d Datastore) Snapshot(ctx context.Context, rel, op, tag string) error {
	if op != SnapshotCreate && op != SnapshotApply && op != SnapshotDelete {
		return fmt.Errorf("snapshot operation %q: %w", op, ErrInvalid)
	}
	if err := checkTag(tag); err != nil {
		return err
	}
	if op == SnapshotDelete {
		st, err := d.State(ctx, rel)
		if err != nil {
			return err
		}
		if _, ok := st.Snapshots[tag]; !ok {
			return nil
		}
	}
	return d.imgWrite(ctx, rel, "snapshot", op, tag)
}

// Bitmap adds (--add) or removes (--remove) the persistent dirty bitmap
// name of the qcow2 image rel, which no QEMU may have open. Removing one
// the image lacks is not an error.
func (d Datastore) Bitmap(ctx context.Context, rel, op, name string) error {
	if op != "--add" && op != "--remove" {
		return fmt.Errorf("bitmap operation %q: %w", op, ErrInvalid)
	}
	if err := checkTag(name); err != nil {
		return err
	}
	if op == "--remove" {
		st, err := d.State(ctx, rel)
		if err != nil {
			return err
		}
		if _, ok := st.Bitmaps[name]; !ok {
			return nil
		}
	}
	return d.imgWrite(ctx, rel, "bitmap", op, name)
}

// imgWrite runs `qemu-img CMD OP ARG IMAGE` on the qcow2 image rel opened
// read-write (its backing chain, if any, read-only).
func (d Datastore) imgWrite(ctx context.Context, rel, cmd, op, arg string) error {
	im, err := d.OpenImage(rel, true)
	if err != nil {
		return err
	}
	defer im.Close()
	if err := im.CheckFormat(cmd+"s", diskimage.Qcow2); err != nil {
		return err
	}
	r := &imgRun{}
	spec, err := r.spec(im, true)
	if err != nil {
		return err
	}
	args := []string{cmd, op, arg, spec}
	if cmd == "bitmap" { // qemu-img bitmap takes the image before the bitmap
		args = []string{cmd, op, spec, arg}
	}
	if _, err := d.run(ctx, r, args...); err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	return nil
}

// Dependents lists the images of the datastore whose recorded backing
// image (an overlay Plinth made: a linked clone, an incremental backup)
// is rel, by path.
func (d Datastore) Dependents(rel string) ([]string, error) {
	root, err := d.resolve("")
	if err != nil {
		return nil, err
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return nil
		}
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, xattrBacking, buf)
		if err != nil {
			return nil
		}
		var rec backingRecord
		if json.Unmarshal(buf[:n], &rec) == nil && rec.Path == rel {
			r, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("datastore %s: looking for images on %q: %w", d.Name, rel, err)
	}
	return out, nil
}

// Checksum is the SHA-256 of the file rel (hexadecimal) and its size.
func (d Datastore) Checksum(rel string) (string, int64, error) {
	f, _, err := d.openFile(rel, false)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("datastore %s: reading %q: %w", d.Name, rel, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Rename moves the file rel to the new name to (in the same datastore,
// creating its directories), replacing what is there: for putting a
// finished file (a restored disk) in place in one step. An overlay stays
// in its directory (the backing name in its header is relative to it).
func (d Datastore) Rename(rel, to string) error {
	from, err := d.Resolve(rel)
	if err != nil {
		return err
	}
	if n, err := unix.Lgetxattr(from, xattrBacking, make([]byte, 4096)); err == nil && n > 0 && filepath.Dir(rel) != filepath.Dir(to) {
		return fmt.Errorf("datastore %s: %q is an overlay; it cannot leave its directory: %w", d.Name, rel, ErrInvalid)
	}
	dst, err := d.Resolve(to)
	if err != nil {
		return err
	}
	if _, err := d.mkdirs(to, dst); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("datastore %s: %q is not a file: %w", d.Name, to, ErrInvalid)
	}
	if err := os.Rename(from, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrNotFound)
		}
		return fmt.Errorf("datastore %s: %w", d.Name, err)
	}
	return nil
}
