// Package layout knows where things are on a Plinth host: the STATE
// directory (the PLINTH-STATE file system, or a tmpfs in live mode) and
// what each component keeps there, the run directory (/run/plinth, a
// tmpfs) with vmkernel's socket and the boot's records, and the few fixed
// places of the appliance. Every program asks a Host for a path instead of
// spelling it; tests make a Host under a temporary directory with Under.
//
// STATE (Host.State, /var/lib/plinth):
//
//	network.json              the management network (package netconf)
//	config/hostname           the host name an install or answer file gave
//	config/ntp                NTP servers an install or answer file gave
//	config/ssh_authorized_keys SSH keys an install or answer file gave
//	config/installed          the marker of an installed host
//	config/time.json          the NTP client's settings (api.TimeConfig)
//	config/syslog.json        remote logging (api.SyslogConfig)
//	config/ssh.json           the SSH service (api.SSHConfig)
//	config/ssh_host_ed25519_key the SSH service's host key
//	vmkernel/                 vmkernel's state: VM inventory, switches, VM logs
//	mgmtd/                    mgmtd's (its own user's): password, lockdown,
//	                          tokens, audit.log, tls/
//	log/NAME.log              each service's log lines
//
// Run directory (Host.Run, /run/plinth):
//
//	vmkernel.sock             vmkernel's local API
//	boot.log                  every line of the init and its services
//	boot-mode.json            installed, live or stateless (api.BootMode)
//	NAME.pid                  each supervised service's process ID
//	kvm-loading               there while the init loads the KVM module
//	vms/ID/                   the running VMs' sockets
//	upgrade/, upgrade-stage/  the ESP's mount point and an upgrade's staging
//	bootmedia/                the boot medium's mount point (installs)
package layout

import "path/filepath"

// The appliance's fixed places.
const (
	// StateDir is where the STATE file system (or, live, a tmpfs) is mounted.
	StateDir = "/var/lib/plinth"
	// RunDir is Plinth's run directory, on the /run tmpfs.
	RunDir = "/run/plinth"
	// Datastores is where each PLINTH-DS<N> file system is mounted, as
	// Datastores/ds<n>.
	Datastores = "/datastores"
	// ResolvConf is the resolver's file, which the management network writes.
	ResolvConf = "/etc/resolv.conf"
)

// Host is where one host keeps things: its STATE and run directories.
type Host struct {
	State string // StateDir on the appliance
	Run   string // RunDir on the appliance
}

// Default is the appliance's layout.
func Default() Host { return Host{State: StateDir, Run: RunDir} }

// Under is a layout inside dir (dir/state and dir/run), for tests and
// development hosts.
func Under(dir string) Host {
	return Host{State: filepath.Join(dir, "state"), Run: filepath.Join(dir, "run")}
}

// Service names: each has a log in LogDir and, vmkernel and mgmtd, a state
// directory of that name in STATE.
const (
	VMKernel = "vmkernel"
	Mgmtd    = "mgmtd"
)

// In STATE.

// ConfigDir holds what an install or an answer file configured (host name,
// NTP servers, SSH keys, the install marker).
func (h Host) ConfigDir() string { return filepath.Join(h.State, "config") }

// HostnameFile is the host name an install or answer file gave.
func (h Host) HostnameFile() string { return filepath.Join(h.ConfigDir(), "hostname") }

// NTPFile lists NTP servers an install or answer file gave, one a line.
func (h Host) NTPFile() string { return filepath.Join(h.ConfigDir(), "ntp") }

// SSHKeysFile holds the SSH public keys that may log in as root, one a line
// (authorized_keys format).
func (h Host) SSHKeysFile() string { return filepath.Join(h.ConfigDir(), "ssh_authorized_keys") }

// TimeFile is the NTP client's settings set through the API.
func (h Host) TimeFile() string { return filepath.Join(h.ConfigDir(), "time.json") }

// SyslogFile is remote logging's settings.
func (h Host) SyslogFile() string { return filepath.Join(h.ConfigDir(), "syslog.json") }

// SSHFile is the SSH service's settings.
func (h Host) SSHFile() string { return filepath.Join(h.ConfigDir(), "ssh.json") }

// SSHHostKey is the SSH service's host key (PEM, made at its first start).
func (h Host) SSHHostKey() string { return filepath.Join(h.ConfigDir(), "ssh_host_ed25519_key") }

// InstalledMarker says the host runs from a disk Plinth was installed to.
func (h Host) InstalledMarker() string { return filepath.Join(h.ConfigDir(), "installed") }

// ServiceState is a service's own state directory (vmkernel, mgmtd).
func (h Host) ServiceState(name string) string { return filepath.Join(h.State, name) }

// AuthDir holds the root password, the lockdown switch and the API tokens
// (package auth); mgmtd's user owns it.
func (h Host) AuthDir() string { return h.ServiceState(Mgmtd) }

// TLSDir holds mgmtd's certificate, key and fingerprint.
func (h Host) TLSDir() string { return filepath.Join(h.AuthDir(), "tls") }

// AuditLog is mgmtd's audit log.
func (h Host) AuditLog() string { return filepath.Join(h.AuthDir(), "audit.log") }

// LogDir holds each service's log.
func (h Host) LogDir() string { return filepath.Join(h.State, "log") }

// ServiceLog is a service's log file.
func (h Host) ServiceLog(name string) string { return filepath.Join(h.LogDir(), name+".log") }

// In the run directory.

// VMKernelSocket is vmkernel's local API.
func (h Host) VMKernelSocket() string { return filepath.Join(h.Run, "vmkernel.sock") }

// BootLog is every line the init and its services printed.
func (h Host) BootLog() string { return filepath.Join(h.Run, "boot.log") }

// BootModeFile is where the init writes the host's api.BootMode.
func (h Host) BootModeFile() string { return filepath.Join(h.Run, "boot-mode.json") }

// KVMLoading exists while the init is loading the KVM module; vmkernel
// decides KVM or TCG once it is gone.
func (h Host) KVMLoading() string { return filepath.Join(h.Run, "kvm-loading") }

// VMRunDir holds the running VMs' sockets, one directory each.
func (h Host) VMRunDir() string { return filepath.Join(h.Run, "vms") }

// UpgradeMount is where the ESP is mounted for upgrades.
func (h Host) UpgradeMount() string { return filepath.Join(h.Run, "upgrade") }

// UpgradeStage is where an upgrade image is staged while it is checked.
func (h Host) UpgradeStage() string { return filepath.Join(h.Run, "upgrade-stage") }

// PIDFile is where the init's supervisor keeps a service's process ID.
func (h Host) PIDFile(name string) string { return filepath.Join(h.Run, name+".pid") }

// BootMediaMount is where the boot medium is mounted to install from it.
func (h Host) BootMediaMount() string { return filepath.Join(h.Run, "bootmedia") }
