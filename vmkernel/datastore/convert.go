package datastore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/diskimage"
)

// ConvertDisk copies the disk image src (opened and checked as OpenImage
// does, in any format qemu-img may read: ConvertibleFormats) into a new
// image dst of format (qcow2 or raw) with `qemu-img convert`, reporting
// progress (0 to 100) as qemu-img prints it, and records dst's format. The
// copy is written under a temporary name and linked into place once
// complete, so dst never exists half-written; an existing dst is refused.
func (d Datastore) ConvertDisk(ctx context.Context, src, dst, format string, progress func(percent float64)) (err error) {
	im, err := d.OpenImage(src, false)
	if err != nil {
		return err
	}
	defer im.Close()
	if err := im.CheckFormat("conversion", ConvertibleFormats...); err != nil {
		return err
	}
	return d.CopyImage(ctx, im, dst, ConvertOptions{Format: format, Progress: progress})
}

// ConvertOptions say how CopyImage copies.
type ConvertOptions struct {
	// Format is the copy's: qcow2 (default) or raw.
	Format string
	// Snapshot copies the image as it was in this internal snapshot (its
	// name, a tag Plinth gave it) instead of as it is.
	Snapshot string
	// Progress, when set, gets the percentage done as qemu-img prints it.
	Progress func(percent float64)
}

// CopyImage is ConvertDisk of an image already opened and checked, from
// this datastore or another (a VM's state directory, another datastore):
// the whole chain is read through the descriptors im holds, into the new
// image dst of this datastore.
func (d Datastore) CopyImage(ctx context.Context, im *Image, dst string, o ConvertOptions) (err error) {
	format, progress := o.Format, o.Progress
	if format == "" {
		format = api.FormatQcow2
	}
	if format != api.FormatQcow2 && format != api.FormatRaw && format != StreamVMDK {
		return fmt.Errorf("datastore %s: disk format %q: want qcow2 or raw: %w", d.Name, format, ErrInvalid)
	}
	src := im.Datastore + ":" + im.Path
	full, err := d.Resolve(dst)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(full); err == nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, err)
	}
	made, err := d.mkdirs(dst, full)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && made != "" {
			os.RemoveAll(made)
		}
	}()
	tmp := filepath.Join(filepath.Dir(full), atomicfile.TempPrefix+filepath.Base(full))
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, err)
	}
	defer out.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := share(out); err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, err)
	}
	r := &imgRun{}
	spec, err := r.spec(im, true)
	if err != nil {
		return err
	}
	// -U: the source may be the disk of a running VM (a crash-consistent
	// copy). The target is the descriptor of the temporary file, which
	// qemu-img formats in place.
	args := []string{"convert", "-p", "-U", "-O", format}
	recorded := format
	if format == StreamVMDK { // for an OVA export
		args = []string{"convert", "-p", "-U", "-O", "vmdk", "-o", "subformat=streamOptimized"}
		recorded = diskimage.VMDK
	}
	if o.Snapshot != "" {
		if err := checkTag(o.Snapshot); err != nil {
			return err
		}
		args = append(args, "-l", "snapshot.name="+o.Snapshot)
	}
	cmd := d.command(ctx, r, append(args, spec, r.fd(out))...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 8 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("datastore %s: qemu-img convert: %w", d.Name, err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Split(splitCR)
	for sc.Scan() {
		if p, ok := parseProgress(sc.Text()); ok && progress != nil {
			progress(p)
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("datastore %s: converting %q to %q: qemu-img convert: %w: %s", d.Name, src, dst, err, strings.TrimSpace(stderr.String()))
	}
	if err := ctx.Err(); err != nil { // cancelled, even if qemu-img got to its end
		return fmt.Errorf("datastore %s: converting %q to %q: %w", d.Name, src, dst, err)
	}
	if err := Record(out, recorded); err != nil {
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("datastore %s: syncing %q: %w", d.Name, dst, err)
	}
	// Link, not rename: a dst that appeared meanwhile is not replaced.
	if err := os.Link(tmp, full); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, ErrExists)
		}
		return fmt.Errorf("datastore %s: %q: %w", d.Name, dst, err)
	}
	os.Remove(tmp)
	return atomicfile.SyncDir(filepath.Dir(full))
}

// StreamVMDK is ConvertDisk's target format for a VMDK in VMware's
// streamOptimized subformat (what an OVA carries).
const StreamVMDK = "vmdk-stream"

// splitCR splits qemu-img's progress output, whose updates end in '\r'.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// parseProgress reads "    (12.34/100%)".
func parseProgress(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, "/100%)") {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(s, "("), "/100%)"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, false
	}
	return v, true
}
