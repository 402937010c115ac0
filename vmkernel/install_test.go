package vmkernel_test

import (
	"context"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestInstallRoutes: without an installer the routes answer 501; with one
// (reading the captured QEMU q35 machine, so nothing here is written) they
// list the targets and refuse a bad one before starting a task, naming the
// field. The install itself runs end to end in qemu-test.
func TestInstallRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := vmkerneltest.Start(t, vmkerneltest.Options{})
	_, err := plain.Client.InstallTargets(ctx)
	apiErr(t, err, 501)

	root := board.FixtureRoot("../board/testdata/qemu-q35", "")
	env := installer.Env{Sys: root.Sys, Proc: root.Proc, Dev: t.TempDir(), StateDir: t.TempDir()}
	r := vmkerneltest.Start(t, vmkerneltest.Options{
		Hardware:  func() (api.Hardware, error) { return board.Read(root) },
		Installer: &env,
	})
	cands, err := r.Client.InstallTargets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) < 3 {
		t.Fatalf("install targets of the q35 fixture: %+v", cands)
	}
	for _, c := range []struct {
		req   api.InstallRequest
		field string
	}{
		{api.InstallRequest{}, "disk"},
		{api.InstallRequest{Disk: "nosuchdisk"}, "disk"},
	} {
		_, err := r.Client.Install(ctx, c.req)
		if e := apiErr(t, err, 422); e != nil && e.Problem.Field != c.field {
			t.Errorf("Install(%+v): field %q, want %q", c.req, e.Problem.Field, c.field)
		}
	}
	if tasks, _ := r.Client.ListTasks(ctx); len(tasks) != 0 {
		t.Errorf("a refused install left tasks: %+v", tasks)
	}
}
