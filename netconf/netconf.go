// Package netconf is the management network's configuration: one typed
// Config, kept as JSON in STATE (network.json), checked by Validate (each
// problem names its field) and put in place by Apply through netlink. The
// appliance init applies it at boot (the kernel command line's plinth.ip=
// overriding it); the DCUI edits, applies and saves it.
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/plinth/plinth/atomicfile"
)

// FileName is the configuration's file in the STATE directory.
const FileName = "network.json"

// Modes of IPv4 and IPv6 configuration.
const (
	ModeDHCP   = "dhcp"
	ModeStatic = "static"
	IPv6Auto   = "auto"
	IPv6Off    = "off"
	IPv6Static = "static"
)

// Config is the management network configuration.
type Config struct {
	// NIC is the uplink; "" means the first NIC with a link.
	NIC string `json:"nic,omitempty"`
	// VLAN is the 802.1Q VLAN ID of the management network, 0 for none.
	VLAN int `json:"vlan,omitempty"`
	// Mode is ModeDHCP or ModeStatic (IPv4).
	Mode string `json:"mode"`
	// Address is the static IPv4 address with its prefix length.
	Address netip.Prefix `json:"address,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// IPv6 is IPv6Auto (SLAAC), IPv6Static or IPv6Off; "" is auto.
	IPv6        string       `json:"ipv6,omitempty"`
	IPv6Address netip.Prefix `json:"ipv6_address,omitzero"`
	DNS         []netip.Addr `json:"dns,omitempty"`
	Search      []string     `json:"search,omitempty"`
	// Hostname, when set, is the host's name (over STATE's config/hostname
	// and the kernel command line).
	Hostname string `json:"hostname,omitempty"`
}

// Default is DHCP on the first NIC with a link.
func Default() Config { return Config{Mode: ModeDHCP} }

// FieldError is one problem with one field of a Config.
type FieldError struct {
	Field   string // the JSON name: "address", "gateway", "dns", ...
	Problem string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// Problems are all the problems Validate found.
type Problems []FieldError

func (p Problems) Error() string {
	s := make([]string, len(p))
	for i, e := range p {
		s[i] = e.Error()
	}
	return "invalid network configuration: " + strings.Join(s, "; ")
}

// Field returns the problem with field, "" when there is none.
func (p Problems) Field(field string) string {
	for _, e := range p {
		if e.Field == field {
			return e.Problem
		}
	}
	return ""
}

// Validate returns nil or Problems naming every bad field.
func (c Config) Validate() error {
	var p Problems
	add := func(f, format string, a ...any) { p = append(p, FieldError{f, fmt.Sprintf(format, a...)}) }
	if c.NIC != "" && !validIfName(c.NIC) {
		add("nic", "%q is not a network interface name", c.NIC)
	}
	if c.VLAN < 0 || c.VLAN > 4094 {
		add("vlan", "%d is outside 0 (none) to 4094", c.VLAN)
	}
	switch c.Mode {
	case ModeDHCP:
	case ModeStatic:
		a := c.Address
		switch {
		case !a.IsValid():
			add("address", "a static configuration needs an IPv4 address")
		case !a.Addr().Is4():
			add("address", "%s is not an IPv4 address", a.Addr())
		case a.Bits() < 1 || a.Bits() > 32:
			add("netmask", "prefix length /%d is outside 1 to 32", a.Bits())
		case a.Addr().IsUnspecified() || a.Addr().IsMulticast() || a.Addr().IsLoopback() || a.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			add("address", "%s cannot be a host's address", a.Addr())
		case a.Bits() <= 30 && a.Addr() == a.Masked().Addr():
			add("address", "%s is the network address of %s", a.Addr(), a.Masked())
		case a.Bits() <= 30 && a.Addr() == broadcast(a):
			add("address", "%s is the broadcast address of %s", a.Addr(), a.Masked())
		}
		if g := c.Gateway; g.IsValid() {
			switch {
			case !g.Is4():
				add("gateway", "%s is not an IPv4 address", g)
			case a.IsValid() && a.Addr().Is4() && !a.Masked().Contains(g):
				add("gateway", "%s is outside the subnet %s", g, a.Masked())
			case a.IsValid() && g == a.Addr():
				add("gateway", "%s is the host's own address", g)
			}
		}
	default:
		add("mode", "%q is neither %q nor %q", c.Mode, ModeDHCP, ModeStatic)
	}
	switch c.IPv6 {
	case "", IPv6Auto, IPv6Off:
	case IPv6Static:
		if !c.IPv6Address.IsValid() || !c.IPv6Address.Addr().Is6() || c.IPv6Address.Addr().Is4In6() {
			add("ipv6_address", "a static IPv6 configuration needs an IPv6 address with prefix length")
		}
	default:
		add("ipv6", "%q is not auto, static or off", c.IPv6)
	}
	seen := map[netip.Addr]bool{}
	for _, d := range c.DNS {
		if !d.IsValid() || d.IsUnspecified() {
			add("dns", "%s is not a DNS server address", d)
		} else if seen[d] {
			add("dns", "%s is listed twice", d)
		}
		seen[d] = true
	}
	if len(c.DNS) > 3 {
		add("dns", "at most 3 DNS servers, not %d", len(c.DNS))
	}
	for _, s := range c.Search {
		if !ValidHostname(s) {
			add("search", "%q is not a domain name", s)
		}
	}
	if c.Hostname != "" && !ValidHostname(c.Hostname) {
		add("hostname", "%q is not a valid host name (letters, digits, '-', dots between labels)", c.Hostname)
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/ \t\n:")
}

// ValidHostname reports whether h is an RFC 1123 host name.
func ValidHostname(h string) bool {
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

// Load reads dir/network.json; ok is false when there is none.
func Load(dir string) (cfg Config, ok bool, err error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), false, nil
	}
	if err != nil {
		return Default(), false, err
	}
	var f struct {
		Version int `json:"version"`
		Config
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Default(), false, fmt.Errorf("read %s: %w", path, err)
	}
	if f.Version != 1 {
		return Default(), false, fmt.Errorf("read %s: schema version %d is not 1", path, f.Version)
	}
	if err := f.Config.Validate(); err != nil {
		return Default(), false, fmt.Errorf("read %s: %w", path, err)
	}
	return f.Config, true, nil
}

// Save validates cfg and writes it to dir/network.json atomically.
func Save(dir string, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Version int `json:"version"`
		Config
	}{1, cfg}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, FileName), append(b, '\n'), 0o644)
}

// Remove deletes the saved configuration (back to the default at next boot).
func Remove(dir string) error {
	err := os.Remove(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
