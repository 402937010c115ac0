package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Management network IPv4 modes (NetworkConfig.Mode).
const (
	NetModeDHCP   = "dhcp"
	NetModeStatic = "static"
)

// NetworkConfig is the management network's configuration as vmkernel
// saves it in STATE (network.json) and the appliance init applies it at
// boot. Addresses are text: "10.0.2.20/24", "10.0.2.2".
type NetworkConfig struct {
	// NIC is the uplink; "" means the first NIC with a link.
	NIC string `json:"nic,omitempty"`
	// VLAN is the 802.1Q VLAN ID of the management network, 1 to 4094;
	// 0 or absent: untagged. The address goes on the NIC's VLAN interface
	// (eth0.20).
	VLAN int `json:"vlan,omitempty" schema:"minimum=0,maximum=4094"`
	// Mode is "dhcp" or "static" (IPv4).
	Mode string `json:"mode"`
	// Address is the static IPv4 address with its prefix length.
	Address string `json:"address,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// IPv6 is "auto" (SLAAC), "static" or "off".
	IPv6        string   `json:"ipv6,omitempty"`
	IPv6Address string   `json:"ipv6_address,omitempty"`
	DNS         []string `json:"dns,omitempty"`
	Search      []string `json:"search,omitempty"`
	Hostname    string   `json:"hostname,omitempty"`
}

// NetworkLive is the management network as the kernel has it now.
type NetworkLive struct {
	// NIC is the uplink; Interface is where the address is (the NIC or
	// its VLAN interface, eth0.20).
	NIC       string `json:"nic,omitempty"`
	Interface string `json:"interface,omitempty"`
	MAC       string `json:"mac,omitempty"`
	Link      bool   `json:"link"`
	// Addresses are the interface's addresses with prefix length (no
	// link-local ones).
	Addresses []string `json:"addresses"`
	// Gateway is the IPv4 default route's gateway.
	Gateway  string   `json:"gateway,omitempty"`
	DNS      []string `json:"dns,omitempty"`
	Search   []string `json:"search,omitempty"`
	Hostname string   `json:"hostname"`
	// DHCP is the lease when the address came from DHCP.
	DHCP *DHCPLease `json:"dhcp,omitempty"`
	// Problem says what is wrong with the network now: DHCP got no answer
	// (the host goes on asking), a lease ran out with no server answering.
	Problem string `json:"problem,omitempty"`
}

// DHCPLease is the management address's DHCP lease: the host renews it
// with Server at Renew, with any server from Rebind, and keeps the address
// past Expires (saying so in Problem) until some server answers. Times are
// zero for an infinite lease.
type DHCPLease struct {
	Address  string    `json:"address"`
	Server   string    `json:"server,omitempty"`
	Obtained time.Time `json:"obtained"`
	Renew    time.Time `json:"renew,omitzero"`
	Rebind   time.Time `json:"rebind,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
}

// NetworkChange is a management-network change (PUT /host/network, on the
// console or through the API): applied, then rolled back by itself at
// Deadline unless it is kept, on the console or through the API by a
// request that arrives on Address (so whoever keeps it has proved the new
// address works).
type NetworkChange struct {
	// ID tells one change from the next.
	ID     int           `json:"id"`
	Config NetworkConfig `json:"config"`
	// Previous is what a rollback applies.
	Previous NetworkConfig `json:"previous"`
	// State is NetChangeApplying, NetChangePending, NetChangeKept or
	// NetChangeRolledBack.
	State string `json:"state"`
	// Address is the new address (with prefix length), "" when the change
	// got none (DHCP without an answer): then only the console can keep it.
	Address   string    `json:"address,omitempty"`
	Interface string    `json:"interface,omitempty"`
	Deadline  time.Time `json:"deadline"`
	// Confirmed: kept (State NetChangeKept) by a confirmation, through the
	// API or on the console.
	Confirmed bool `json:"confirmed"`
	// Outcome says how a settled change ended: who kept it, or why it was
	// rolled back (not confirmed in time, failed to apply, asked).
	Outcome string `json:"outcome,omitempty"`
	// Error is why applying the change failed, or a rollback failed.
	Error string `json:"error,omitempty"`
}

// HostNetwork is the management network: saved and live.
type HostNetwork struct {
	// Saved says whether STATE holds a configuration; without one Config
	// is the default (DHCP on the first NIC with a link).
	Saved bool `json:"saved"`
	// SavedError says why the saved configuration could not be read.
	SavedError string        `json:"saved_error,omitempty"`
	Config     NetworkConfig `json:"config"`
	Live       NetworkLive   `json:"live"`
	// Pending is a change being applied or awaiting confirmation, if any.
	Pending *NetworkChange `json:"pending,omitempty"`
	// LastChange is the last change settled since vmkernel started: kept
	// or rolled back, and how.
	LastChange *NetworkChange `json:"last_change,omitempty"`
	// NICs are the interfaces that can carry the management network: the
	// board's, and virtual ones (veth, dummy) on test hosts.
	NICs []HostNIC `json:"nics"`
}

// NetworkConfirmRequest is vmkernel's confirm body. mgmtd fills it with
// the local address the client's connection arrived on, which must be the
// change's new address; the console sends it empty (a client of
// vmkernel's socket is on the host itself).
type NetworkConfirmRequest struct {
	LocalAddress string `json:"local_address,omitempty"`
}

// NetworkCheck is one line of a management network test: what was tried
// and how it went.
type NetworkCheck struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
	Info string `json:"info,omitempty"`
}

// ParseNetmask reads a netmask as a dotted quad (255.255.255.0) or a prefix
// length (24 or /24).
func ParseNetmask(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		if n < 1 || n > 32 {
			return 0, fmt.Errorf("prefix length %d is outside 1 to 32", n)
		}
		return n, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q is not a netmask (e.g. 255.255.255.0 or 24)", s)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 || n == 0 {
		return 0, fmt.Errorf("%s is not a contiguous netmask", s)
	}
	return n, nil
}

// NetmaskString is the dotted-quad netmask of a prefix length.
func NetmaskString(bits int) string {
	v := ^uint32(0) << (32 - bits)
	if bits == 0 {
		v = 0
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}
