package appinit

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/plinth/plinth/netconf"
)

// ParseNetConfig reads the management network settings from the kernel
// command line (plinth.ip=ADDR/PREFIX plinth.gw=IP plinth.dns=IP[,IP]
// plinth.nic=NAME); without plinth.ip it is DHCP. Bad values are errors that
// name the parameter.
func ParseNetConfig(c Cmdline) (netconf.Config, error) {
	n := netconf.Default()
	n.NIC = c["plinth.nic"]
	if v, ok := c["plinth.ip"]; ok && v != "dhcp" {
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() {
			return n, fmt.Errorf("plinth.ip=%q: want an IPv4 address with prefix length, e.g. 192.0.2.10/24", v)
		}
		n.Mode, n.Address = netconf.ModeStatic, p
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
	if err := n.Validate(); err != nil {
		return n, fmt.Errorf("kernel command line: %w", err)
	}
	return n, nil
}

// networkConfig picks the management network configuration: a static
// address on the kernel command line wins (a rescue path); else the one
// saved in STATE (by the DCUI); else the command line's (DHCP by default).
func networkConfig(stateDir string, c Cmdline, logf func(string, ...any)) (cfg netconf.Config, source string, err error) {
	cmd, err := ParseNetConfig(c)
	if err != nil {
		return cmd, "kernel command line", err
	}
	if v, ok := c["plinth.ip"]; ok && v != "dhcp" {
		return cmd, "kernel command line", nil
	}
	saved, ok, err := netconf.Load(stateDir)
	if err != nil {
		logf("network: saved configuration ignored: %v", err)
	}
	if ok {
		return saved, filepath.Join(stateDir, netconf.FileName), nil
	}
	return cmd, "default", nil
}

// defaultHostname is "plinth-" and the last three bytes of the first NIC's MAC.
func defaultHostname(sysRoot string) string {
	for _, n := range netconf.PhysicalNICs(sysRoot) {
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
func validHostname(h string) bool { return netconf.ValidHostname(h) }
