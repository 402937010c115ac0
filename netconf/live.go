package netconf

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/plinth/plinth/api"
)

// FromAPI reads a configuration as the API gives it, checked as Validate
// does: every problem names its field ("address", "dns"...).
func FromAPI(in api.NetworkConfig) (Config, error) {
	c := Config{NIC: strings.TrimSpace(in.NIC), VLAN: in.VLAN, Mode: strings.TrimSpace(in.Mode), IPv6: strings.TrimSpace(in.IPv6),
		Hostname: strings.TrimSpace(in.Hostname)}
	var p Problems
	add := func(f, format string, a ...any) { p = append(p, FieldError{f, fmt.Sprintf(format, a...)}) }
	if c.Mode == "" {
		c.Mode = ModeDHCP
	}
	if v := strings.TrimSpace(in.Address); v != "" {
		a, err := netip.ParsePrefix(v)
		if err != nil {
			add("address", "%q is not an address with prefix length, e.g. 192.0.2.10/24", v)
		}
		c.Address = a
	}
	if v := strings.TrimSpace(in.Gateway); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			add("gateway", "%q is not an IP address", v)
		}
		c.Gateway = a
	}
	if v := strings.TrimSpace(in.IPv6Address); v != "" {
		a, err := netip.ParsePrefix(v)
		if err != nil {
			add("ipv6_address", "%q is not an IPv6 address with prefix length, e.g. 2001:db8::10/64", v)
		}
		c.IPv6Address = a
	}
	for _, v := range in.DNS {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			add("dns", "%q is not an IP address", v)
			continue
		}
		c.DNS = append(c.DNS, a)
	}
	for _, v := range in.Search {
		c.Search = append(c.Search, strings.TrimSpace(v))
	}
	if len(p) > 0 {
		return c, p
	}
	return c, c.Validate()
}

// API is c as the API reports it.
func (c Config) API() api.NetworkConfig {
	out := api.NetworkConfig{NIC: c.NIC, VLAN: c.VLAN, Mode: c.Mode, IPv6: c.IPv6, Search: c.Search, Hostname: c.Hostname}
	if c.Address.IsValid() {
		out.Address = c.Address.String()
	}
	if c.Gateway.IsValid() {
		out.Gateway = c.Gateway.String()
	}
	if c.IPv6Address.IsValid() {
		out.IPv6Address = c.IPv6Address.String()
	}
	for _, d := range c.DNS {
		out.DNS = append(out.DNS, d.String())
	}
	return out
}

// Live reads the management network as the kernel has it: the uplink is
// cfg's NIC when it names one, else the default route's interface, else
// the first NIC with an IPv4 address. sysRoot is sysfs (/sys), resolvConf
// the resolver's file (/etc/resolv.conf).
func Live(cfg Config, sysRoot, resolvConf string) api.NetworkLive {
	var out api.NetworkLive
	out.Hostname, _ = os.Hostname()
	out.Addresses = []string{}
	if f, err := os.Open(resolvConf); err == nil {
		out.DNS, out.Search = parseResolvConf(f)
		f.Close()
	}
	var deflt netlink.Link
	if routes, err := netlink.RouteList(nil, netlink.FAMILY_V4); err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
				if r.Gw != nil {
					out.Gateway = r.Gw.String()
				}
				deflt, _ = netlink.LinkByIndex(r.LinkIndex)
				break
			}
		}
	}
	var mgmt netlink.Link
	switch {
	case cfg.NIC != "":
		mgmt, _ = netlink.LinkByName(cfg.NIC)
		if mgmt != nil && cfg.VLAN > 0 {
			if v := vlanOf(mgmt, cfg.VLAN); v != nil {
				mgmt = v
			}
		}
	case deflt != nil:
		mgmt = deflt
	default:
		for _, n := range PhysicalNICs(sysRoot) {
			l, err := netlink.LinkByName(n)
			if err != nil {
				continue
			}
			if addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4); len(addrs) > 0 {
				mgmt = l
				break
			}
		}
	}
	if mgmt == nil {
		out.NIC = cfg.NIC
		return out
	}
	a := mgmt.Attrs()
	out.Interface, out.NIC = a.Name, a.Name
	uplink := mgmt
	if v, ok := mgmt.(*netlink.Vlan); ok {
		if p, err := netlink.LinkByIndex(v.ParentIndex); err == nil {
			uplink = p
			out.NIC = p.Attrs().Name
		}
	}
	out.MAC = uplink.Attrs().HardwareAddr.String()
	out.Link = Carrier(sysRoot, out.NIC) || uplink.Attrs().OperState == netlink.OperUp
	addrs, _ := netlink.AddrList(mgmt, netlink.FAMILY_ALL)
	for _, ad := range addrs {
		if ad.IPNet == nil || ad.IP.IsLinkLocalUnicast() || ad.IP.IsLoopback() {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		out.Addresses = append(out.Addresses, netip.PrefixFrom(ip.Unmap(), ones).String())
	}
	return out
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// vlanOf is link's VLAN interface with VLAN ID id, if there is one.
func vlanOf(link netlink.Link, id int) netlink.Link {
	links, _ := netlink.LinkList()
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == link.Attrs().Index && v.VlanId == id {
			return l
		}
	}
	return nil
}

// parseResolvConf reads the name servers and search domains of a
// resolv.conf.
func parseResolvConf(r io.Reader) (ns, search []string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			ns = append(ns, f[1])
		case "search", "domain":
			search = append(search, f[1:]...)
		}
	}
	return ns, search
}
