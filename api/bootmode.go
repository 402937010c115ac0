package api

// Boot modes: where the host keeps its configuration. The appliance init
// decides at boot, prints it on the ready line (mode=) and writes it to the
// run directory (layout.Host.BootModeFile) for vmkernel.
const (
	// BootInstalled: a STATE partition (installed disk or USB stick).
	BootInstalled = "installed"
	// BootLive: no STATE partition; the configuration is in RAM and lost
	// at power-off.
	BootLive = "live"
	// BootStateless: no STATE partition, a network-booted host whose
	// configuration (its answer file) comes from the PXE server at every
	// boot, like ESXi Auto Deploy.
	BootStateless = "stateless"
)

// BootMode says where the host's configuration comes from.
type BootMode struct {
	// Mode is BootInstalled, BootLive or BootStateless.
	Mode string `json:"mode"`
	// Source is where a stateless host's configuration came from (its
	// URL).
	Source string `json:"source,omitempty"`
	// Reason says why the host runs live (no STATE partition; or the
	// stateless configuration that could not be had, and why).
	Reason string `json:"reason,omitempty"`
}
