package api

import "time"

// Host settings. vmkernel owns every host setting and applies it; mgmtd
// forwards these routes (with audit and lockdown); the DCUI, the CLI and
// the web client are clients of them. Each path is defined once, below the
// APIs' prefixes: vmkernel serves VMKernelPrefix + path on its socket,
// mgmtd MgmtdPrefix + path over HTTPS (see VMKernel and Mgmtd).
const (
	// HostNetworkPath: GET a HostNetwork; PUT a NetworkChangeRequest
	// applies a change (202, a NetworkChange) that is rolled back at its
	// deadline unless confirmed.
	HostNetworkPath = "/host/network"
	// HostNetConfirmPath: POST keeps the change awaiting confirmation;
	// through mgmtd only from the change's new address.
	HostNetConfirmPath = "/host/network/confirm"
	// HostNetRollbackPath: POST rolls the change awaiting confirmation
	// back now.
	HostNetRollbackPath = "/host/network/rollback"
	// HostNetRestartPath: POST applies the saved configuration again
	// (202; connections may drop for a moment).
	HostNetRestartPath = "/host/network/restart"
	// HostNetRestorePath: POST changes the network back to its default,
	// DHCP on the first NIC with a link (202, a NetworkChange to confirm).
	HostNetRestorePath = "/host/network/restore"
	// HostNetTestPath: POST pings the gateway and DNS servers and resolves
	// the host name ([]NetworkCheck).
	HostNetTestPath = "/host/network/test"

	// HostPasswordPath: GET a PasswordStatus; PUT a PasswordRequest sets
	// the root password (every session and API token ends).
	HostPasswordPath = "/host/password"
	// HostPasswordVerifyPath: POST a PasswordRequest checks the root
	// password (204, or 401); vmkernel's only, for the console's login.
	HostPasswordVerifyPath = "/host/password/verify"
	// HostLockdownPath: GET a LockdownStatus, PUT a LockdownRequest.
	HostLockdownPath = "/host/lockdown"
	// HostCertificatePath: GET mgmtd's TLS certificate (CertificateInfo);
	// PUT a CertificateRequest replaces it.
	HostCertificatePath = "/host/certificate"
	// HostTimePath: GET a TimeStatus; PUT a TimeConfig.
	HostTimePath = "/host/time"
	// HostTimeSyncPath: POST asks the NTP servers now (a TimeStatus).
	HostTimeSyncPath = "/host/time/sync"
	// HostSyslogPath: GET a SyslogStatus; PUT a SyslogConfig.
	HostSyslogPath = "/host/syslog"
	// HostSSHPath: GET an SSHStatus; PUT an SSHConfig.
	HostSSHPath = "/host/ssh"
	// HostSSHKeysPath: GET the authorized keys ([]SSHKey), POST an
	// SSHKeyRequest adds one; HostSSHKeysPath + "/{id}" DELETE removes one.
	HostSSHKeysPath = "/host/ssh/keys"
	// HostServicesPath: GET the host's services ([]ServiceStatus).
	HostServicesPath = "/host/services"
	// HostServicesRestartPath: POST a ServicesRestartRequest restarts the
	// management agents.
	HostServicesRestartPath = "/host/services/restart"
	// HostResetPath: POST a ResetRequest forgets the host's configuration
	// (VMs and datastores are kept) and restarts the host.
	HostResetPath = "/host/reset"
	// HostSettingsPath: GET every setting at once (HostSettings).
	HostSettingsPath = "/host/settings"
	// HostLogsPath: GET the host's logs ([]LogInfo); HostLogsPath +
	// "/{name}" GET the end of one (text/plain, ?tail_bytes=N).
	HostLogsPath = "/host/logs"
	// HostSupportBundlePath: GET a tar.gz of logs, hardware inventory,
	// configuration (secrets removed), VM specs and recent events.
	HostSupportBundlePath = "/host/support-bundle"
)

// VMKernel is path (one of the paths below the prefixes) on vmkernel's
// local API.
func VMKernel(path string) string { return VMKernelPrefix + path }

// Mgmtd is path (one of the paths below the prefixes) on mgmtd's API.
func Mgmtd(path string) string { return MgmtdPrefix + path }

