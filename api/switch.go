package api

// Virtual switch paths of vmkernel's local API: GET and POST
// VMKernelSwitchesPath, DELETE VMKernelSwitchPath + name.
const (
	VMKernelSwitchesPath = "/v1/switches"
	VMKernelSwitchPath   = "/v1/switches/"
)

// SwitchSpec is the body of POST /v1/switches.
type SwitchSpec struct {
	// Name is the switch's name (letters, digits, '.', '_', '-'; at most
	// 11 characters, since its bridge is named "pvs-" + Name).
	Name string `json:"name"`
	// Uplink is the host NIC enslaved to the switch (e.g. the management
	// switch's physical NIC); empty for a host-internal switch.
	Uplink string `json:"uplink,omitempty"`
}

// Switch is a virtual switch as vmkernel reports it.
type Switch struct {
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
	Uplink string `json:"uplink,omitempty"`
	// Ports are the interfaces on the switch: the uplink and VM taps.
	Ports []string `json:"ports"`
	MTU   int      `json:"mtu,omitempty"`
	Up    bool     `json:"up"`
	// Problem says what is wrong with the switch (bridge or uplink
	// missing), empty when nothing is.
	Problem string `json:"problem,omitempty"`
}
