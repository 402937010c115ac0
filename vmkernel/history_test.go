package vmkernel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// TestDefinitionHistory: every change to a VM's definition is kept with
// who (as mgmtd names the user), when and why; two versions compare field
// by field; a dry run says what an update would change and that it needs
// a restart, changing nothing; an earlier definition comes back; while the
// VM runs, a change that needs a restart is refused and a rename is not.
func TestDefinitionHistory(t *testing.T) {
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx := longCtx(t)
	vm, err := r.c.CreateVM(ctx, guest("versioned"))
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID

	// As mgmtd forwards: the user in a header, the reason in the query.
	next := vm.Spec.Clone()
	next.MemoryMiB = 256
	body, _ := json.Marshal(next)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://vmkernel"+api.VMKernelVMPath+id+"?reason=more+memory+for+the+upgrade", bytes.NewReader(body))
	req.Header.Set(api.UserHeader, "root")
	resp, err := unixHTTP(r.sock).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %v %v", resp, err)
	}
	resp.Body.Close()

	h, err := r.c.History(ctx, id)
	if err != nil || len(h) != 2 {
		t.Fatalf("history %+v, %v", h, err)
	}
	if h[0].User != api.LocalUser || h[1].User != "root" || h[1].Reason != "more memory for the upgrade" || h[1].Time.Before(h[0].Time) {
		t.Fatalf("who, when and why: %+v / %+v", h[0], h[1])
	}
	d, err := r.c.HistoryDiff(ctx, id, 1, 2)
	if err != nil || len(d.Changes) != 1 || d.Changes[0].Field != "memory_mib" || string(d.Changes[0].Old) != "128" ||
		string(d.Changes[0].New) != "256" || !d.Changes[0].Restart || !d.NeedsRestart {
		t.Fatalf("diff 1..2: %+v, %v", d, err)
	}

	// Dry run: nothing changes, and it says so.
	try := next.Clone()
	try.Name, try.CPU.Cores = "renamed", 2
	d, err = r.c.PreviewUpdateVM(ctx, id, try)
	if err != nil || len(d.Changes) != 2 || !d.NeedsRestart || d.Running || d.From != 2 {
		t.Fatalf("dry run: %+v, %v", d, err)
	}
	for _, c := range d.Changes {
		if c.Field == "name" && c.Restart {
			t.Errorf("a rename needs no restart: %+v", c)
		}
	}
	if got, _ := r.c.GetVM(ctx, id); got.Spec.Name != "versioned" || got.Spec.CPU.Cores != 1 {
		t.Fatalf("a dry run changed the VM: %+v", got.Spec)
	}
	bad := try.Clone()
	bad.MemoryMiB = 1
	_, err = r.c.PreviewUpdateVM(ctx, id, bad)
	apiErr(t, err, http.StatusUnprocessableEntity)

	// Back to version 1 (a new version 3).
	if p, err := r.c.PreviewRevertDefinition(ctx, id, api.RevertDefinitionRequest{Version: 1}); err != nil || len(p.Changes) != 1 {
		t.Fatalf("revert preview %+v, %v", p, err)
	}
	if got, err := r.c.RevertDefinition(ctx, id, api.RevertDefinitionRequest{Version: 1, Reason: "the upgrade is off"}); err != nil || got.Spec.MemoryMiB != 128 {
		t.Fatalf("revert %+v, %v", got.Spec, err)
	}
	h, _ = r.c.History(ctx, id)
	if len(h) != 3 || h[2].Reason != "the upgrade is off" || h[2].Spec.MemoryMiB != 128 {
		t.Fatalf("history after revert %+v", h)
	}
	_, err = r.c.RevertDefinition(ctx, id, api.RevertDefinitionRequest{Version: 9})
	apiErr(t, err, http.StatusNotFound)

	// Running: a change for the next start is refused, a rename is not.
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsole(t, func() ([]byte, error) { return r.c.VMConsole(ctx, id) }, runnertest.Marker, 2*time.Minute)
	cur, _ := r.c.GetVM(ctx, id)
	more := cur.Spec.Clone()
	more.MemoryMiB = 512
	if d, err := r.c.PreviewUpdateVM(ctx, id, more); err != nil || !d.Running || !d.NeedsRestart {
		t.Fatalf("dry run while running: %+v, %v", d, err)
	}
	_, err = r.c.UpdateVM(ctx, more)
	apiErr(t, err, http.StatusConflict)
	renamed := cur.Spec.Clone()
	renamed.Name = "versioned-2"
	if _, err := r.c.UpdateVMBecause(ctx, id, renamed, "a better name"); err != nil {
		t.Fatalf("rename of a running VM: %v", err)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}

// unixHTTP is a plain HTTP client of vmkernel's socket (for requests the
// typed client does not make, as mgmtd's proxy makes them).
func unixHTTP(sock string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}