// NetworkChangeRequest is the body of PUT /host/network.
type NetworkChangeRequest struct {
	Config NetworkConfig `json:"config"`
	// ConfirmSeconds is how long the change waits to be confirmed before
	// it is rolled back by itself (10 to 600; 0 means 60).
	ConfirmSeconds int `json:"confirm_seconds,omitempty"`
}

// Network change states (NetworkChange.State).
const (
	// NetChangeApplying: the change is being put in place.
	NetChangeApplying = "applying"
	// NetChangePending: in effect, awaiting confirmation until Deadline.
	NetChangePending = "pending"
	// NetChangeKept: confirmed (Outcome says by whom) and saved.
	NetChangeKept = "kept"
	// NetChangeRollingBack: the previous configuration is being put back.
	NetChangeRollingBack = "rolling_back"
	// NetChangeRolledBack: the previous configuration is back (Outcome
	// says why).
	NetChangeRolledBack = "rolled_back"
	// NetChangeFailed: a restart (the saved configuration applied again)
	// failed; Error says why.
	NetChangeFailed = "failed"
)

// PasswordStatus says whether the root password is set (first boot: not).
type PasswordStatus struct {
	Set       bool       `json:"set"`
	ChangedAt *time.Time `json:"changed_at,omitempty"`
}

// PasswordRequest sets (PUT /host/password) or checks (POST
// /host/password/verify) the root password. A new password has at least 8
// characters mixing three of lower case, upper case, digits and other
// characters, and does not contain "root".
type PasswordRequest struct {
	Password string `json:"password"`
}

// LockdownStatus says whether lockdown mode is on: then mgmtd refuses
// every change but turning lockdown off with the root password, and SSH is
// off; the console (DCUI) can still change everything.
type LockdownStatus struct {
	Enabled bool `json:"enabled"`
}

// LockdownRequest turns lockdown mode on or off. Through mgmtd, turning it
// off needs Password, the root password, since every other change is
// refused while it is on.
type LockdownRequest struct {
	Enabled  bool   `json:"enabled"`
	Password string `json:"password,omitempty"`
}

// TimeConfig is the NTP client's configuration.
type TimeConfig struct {
	// Enabled keeps the clock with NTP (on by default).
	Enabled bool `json:"enabled"`
	// Servers are NTP servers (host names or addresses, optionally
	// :port), at most 8; empty: those the DHCP server or the answer file
	// named.
	Servers []string `json:"servers"`
}

// TimeStatus is the clock and the NTP client's state.
type TimeStatus struct {
	Config TimeConfig `json:"config"`
	// Servers are the servers in use and where they came from ("api",
	// "answer file", "dhcp").
	Servers []TimeServer `json:"servers"`
	// Now is the host's clock when the answer was made.
	Now time.Time `json:"now"`
	// Synced is true once a server answered within the last hour.
	Synced bool `json:"synced"`
	// LastSync is when the clock was last set from a server, Server which
	// one, OffsetSeconds how far off the clock was (positive: it was
	// behind), Stratum the server's.
	LastSync      *time.Time `json:"last_sync,omitempty"`
	Server        string     `json:"server,omitempty"`
	OffsetSeconds float64    `json:"offset_seconds"`
	Stratum       int        `json:"stratum,omitempty"`
	// Problem says what is wrong: no server configured, none answers.
	Problem string `json:"problem,omitempty"`
}

// TimeServer is one NTP server in use.
type TimeServer struct {
	Address string `json:"address"`
	Source  string `json:"source"`
	// LastError is the last attempt's failure, if it failed.
	LastError string `json:"last_error,omitempty"`
}

// SyslogConfig is remote logging, as ESXi's Syslog.global.logHost: the
// lines of vmkernel, mgmtd, the init and the audit log go to each target
// as RFC 5424 messages.
type SyslogConfig struct {
	// Targets are URLs: udp://HOST[:514], tcp://HOST[:514] or
	// tls://HOST[:6514]; at most 4.
	Targets []string `json:"targets"`
	// CAPEM verifies tls:// servers' certificates (PEM); required for tls://.
	CAPEM string `json:"ca_pem,omitempty"`
}

