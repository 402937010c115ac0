// Command vlaninit is the /init of the VLAN guest (see qemutest's
// TestManagementVLAN): the appliance's kernel and modules (802.1Q is a
// module there; the machine that runs the tests may have none) and this
// program, on a machine with two virtio NICs joined by a QEMU hub, a wire.
// eth0 is the host's management NIC, driven by hostconf (vmkernel's owner
// of the management network) with its commit-confirm rollback; eth1 goes
// to a network namespace of its own, the site's switch port: untagged
// 198.51.100.1/24 and VLAN 20 (eth1.20) 192.0.2.1/24. From the peer it
// checks, by TCP connections to a listener of the host, that
//
//  1. the untagged static address answers (a change kept on the console);
//  2. a change to VLAN 30, which the peer does not have, cuts the host off
//     and is rolled back at its deadline: the untagged address answers
//     again and eth0.30 is gone;
//  3. a change to VLAN 20 answers through the tag (and the untagged
//     address no longer does), is kept from its new address and saved with
//     its VLAN, and the API's view shows it (config.vlan, live interface).
//
// It prints "PLINTH-VLAN step ..." as it goes and ends with PLINTH-VLAN-OK
// or PLINTH-VLAN-FAIL, then powers the machine off.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel/hostconf"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"
)

// Markers qemutest looks for (vlan_test.go).
const (
	markStep = "PLINTH-VLAN step "
	markOK   = "PLINTH-VLAN-OK"
	markFail = "PLINTH-VLAN-FAIL "
)

const (
	port   = 7777
	peerNS = "plinth-peer"
)

func main() {
	if err := run(); err != nil {
		fmt.Println(markFail + err.Error())
	} else {
		fmt.Println(markOK)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("vlaninit: power off:", err)
	}
}

func step(format string, a ...any) { fmt.Printf(markStep+format+"\n", a...) }

func run() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	os.WriteFile("/proc/sys/kernel/printk", []byte("1 4 1 7"), 0o644)
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return fmt.Errorf("read modules.dep: %w", err)
	}
	for _, m := range []string{"virtio_pci", "virtio_net", "8021q"} {
		if err := prober.Probe(m, ""); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	host, err := wire()
	if err != nil {
		return err
	}
	dir := "/tmp/plinth"
	lay := layout.Under(dir)
	for _, d := range []string{lay.State, lay.Run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	mgmt := &netconf.Host{Applier: &netconf.Applier{SysRoot: "/sys", ProcRoot: "/proc", ResolvConf: filepath.Join(dir, "resolv.conf"),
		RunDir: lay.Run, LinkWait: 10 * time.Second}}
	h := hostconf.New(hostconf.Config{Layout: lay, Net: mgmt, ApplyDelay: 200 * time.Millisecond, NoTimeKeeper: true,
		Log: slog.New(slog.NewTextHandler(os.Stdout, nil))})

	ln, err := netListen()
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	untagged := api.NetworkConfig{NIC: host, Mode: api.NetModeStatic, Address: "198.51.100.10/24"}
	if _, err := change(h, untagged, 30); err != nil {
		return err
	}
	if _, err := h.ConfirmNetwork(netip.Addr{}, true); err != nil {
		return fmt.Errorf("keep the untagged address on the console: %w", err)
	}
	if err := reach("198.51.100.10", true); err != nil {
		return err
	}
	step("untagged 198.51.100.10 on %s answers", host)

	// 2. A VLAN the peer does not have: cut off, then rolled back.
	wrong := untagged
	wrong.VLAN, wrong.Address = 30, "192.0.2.10/24"
	t0 := time.Now()
	p, err := change(h, wrong, 10)
	if err != nil {
		return err
	}
	if p.Interface != host+".30" {
		return fmt.Errorf("VLAN 30 pending on %q, want %s.30", p.Interface, host)
	}
	if err := reach("192.0.2.10", false); err != nil {
		return err
	}
	if err := reach("198.51.100.10", false); err != nil {
		return err
	}
	step("VLAN 30 pending on %s: the peer reaches neither address", p.Interface)
	last, err := settled(h, p.ID, 40*time.Second)
	if err != nil {
		return err
	}
	took := time.Since(t0)
	if last.State != api.NetChangeRolledBack || !strings.HasPrefix(last.Outcome, "not confirmed by") || took < 10*time.Second {
		return fmt.Errorf("the unconfirmed VLAN 30 change: %+v after %v, want rolled back at its 10 s deadline", last, took)
	}
	if err := reach("198.51.100.10", true); err != nil {
		return fmt.Errorf("after the rollback: %w", err)
	}
	if _, err := netlink.LinkByName(host + ".30"); err == nil {
		return fmt.Errorf("after the rollback %s.30 is still there", host)
	}
	step("VLAN 30 not confirmed: rolled back %v after it was asked; untagged 198.51.100.10 answers again", took.Round(100*time.Millisecond))

	// 3. The peer's VLAN: the address answers through the tag.
	right := wrong
	right.VLAN = 20
	p, err = change(h, right, 30)
	if err != nil {
		return err
	}
	if p.Interface != host+".20" || p.Address != "192.0.2.10/24" {
		return fmt.Errorf("VLAN 20 pending: %+v", p)
	}
	if err := reach("192.0.2.10", true); err != nil {
		return err
	}
	if err := reach("198.51.100.10", false); err != nil {
		return err
	}
	kept, err := h.ConfirmNetwork(netip.MustParseAddr("192.0.2.10"), false)
	if err != nil || kept.State != api.NetChangeKept {
		return fmt.Errorf("confirm VLAN 20 from 192.0.2.10: %+v, %v", kept, err)
	}
	saved, ok, err := netconf.Load(lay.State)
	if err != nil || !ok || saved.VLAN != 20 || saved.NIC != host {
		return fmt.Errorf("saved after the confirmation: %+v, %v, %v", saved, ok, err)
	}
	n := h.Network()
	if n.Config.VLAN != 20 || n.Live.Interface != host+".20" || n.Live.NIC != host || !slices.Contains(n.Live.Addresses, "192.0.2.10/24") {
		return fmt.Errorf("the API's view after the confirmation: config %+v, live %+v", n.Config, n.Live)
	}
	step("VLAN 20 answers through the tag on %s, kept from 192.0.2.10 and saved", n.Live.Interface)
	return nil
}

// change asks for cfg and waits until it is in effect, awaiting
// confirmation.
func change(h *hostconf.Host, cfg api.NetworkConfig, confirm int) (api.NetworkChange, error) {
	c, err := h.ChangeNetwork(api.NetworkChangeRequest{Config: cfg, ConfirmSeconds: confirm})
	if err != nil {
		return c, fmt.Errorf("change to %+v: %w", cfg, err)
	}
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := h.Network()
		if n.Pending != nil && n.Pending.ID == c.ID && n.Pending.State == api.NetChangePending {
			return *n.Pending, nil
		}
		if n.Pending == nil {
			return c, fmt.Errorf("change to %+v settled before it was confirmed: %+v", cfg, n.LastChange)
		}
	}
	return c, fmt.Errorf("change to %+v not in effect within 40 s", cfg)
}

