package runner

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vswitch"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"
)

func TestTapName(t *testing.T) {
	id := "0123abcd-4567-89ab-cdef-0123456789ab"
	if got := TapName(id, 0); got != "pt0123abcd0" {
		t.Errorf("TapName = %q", got)
	}
	if got := TapName(id, api.MaxNICs-1); len(got) > 15 {
		t.Errorf("TapName %q longer than IFNAMSIZ-1", got)
	}
}

func TestSwitchNICWithoutSwitches(t *testing.T) {
	m, err := New(Config{QEMU: "/nonexistent/qemu", Accel: api.AccelTCG, RunRoot: runnertest.Dir(t, "run"), StateRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.VMSpec{ID: api.NewUUID(), Name: "nosw", MemoryMiB: 64, NICs: []api.NIC{{Switch: "vsw"}}}
	spec.Defaults()
	err = m.Start(context.Background(), spec)
	if !errors.Is(err, ErrNoSwitches) || !errors.Is(err, ErrStartFailed) {
		t.Fatalf("Start = %v, want ErrNoSwitches", err)
	}
	if st := m.Status(spec.ID); st.State != api.VMStopped {
		t.Fatalf("state %+v after a refused start", st)
	}
}

// fakeSwitches records the taps added and removed.
type fakeSwitches struct {
	mu            sync.Mutex
	added, remove []string
}

func (f *fakeSwitches) AddTap(sw, tap string) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, sw+"/"+tap)
	return os.Open(os.DevNull)
}

func (f *fakeSwitches) RemoveTap(tap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove = append(f.remove, tap)
	return nil
}

func TestTapsRemovedOnFailedStart(t *testing.T) {
	sw := &fakeSwitches{}
	m, err := New(Config{QEMU: "/bin/false", Accel: api.AccelTCG, RunRoot: runnertest.Dir(t, "run"), StateRoot: t.TempDir(), Switches: sw})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.VMSpec{ID: "0123abcd-4567-89ab-cdef-0123456789ab", Name: "fail", MemoryMiB: 64,
		NICs: []api.NIC{{NAT: true}, {Switch: "vsw"}}}
	spec.Defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx, spec); !errors.Is(err, ErrStartFailed) {
		t.Fatalf("Start = %v, want ErrStartFailed", err)
	}
	if !slices.Equal(sw.added, []string{"vsw/pt0123abcd1"}) || !slices.Equal(sw.remove, []string{"pt0123abcd1"}) {
		t.Fatalf("added %v, removed %v", sw.added, sw.remove)
	}
}

// TestVMOnSwitch runs a VM whose NIC is on a virtual switch in a fresh
// network namespace.
func TestVMOnSwitch(t *testing.T) {
	ns := vswitchtest.NewNetNS(t)
	r := newRig(t)
	vs, err := vswitch.Open(vswitch.Config{Dir: t.TempDir(), NetNS: &ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close() })
	if err := vs.Create("vsw", ""); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	r.cfg.Switches = vs
	m := r.manager(t)
	// QEMU stays in the host's namespace: vmkernel opens the tap in the
	// switch's and hands QEMU the descriptor.

	spec := guestSpec("switched", api.OnCrashStayStopped)
	spec.NICs = []api.NIC{{Model: api.NICVirtio, Switch: "vsw"}}
	spec.Defaults()
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	tap := TapName(spec.ID, 0)
	br, err := h.LinkByName(vswitch.BridgeName("vsw"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName(tap)
	if err != nil {
		t.Fatalf("tap %s of the running VM: %v", tap, err)
	}
	if _, ok := l.(*netlink.Tuntap); !ok || l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("tap %s: %T master %d (bridge %d) flags %v", tap, l, l.Attrs().MasterIndex, br.Attrs().Index, l.Attrs().Flags)
	}
	// QEMU holds the tap: its carrier is on.
	deadline := time.Now().Add(10 * time.Second)
	for l.Attrs().OperState != netlink.OperUp && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if l, err = h.LinkByName(tap); err != nil {
			t.Fatal(err)
		}
	}
	if l.Attrs().OperState != netlink.OperUp {
		t.Errorf("tap %s operstate %v, want up (QEMU attached)", tap, l.Attrs().OperState)
	}
	list, err := vs.List()
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Ports, []string{tap}) {
		t.Fatalf("switches %+v, %v", list, err)
	}
	if err := vs.Delete("vsw"); !errors.Is(err, vswitch.ErrInUse) {
		t.Errorf("deleting the switch of a running VM: %v, want ErrInUse", err)
	}
	if err := m.Stop(ctxT(t, 15*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(tap); err == nil {
		t.Fatalf("tap %s still there after stop", tap)
	}
}
