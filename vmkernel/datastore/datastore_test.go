package datastore

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plinth/plinth/api"

	"github.com/plinth/plinth/internal/testenv"
)

func newDS(t *testing.T) (Datastore, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "ds")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return Datastore{Name: "ds", Root: root}, base
}

func needQEMUImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Unmet(t, "qemu-img not installed")
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestResolveRefusesEscapes(t *testing.T) {
	d, base := newDS(t)
	os.WriteFile(filepath.Join(base, "secret"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(base, "outside"), 0o755)
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(d.Root, "link"))
	os.Symlink(filepath.Join(base, "outside"), filepath.Join(d.Root, "dirlink"))
	os.Symlink("..", filepath.Join(d.Root, "up"))
	os.Mkdir(filepath.Join(d.Root, "vm"), 0o755)
	os.Symlink("../vm", filepath.Join(d.Root, "vm", "self")) // stays inside

	for _, rel := range []string{
		"../x", "a/../../x", "/etc/passwd", "..", ".", "", "a//b", "a/", "x\x00y",
		"link", "dirlink/new.qcow2", "dirlink/a/b/new.qcow2", "up/secret", "up",
	} {
		if p, err := d.Resolve(rel); !errors.Is(err, ErrEscapes) {
			t.Errorf("Resolve(%q) = %q, %v; want ErrEscapes", rel, p, err)
		}
	}
	for rel, want := range map[string]string{
		"disk.qcow2":       filepath.Join(d.Root, "disk.qcow2"),
		"vm/disk.qcow2":    filepath.Join(d.Root, "vm", "disk.qcow2"),
		"new/dir/d.raw":    filepath.Join(d.Root, "new", "dir", "d.raw"),
		"vm/self/d.qcow2":  filepath.Join(d.Root, "vm", "self", "d.qcow2"),
		"..hidden/d.qcow2": filepath.Join(d.Root, "..hidden", "d.qcow2"),
	} {
		if p, err := d.Resolve(rel); err != nil || p != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", rel, p, err, want)
		}
	}
}

