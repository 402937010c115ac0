package vmkernel_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestClonesTemplateDeploy: a full clone of a stopped VM, a linked clone
// of one of its snapshots (on a base copied once under bases/), then the
// VM made a template (it never starts) and three linked clones deployed
// from it in one call, each booting, reading the template's marker and
// writing its own (ten at once, with cloud-init, are
// TestTenClonesWithCloudInit's); the template's disk is unchanged, and
// nothing pulls it from under its clones.
func TestClonesTemplateDeploy(t *testing.T) {
	t.Parallel() // see startVMs
	r := fsRig(t)
	ctx := longCtx(t)
	wait := waiter(t, r.c)
	src, err := r.c.CreateVM(ctx, fsGuest(t, r, "golden"))
	if err != nil {
		t.Fatal(err)
	}
	id := src.Spec.ID
	boot := func(id string, n int) guestConsole {
		t.Helper()
		if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		g := guestConsole{t, r, id}
		runnertest.WaitConsoleCount(t, g.tail, runnertest.Marker, n, 3*time.Minute)
		return g
	}
	stop := func(id string) {
		t.Helper()
		if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
			t.Fatal(err)
		}
	}
	g := boot(id, 1)
	g.say("mark base", "floor: marked base", time.Minute)
	stop(id)

	// A running VM is cloned only through a snapshot.
	boot(id, 2)
	_, err = r.c.CloneVM(ctx, id, api.CloneRequest{Name: "nope"})
	apiErr(t, err, http.StatusConflict)
	stop(id)

	task := wait(r.c.CloneVM(ctx, id, api.CloneRequest{Name: "full-1"}))
	if len(task.Results) != 1 {
		t.Fatalf("clone task results %q", task.Results)
	}
	full, err := r.c.GetVM(ctx, "full-1")
	if err != nil || full.Spec.ID != task.Results[0] || full.Spec.Disks[0].Path != "full-1/disk0.qcow2" || full.Spec.NICs != nil && full.Spec.NICs[0].MAC == src.Spec.NICs[0].MAC {
		t.Fatalf("full clone %+v, %v", full.Spec, err)
	}
	info, err := r.c.DiskInfo(ctx, "ds", "full-1/disk0.qcow2")
	if err != nil || info.BackingFile != "" {
		t.Fatalf("full clone's disk %+v, %v: want no backing", info, err)
	}
	gf := boot(full.Spec.ID, 1)
	gf.say("cat", "floor: marker=base", time.Minute)
	gf.say("mark full", "floor: marked full", time.Minute)
	stop(full.Spec.ID)

	wait(r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "s"}))
	g = boot(id, 3)
	g.say("mark changed", "floor: marked changed", time.Minute)
	stop(id)
	task = wait(r.c.CloneVM(ctx, id, api.CloneRequest{Name: "of-snap", Snapshot: "s", Linked: true}))
	info, err = r.c.DiskInfo(ctx, "ds", "of-snap/disk0.qcow2")
	if err != nil || !strings.HasPrefix(info.BackingFile, "bases/"+id+"/") {
		t.Fatalf("linked clone of a snapshot: disk %+v, %v: want a base under bases/", info, err)
	}
	base := info.BackingFile
	gs := boot(task.Results[0], 1)
	gs.say("cat", "floor: marker=base", time.Minute)
	stop(task.Results[0])

	// The template.
	if _, err := r.c.SetTemplate(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	_, err = r.c.VMAction(ctx, id, api.ActionStart)
	apiErr(t, err, http.StatusConflict)
	_, err = r.c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "t"})
	apiErr(t, err, http.StatusConflict)
	_, err = r.c.Deploy(ctx, "full-1", api.DeployRequest{Count: 2, NamePattern: "x-{n}"})
	apiErr(t, err, http.StatusConflict) // not a template
	_, err = r.c.Deploy(ctx, id, api.DeployRequest{Count: 2, NamePattern: "full-{n}"})
	apiErr(t, err, http.StatusUnprocessableEntity) // full-1 exists
	disk := filepath.Join(r.ds, "golden/disk.qcow2")
	before := fileSum(t, disk)

	t0 := time.Now()
	task = wait(r.c.Deploy(ctx, id, api.DeployRequest{Count: 3, NamePattern: "web-{n}"}))
	t.Logf("3 linked clones made in %v", time.Since(t0))
	if len(task.Results) != 3 {
		t.Fatalf("deploy results %q", task.Results)
	}
	for i, cid := range task.Results {
		vm, err := r.c.GetVM(ctx, cid)
		if err != nil || vm.Spec.Name != fmt.Sprintf("web-%d", i+1) || vm.Spec.Template {
			t.Fatalf("clone %d: %+v, %v", i, vm.Spec, err)
		}
		if _, err := r.c.VMAction(ctx, cid, api.ActionStart); err != nil {
			t.Fatal(err)
		}
	}
	for i, cid := range task.Results {
		gc := guestConsole{t, r, cid}
		runnertest.WaitConsole(t, gc.tail, runnertest.Marker, 5*time.Minute)
		gc.say("cat", "floor: marker=changed", time.Minute)
		gc.say(fmt.Sprintf("mark web-%d", i+1), fmt.Sprintf("floor: marked web-%d", i+1), time.Minute)
	}
	for _, cid := range task.Results {
		stop(cid)
	}
	if after := fileSum(t, disk); after != before {
		t.Fatal("the template's disk changed while its clones ran")
	}

	// Nothing pulls the base from under the clones.
	_, err = r.c.DeleteVMWithDisks(ctx, id)
	apiErr(t, err, http.StatusConflict)
	err = r.c.DeleteDatastoreFile(ctx, "ds", "golden/disk.qcow2")
	apiErr(t, err, http.StatusConflict)
	_, err = r.c.SetTemplate(ctx, id, false)
	apiErr(t, err, http.StatusConflict)
	_, err = r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "golden/disk.qcow2", SizeBytes: 128 << 20})
	apiErr(t, err, http.StatusConflict)
	err = r.c.DeleteDatastoreFile(ctx, "ds", base)
	apiErr(t, err, http.StatusConflict)
	// The last clone of the snapshot goes with its disk, and its base with it.
	if _, err := r.c.DeleteVMWithDisks(ctx, "of-snap"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.ds, base)); !os.IsNotExist(err) {
		t.Fatalf("the base of a deleted last clone stays: %v", err)
	}
	for _, cid := range task.Results {
		if _, err := r.c.DeleteVMWithDisks(ctx, cid); err != nil {
			t.Fatal(err)
		}
	}
	ds := datastore.Datastore{Name: "ds", Root: r.ds}
	if deps, err := ds.Dependents("golden/disk.qcow2"); err != nil || len(deps) != 0 {
		t.Fatalf("dependents after the clones went: %q, %v", deps, err)
	}
	if _, err := r.c.SetTemplate(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	h, err := r.c.History(ctx, id)
	if err != nil || len(h) != 3 || h[1].Reason != "made a template" || h[2].Reason != "no longer a template" {
		t.Fatalf("history %+v, %v", h, err)
	}
}
