package vmkernel_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

const gib = 1 << 30

func needQEMUImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Unmet(t, "qemu-img not installed")
	}
}

func TestDatastoreRoutes(t *testing.T) {
	needQEMUImg(t)
	r := startVMs(t)
	ctx := ctx(t)

	dss, err := r.c.ListDatastores(ctx)
	if err != nil || len(dss) != 1 || dss[0].Name != "ds" || dss[0].Root != r.ds || dss[0].CapacityBytes == 0 {
		t.Fatalf("datastores %+v, %v", dss, err)
	}
	info, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "vm/a.qcow2", SizeBytes: 1 << 20})
	if err != nil || info.Format != api.FormatQcow2 || info.VirtualSizeBytes != 1<<20 || info.Path != "vm/a.qcow2" {
		t.Fatalf("created %+v, %v", info, err)
	}
	apiErr(t, errOf(r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "vm/a.qcow2", SizeBytes: 1 << 20})), http.StatusConflict)
	for _, bad := range []string{"../x.qcow2", "vm/../../x.qcow2", "/tmp/x.qcow2"} {
		apiErr(t, errOf(r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: bad, SizeBytes: 1 << 20})), http.StatusBadRequest)
	}
	apiErr(t, errOf(r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "b.vmdk", Format: "vmdk", SizeBytes: 1 << 20})), http.StatusBadRequest)
	apiErr(t, errOf(r.c.CreateDisk(ctx, "nowhere", api.CreateDiskRequest{Path: "b.qcow2", SizeBytes: 1 << 20})), http.StatusNotFound)

	if got, err := r.c.DiskInfo(ctx, "ds", "vm/a.qcow2"); err != nil || got != info {
		t.Fatalf("disk info %+v, %v; want %+v", got, err, info)
	}
	apiErr(t, errOf(r.c.DiskInfo(ctx, "ds", "vm/none.qcow2")), http.StatusNotFound)
	apiErr(t, errOf(r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "vm/a.qcow2", SizeBytes: 1 << 19})), http.StatusUnprocessableEntity)
	if got, err := r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "vm/a.qcow2", SizeBytes: 2 << 20}); err != nil || got.VirtualSizeBytes != 2<<20 {
		t.Fatalf("resized %+v, %v", got, err)
	}

	entries, err := r.c.BrowseDatastore(ctx, "ds", "")
	if err != nil || len(entries) != 1 || entries[0].Kind != api.EntryDir || entries[0].Name != "vm" {
		t.Fatalf("browse root %+v, %v", entries, err)
	}
	entries, err = r.c.BrowseDatastore(ctx, "ds", "vm")
	if err != nil || len(entries) != 1 || entries[0].Format != api.FormatQcow2 || entries[0].Path != "vm/a.qcow2" {
		t.Fatalf("browse vm %+v, %v", entries, err)
	}
	apiErr(t, errOf(r.c.BrowseDatastore(ctx, "ds", "..")), http.StatusBadRequest)
	apiErr(t, r.c.DeleteDatastoreFile(ctx, "ds", "vm"), http.StatusBadRequest)

	spec := guest("user")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "vm/a.qcow2"}}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	e := apiErr(t, r.c.DeleteDatastoreFile(ctx, "ds", "vm/a.qcow2"), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, `"user"`) {
		t.Fatalf("in-use refusal does not name the VM: %+v", e.Problem)
	}
	// Another name for the same file is the same file.
	if err := os.Symlink("vm", filepath.Join(r.ds, "alias")); err != nil {
		t.Fatal(err)
	}
	apiErr(t, r.c.DeleteDatastoreFile(ctx, "ds", "alias/a.qcow2"), http.StatusConflict)
	if err := r.c.DeleteVM(ctx, vm.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.c.DeleteDatastoreFile(ctx, "ds", "vm/a.qcow2"); err != nil {
		t.Fatal(err)
	}
	apiErr(t, r.c.DeleteDatastoreFile(ctx, "ds", "vm/a.qcow2"), http.StatusNotFound)
}

// TestGuestSeesDisk boots the floor guest with a qcow2 disk made through
// the API and reads the disk's size from the guest's console, before and
// after growing it.
func TestGuestSeesDisk(t *testing.T) {
	t.Parallel() // see startVMs
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	needQEMUImg(t)
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	mods := runnertest.Modules(t, "../build")
	r := startVMs(t)
	runnertest.InstallDisks(t, kernel, mods, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "disky/disk.qcow2", Format: api.FormatQcow2, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	spec := guest("disky")
	spec.Kernel.Cmdline = runnertest.DisksCmdline
	spec.Disks = []api.Disk{{Bus: api.BusVirtioBlk, Datastore: "ds", Path: "disky/disk.qcow2"}}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	console := func() ([]byte, error) { // the serial line ends lines with \r\n
		b, err := r.c.VMConsole(ctx, id)
		return bytes.ReplaceAll(b, []byte("\r"), nil), err
	}

	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	t.Logf("1 GiB disk seen after %v", runnertest.WaitConsole(t, console, qemutest.FloorDiskLine("vda", gib), 120*time.Second))
	runnertest.WaitConsole(t, console, runnertest.Marker, 30*time.Second)
	apiErr(t, errOf(r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "disky/disk.qcow2", SizeBytes: 2 * gib})), http.StatusConflict)
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}

	if info, err := r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "disky/disk.qcow2", SizeBytes: 2 * gib}); err != nil || info.VirtualSizeBytes != 2*gib {
		t.Fatalf("resize: %+v, %v", info, err)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	t.Logf("2 GiB disk seen after %v", runnertest.WaitConsole(t, console, qemutest.FloorDiskLine("vda", 2*gib), 120*time.Second))

	e := apiErr(t, r.c.DeleteDatastoreFile(ctx, "ds", "disky/disk.qcow2"), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, `"disky"`) {
		t.Fatalf("in-use refusal does not name the VM: %+v", e.Problem)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}
