package datastore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/diskimage"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// A file's format is established once, from its content, when it enters a
// datastore (upload, create, convert) or, for a file that came another way,
// at its first use; it is kept in an extended attribute of the file's
// inode, which only root can read or set (the trusted namespace), so
// neither a guest nor an unprivileged QEMU can change it. Every later use
// opens the file as that format, whatever its first bytes say by then (a
// guest may write a qcow2 header into its raw disk).
const (
	xattrFormat = "trusted.plinth.format"
	// xattrBacking records the backing image Plinth itself wrote into a
	// qcow2 header it made (overlays: snapshots, linked clones), as JSON
	// {"name": as written in the header, "path": datastore-relative}.
	xattrBacking = "trusted.plinth.backing"
	// maxChain bounds a backing chain's length.
	maxChain = 16
)

// ErrRefused: an image whose header names another file Plinth did not
// make, or that cannot be used as asked (encrypted, an unsupported format,
// a format other than the one it is used as). The API answers 422.
var ErrRefused = errors.New("image refused")

// RefusedError says why an image was refused.
type RefusedError struct {
	Datastore, Path string
	Reason          string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("image %s:%s: %s", e.Datastore, e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func (d Datastore) refused(rel, format string, a ...any) error {
	return &RefusedError{Datastore: d.Name, Path: rel, Reason: fmt.Sprintf(format, a...)}
}

// Image is a datastore file opened as a disk image: its format established
// and checked, its backing chain (only one Plinth made, in this datastore)
// opened too. The files stay open while the Image is: they are what QEMU
// and qemu-img are given, so a name swapped meanwhile changes nothing.
type Image struct {
	Datastore string
	// Path is datastore-relative.
	Path   string
	Format string
	Header diskimage.Header
	// File is the open image, read-write when Writable.
	File     *os.File
	Writable bool
	// Backing is the next image of the chain (read-only), nil for none.
	Backing *Image
	// Size is the file's size in bytes; Allocated the bytes it uses on disk.
	Size, Allocated int64
}

// Close closes the image and its chain.
func (im *Image) Close() error {
	var errs []error
	for i := im; i != nil; i = i.Backing {
		if i.File != nil {
			errs = append(errs, i.File.Close())
		}
	}
	return errors.Join(errs...)
}

// Chain lists the image and its backing images, top first.
func (im *Image) Chain() []*Image {
	var out []*Image
	for i := im; i != nil; i = i.Backing {
		out = append(out, i)
	}
	return out
}

// Node is the image's block graph with each file named by name(image).
func (im *Image) Node(name func(*Image) string) qemu.Node {
	n := qemu.Node{Format: driverOf(im.Format), Filename: name(im)}
	if im.Backing != nil {
		b := im.Backing.Node(name)
		n.Backing = &b
	}
	return n
}

// driverOf is QEMU's driver for a format (an ISO is raw to QEMU).
func driverOf(format string) string {
	if format == diskimage.ISO {
		return diskimage.Raw
	}
	return format
}

// IsRaw reports whether format is read by QEMU's raw driver (raw or ISO).
func IsRaw(format string) bool { return format == diskimage.Raw || format == diskimage.ISO }

// ConvertibleFormats are the formats qemu-img may read for a conversion
// (import); VMs run only on raw and qcow2.
var ConvertibleFormats = []string{diskimage.Raw, diskimage.ISO, diskimage.Qcow2, diskimage.VMDK, diskimage.VHDX, diskimage.VPC, diskimage.VDI}

// CheckFormat refuses an image whose format is not one of allowed.
func (im *Image) CheckFormat(use string, allowed ...string) error {
	if slices.Contains(allowed, im.Format) {
		return nil
	}
	return &RefusedError{Datastore: im.Datastore, Path: im.Path,
		Reason: fmt.Sprintf("it is a %s image; %s takes %s", im.Format, use, strings.Join(allowed, ", "))}
}

// OpenImage opens the file rel as a disk image, read-write when write (its
// backing images always read-only). Its format is the one recorded when it
// entered the datastore, established from its content now if it has none.
// The header is read again as that format; an image that names another
// file (backing, data file, extent, parent) is refused with a
// *RefusedError naming it, unless it is a backing image Plinth itself made
// in this datastore, which is then checked the same way. Encrypted images
// are refused too.
func (d Datastore) OpenImage(rel string, write bool) (*Image, error) {
	return d.openImage(rel, write, 0, nil)
}

func (d Datastore) openImage(rel string, write bool, depth int, seen []fileID) (_ *Image, err error) {
	f, fi, err := d.openFile(rel, write)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	id := idOf(fi)
	if slices.Contains(seen, id) {
		return nil, d.refused(rel, "its backing chain loops back to itself")
	}
	format, err := d.establish(f, fi, rel)
	if err != nil {
		return nil, err
	}
	h, err := diskimage.InspectAs(f, fi.Size(), format)
	if errors.Is(err, diskimage.ErrNotFormat) {
		return nil, d.refused(rel, "it entered the datastore as a %s image and its content no longer is one (%v)", format, err)
	}
	if err != nil {
		return nil, d.refused(rel, "%v", err)
	}
	im := &Image{Datastore: d.Name, Path: rel, Format: format, Header: h, File: f, Writable: write, Size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		im.Allocated = st.Blocks * 512
	}
	if h.Encrypted {
		return nil, d.refused(rel, "it is encrypted; Plinth does not keep image secrets")
	}
	for _, ref := range h.Refs {
		if ref.Kind == diskimage.RefBacking && format == diskimage.Qcow2 {
			backing, ok := d.madeBacking(f, rel, ref)
			if ok {
				if depth+1 >= maxChain {
					return nil, d.refused(rel, "its backing chain is longer than %d images", maxChain)
				}
				b, err := d.openImage(backing, false, depth+1, append(seen, id))
				if err != nil {
					return nil, fmt.Errorf("backing image of %s:%s: %w", d.Name, rel, err)
				}
				im.Backing = b
				continue
			}
		}
		return nil, d.refused(rel, "its header names the %s; only backing images Plinth made in the same datastore are followed", ref)
	}
	return im, nil
}

// backingRecord is what xattrBacking holds.
type backingRecord struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// madeBacking returns the datastore path of ref when it is the backing
// image Plinth wrote into f's header: recorded on f, the same name as the
// header's, in this datastore, in the format QEMU is told.
func (d Datastore) madeBacking(f *os.File, rel string, ref diskimage.Ref) (string, bool) {
	b, err := getXattr(f, xattrBacking)
	if err != nil || b == nil {
		return "", false
	}
	var rec backingRecord
	if json.Unmarshal(b, &rec) != nil || rec.Name != ref.Name || api.CheckRelPath(rec.Path) != "" {
		return "", false
	}
	// The name in the header resolves, from the image's directory, to the
	// recorded path: what QEMU would have opened is what Plinth opens.
	if path.Join(path.Dir(rel), rec.Name) != rec.Path || path.IsAbs(rec.Name) {
		return "", false
	}
	if ref.Format != diskimage.Qcow2 && ref.Format != diskimage.Raw {
		return "", false
	}
	return rec.Path, true
}

// fileID identifies a file (device and inode).
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{uint64(st.Dev), st.Ino}
	}
	return fileID{}
}

