package netconf

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/layout"
)

// Applier puts a Config in place on this host through netlink.
type Applier struct {
	// SysRoot is sysfs (/sys), where NICs and their carriers are found.
	SysRoot string
	// ProcRoot is procfs (/proc), for the IPv6 switches.
	ProcRoot string
	// ResolvConf is the file that receives the DNS servers (/etc/resolv.conf).
	ResolvConf string
	// SetHostname sets the host name; nil leaves it alone.
	SetHostname func(string) error
	// LinkWait is how long to wait for a carrier (10s).
	LinkWait time.Duration
	// DHCPWait is how long each DHCP message waits for its answer (3s).
	DHCPWait time.Duration
	// RunDir (/run/plinth) holds the record of what was applied
	// (AppliedFile) and the lock every change takes; "" keeps neither.
	RunDir string
	Logf   func(format string, args ...any)
}

func (a *Applier) dhcpWait() time.Duration {
	if a.DHCPWait == 0 {
		return 3 * time.Second
	}
	return a.DHCPWait
}

func (a *Applier) linkWait() time.Duration {
	if a.LinkWait == 0 {
		return 10 * time.Second
	}
	return a.LinkWait
}

// System returns the Applier for this host's own network.
func System(logf func(string, ...any)) *Applier {
	return &Applier{SysRoot: "/sys", ProcRoot: "/proc", ResolvConf: layout.ResolvConf, RunDir: layout.RunDir,
		SetHostname: func(h string) error { return unix.Sethostname([]byte(h)) }, Logf: logf}
}

// Result is what the management network came up with.
type Result struct {
	NIC       string `json:"nic"`       // the uplink
	Interface string `json:"interface"` // where the address is: the NIC or its VLAN interface (eth0.20)
	Address   string `json:"address"`   // CIDR, "" when DHCP got nothing
	Method    string `json:"method"`    // ModeDHCP or ModeStatic
}

func (a *Applier) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

// PhysicalNICs lists the network interfaces backed by a device (not lo,
// bridges, taps...), sorted by name.
func PhysicalNICs(sysRoot string) []string {
	devs, _ := filepath.Glob(filepath.Join(sysRoot, "class", "net", "*", "device"))
	var out []string
	for _, d := range devs {
		out = append(out, filepath.Base(filepath.Dir(d)))
	}
	sort.Strings(out)
	return out
}

