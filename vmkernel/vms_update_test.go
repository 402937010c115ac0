package vmkernel_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

func TestUpdateVM(t *testing.T) {
	r := startVMs(t)
	ctx := ctx(t)
	a, err := r.c.CreateVM(ctx, guest("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.CreateVM(ctx, guest("b")); err != nil {
		t.Fatal(err)
	}

	spec := a.Spec
	spec.MemoryMiB = 256
	spec.Name = "a2"
	vm, err := r.c.UpdateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Spec.MemoryMiB != 256 || vm.Spec.Name != "a2" || vm.Spec.ID != a.Spec.ID || vm.Runtime.State != api.VMStopped {
		t.Fatalf("updated: %+v", vm)
	}
	if got, err := r.c.GetVM(ctx, "a2"); err != nil || got.Spec.MemoryMiB != 256 {
		t.Fatalf("get after update: %+v, %v", got, err)
	}
	apiErr(t, errOf(r.c.GetVM(ctx, "a")), http.StatusNotFound)

	// Renaming to a name in use.
	spec.Name = "b"
	apiErr(t, errOf(r.c.UpdateVM(ctx, spec)), http.StatusConflict)

	// Every problem at once, the ID included.
	bad := vm.Spec
	bad.Name = "bad/name"
	bad.MemoryMiB = 1
	bad.Kernel.Datastore = "nowhere"
	body := bad
	body.ID = api.NewUUID()
	e := apiErr(t, doPut(ctx, r, vm.Spec.ID, body), http.StatusUnprocessableEntity)
	var fields []string
	for _, p := range e.Problem.Problems {
		fields = append(fields, p.Field)
	}
	for _, f := range []string{"id", "name", "memory_mib", "kernel.datastore"} {
		if !slices.Contains(fields, f) {
			t.Errorf("problems %v: %s missing", fields, f)
		}
	}
	if got, _ := r.c.GetVM(ctx, vm.Spec.ID); got.Spec.Name != "a2" || got.Spec.MemoryMiB != 256 {
		t.Fatalf("a refused update changed the VM: %+v", got.Spec)
	}

	missing := vm.Spec
	missing.ID = api.NewUUID()
	apiErr(t, errOf(r.c.UpdateVM(ctx, missing)), http.StatusNotFound)
}

// doPut is UpdateVM with a body whose ID may differ from the path's.
func doPut(ctx context.Context, r *vmRig, id string, spec api.VMSpec) error {
	_, err := r.c.UpdateVMAt(ctx, id, spec)
	return err
}

func TestDeleteVMWithDisks(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Unmet(t, "qemu-img not installed")
	}
	r := startVMs(t)
	ctx := ctx(t)
	for _, p := range []string{"one.qcow2", "shared.qcow2"} {
		if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: p, SizeBytes: 16 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "raw.img", Format: api.FormatRaw, SizeBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cd.iso", "vmlinux", "init.cpio"} {
		os.WriteFile(filepath.Join(r.ds, f), []byte("x"), 0o644)
	}
	one := guest("one")
	one.Disks = []api.Disk{{Datastore: "ds", Path: "one.qcow2"}, {Datastore: "ds", Path: "shared.qcow2"},
		{Datastore: "ds", Path: "raw.img", Format: api.FormatRaw}, {Datastore: "ds", Path: "gone.qcow2"}}
	one.CDROM = &api.CDROM{Datastore: "ds", Path: "cd.iso"}
	vm1, err := r.c.CreateVM(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	two := guest("two")
	two.Disks = []api.Disk{{Datastore: "ds", Path: "shared.qcow2"}}
	vm2, err := r.c.CreateVM(ctx, two)
	if err != nil {
		t.Fatal(err)
	}

	res, err := r.c.DeleteVMWithDisks(ctx, vm1.Spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.DatastoreFile{{Datastore: "ds", Path: "one.qcow2"}, {Datastore: "ds", Path: "raw.img"}}
	if !slices.Equal(res.RemovedFiles, want) {
		t.Fatalf("removed %+v, want %+v", res.RemovedFiles, want)
	}
	if !slices.Equal(res.KeptFiles, []api.DatastoreFile{{Datastore: "ds", Path: "shared.qcow2"}}) {
		t.Fatalf("kept %+v", res.KeptFiles)
	}
	for f, exists := range map[string]bool{"one.qcow2": false, "raw.img": false, "shared.qcow2": true, "cd.iso": true, "vmlinux": true, "init.cpio": true} {
		if _, err := os.Stat(filepath.Join(r.ds, f)); (err == nil) != exists {
			t.Errorf("%s: exists=%v, want %v", f, err == nil, exists)
		}
	}
	apiErr(t, errOf(r.c.GetVM(ctx, vm1.Spec.ID)), http.StatusNotFound)
	apiErr(t, errOf(r.c.DeleteVMWithDisks(ctx, vm1.Spec.ID)), http.StatusNotFound)

	// Without disks=true: 204 and the disk stays.
	if err := r.c.DeleteVM(ctx, vm2.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.ds, "shared.qcow2")); err != nil {
		t.Fatal(err)
	}
}

func TestEventsWithQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	evs, err := r.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := r.c.CreateVM(ctx, guest("ev"))
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	// A running VM cannot be updated; the answer names the state.
	spec := vm.Spec
	spec.MemoryMiB = 256
	e := apiErr(t, errOf(r.c.UpdateVM(ctx, spec)), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, "running") {
		t.Fatalf("update of a running VM: %+v", e.Problem)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	if err := r.c.DeleteVM(ctx, id); err != nil {
		t.Fatal(err)
	}

	want := []string{api.EventCreated, api.VMStarting, api.VMRunning, api.VMStopping, api.VMStopped, api.EventDeleted}
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("stream ended after %v", got)
			}
			if ev.VMID != id || ev.Name != "ev" || ev.Time.IsZero() {
				t.Fatalf("event %+v", ev)
			}
			k := ev.Type
			if k == api.EventState {
				k = ev.State
			}
			got = append(got, k)
			t.Logf("event %+v", ev)
		case <-deadline:
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	cancel()
	select {
	case _, ok := <-evs:
		for ok {
			_, ok = <-evs
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream not closed after the context ended")
	}
}