// settled waits until change id has settled and returns how.
func settled(h *hostconf.Host, id int, d time.Duration) (api.NetworkChange, error) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		n := h.Network()
		if n.Pending == nil && n.LastChange != nil && n.LastChange.ID == id {
			return *n.LastChange, nil
		}
	}
	return api.NetworkChange{}, fmt.Errorf("change %d not settled within %v", id, d)
}

// wire names the two NICs (sorted: the first is the host's) and moves the
// second into a new network namespace, the peer, configured with an
// untagged address and VLAN 20.
func wire() (string, error) {
	var nics []string
	for deadline := time.Now().Add(20 * time.Second); len(nics) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		nics = netconf.PhysicalNICs("/sys")
	}
	if len(nics) < 2 {
		return "", fmt.Errorf("want two NICs, found %v", nics)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	root, err := netns.Get()
	if err != nil {
		return "", err
	}
	defer root.Close()
	peer, err := netns.NewNamed(peerNS) // switches this thread into it
	if err != nil {
		return "", fmt.Errorf("new network namespace: %w", err)
	}
	defer peer.Close()
	if err := netns.Set(root); err != nil {
		return "", err
	}
	l, err := netlink.LinkByName(nics[1])
	if err != nil {
		return "", fmt.Errorf("the peer's NIC: %w", err)
	}
	if err := netlink.LinkSetNsFd(l, int(peer)); err != nil {
		return "", fmt.Errorf("move %s to the peer: %w", nics[1], err)
	}
	ph, err := netlink.NewHandleAt(peer, unix.NETLINK_ROUTE) // the appliance's kernel has no XFRM
	if err != nil {
		return "", fmt.Errorf("netlink in the peer: %w", err)
	}
	defer ph.Close()
	pl, err := ph.LinkByName(nics[1])
	if err != nil {
		return "", err
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: nics[1] + ".20", ParentIndex: pl.Attrs().Index}, VlanId: 20}
	if err := ph.LinkAdd(v); err != nil {
		return "", fmt.Errorf("the peer's VLAN 20: %w", err)
	}
	// The NIC before its VLAN: a VLAN whose NIC is down cannot go up
	// (ENETDOWN, "network is down"; a map's order made it fail now and then).
	for _, p := range []struct{ name, addr string }{{nics[1], "198.51.100.1/24"}, {nics[1] + ".20", "192.0.2.1/24"}} {
		l, err := ph.LinkByName(p.name)
		if err != nil {
			return "", err
		}
		a, _ := netlink.ParseAddr(p.addr)
		if err := ph.AddrAdd(l, a); err != nil {
			return "", fmt.Errorf("the peer's %s on %s: %w", p.addr, p.name, err)
		}
		if err := ph.LinkSetUp(l); err != nil {
			return "", fmt.Errorf("the peer's %s up: %w", p.name, err)
		}
	}
	if lo, err := ph.LinkByName("lo"); err == nil {
		ph.LinkSetUp(lo)
	}
	return nics[0], nil
}

func netListen() (net.Listener, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("the host's listener: %w", err)
	}
	return ln, nil
}

// reach checks that a TCP connection from the peer to addr succeeds
// (want: a few tries while ARP settles) or does not (one try of 1.5 s: the
// checks of a change with a 10 s deadline must end well before it).
func reach(addr string, want bool) error {
	to := net.JoinHostPort(addr, fmt.Sprint(port))
	tries, wait := 5, 2*time.Second
	if !want {
		tries, wait = 1, 1500*time.Millisecond
	}
	var last error
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := vswitchtest.Do(peerNS, func() error {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", to)
			if err == nil {
				c.Close()
			}
			return err
		})
		cancel()
		if err == nil {
			if !want {
				return fmt.Errorf("the peer reaches %s, which it should not", to)
			}
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond) // a refused or unroutable try returns at once
	}
	if want {
		return fmt.Errorf("the peer does not reach %s: %v", to, last)
	}
	return nil
}
