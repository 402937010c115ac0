package netconf

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/plinth/plinth/api"
)

// Host is a host's management network as its one owner, vmkernel, drives
// it: apply a configuration, read what is live, test it, and keep it
// between changes (the Keeper). NetNS, when set, names the network
// namespace (as `ip netns add` makes them) that all of it happens in:
// tests run the real thing inside a namespace of their own.
type Host struct {
	*Applier
	NetNS string
}

// in runs f with the network of h: on an OS thread switched into NetNS,
// when set. Goroutines f starts do not run in it (sockets it opens do).
func (h *Host) in(f func()) error {
	if h.NetNS == "" {
		f()
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(h.NetNS)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", h.NetNS, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", h.NetNS, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it with this goroutine.
			runtime.LockOSThread()
		}
	}()
	f()
	return nil
}

// Apply puts cfg in place (Applier.Apply).
func (h *Host) Apply(ctx context.Context, cfg Config) (r Result, err error) {
	if nsErr := h.in(func() { r, err = h.Applier.Apply(ctx, cfg) }); nsErr != nil {
		return r, nsErr
	}
	return r, err
}

// Live is the management network as the kernel has it (Live), with the
// DHCP lease and the problem the last Apply or the Keeper recorded.
func (h *Host) Live(cfg Config) api.NetworkLive {
	var out api.NetworkLive
	if err := h.in(func() { out = Live(cfg, h.SysRoot, h.ResolvConf) }); err != nil {
		out.Problem = err.Error()
		return out
	}
	if ap, ok, err := ReadApplied(h.RunDir); err != nil {
		out.Problem = err.Error()
	} else if ok {
		out.DHCP, out.Problem = ap.API(), ap.Problem
	}
	return out
}

// Test checks the management network as it is now (Test), resolving cfg's
// host name, else the running one.
func (h *Host) Test(ctx context.Context, cfg Config) []Check {
	var out []Check
	err := h.in(func() {
		name := cfg.Hostname
		if name == "" {
			name, _ = os.Hostname()
		}
		out = Test(ctx, cfg, Live(cfg, h.SysRoot, h.ResolvConf), name)
	})
	if err != nil {
		return []Check{{What: "network namespace", Info: err.Error()}}
	}
	return out
}

// Keep looks after the network between changes until ctx ends: the
// Keeper's steps (DHCP renewal, asking again while DHCP gets nothing).
func (h *Host) Keep(ctx context.Context, k *Keeper) {
	k.Applier = h.Applier
	for {
		var wait time.Duration
		if err := h.in(func() { wait = k.Step(ctx) }); err != nil {
			h.logf("network keeper: %v", err)
			wait = k.poll()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// NICs are the interfaces that can carry the management network: known
// (the board's inventory) and the links without a device that can (veth,
// dummy: test hosts, namespaces).
func (h *Host) NICs(known []api.HostNIC) []api.HostNIC {
	out := append([]api.HostNIC(nil), known...)
	have := map[string]bool{}
	for _, n := range known {
		have[n.Name] = true
	}
	var links []netlink.Link
	_ = h.in(func() { links, _ = netlink.LinkList() })
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Name < links[j].Attrs().Name })
	for _, l := range links {
		a := l.Attrs()
		if have[a.Name] || a.Flags&net.FlagLoopback != 0 || a.MasterIndex != 0 {
			continue
		}
		switch l.Type() {
		case "dummy", "veth":
		default:
			continue
		}
		out = append(out, api.HostNIC{Name: a.Name, MAC: a.HardwareAddr.String(), Driver: l.Type(),
			Link: a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown})
	}
	return out
}
