package datastore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestConvertFailureLeavesNothing: a conversion that ends half-way (here
// cancelled at its first progress report, qemu-img killed) leaves no
// target, temp file or made directory behind.
func TestConvertFailureLeavesNothing(t *testing.T) {
	root := t.TempDir()
	d := Datastore{Name: "ds", Root: root}
	f, err := os.Create(filepath.Join(root, "src.raw"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cctx, stop := context.WithCancel(ctx)
	if err := d.ConvertDisk(cctx, "src.raw", "new/dir/dst.qcow2", "qcow2", func(float64) { stop() }); err == nil {
		t.Fatal("a cancelled conversion succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "new")); !os.IsNotExist(err) {
		t.Errorf("the made directory was left: %v", err)
	}
	if err := d.ConvertDisk(ctx, "../escape.qcow2", "x.raw", "raw", nil); err == nil {
		t.Error("a source outside the datastore was accepted")
	}
}