// Carrier reports whether nic has a link.
func Carrier(sysRoot, nic string) bool {
	b, err := os.ReadFile(filepath.Join(sysRoot, "class", "net", nic, "carrier"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// FirstLinked is the first NIC (by name) with a link, waiting up to wait.
func (a *Applier) FirstLinked(ctx context.Context, wait time.Duration) (string, error) {
	nics := PhysicalNICs(a.SysRoot)
	if len(nics) == 0 {
		return "", fmt.Errorf("no network interface found (no NIC driver loaded?)")
	}
	for _, n := range nics {
		if l, err := netlink.LinkByName(n); err == nil {
			if err := netlink.LinkSetUp(l); err != nil {
				a.logf("network: cannot bring %s up: %v", n, err)
			}
		}
	}
	deadline := time.Now().Add(wait)
	for {
		for _, n := range nics {
			if Carrier(a.SysRoot, n) {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no NIC has a link after %s (NICs: %s)", wait, strings.Join(nics, ", "))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Apply configures the loopback and the management interface as cfg says,
// replacing what an earlier Apply set (addresses, default route, VLAN
// interface), so applying the previous Config rolls a change back. With a
// RunDir it records what it put in place (AppliedFile: the Keeper renews
// a DHCP lease from it, and asks again when DHCP got no answer).
func (a *Applier) Apply(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	unlock, err := a.lock(ctx)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	return a.applyLocked(ctx, cfg)
}

// applyLocked is Apply with the lock held.
func (a *Applier) applyLocked(ctx context.Context, cfg Config) (Result, error) {
	r, ack, err := a.apply(ctx, cfg)
	if a.RunDir == "" || r.Interface == "" && cfg.Mode != ModeDHCP {
		return r, err // nothing was put in place, nothing to look after
	}
	prev, _, _ := ReadApplied(a.RunDir)
	ap := Applied{Config: cfg, Result: r, Generation: prev.Generation + 1}
	if ack != nil {
		ap.ACK, ap.Obtained = ack.ToBytes(), time.Now()
	}
	if err != nil {
		ap.Problem = err.Error()
		if cfg.Mode == ModeDHCP && ack == nil {
			ap.Problem += "; asking again"
		}
	}
	if werr := writeApplied(a.RunDir, ap); werr != nil {
		a.logf("network: record what was applied: %v", werr)
	}
	return r, err
}

func (a *Applier) apply(ctx context.Context, cfg Config) (Result, *dhcpv4.DHCPv4, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	nic := cfg.NIC
	if nic == "" {
		wait := a.LinkWait
		if wait == 0 {
			wait = 10 * time.Second
		}
		n, err := a.FirstLinked(ctx, wait)
		if err != nil {
			return Result{}, nil, err
		}
		nic = n
	}
	link, err := netlink.LinkByName(nic)
	if err != nil {
		return Result{}, nil, fmt.Errorf("management NIC %q: %w", nic, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return Result{}, nil, fmt.Errorf("bring %s up: %w", nic, err)
	}
	mgmt, err := a.vlan(link, cfg.VLAN)
	if err != nil {
		return Result{}, nil, err
	}
	// Addresses of an earlier configuration go; the new ones come.
	if addrs, err := netlink.AddrList(mgmt, netlink.FAMILY_V4); err == nil {
		for _, ad := range addrs {
			_ = netlink.AddrDel(mgmt, &ad)
		}
	}
	if mgmt.Attrs().Index != link.Attrs().Index {
		if addrs, err := netlink.AddrList(link, netlink.FAMILY_V4); err == nil {
			for _, ad := range addrs {
				_ = netlink.AddrDel(link, &ad)
			}
		}
	}
	a.ipv6(mgmt.Attrs().Name, cfg)
	if cfg.IPv6 == IPv6Static {
		ipnet := &net.IPNet{IP: cfg.IPv6Address.Addr().AsSlice(), Mask: net.CIDRMask(cfg.IPv6Address.Bits(), 128)}
		if err := netlink.AddrReplace(mgmt, &netlink.Addr{IPNet: ipnet}); err != nil {
			a.logf("network: IPv6 address %s on %s: %v", cfg.IPv6Address, mgmt.Attrs().Name, err)
		}
	}
	if cfg.Hostname != "" && a.SetHostname != nil {
		if err := a.SetHostname(cfg.Hostname); err != nil {
			return Result{}, nil, fmt.Errorf("set host name %q: %w", cfg.Hostname, err)
		}
	}
	if cfg.Mode == ModeDHCP {
		r, ack, err := a.dhcp(ctx, mgmt, cfg)
		r.NIC = nic
		return r, ack, err
	}
	r, err := a.static(mgmt, cfg)
	r.NIC = nic
	if err != nil {
		return r, nil, err
	}
	var ns []net.IP
	for _, d := range cfg.DNS {
		ns = append(ns, d.AsSlice())
	}
	if a.ResolvConf != "" {
		if err := writeResolvConf(a.ResolvConf, ns, cfg.Search); err != nil {
			return r, nil, err
		}
	}
	return r, nil, nil
}

// vlan returns the interface the management address goes on: link itself,
// or its VLAN interface NAME.ID (made here), removing other VLAN
// interfaces an earlier configuration made on link.
func (a *Applier) vlan(link netlink.Link, id int) (netlink.Link, error) {
	name := link.Attrs().Name
	want := VLANInterface(name, id)
	links, _ := netlink.LinkList()
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == link.Attrs().Index && v.Name != want {
			_ = netlink.LinkDel(l)
		}
	}
	if id == 0 {
		return link, nil
	}
	if l, err := netlink.LinkByName(want); err == nil {
		if v, ok := l.(*netlink.Vlan); ok && v.VlanId == id {
			return l, netlink.LinkSetUp(l)
		}
		_ = netlink.LinkDel(l)
	}
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: want, ParentIndex: link.Attrs().Index}, VlanId: id}
	if err := netlink.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("VLAN %d on %s: %w (is the 8021q module loaded?)", id, name, err)
	}
	l, err := netlink.LinkByName(want)
	if err != nil {
		return nil, err
	}
	return l, netlink.LinkSetUp(l)
}

// VLANInterface is the name of nic's VLAN interface for VLAN id: NIC.ID
// (eth0.20), or mgmt.ID when that is over the kernel's 15 characters; ""
// for id 0 (untagged).
func VLANInterface(nic string, id int) string {
	if id == 0 {
		return ""
	}
	if n := nic + "." + strconv.Itoa(id); len(n) <= 15 {
		return n
	}
	return "mgmt." + strconv.Itoa(id)
}

func (a *Applier) ipv6(ifname string, cfg Config) {
	if a.ProcRoot == "" {
		return
	}
	dir := filepath.Join(a.ProcRoot, "sys", "net", "ipv6", "conf", ifname)
	if _, err := os.Stat(dir); err != nil {
		return // no IPv6 in this kernel
	}
	disable, ra := "0", "1"
	switch cfg.IPv6 {
	case IPv6Off:
		disable, ra = "1", "0"
	case IPv6Static:
		ra = "0"
	}
	_ = os.WriteFile(filepath.Join(dir, "disable_ipv6"), []byte(disable), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "accept_ra"), []byte(ra), 0o644)
}

func (a *Applier) static(link netlink.Link, cfg Config) (Result, error) {
	name := link.Attrs().Name
	ipnet := &net.IPNet{IP: cfg.Address.Addr().AsSlice(), Mask: net.CIDRMask(cfg.Address.Bits(), 32)}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return Result{}, fmt.Errorf("set %s on %s: %w", cfg.Address, name, err)
	}
	if cfg.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: cfg.Gateway.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return Result{}, fmt.Errorf("default route via %s on %s: %w", cfg.Gateway, name, err)
		}
	}
	return Result{Interface: name, Address: cfg.Address.String(), Method: ModeStatic}, nil
}

func (a *Applier) dhcp(ctx context.Context, link netlink.Link, cfg Config) (Result, *dhcpv4.DHCPv4, error) {
	r := Result{Interface: link.Attrs().Name, Method: ModeDHCP}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ack, err := a.acquire(ctx, link, 5)
	if err != nil {
		return r, nil, err
	}
	p, err := a.configureLease(link, ack, cfg)
	if err != nil {
		return r, nil, err
	}
	r.Address = p.String()
	return r, ack, nil
}

func writeResolvConf(path string, ns []net.IP, search []string) error {
	var b strings.Builder
	b.WriteString("# written by Plinth (management network configuration)\n")
	for _, n := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Addresses lists the global IPv4 (and IPv6) addresses of the host's
// interfaces, for the management URLs.
func Addresses() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			out = append(out, ipn.IP.String())
		}
	}
	return out
}
