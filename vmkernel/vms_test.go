package vmkernel_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"

	"github.com/plinth/plinth/internal/testenv"
)

type vmRig struct {
	c    *client.Client
	sock string
	m    *runner.Manager
	base string
	ds   string
}

// startVMs serves a vmkernel with an inventory and a runner (QEMU under
// TCG) on a real unix socket; every VM left is killed at the end. The
// vmkernel is the test's own (socket, state and datastore in temporary
// directories), so tests that share nothing else run in parallel: those
// booting one or a few guests of their own under TCG (each about a core)
// say t.Parallel and run two at a time, after the package's sequential
// tests, the longest of which (TestTenClonesWithCloudInit) keeps both
// cores busy by itself.
func startVMs(t *testing.T) *vmRig {
	t.Helper()
	r := vmkerneltest.Start(t, vmkerneltest.Options{})
	return &vmRig{c: r.Client, sock: r.Socket, m: r.Runner, base: r.Base, ds: r.DS["ds"]}
}

func guest(name string) api.VMSpec {
	return api.VMSpec{
		Name: name, MemoryMiB: 128, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
	}
}

func apiErr(t *testing.T, err error, status int) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Fatalf("error %v, want status %d", err, status)
	}
	return e
}

func TestVMRoutesWithoutQEMU(t *testing.T) {
	r := startVMs(t)
	ctx := ctx(t)

	bad := guest("bad/name")
	bad.MemoryMiB = 1
	bad.Disks = []api.Disk{{Datastore: "ds", Path: "../escape.qcow2"}}
	_, err := r.c.CreateVM(ctx, bad)
	e := apiErr(t, err, http.StatusUnprocessableEntity)
	if e.Problem.Field != "name" || len(e.Problem.Problems) != 3 {
		t.Fatalf("problem %+v: want field name and 3 problems (name, memory_mib, disks[0].path)", e.Problem)
	}

	other := guest("elsewhere")
	other.Kernel.Datastore = "nowhere"
	e = apiErr(t, errOf(r.c.CreateVM(ctx, other)), http.StatusUnprocessableEntity)
	if e.Problem.Field != "kernel.datastore" {
		t.Fatalf("unknown datastore: %+v", e.Problem)
	}

	vm, err := r.c.CreateVM(ctx, guest("one"))
	if err != nil {
		t.Fatal(err)
	}
	if !api.IsUUID(vm.Spec.ID) || vm.Runtime.State != api.VMStopped {
		t.Fatalf("created %+v", vm)
	}
	apiErr(t, errOf(r.c.CreateVM(ctx, guest("one"))), http.StatusConflict)
	byName, err := r.c.GetVM(ctx, "one")
	if err != nil || byName.Spec.ID != vm.Spec.ID {
		t.Fatalf("GetVM by name = %+v, %v", byName, err)
	}
	apiErr(t, errOf(r.c.GetVM(ctx, "none")), http.StatusNotFound)
	apiErr(t, errOf(r.c.VMAction(ctx, vm.Spec.ID, "explode")), http.StatusNotFound)
	if b, err := r.c.VMConsole(ctx, vm.Spec.ID); err != nil || len(b) != 0 {
		t.Fatalf("console of a VM never started: %q, %v", b, err)
	}
	apiErr(t, errOf(r.c.VMConsole(ctx, "none")), http.StatusNotFound)
	e = apiErr(t, errOf(r.c.VMAction(ctx, vm.Spec.ID, api.ActionPause)), http.StatusConflict)
	if e.Problem.Detail == "" {
		t.Fatal("state conflict without detail")
	}
	if err := r.c.DeleteVM(ctx, vm.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if vms, err := r.c.ListVMs(ctx); err != nil || len(vms) != 0 {
		t.Fatalf("after delete: %v, %v", vms, err)
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestVMOverAPIWithQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	vm, err := r.c.CreateVM(ctx, guest("api-vm"))
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	t0 := time.Now()
	vm, err = r.c.VMAction(ctx, id, api.ActionStart)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start over the API answered after %v: %s pid %d", time.Since(t0), vm.Runtime.State, vm.Runtime.PID)
	if vm.Runtime.State != api.VMRunning || vm.Runtime.PID == 0 {
		t.Fatalf("after start: %+v", vm.Runtime)
	}
	t.Logf("marker through the console API after %v", runnertest.WaitConsole(t, func() ([]byte, error) {
		return r.c.VMConsole(ctx, id)
	}, runnertest.Marker, 120*time.Second))
	if _, err := os.Stat(filepath.Join(r.base, "state", "vm-state", id, runner.ConsoleLogFile)); err != nil {
		t.Errorf("console log: %v", err)
	}

	vms, err := r.c.ListVMs(ctx)
	if err != nil || len(vms) != 1 || vms[0].Runtime.State != api.VMRunning {
		t.Fatalf("list: %+v, %v", vms, err)
	}
	apiErr(t, r.c.DeleteVM(ctx, id), http.StatusConflict)
	apiErr(t, errOf(r.c.VMAction(ctx, id, api.ActionStart)), http.StatusConflict)

	if vm, err = r.c.VMAction(ctx, id, api.ActionPause); err != nil || vm.Runtime.State != api.VMPaused {
		t.Fatalf("pause: %+v, %v", vm.Runtime, err)
	}
	if vm, err = r.c.VMAction(ctx, id, api.ActionResume); err != nil || vm.Runtime.State != api.VMRunning {
		t.Fatalf("resume: %+v, %v", vm.Runtime, err)
	}
	t0 = time.Now()
	vm, err = r.c.VMAction(ctx, id, api.ActionStop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %v", time.Since(t0))
	if vm.Runtime.State != api.VMStopped || vm.Runtime.LastExit == nil || vm.Runtime.LastExit.Reason != api.ExitRequested {
		t.Fatalf("after stop: %+v", vm.Runtime)
	}

	// Shutdown of a guest that ignores ACPI: deadline, then hard stop.
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if vm, err = r.c.ShutdownVM(ctx, id, time.Second); err != nil || vm.Runtime.State != api.VMStopped {
		t.Fatalf("shutdown: %+v, %v", vm.Runtime, err)
	}
	t.Logf("shutdown (1 s deadline) took %v", time.Since(t0))
	if err := r.c.DeleteVM(ctx, id); err != nil {
		t.Fatal(err)
	}
}