func TestCreateInfoResizeDelete(t *testing.T) {
	needQEMUImg(t)
	d, _ := newDS(t)
	ctx := ctxT(t)
	const gib = 1 << 30

	if err := d.CreateDisk(ctx, "vm1/disk.qcow2", "", gib); err != nil {
		t.Fatal(err)
	}
	info, err := d.DiskInfo(ctx, "vm1/disk.qcow2")
	if err != nil || info.Format != api.FormatQcow2 || info.VirtualSizeBytes != gib || info.ActualSizeBytes <= 0 {
		t.Fatalf("DiskInfo = %+v, %v", info, err)
	}
	if err := d.CreateDisk(ctx, "vm1/disk.qcow2", api.FormatRaw, gib); !errors.Is(err, ErrExists) {
		t.Fatalf("creating over an existing disk: %v, want ErrExists", err)
	}
	if err := d.CreateDisk(ctx, "raw.img", api.FormatRaw, 1<<20); err != nil {
		t.Fatal(err)
	}
	if info, err := d.DiskInfo(ctx, "raw.img"); err != nil || info.Format != api.FormatRaw || info.VirtualSizeBytes != 1<<20 {
		t.Fatalf("raw DiskInfo = %+v, %v", info, err)
	}
	for _, bad := range []struct {
		format string
		size   int64
	}{{"vmdk", gib}, {api.FormatQcow2, 0}, {api.FormatQcow2, -1}} {
		if err := d.CreateDisk(ctx, "bad.qcow2", bad.format, bad.size); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateDisk(%q, %d) = %v, want ErrInvalid", bad.format, bad.size, err)
		}
	}

	if err := d.ResizeDisk(ctx, "vm1/disk.qcow2", gib/2); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink: %v, want ErrShrink", err)
	}
	if err := d.ResizeDisk(ctx, "vm1/disk.qcow2", 2*gib); err != nil {
		t.Fatal(err)
	}
	if info, err := d.DiskInfo(ctx, "vm1/disk.qcow2"); err != nil || info.VirtualSizeBytes != 2*gib {
		t.Fatalf("after resize: %+v, %v", info, err)
	}
	if err := d.ResizeDisk(ctx, "none.qcow2", gib); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resize of a missing disk: %v, want ErrNotFound", err)
	}

	entries, err := d.Browse("")
	if err != nil || len(entries) != 2 {
		t.Fatalf("Browse(\"\") = %+v, %v", entries, err)
	}
	if e := entries[0]; e.Name != "raw.img" || e.Kind != api.EntryFile || e.Format != api.FormatRaw || e.SizeBytes != 1<<20 {
		t.Errorf("entry %+v", e)
	}
	if e := entries[1]; e.Name != "vm1" || e.Kind != api.EntryDir || e.Path != "vm1" {
		t.Errorf("entry %+v", e)
	}
	entries, err = d.Browse("vm1")
	if err != nil || len(entries) != 1 || entries[0].Format != api.FormatQcow2 || entries[0].Path != "vm1/disk.qcow2" {
		t.Fatalf("Browse(vm1) = %+v, %v", entries, err)
	}
	if _, err := d.Browse("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Browse(nope): %v, want ErrNotFound", err)
	}

	busy := func(rel string) error { return ErrInUse }
	if err := d.DeleteFile("vm1/disk.qcow2", busy); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete in use: %v", err)
	}
	if err := d.DeleteFile("vm1", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delete of a directory: %v", err)
	}
	if err := d.DeleteFile("vm1/disk.qcow2", func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteFile("vm1/disk.qcow2", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if err := d.DeleteFile("../x", nil); !errors.Is(err, ErrEscapes) {
		t.Fatalf("delete outside: %v, want ErrEscapes", err)
	}
}

func TestFailedCreateRemovesWhatItMade(t *testing.T) {
	d, _ := newDS(t)
	d.QEMUImg = "/bin/false"
	if err := d.CreateDisk(ctxT(t), "a/b/disk.qcow2", "", 1<<20); err == nil {
		t.Fatal("create with a failing qemu-img succeeded")
	}
	if entries, err := os.ReadDir(d.Root); err != nil || len(entries) != 0 {
		t.Fatalf("left behind: %v, %v", entries, err)
	}
	os.Mkdir(filepath.Join(d.Root, "keep"), 0o755)
	if err := d.CreateDisk(ctxT(t), "keep/disk.qcow2", "", 1<<20); err == nil {
		t.Fatal("create with a failing qemu-img succeeded")
	}
	if entries, err := os.ReadDir(filepath.Join(d.Root, "keep")); err != nil || len(entries) != 0 {
		t.Fatalf("left behind in keep: %v, %v", entries, err)
	}
}

func TestCreateThroughSymlinkOutsideRefused(t *testing.T) {
	d, base := newDS(t)
	d.QEMUImg = "/bin/true"
	os.Mkdir(filepath.Join(base, "outside"), 0o755)
	os.Symlink(filepath.Join(base, "outside"), filepath.Join(d.Root, "out"))
	if err := d.CreateDisk(ctxT(t), "out/disk.qcow2", "", 1<<20); !errors.Is(err, ErrEscapes) {
		t.Fatalf("create through a symlink out: %v, want ErrEscapes", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "outside")); len(entries) != 0 {
		t.Fatalf("made outside: %v", entries)
	}
}

func TestInfo(t *testing.T) {
	d, _ := newDS(t)
	info, err := d.Info()
	if err != nil || info.Name != "ds" || info.CapacityBytes == 0 || info.FreeBytes > info.CapacityBytes {
		t.Fatalf("Info = %+v, %v", info, err)
	}
}

// TestSweep: files of interrupted writes go, everything else stays.
func TestSweep(t *testing.T) {
	root := t.TempDir()
	d := Datastore{Name: "ds", Root: root}
	for _, p := range []string{"a.qcow2", "vm/.tmp-disk.qcow2", "vm/.tmp-import-0-x.vmdk-123", "iso/debian.iso", ".tmp-up-1"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644)
	}
	got, err := d.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{".tmp-up-1", "vm/.tmp-disk.qcow2", "vm/.tmp-import-0-x.vmdk-123"}; !slices.Equal(got, want) {
		t.Fatalf("swept %v, want %v", got, want)
	}
	for _, p := range []string{"a.qcow2", "iso/debian.iso"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