// openFile opens rel beneath the datastore's root: the kernel refuses any
// step (a symlink, "..") that would leave it, so a name swapped between a
// check and the open cannot lead out. Only regular files are opened.
func (d Datastore) openFile(rel string, write bool) (*os.File, fs.FileInfo, error) {
	if msg := api.CheckRelPath(rel); msg != "" {
		return nil, nil, fmt.Errorf("datastore %s: path %q: %s: %w", d.Name, rel, msg, ErrEscapes)
	}
	root, err := os.Open(d.Root)
	if err != nil {
		return nil, nil, fmt.Errorf("datastore %s: root: %w", d.Name, err)
	}
	defer root.Close()
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil, fmt.Errorf("datastore %s: %q: %w", d.Name, rel, ErrNotFound)
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return nil, nil, fmt.Errorf("datastore %s: path %q leads out of the datastore: %w", d.Name, rel, ErrEscapes)
	case err != nil:
		return nil, nil, fmt.Errorf("datastore %s: opening %q: %w", d.Name, rel, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Root, rel))
	// O_NONBLOCK kept a FIFO from blocking the open; clear it for a file.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
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

// establish returns the format recorded on f, recording it from f's
// content first when there is none.
func (d Datastore) establish(f *os.File, fi fs.FileInfo, rel string) (string, error) {
	b, err := getXattr(f, xattrFormat)
	if err != nil {
		return "", fmt.Errorf("datastore %s: %q: reading its recorded format: %w", d.Name, rel, err)
	}
	if b != nil {
		return string(b), nil
	}
	h, err := diskimage.Inspect(f, fi.Size())
	format := h.Format
	if err != nil {
		// A header that starts like a format but does not hold together
		// is still that format: recorded, and refused at every use.
		format = diskimage.Detect(f, fi.Size())
	}
	if err := Record(f, format); err != nil {
		return "", fmt.Errorf("datastore %s: %q: %w", d.Name, rel, err)
	}
	return format, nil
}

// Record records format as the format of the open file f (see OpenImage),
// and gives the file to root and the image group (mode 0660), so that
// qemu-img, running as the image user, can use it when handed it.
func Record(f *os.File, format string) error {
	if err := unix.Fsetxattr(int(f.Fd()), xattrFormat, []byte(format), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("recording the image format: the file system keeps no extended attributes (%w); datastores must be ext4 or xfs", err)
		}
		return fmt.Errorf("recording the image format: %w", err)
	}
	return share(f)
}

// recordBacking records that Plinth wrote name (backing path rel) into
// f's header.
func recordBacking(f *os.File, name, rel string) error {
	b, _ := json.Marshal(backingRecord{Name: name, Path: rel})
	if err := unix.Fsetxattr(int(f.Fd()), xattrBacking, b, 0); err != nil {
		return fmt.Errorf("recording the backing image: %w", err)
	}
	return nil
}

// share gives f to root and the image group, mode 0660 (when running as
// root; an unprivileged vmkernel runs qemu-img as itself).
func share(f *os.File) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || st.Gid != api.ImageGID) {
		if err := f.Chown(0, api.ImageGID); err != nil {
			return fmt.Errorf("giving the file to the image group: %w", err)
		}
	}
	if fi.Mode().Perm() != 0o660 {
		if err := f.Chmod(0o660); err != nil {
			return fmt.Errorf("file mode: %w", err)
		}
	}
	return nil
}

// getXattr reads an extended attribute of f; nil, nil when it has none.
func getXattr(f *os.File, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(int(f.Fd()), name, buf)
		switch {
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 64<<10:
			buf = make([]byte, 4*len(buf))
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}
