package vswitch

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"vSwitch0", "mgmt", "a", "abcdefghijk"} {
		if msg := CheckName(ok); msg != "" {
			t.Errorf("CheckName(%q) = %q, want ok", ok, msg)
		}
		if n := BridgeName(ok); len(n) > 15 {
			t.Errorf("bridge name %q too long", n)
		}
	}
	for _, bad := range []string{"", "abcdefghijkl", "br 0", "-x", "a/b", "a:b"} {
		if CheckName(bad) == "" {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "0123456789abcdef", "a b", "a/b", ".."} {
		if checkIfName(bad) == "" {
			t.Errorf("checkIfName(%q) accepted", bad)
		}
	}
}

// rig is a Manager in a fresh network namespace, with a handle there.
type rig struct {
	cfg Config
	h   *netlink.Handle
}

func newRig(t *testing.T) *rig {
	ns := vswitchtest.NewNetNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &rig{cfg: Config{Dir: t.TempDir(), NetNS: &ns}, h: h}
}

func (r *rig) open(t *testing.T) *Manager {
	t.Helper()
	m, err := Open(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func (r *rig) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := r.h.LinkByName(name)
	if err != nil {
		t.Fatalf("interface %s: %v", name, err)
	}
	return l
}

func (r *rig) gone(t *testing.T, name string) {
	t.Helper()
	if _, err := r.h.LinkByName(name); !isNotFound(err) {
		t.Fatalf("interface %s still there (%v)", name, err)
	}
}

func TestSwitchLifecycle(t *testing.T) {
	r := newRig(t)
	if err := r.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up0peer"}); err != nil {
		t.Fatal(err)
	}
	m := r.open(t)
	if err := m.Create("vSwitch0", "up0"); err != nil {
		t.Fatal(err)
	}
	br := r.link(t, "pvs-vSwitch0")
	if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("bridge: type %s flags %v", br.Type(), br.Attrs().Flags)
	}
	if up := r.link(t, "up0"); up.Attrs().MasterIndex != br.Attrs().Index || up.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("uplink master %d (want %d), flags %v", up.Attrs().MasterIndex, br.Attrs().Index, up.Attrs().Flags)
	}
	// Refusals.
	if err := m.Create("vSwitch0", ""); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	if err := m.Create("other", "up0"); !errors.Is(err, ErrInUse) {
		t.Errorf("uplink taken twice: %v, want ErrInUse", err)
	}
	if err := m.Create("nouplink", "nosuch0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing uplink: %v, want ErrNotFound", err)
	}
	r.gone(t, "pvs-nouplink") // rolled back
	if err := m.Create("much-too-long", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("long name: %v, want ErrInvalid", err)
	}
	if _, err := m.AddTap("nosuch", "pttest0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tap on unknown switch: %v, want ErrNotFound", err)
	}

	// Taps, each handed back as a descriptor attached to it.
	for _, tap := range []string{"pt0123abcd0", "pt0123abcd1"} {
		f, err := m.AddTap("vSwitch0", tap)
		if err != nil {
			t.Fatal(err)
		}
		ifr, err := unix.NewIfreq("")
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
			t.Fatalf("TUNGETIFF on the descriptor of %s: %v", tap, err)
		}
		if ifr.Name() != tap || ifr.Uint16()&(unix.IFF_TAP|unix.IFF_VNET_HDR|unix.IFF_NO_PI) != unix.IFF_TAP|unix.IFF_VNET_HDR|unix.IFF_NO_PI {
			t.Fatalf("descriptor of %s is attached to %s with flags %#x", tap, ifr.Name(), ifr.Uint16())
		}
		f.Close()

		l := r.link(t, tap)
		tt, ok := l.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
			t.Fatalf("%s is a %T %+v, want a tap", tap, l, l)
		}
		if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("%s: master %d flags %v", tap, l.Attrs().MasterIndex, l.Attrs().Flags)
		}
	}
	if f, err := m.AddTap("vSwitch0", "pt0123abcd0"); err != nil { // adopted
		t.Fatalf("adding an existing tap: %v", err)
	} else {
		f.Close()
	}
	if _, err := m.AddTap("vSwitch0", "up0peer"); !errors.Is(err, ErrInUse) {
		t.Errorf("a veth as tap: %v, want ErrInUse", err)
	}
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "vSwitch0" || list[0].Bridge != "pvs-vSwitch0" || list[0].Uplink != "up0" ||
		!list[0].Up || list[0].MTU == 0 || list[0].Problem != "" ||
		!slices.Equal(list[0].Ports, []string{"pt0123abcd0", "pt0123abcd1", "up0"}) {
		t.Fatalf("List = %+v", list)
	}
	if err := m.Delete("vSwitch0"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete with taps: %v, want ErrInUse", err)
	}
	for _, tap := range []string{"pt0123abcd0", "pt0123abcd1"} {
		if err := m.RemoveTap(tap); err != nil {
			t.Fatal(err)
		}
		r.gone(t, tap)
	}
	if err := m.RemoveTap("pt0123abcd0"); err != nil {
		t.Errorf("removing a tap twice: %v", err)
	}
	if err := m.RemoveTap("up0peer"); !errors.Is(err, ErrInvalid) {
		t.Errorf("removing a veth: %v, want ErrInvalid", err)
	}
	if err := m.Delete("vSwitch0"); err != nil {
		t.Fatal(err)
	}
	r.gone(t, "pvs-vSwitch0")
	if up := r.link(t, "up0"); up.Attrs().MasterIndex != 0 {
		t.Errorf("uplink still enslaved: %d", up.Attrs().MasterIndex)
	}
	if err := m.Delete("vSwitch0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	if list, _ := m.List(); len(list) != 0 {
		t.Errorf("List after delete = %+v", list)
	}
}

