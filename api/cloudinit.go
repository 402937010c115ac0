package api

import (
	"fmt"
	"net/netip"
	"strings"
)

// CloudInit is what a VM's guest is told at its first boot through
// cloud-init's NoCloud data source: vmkernel writes a seed (an ISO 9660
// image labelled "cidata" holding meta-data, user-data and network-config)
// and attaches it read-only at every start. Guests without cloud-init
// ignore it.
type CloudInit struct {
	// Hostname is the guest's host name (default: the VM's name, so each
	// VM deployed from a template gets its own).
	Hostname string `json:"hostname,omitempty"`
	// User is an account to create and give the keys and password to
	// (default: the image's default user; "root" configures root).
	User string `json:"user,omitempty"`
	// SSHAuthorizedKeys are public keys ("ssh-ed25519 AAAA... comment").
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
	// PasswordHash is the user's password as a crypt(3) hash ($6$..., $y$...,
	// $2b$...); a clear password is refused.
	PasswordHash string `json:"password_hash,omitempty"`
	// Network configures the guest's NICs (default: DHCP on each).
	Network []CloudInitNIC `json:"network,omitempty"`
	// UserData, when set, is the user-data as given (a #cloud-config
	// document, a script, ...), instead of the one Plinth writes from the
	// fields above.
	UserData string `json:"user_data,omitempty"`
	// NetworkConfig, when set, is the network-config as given (version 1 or
	// 2), instead of the one Plinth writes from Network.
	NetworkConfig string `json:"network_config,omitempty"`
}

// CloudInitNIC is the address of one of the VM's NICs, by its index in
// the spec's NICs (matched in the guest by its MAC).
type CloudInitNIC struct {
	NIC int `json:"nic"`
	// DHCP asks for an address; else Address (CIDR), Gateway and DNS are
	// static.
	DHCP    bool     `json:"dhcp,omitempty"`
	Address string   `json:"address,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// Bounds of cloud-init data.
const (
	MaxCloudInitData = 64 << 10 // user-data or network-config
	MaxSSHKeys       = 64
)

// Clone returns a deep copy.
func (c *CloudInit) Clone() *CloudInit {
	if c == nil {
		return nil
	}
	d := *c
	d.SSHAuthorizedKeys = append([]string(nil), c.SSHAuthorizedKeys...)
	d.Network = make([]CloudInitNIC, len(c.Network))
	for i, n := range c.Network {
		n.DNS = append([]string(nil), n.DNS...)
		d.Network[i] = n
	}
	if c.Network == nil {
		d.Network = nil
	}
	return &d
}

// validate checks c (field is its JSON path) against the VM's NIC count.
func (c *CloudInit) validate(v *validator, field string, nics int) {
	if c.Hostname != "" {
		if msg := CheckHostname(c.Hostname); msg != "" {
			v.add(field+".hostname", msg)
		}
	}
	if c.User != "" {
		if msg := checkUnixName(c.User); msg != "" {
			v.add(field+".user", msg)
		}
	}
	if len(c.SSHAuthorizedKeys) > MaxSSHKeys {
		v.add(field+".ssh_authorized_keys", fmt.Sprintf("at most %d keys", MaxSSHKeys))
	}
	for i, k := range c.SSHAuthorizedKeys {
		if msg := checkSSHKey(k); msg != "" {
			v.add(fmt.Sprintf("%s.ssh_authorized_keys[%d]", field, i), msg)
		}
	}
	if h := c.PasswordHash; h != "" {
		if !strings.HasPrefix(h, "$") || strings.ContainsAny(h, " \t\r\n:") || len(h) > 256 {
			v.add(field+".password_hash", "must be a crypt(3) hash ($6$..., $y$..., $2b$...), never a clear password")
		}
	}
	seen := map[int]bool{}
	for i, n := range c.Network {
		f := fmt.Sprintf("%s.network[%d]", field, i)
		switch {
		case n.NIC < 0 || n.NIC >= nics:
			v.add(f+".nic", fmt.Sprintf("the VM has %d NICs", nics))
		case seen[n.NIC]:
			v.add(f+".nic", fmt.Sprintf("nics[%d] is configured twice", n.NIC))
		}
		seen[n.NIC] = true
		if n.DHCP {
			if n.Address != "" || n.Gateway != "" || len(n.DNS) > 0 {
				v.add(f, "dhcp: set no address, gateway or DNS")
			}
			continue
		}
		p, err := netip.ParsePrefix(n.Address)
		if err != nil {
			v.add(f+".address", "must be an address with its prefix length, e.g. 192.0.2.10/24, or set dhcp")
		} else if n.Gateway != "" {
			if g, err := netip.ParseAddr(n.Gateway); err != nil || g.Is4() != p.Addr().Is4() {
				v.add(f+".gateway", "must be an address of the same family as the address")
			}
		}
		for j, d := range n.DNS {
			if _, err := netip.ParseAddr(d); err != nil {
				v.add(fmt.Sprintf("%s.dns[%d]", f, j), "must be an IP address")
			}
		}
	}
	for _, d := range []struct{ f, s string }{{"user_data", c.UserData}, {"network_config", c.NetworkConfig}} {
		if len(d.s) > MaxCloudInitData {
			v.add(field+"."+d.f, fmt.Sprintf("longer than %d bytes", MaxCloudInitData))
		}
		if strings.ContainsRune(d.s, 0) {
			v.add(field+"."+d.f, "contains a NUL byte")
		}
	}
	if c.NetworkConfig != "" && len(c.Network) > 0 {
		v.add(field+".network", "set either network or network_config")
	}
}

// CheckHostname returns what is wrong with a host name, or "": labels of
// letters, digits and '-', not starting or ending with '-', separated by
// dots, at most 253 characters.
func CheckHostname(s string) string {
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return "each dot-separated label must have 1 to 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "a label must not start or end with '-'"
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("character %q not allowed; use letters, digits and '-'", c)
			}
		}
	}
	return ""
}

func checkUnixName(s string) string {
	if len(s) > 32 {
		return "longer than 32 characters"
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			return "must be a user name: lower-case letters, digits, '_' and '-', starting with a letter or '_'"
		}
	}
	return ""
}

// checkSSHKey checks the shape of an authorized key line: a key type, a
// base64 blob, an optional comment, one line.
func checkSSHKey(k string) string {
	if strings.ContainsAny(k, "\r\n\x00") {
		return "must be one line"
	}
	f := strings.Fields(k)
	if len(f) < 2 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-")) {
		return "must be an OpenSSH public key (ssh-ed25519 AAAA... comment)"
	}
	if len(k) > 16<<10 {
		return "longer than 16 KiB"
	}
	return ""
}
