package api

import "time"

// Paths of the management network: GET answers a HostNetwork; POSTing to
// the confirm path keeps a change applied on the console (see
// NetworkChange), and only from the change's new address.
const (
	VMKernelHostNetworkPath = "/v1/host/network"
	VMKernelNetConfirmPath  = "/v1/host/network/confirm"
	MgmtdHostNetworkPath    = "/api/v1/host/network"
	MgmtdNetConfirmPath     = "/api/v1/host/network/confirm"
)

// Management network IPv4 modes (NetworkConfig.Mode).
const (
	NetModeDHCP   = "dhcp"
	NetModeStatic = "static"
)

// NetworkConfig is the management network's configuration as the DCUI
// saves it in STATE (network.json) and the appliance init applies it at
// boot. Addresses are text: "10.0.2.20/24", "10.0.2.2".
type NetworkConfig struct {
	// NIC is the uplink; "" means the first NIC with a link.
	NIC string `json:"nic,omitempty"`
	// VLAN is the 802.1Q VLAN ID, 0 for none.
	VLAN int `json:"vlan,omitempty"`
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

// NetworkChange is a management-network change applied on the console and
// rolled back by itself at Deadline unless it is kept: on the console, or
// through the API by a request that arrives on Address (so whoever keeps
// it has proved the new address works).
type NetworkChange struct {
	Config NetworkConfig `json:"config"`
	// Address is the new address (with prefix length), "" when the change
	// got none (DHCP without an answer): then only the console can keep it.
	Address   string    `json:"address,omitempty"`
	Interface string    `json:"interface,omitempty"`
	Deadline  time.Time `json:"deadline"`
	// Confirmed: kept through the API; the console has yet to notice.
	Confirmed bool `json:"confirmed"`
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
	// Pending is a change awaiting confirmation, if any.
	Pending *NetworkChange `json:"pending,omitempty"`
}

// NetworkConfirmRequest is vmkernel's confirm body: mgmtd fills it with the
// local address the client's connection arrived on.
type NetworkConfirmRequest struct {
	LocalAddress string `json:"local_address"`
}
