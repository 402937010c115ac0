package appinit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// NetConfig is the management network configuration, from the kernel command
// line (plinth.ip=ADDR/PREFIX plinth.gw=IP plinth.dns=IP[,IP] plinth.nic=NAME)
// or, when no address is given there, DHCP on the first NIC with a link.
type NetConfig struct {
	NIC     string       // "" = first NIC with a link
	Address netip.Prefix // invalid = DHCP
	Gateway netip.Addr
	DNS     []netip.Addr
}

// ParseNetConfig reads the management network settings from the command line.
// Bad values are errors that name the parameter.
func ParseNetConfig(c Cmdline) (NetConfig, error) {
	var n NetConfig
	n.NIC = c["plinth.nic"]
	if v, ok := c["plinth.ip"]; ok && v != "dhcp" {
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() {
			return n, fmt.Errorf("plinth.ip=%q: want an IPv4 address with prefix length, e.g. 192.0.2.10/24", v)
		}
		n.Address = p
	}
	if v, ok := c["plinth.gw"]; ok {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return n, fmt.Errorf("plinth.gw=%q: not an IP address", v)
		}
		if n.Address.IsValid() && !n.Address.Masked().Contains(a) {
			return n, fmt.Errorf("plinth.gw=%s is outside the subnet %s of plinth.ip", a, n.Address.Masked())
		}
		n.Gateway = a
	}
	if v, ok := c["plinth.dns"]; ok {
		for _, s := range strings.Split(v, ",") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return n, fmt.Errorf("plinth.dns: %q is not an IP address", s)
			}
			n.DNS = append(n.DNS, a)
		}
	}
	return n, nil
}

// NetResult is what the management network came up with.
type NetResult struct {
	NIC     string
	Address string // CIDR
	Method  string // "dhcp" or "static"
}

// physicalNICs lists the network interfaces backed by a device (not lo,
// bridges, taps...), sorted by name.
func physicalNICs(sysRoot string) []string {
	devs, _ := filepath.Glob(filepath.Join(sysRoot, "class", "net", "*", "device"))
	var out []string
	for _, d := range devs {
		out = append(out, filepath.Base(filepath.Dir(d)))
	}
	sort.Strings(out)
	return out
}

func carrier(sysRoot, nic string) bool {
	b, err := os.ReadFile(filepath.Join(sysRoot, "class", "net", nic, "carrier"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// bringUpNetwork configures the loopback and the management interface.
func bringUpNetwork(ctx context.Context, cfg NetConfig, logf func(string, ...any)) (NetResult, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	nics := physicalNICs("/sys")
	if len(nics) == 0 {
		return NetResult{}, fmt.Errorf("no network interface found (no NIC driver loaded?)")
	}
	for _, n := range nics {
		if l, err := netlink.LinkByName(n); err == nil {
			if err := netlink.LinkSetUp(l); err != nil {
				logf("network: cannot bring %s up: %v", n, err)
			}
		}
	}
	nic := cfg.NIC
	if nic == "" {
		// The first NIC (by name) with a link; wait up to 10 s for carriers.
		deadline := time.Now().Add(10 * time.Second)
		for nic == "" {
			for _, n := range nics {
				if carrier("/sys", n) {
					nic = n
					break
				}
			}
			if nic != "" {
				break
			}
			if time.Now().After(deadline) {
				return NetResult{}, fmt.Errorf("no NIC has a link after 10s (NICs: %s)", strings.Join(nics, ", "))
			}
			select {
			case <-ctx.Done():
				return NetResult{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	link, err := netlink.LinkByName(nic)
	if err != nil {
		return NetResult{}, fmt.Errorf("management NIC %q: %w", nic, err)
	}
	if cfg.Address.IsValid() {
		return staticNetwork(link, cfg)
	}
	return dhcpNetwork(ctx, link)
}

func staticNetwork(link netlink.Link, cfg NetConfig) (NetResult, error) {
	name := link.Attrs().Name
	ipnet := &net.IPNet{IP: cfg.Address.Addr().AsSlice(), Mask: net.CIDRMask(cfg.Address.Bits(), 32)}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return NetResult{}, fmt.Errorf("set %s on %s: %w", cfg.Address, name, err)
	}
	if cfg.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: cfg.Gateway.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return NetResult{}, fmt.Errorf("default route via %s on %s: %w", cfg.Gateway, name, err)
		}
	}
	if len(cfg.DNS) > 0 {
		var ns []net.IP
		for _, a := range cfg.DNS {
			ns = append(ns, a.AsSlice())
		}
		if err := dhclient.WriteDNSSettings(ns, nil, "", "/etc/resolv.conf"); err != nil {
			return NetResult{}, fmt.Errorf("write /etc/resolv.conf: %w", err)
		}
	}
	return NetResult{NIC: name, Address: cfg.Address.String(), Method: "static"}, nil
}

func dhcpNetwork(ctx context.Context, link netlink.Link) (NetResult, error) {
	name := link.Attrs().Name
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results := dhclient.SendRequests(ctx, []netlink.Link{link}, true, false,
		dhclient.Config{Timeout: 3 * time.Second, Retries: 5, LogLevel: dhclient.LogInfo,
			Modifiers4: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("Plinth"))}}, 10*time.Second)
	var lastErr error
	for r := range results {
		if r.Err != nil {
			lastErr = r.Err
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			return NetResult{}, fmt.Errorf("apply DHCP lease on %s: %w", name, err)
		}
		addr := ""
		if p, ok := r.Lease.(*dhclient.Packet4); ok && p.Lease() != nil {
			addr = p.Lease().String()
		}
		return NetResult{NIC: name, Address: addr, Method: "dhcp"}, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no answer")
	}
	return NetResult{}, fmt.Errorf("DHCP on %s: %w", name, lastErr)
}

// defaultHostname is "plinth-" and the last three bytes of the first NIC's MAC.
func defaultHostname(sysRoot string) string {
	for _, n := range physicalNICs(sysRoot) {
		b, err := os.ReadFile(filepath.Join(sysRoot, "class", "net", n, "address"))
		if err != nil {
			continue
		}
		mac := strings.ReplaceAll(strings.TrimSpace(string(b)), ":", "")
		if len(mac) == 12 {
			return "plinth-" + mac[6:]
		}
	}
	return "plinth"
}

// validHostname reports whether h is an RFC 1123 host name label sequence.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
