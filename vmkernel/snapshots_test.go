package vmkernel_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// fsRig is a vmkernel with the file-system guest installed in datastore
// "ds" (its kernel, and the initramfs that mounts /dev/vda).
func fsRig(t *testing.T) *vmRig {
	t.Helper()
	testenv.Command(t, "qemu-img")
	testenv.Command(t, "mke2fs")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	mods := runnertest.Modules(t, "../build")
	r := startVMs(t)
	runnertest.InstallFS(t, kernel, mods, r.ds)
	return r
}

// fsGuest is a VM of the file-system guest with a new ext4 disk at
// name/disk.qcow2.
func fsGuest(t *testing.T, r *vmRig, name string) api.VMSpec {
	t.Helper()
	disk := name + "/disk.qcow2"
	if err := os.MkdirAll(filepath.Join(r.ds, name), 0o700); err != nil {
		t.Fatal(err)
	}
	runnertest.MakeExt4(t, filepath.Join(r.ds, disk), 64)
	spec := guest(name)
	spec.Kernel.Cmdline = runnertest.FSCmdline
	spec.Disks = []api.Disk{{Datastore: "ds", Path: disk}}
	return spec
}

// guestConsole types lines into a running VM's serial console and waits
// for what the guest answers.
type guestConsole struct {
	t  *testing.T
	r  *vmRig
	id string
}

func (g guestConsole) tail() ([]byte, error) { return g.r.m.ConsoleTail(g.id, 0) }

// say types line and waits until the console shows want once more than
// it did.
func (g guestConsole) say(line, want string, timeout time.Duration) {
	g.t.Helper()
	b, _ := g.tail()
	n := strings.Count(string(b), want)
	v, err := g.r.m.AttachConsole(g.id)
	if err != nil {
		g.t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Write([]byte(line + "\n")); err != nil {
		g.t.Fatal(err)
	}
	runnertest.WaitConsoleCount(g.t, g.tail, want, n+1, timeout)
}

// waiter returns a function that waits for a task (an answer as the
// client gives it) and fails the test if it failed.
func waiter(t *testing.T, c *client.Client) func(api.Task, error) api.Task {
	return func(task api.Task, err error) api.Task {
		t.Helper()
		return waitTask(t, c, task, err)
	}
}

// waitTask waits for a task and fails the test if it failed.
func waitTask(t *testing.T, c *client.Client, task api.Task, err error) api.Task {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done, err := c.WaitTask(ctx, task.ID, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// TestSnapshotRevertWithMemory: the guest writes a marker file, a snapshot
// keeps its memory, the guest overwrites the file, the revert brings the
// guest back running, reading the first marker. Disk-only snapshots of the
// running and of the stopped VM, a branch, the deletion of a middle
// snapshot (the chain one shorter, the data of the others intact), and a
// revert of the stopped VM to a memory snapshot follow.
func TestSnapshotRevertWithMemory(t *testing.T) {
	t.Parallel() // see startVMs
	r := fsRig(t)
	ctx := longCtx(t)
	vm, err := r.c.CreateVM(ctx, fsGuest(t, r, "snappy"))
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	g := guestConsole{t, r, id}
	wait := waiter(t, r.c)
	runnertest.WaitConsole(t, g.tail, runnertest.Marker, 2*time.Minute)
	g.say("mark first", "floor: marked first", time.Minute)

	t0 := time.Now()
	task := wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "first", Description: "before the upgrade", Memory: true}))
	t.Logf("memory snapshot took %v (task %s)", time.Since(t0), task.ID)
	if got, _ := r.c.GetVM(ctx, id); got.Runtime.State != api.VMRunning {
		t.Fatalf("after a memory snapshot the VM is %s, want running", got.Runtime.State)
	}
	g.say("mark second", "floor: marked second", time.Minute)
	wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "second"}))
	g.say("mark third", "floor: marked third", time.Minute)

	t0 = time.Now()
	wait(r.c.RevertSnapshot(ctx, id, "first", api.RevertRequest{}))
	t.Logf("revert to the memory snapshot took %v", time.Since(t0))
	if got, _ := r.c.GetVM(ctx, id); got.Runtime.State != api.VMRunning {
		t.Fatalf("after the revert the VM is %s, want running", got.Runtime.State)
	}
	g.say("cat", "floor: marker=first", time.Minute)

	tree, err := r.c.Snapshots(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Snapshots) != 2 || tree.Snapshots[0].Name != "first" || !tree.Snapshots[0].Memory ||
		tree.Snapshots[0].MemoryBytes == 0 || tree.Snapshots[0].Description != "before the upgrade" ||
		tree.Snapshots[1].Parent != tree.Snapshots[0].ID || tree.Current != tree.Snapshots[0].ID {
		t.Fatalf("tree %+v", tree)
	}
	// A name in use, a stopped VM's memory: refused before anything changes.
	_, err = r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "first"})
	apiErr(t, err, 409)

	// A chain a -> b -> c on the branch from "first", each with its marker.
	for _, n := range []string{"a", "b", "c"} {
		g.say("mark "+n, "floor: marked "+n, time.Minute)
		wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: n, Memory: n != "b"}))
	}
	tree, _ = r.c.Snapshots(ctx, id)
	depth := func(tree api.SnapshotTree, name string) int {
		byID := map[string]api.Snapshot{}
		for _, s := range tree.Snapshots {
			byID[s.ID] = s
		}
		n := 0
		for _, s := range tree.Snapshots {
			if s.Name == name {
				for id := s.ID; id != ""; id = byID[id].Parent {
					n++
				}
			}
		}
		return n
	}
	if d := depth(tree, "c"); d != 4 { // first, a, b, c
		t.Fatalf("depth of c %d, want 4: %+v", d, tree)
	}
	wait(r.c.DeleteSnapshot(ctx, id, "b"))
	tree, _ = r.c.Snapshots(ctx, id)
	if d := depth(tree, "c"); d != 3 || len(tree.Snapshots) != 4 {
		t.Fatalf("after deleting b: depth of c %d, want 3: %+v", d, tree)
	}
	wait(r.c.RevertSnapshot(ctx, id, "a", api.RevertRequest{}))
	g.say("cat", "floor: marker=a", time.Minute)
	wait(r.c.RevertSnapshot(ctx, id, "c", api.RevertRequest{}))
	g.say("cat", "floor: marker=c", time.Minute)

	// Stopped: a disk-only snapshot, then back to a memory snapshot, which
	// starts the VM where it was.
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	_, err = r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "mem-of-stopped", Memory: true})
	apiErr(t, err, 422)
	wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "stopped"}))
	t0 = time.Now()
	wait(r.c.RevertSnapshot(ctx, id, "a", api.RevertRequest{}))
	t.Logf("revert of the stopped VM to a memory snapshot took %v", time.Since(t0))
	if got, _ := r.c.GetVM(ctx, id); got.Runtime.State != api.VMRunning {
		t.Fatalf("after reverting the stopped VM to a memory snapshot it is %s, want running", got.Runtime.State)
	}
	g.say("cat", "floor: marker=a", time.Minute)
	// Back to the stopped one: the VM is left stopped; started, its disk
	// has what the guest had synced when it was stopped (c).
	wait(r.c.RevertSnapshot(ctx, id, "stopped", api.RevertRequest{Start: true}))
	runnertest.WaitConsoleCount(t, g.tail, runnertest.Marker, 2, 2*time.Minute)
	g.say("cat", "floor: marker=c", time.Minute)
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}

