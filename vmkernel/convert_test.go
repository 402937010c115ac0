package vmkernel_test

import (
	"context"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestConvertDiskTask converts a qcow2 disk to raw as a task with real
// qemu-img, and refuses bad requests before starting one.
func TestConvertDiskTask(t *testing.T) {
	rig := startVMs(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rig.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "src.qcow2", SizeBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	task, err := rig.c.ConvertDisk(ctx, "ds", api.ConvertDiskRequest{Path: "src.qcow2", Target: "out/dst.raw", Format: api.FormatRaw})
	if err != nil {
		t.Fatal(err)
	}
	if task.Kind != "convert" || task.Total != 64<<20 || task.ID == "" {
		t.Fatalf("task %+v", task)
	}
	done, err := rig.c.WaitTask(ctx, task.ID, 20*time.Millisecond, nil)
	if err != nil || done.State != api.TaskSucceeded || done.Done != done.Total {
		t.Fatalf("WaitTask = %+v, %v", done, err)
	}
	info, err := rig.c.DiskInfo(ctx, "ds", "out/dst.raw")
	if err != nil || info.Format != api.FormatRaw || info.VirtualSizeBytes != 64<<20 {
		t.Fatalf("converted disk: %+v %v", info, err)
	}
	if l, err := rig.c.ListTasks(ctx); err != nil || len(l) != 1 {
		t.Fatalf("ListTasks = %+v, %v", l, err)
	}
	for _, c := range []struct {
		req    api.ConvertDiskRequest
		status int
	}{
		{api.ConvertDiskRequest{Path: "nope.qcow2", Target: "x.raw"}, 404},
		{api.ConvertDiskRequest{Path: "src.qcow2", Target: "out/dst.raw"}, 409},
		{api.ConvertDiskRequest{Path: "src.qcow2", Target: "../x.raw"}, 400},
		{api.ConvertDiskRequest{Path: "src.qcow2", Target: "y", Format: "vmdk"}, 422},
		{api.ConvertDiskRequest{Target: "y"}, 422},
	} {
		_, err := rig.c.ConvertDisk(ctx, "ds", c.req)
		apiErr(t, err, c.status)
	}
}
