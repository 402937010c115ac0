package runner

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/vmkernel/cgroup"
)

// recordingCgroups stands in for cgroup.Manager: this build host keeps cpu
// and memory in cgroup v1, so real per-VM groups are tested in the appliance
// (qemu-test), and here only what the runner asks of them.
type recordingCgroups struct {
	mu      sync.Mutex
	placed  map[string]cgroup.Limits
	pids    map[string]int
	removed []string
	fail    error
}

func (c *recordingCgroups) Place(id string, pid int, l cgroup.Limits) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return "", c.fail
	}
	c.placed[id], c.pids[id] = l, pid
	return c.Path(id), nil
}

func (c *recordingCgroups) Remove(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = append(c.removed, id)
	return nil
}

func (c *recordingCgroups) Path(id string) string { return "/cg/vm-" + id }

func TestVMPlacedInItsCgroup(t *testing.T) {
	r := newRig(t)
	cg := &recordingCgroups{placed: map[string]cgroup.Limits{}, pids: map[string]int{}}
	r.cfg.Cgroups = cg
	m := r.manager(t)
	spec := guestSpec("limited", "")
	spec.Resources.CPUWeight, spec.Resources.CPULimitPercent, spec.Resources.MemoryLimitMiB = 300, 50, 512
	if err := m.Start(ctxT(t, 60*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	st := m.Status(spec.ID)
	cg.mu.Lock()
	got, pid := cg.placed[spec.ID], cg.pids[spec.ID]
	cg.mu.Unlock()
	if want := (cgroup.Limits{CPUWeight: 300, CPUPercent: 50, MemoryBytes: 512 << 20}); got != want || pid != st.PID {
		t.Errorf("placed pid %d with %+v; want pid %d with %+v", pid, got, st.PID, want)
	}
	if st.Cgroup != "/cg/vm-"+spec.ID {
		t.Errorf("runtime cgroup = %q", st.Cgroup)
	}
	if err := m.Stop(ctxT(t, 30*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, m, spec.ID, "stopped", 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cg.mu.Lock()
		n := len(cg.removed)
		cg.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the VM's cgroup was not removed after QEMU exited")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A VM whose limits cannot be applied does not start, and leaves no QEMU.
	cg.fail = fmt.Errorf("no room")
	spec2 := guestSpec("unplaceable", "")
	if err := m.Start(ctxT(t, 60*time.Second), spec2); err == nil {
		t.Fatal("start succeeded without its cgroup")
	}
	if st := m.Status(spec2.ID); st.PID != 0 && alive(st.PID) {
		t.Errorf("QEMU %d left running after a failed placement", st.PID)
	}
}