// longCtx bounds a test that boots guests under TCG.
func longCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return c
}

// TestSnapshotUEFIVariables: a UEFI guest sets a variable of its own, a
// memory snapshot is taken, the guest sets it again, the revert brings the
// first value back; and after the VM is stopped and booted afresh (the
// firmware reading its variables from the image) the variable still has
// the snapshot's value: the variables are part of the snapshot.
func TestSnapshotUEFIVariables(t *testing.T) {
	t.Parallel() // see startVMs
	r := fsRig(t)
	ctx := longCtx(t)
	wait := waiter(t, r.c)
	spec := fsGuest(t, r, "uefi-snap")
	spec.Firmware, spec.Machine, spec.MemoryMiB = api.FirmwareUEFI, api.MachineQ35, 256
	spec.Kernel.Kernel = "vmlinuz" // OVMF loads a bzImage, not the PVH ELF
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	g := guestConsole{t, r, id}
	runnertest.WaitConsole(t, g.tail, runnertest.Marker, 4*time.Minute)
	g.say("efiset kept", "floor: efiset kept", time.Minute)
	g.say("mark kept", "floor: marked kept", time.Minute)
	wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "kept", Memory: true}))
	g.say("efiset lost", "floor: efiset lost", time.Minute)
	g.say("efiget", "floor: efivar=lost", time.Minute)
	wait(r.c.RevertSnapshot(ctx, id, "kept", api.RevertRequest{}))
	g.say("efiget", "floor: efivar=kept", time.Minute)
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsoleCount(t, g.tail, runnertest.Marker, 2, 4*time.Minute)
	g.say("efiget", "floor: efivar=kept", time.Minute)
	g.say("cat", "floor: marker=kept", time.Minute)
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}