// SyslogStatus is remote logging's configuration and each target's state.
type SyslogStatus struct {
	Config  SyslogConfig   `json:"config"`
	Targets []SyslogTarget `json:"targets"`
}

// SyslogTarget is one remote log server's state.
type SyslogTarget struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	// Sent counts messages sent; Dropped those lost while the server did
	// not answer (a bounded queue keeps the newest).
	Sent    uint64 `json:"sent"`
	Dropped uint64 `json:"dropped"`
	// Problem is the last failure while it lasts.
	Problem string `json:"problem,omitempty"`
}

// SSH session kinds (SSHConfig.Session).
const (
	SSHSessionDCUI  = "dcui"
	SSHSessionShell = "shell"
)

// SSHConfig is the SSH service's configuration. It is off by default,
// turned off by lockdown, and said loudly while on.
type SSHConfig struct {
	Enabled bool `json:"enabled"`
	// PasswordLogin allows root's password as well as keys.
	PasswordLogin bool `json:"password_login"`
	// Session is what a login gets without a command: "dcui" (the
	// console's screens) or "shell" (a root shell); `ssh -t HOST dcui`
	// and `ssh -t HOST shell` pick one.
	Session string `json:"session,omitempty"`
}

// SSHStatus is the SSH service's state.
type SSHStatus struct {
	Config SSHConfig `json:"config"`
	// Running is true while the service listens, on Port.
	Running bool `json:"running"`
	Port    int  `json:"port"`
	// HostKeyFingerprint is the host key's SHA256 fingerprint, as ssh
	// shows it ("SHA256:...").
	HostKeyFingerprint string   `json:"host_key_fingerprint,omitempty"`
	Keys               []SSHKey `json:"keys"`
	// Sessions counts the open SSH sessions.
	Sessions int `json:"sessions"`
	// Warning is said while SSH is on (on the DCUI's home screen too).
	Warning string `json:"warning,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// SSHKey is an authorized public key of root.
type SSHKey struct {
	// ID is the key's SHA256 fingerprint without "SHA256:" (URL-safe).
	ID          string `json:"id"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	Comment     string `json:"comment,omitempty"`
}

// SSHKeyRequest adds an authorized key: one authorized_keys line.
type SSHKeyRequest struct {
	Key string `json:"key"`
}

// ServiceStatus is one of the host's services.
type ServiceStatus struct {
	Name string `json:"name"`
	// State is "running", "stopped" or "off".
	State       string `json:"state"`
	Description string `json:"description"`
	// Restartable services can be named in a ServicesRestartRequest.
	Restartable bool `json:"restartable"`
}

// Service names.
const (
	ServiceMgmtd    = "mgmtd"
	ServiceSSH      = "ssh"
	ServiceTime     = "ntp"
	ServiceSyslog   = "syslog"
	ServiceVMKernel = "vmkernel"
)

// ServicesRestartRequest restarts services; empty Services restarts the
// management agents (mgmtd).
type ServicesRestartRequest struct {
	Services []string `json:"services,omitempty"`
}

// ResetRequest forgets the host's configuration: management network, host
// name, root password, lockdown, API tokens, time, remote logging and SSH.
// VMs, datastores and the TLS certificate are kept; then the host
// restarts, as on its first boot.
type ResetRequest struct {
	// Confirm must be the host's name.
	Confirm string `json:"confirm"`
}

// HostSettings is every host setting at once (GET /host/settings).
type HostSettings struct {
	Network     HostNetwork     `json:"network"`
	Password    PasswordStatus  `json:"password"`
	Lockdown    LockdownStatus  `json:"lockdown"`
	Certificate CertificateInfo `json:"certificate"`
	Time        TimeStatus      `json:"time"`
	Syslog      SyslogStatus    `json:"syslog"`
	SSH         SSHStatus       `json:"ssh"`
	BootMode    BootMode        `json:"boot_mode"`
}

// LogInfo is one of the host's logs.
type LogInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Size        int64  `json:"size"`
}

// Log names (LogInfo.Name).
const (
	LogBoot     = "boot"
	LogVMKernel = "vmkernel"
	LogMgmtd    = "mgmtd"
	LogAudit    = "audit"
)