func TestPersistenceAndAdoption(t *testing.T) {
	r := newRig(t)
	if err := r.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up0peer"}); err != nil {
		t.Fatal(err)
	}
	m := r.open(t)
	for _, c := range [][2]string{{"mgmt", "up0"}, {"internal", ""}} {
		if err := m.Create(c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := m.AddTap("internal", "ptkeep0"); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(r.cfg.Dir, StateFile)); err != nil {
		t.Fatal(err)
	}
	m.Close()

	// As after a reboot: the mgmt bridge is gone (and its uplink free); the
	// internal one is still there with its tap.
	r.h.LinkDel(r.link(t, "pvs-mgmt"))
	r.gone(t, "pvs-mgmt")
	internal := r.link(t, "pvs-internal").Attrs().Index

	m2 := r.open(t)
	if p := m2.Problems(); len(p) != 0 {
		t.Fatalf("Problems = %v", p)
	}
	br := r.link(t, "pvs-mgmt")
	if up := r.link(t, "up0"); up.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("uplink not re-enslaved")
	}
	if got := r.link(t, "pvs-internal").Attrs().Index; got != internal {
		t.Errorf("existing bridge re-created (index %d, was %d), not adopted", got, internal)
	}
	list, err := m2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "internal" || !slices.Equal(list[0].Ports, []string{"ptkeep0"}) ||
		list[1].Name != "mgmt" || list[1].Uplink != "up0" || !list[1].Up {
		t.Fatalf("List = %+v", list)
	}

	// A missing uplink leaves the switch defined, with a problem.
	m2.Close()
	r.h.LinkDel(r.link(t, "pvs-mgmt"))
	r.h.LinkDel(r.link(t, "up0"))
	m3 := r.open(t)
	if p := m3.Problems(); len(p) != 1 || !errors.Is(p[0], ErrNotFound) {
		t.Fatalf("Problems = %v, want the missing uplink", p)
	}
	list, _ = m3.List()
	if len(list) != 2 || list[1].Problem == "" {
		t.Fatalf("List = %+v, want mgmt with a problem", list)
	}
}
