package netconf

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/plinth/plinth/api"
)

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

// API is ch as the API reports it.
func (ch Change) API(confirmed bool) api.NetworkChange {
	out := api.NetworkChange{Config: ch.Config.API(), Interface: ch.Interface, Deadline: ch.Deadline, Confirmed: confirmed}
	if ch.Address.IsValid() {
		out.Address = ch.Address.String()
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
