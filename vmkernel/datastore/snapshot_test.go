package datastore

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// qemuIO writes pattern at off (1 MiB) into the qcow2 image p.
func qemuIO(t *testing.T, p string, pattern, off int) {
	t.Helper()
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P "+itoa(pattern)+" "+itoa(off)+" 1M", p).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// rawOf reads the qcow2 image p as raw bytes.
func rawOf(t *testing.T, p string, snapshot string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "raw")
	args := []string{"convert", "-U", "-f", "qcow2", "-O", "raw"}
	if snapshot != "" {
		args = append(args, "-l", "snapshot.name="+snapshot)
	}
	if b, err := exec.Command("qemu-img", append(args, p, out)...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshotsOffline takes, lists, applies and deletes internal
// snapshots of a qcow2 image through the runner, adds and removes a
// bitmap, copies the image as it was in a snapshot, and finds the
// overlays resting on an image.
func TestSnapshotsOffline(t *testing.T) {
	needQEMUImg(t)
	d, _ := newDS(t)
	ctx := ctxT(t)
	if err := d.CreateDisk(ctx, "vm/disk.qcow2", "qcow2", 4<<20); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.Root, "vm/disk.qcow2")
	qemuIO(t, p, 0xaa, 0)
	if err := d.Snapshot(ctx, "vm/disk.qcow2", SnapshotCreate, "first"); err != nil {
		t.Fatal(err)
	}
	before := rawOf(t, p, "")
	qemuIO(t, p, 0xbb, 0)
	if err := d.Bitmap(ctx, "vm/disk.qcow2", "--add", "plinth-x"); err != nil {
		t.Fatal(err)
	}
	st, err := d.State(ctx, "vm/disk.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Snapshots["first"]; !ok || len(st.Bitmaps) != 1 || st.Bitmaps["plinth-x"] {
		t.Fatalf("state %+v: want snapshot first and a consistent bitmap", st)
	}
	if err := d.CopyImage(ctx, mustOpen(t, d, "vm/disk.qcow2"), "copy.qcow2", ConvertOptions{Snapshot: "first"}); err != nil {
		t.Fatal(err)
	}
	if got := rawOf(t, filepath.Join(d.Root, "copy.qcow2"), ""); !bytes.Equal(got, before) {
		t.Fatal("the copy of the snapshot is not the image as it was")
	}
	if err := d.Bitmap(ctx, "vm/disk.qcow2", "--remove", "plinth-x"); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "vm/disk.qcow2", SnapshotApply, "first"); err != nil {
		t.Fatal(err)
	}
	if got := rawOf(t, p, ""); !bytes.Equal(got, before) {
		t.Fatal("after applying the snapshot the image is not as it was")
	}
	if err := d.Snapshot(ctx, "vm/disk.qcow2", SnapshotDelete, "first"); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, "vm/disk.qcow2", SnapshotDelete, "first"); err != nil {
		t.Fatalf("deleting a snapshot twice: %v", err)
	}
	if st, err := d.State(ctx, "vm/disk.qcow2"); err != nil || len(st.Snapshots) != 0 || len(st.Bitmaps) != 0 {
		t.Fatalf("state %+v, %v: want nothing left", st, err)
	}
	for _, bad := range []string{"", "a b", "x,y", "-c", "../x"} {
		if err := d.Snapshot(ctx, "vm/disk.qcow2", SnapshotCreate, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("tag %q: %v", bad, err)
		}
	}

	if err := d.CreateOverlay(ctx, "clones/a.qcow2", "vm/disk.qcow2"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateOverlay(ctx, "b.qcow2", "vm/disk.qcow2"); err != nil {
		t.Fatal(err)
	}
	deps, err := d.Dependents("vm/disk.qcow2")
	if err != nil || len(deps) != 2 {
		t.Fatalf("dependents %q, %v", deps, err)
	}
	if err := d.Rename("clones/a.qcow2", "elsewhere/a.qcow2"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("moving an overlay out of its directory: %v", err)
	}
	sum, n, err := d.Checksum("vm/disk.qcow2")
	if fi, _ := os.Stat(p); err != nil || n != fi.Size() || len(sum) != 64 {
		t.Fatalf("checksum %s %d, %v", sum, n, err)
	}
}

func mustOpen(t *testing.T, d Datastore, rel string) *Image {
	t.Helper()
	im, err := d.OpenImage(rel, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}
