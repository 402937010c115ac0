package tasks

import (
	"errors"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestRegistry(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	r := New(func() time.Time { return now })
	a := r.Start("upload", "ds1:a.iso", "root", 100)
	a.Add(40)
	if got, ok := r.Get(a.ID()); !ok || got.Done != 40 || got.State != api.TaskRunning || got.Total != 100 {
		t.Fatalf("running task %+v %v", got, ok)
	}
	r.Finish(a, nil)
	b := r.Start("convert", "ds1:b.raw", "root", 0)
	r.Finish(b, errors.New("qemu-img: no space"))
	l := r.List()
	if len(l) != 2 || l[0].State != api.TaskSucceeded || l[1].State != api.TaskFailed || l[1].Error != "qemu-img: no space" || l[1].FinishedAt == nil {
		t.Fatalf("List = %+v", l)
	}
	// Finished tasks go after Keep; running ones stay.
	c := r.Start("upload", "ds1:c.iso", "root", 1)
	now = now.Add(Keep + time.Minute)
	if l := r.List(); len(l) != 1 || l[0].ID != c.ID() {
		t.Fatalf("after Keep: %+v", l)
	}
	for range MaxDone + 10 {
		r.Finish(r.Start("upload", "x", "root", 1), nil)
	}
	if l := r.List(); len(l) != MaxDone+1 {
		t.Fatalf("%d tasks kept, want %d finished + 1 running", len(l), MaxDone)
	}
}
