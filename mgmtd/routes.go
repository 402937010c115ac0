package mgmtd

import (
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/plinth/plinth/api"
)

// Access is who may call a route.
type Access int

const (
	// Public routes answer without a token (/healthz, login).
	Public Access = iota
	// Read routes need a token.
	Read
	// Change routes need a token, are refused in lockdown mode and are
	// written to the audit log.
	Change
)

// Route is one entry of the route table: how it is served, who may call
// it, and what the OpenAPI document says of it.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
	Access  Access
	Summary string
	// Request is a value of the JSON request body's type (nil: no JSON
	// body); Response the 2xx answer's (nil: none, or not JSON).
	Request, Response any
	// Status is the success status (200 when 0).
	Status int
	// ContentType is the answer's media type when it is not JSON.
	ContentType string
	// RawBody: the request body is a stream of bytes (uploads), not JSON.
	RawBody bool
	// Query lists the query parameters: name → description.
	Query map[string]string
	// Stream: the route upgrades to a websocket or streams events; the
	// server's read and write timeouts do not apply.
	Stream bool
	// MaxBody overrides MaxBodyBytes for the request body (-1: the body
	// is bounded by the handler, e.g. by the datastore's free space).
	MaxBody int64
	// Ticket: the route also takes a single-use ticket (POST
	// /api/v1/tickets) as ?ticket= instead of the Authorization header,
	// for browsers, which cannot send headers on a websocket.
	Ticket bool
	// Forwards: the handler checks or completes the request, then
	// forwards it to vmkernel's route at the same path below /v1 (as the
	// plain forward does); a test holds vmkernel's table to both.
	Forwards bool
	// LockdownExempt: a Change route the handler lets through in lockdown
	// itself (turning lockdown off with the root password).
	LockdownExempt bool
}

// Paths below the API prefix that name one thing.
const (
	vmPath     = api.MgmtdVMsPath + "/{id}"
	dsPath     = api.MgmtdDatastoresPath + "/{name}"
	switchPath = api.MgmtdSwitchesPath + "/{name}"
	tokenPath  = api.MgmtdTokensPath + "/{id}"
	taskPath   = api.MgmtdTasksPath + "/{id}"
)

var (
	ticketQuery = map[string]string{api.TicketQuery: "a ticket from POST " + api.MgmtdTicketsPath + " for this path (single use, 30 s), instead of the Authorization header"}
	pathQuery   = map[string]string{"path": "the file's path inside the datastore, e.g. iso/debian.iso"}
	backupQuery = map[string]string{"datastore": "the datastore holding the backups (default: the VM's backup policy's)",
		"folder": "the folder in it (default: the policy's, else backups)"}
	uploadQuery = map[string]string{"path": "the file's path inside the datastore, e.g. iso/debian.iso",
		"overwrite": "true replaces an existing file (not one a running VM uses)"}
)

// routeTable is every route mgmtd serves.
func (s *Server) routeTable() []Route {
	fwd := s.forward
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	rs := []Route{
		{Method: get, Path: api.MgmtdHealthPath, Handler: s.health, Access: Public,
			Summary: "Health of mgmtd and vmkernel (503 when degraded)", Response: api.Health{}},
		{Method: post, Path: api.MgmtdSessionsPath, Handler: s.login, Access: Public, Status: http.StatusCreated,
			Summary: "Log in with the root password; answers a bearer token", Request: api.LoginRequest{}, Response: api.Session{}},
		{Method: get, Path: api.MgmtdSessionPath, Handler: s.whoAmI, Access: Read,
			Summary: "Who this token is, and whether the host is in lockdown", Response: api.WhoAmI{}},
		{Method: del, Path: api.MgmtdSessionPath, Handler: s.logout, Access: Read, Status: http.StatusNoContent,
			Summary: "Log this session out"},
		{Method: get, Path: api.MgmtdTokensPath, Handler: s.listTokens, Access: Read,
			Summary: "List API tokens (no secrets)", Response: []api.APIToken{}},
		{Method: post, Path: api.MgmtdTokensPath, Handler: s.createToken, Access: Change, Status: http.StatusCreated,
			Summary: "Make a long-lived API token; the answer holds its secret, shown once",
			Request: api.TokenRequest{}, Response: api.APIToken{}},
		{Method: del, Path: tokenPath, Handler: s.revokeToken, Access: Change, Status: http.StatusNoContent,
			Summary: "Revoke an API token"},
		{Method: post, Path: api.MgmtdTicketsPath, Handler: s.createTicket, Access: Read, Status: http.StatusCreated,
			Summary: "A single-use ticket that opens one websocket (console, VNC) within 30 s, sent as ?ticket=; never put a token in a URL",
			Request: api.TicketRequest{}, Response: api.Ticket{}},
		{Method: get, Path: api.MgmtdAuditPath, Handler: s.listAudit, Access: Read,
			Summary: "The audit log, newest last", Response: []api.AuditEntry{},
			Query: map[string]string{"limit": "how many entries, newest (default 100, at most 10000)"}},

		{Method: get, Path: api.MgmtdHostPath, Handler: fwd, Access: Read,
			Summary: "The host's facts and acceleration mode", Response: api.Host{}},
		{Method: get, Path: api.MgmtdHistoryPath, Handler: s.hostHistory, Access: Read,
			Summary: "The host's recent performance (CPU, memory, the VMs' disk and network traffic): the last hour at 20 s, or the last day at 5 min", Response: api.HostHistory{},
			Query: map[string]string{"range": "hour (the default) or day"}},
		{Method: get, Path: api.MgmtdHostHardwarePath, Handler: fwd, Access: Read,
			Summary: "The host's hardware inventory", Response: api.Hardware{}},
		{Method: post, Path: api.MgmtdHostPowerPath, Handler: s.hostPower, Forwards: true, Access: Change, Status: http.StatusAccepted,
			Summary: "Reboot or shut down the host (VMs are shut down first)", Request: api.PowerRequest{}, Response: api.PowerRequest{}},
		{Method: get, Path: api.MgmtdHostInstallPath, Handler: fwd, Access: Read,
			Summary: "The host's disks as install targets: which can be one, what installing would destroy", Response: []api.InstallCandidate{}},
		{Method: post, Path: api.MgmtdHostInstallPath, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Install Plinth to a disk of the host (the running configuration carried over), as a task", Request: api.InstallRequest{}, Response: api.Task{}},
		{Method: get, Path: api.MgmtdUpgradePath, Handler: fwd, Access: Read,
			Summary: "System banks: both banks' versions, the active one, a pending upgrade and the last upgrade's result", Response: api.UpgradeStatus{}},
		{Method: post, Path: api.MgmtdUpgradePath, Handler: fwd, Access: Change, Stream: true, RawBody: true, MaxBody: -1,
			Status: http.StatusAccepted, Response: api.Task{},
			Query: map[string]string{"sha256": "the image's sha256 (hex); a mismatch refuses it", "reboot": "true reboots into the upgrade (on trial) once it is written",
				"allow_downgrade": "true installs an image of an older release than the running one (refused otherwise, 422 naming allow_downgrade)",
				"confirm":         "with allow_downgrade=true: this host's name, so a request aimed at the wrong host does nothing"},
			Summary: "Upgrade the host: the body is a signed image (plinth-VERSION.upgrade), checked as it streams in (422 naming why, nothing written, when its signature or a checksum does not match, or it is an older release and no downgrade was asked for), then written to the bank not running as a task"},
		{Method: post, Path: api.MgmtdRollbackPath, Handler: fwd, Access: Change,
			Summary: "Boot the standby bank from now on (or cancel an upgrade not yet booted)", Request: api.UpgradeRollbackRequest{}, Response: api.UpgradeResult{}},

		{Method: get, Path: api.MgmtdVMsPath, Handler: s.listVMs, Access: Read,
			Summary: "List VMs", Response: []api.VM{},
			Query: map[string]string{"state": "only VMs in this state (stopped, starting, running, paused, stopping, crashed)",
				"name": "only VMs whose name matches this shell pattern, e.g. web-*"}},
		{Method: post, Path: api.MgmtdVMsPath, Handler: fwd, Access: Change, Status: http.StatusCreated,
			Summary: "Define a VM", Request: api.VMSpec{}, Response: api.VM{}},
		{Method: get, Path: vmPath, Handler: fwd, Access: Read,
			Summary: "One VM by ID or name", Response: api.VM{}},
		{Method: put, Path: vmPath, Handler: fwd, Access: Change,
			Summary: "Replace a stopped VM's spec", Request: api.VMSpec{}, Response: api.VM{}},
		{Method: del, Path: vmPath, Handler: fwd, Access: Change,
			Summary: "Delete a VM that is not running (with disks=true, also its disk files)", Response: api.DeleteVMResult{},
			Query: map[string]string{"disks": "true also deletes the VM's disk files that no other VM uses"}},
		{Method: get, Path: vmPath + "/" + api.VMKernelConsole, Handler: fwd, Access: Read, ContentType: "text/plain",
			Summary: "The last 64 KiB the VM printed on its serial console"},
		{Method: get, Path: vmPath + "/" + api.MgmtdConsoleWS, Handler: s.consoleWS, Access: Change, Stream: true, Ticket: true,
			Query:   ticketQuery,
			Summary: "Websocket: the VM's serial console, binary messages both ways"},
		{Method: get, Path: vmPath + "/" + api.MgmtdVNCWS, Handler: s.vncWS, Access: Change, Stream: true, Ticket: true,
			Query:   ticketQuery,
			Summary: "Websocket: the VM's VNC (RFB) stream, for noVNC"},

		{Method: get, Path: api.MgmtdDatastoresPath, Handler: fwd, Access: Read,
			Summary: "List datastores with their space", Response: []api.Datastore{}},
		{Method: get, Path: dsPath + "/files", Handler: fwd, Access: Read, Query: pathQuery,
			Summary: "List a directory of a datastore", Response: []api.DatastoreEntry{}},
		{Method: del, Path: dsPath + "/files", Handler: fwd, Access: Change, Query: pathQuery, Status: http.StatusNoContent,
			Summary: "Delete a file no VM uses"},
		{Method: get, Path: dsPath + "/content", Handler: fwd, Access: Read, Query: pathQuery, Stream: true,
			ContentType: "application/octet-stream", Summary: "Download a file (Range requests work)"},
		{Method: put, Path: dsPath + "/content", Handler: s.upload, Access: Change, Query: uploadQuery, Stream: true,
			RawBody: true, MaxBody: -1, Status: http.StatusCreated, Response: api.DatastoreEntry{},
			Summary: "Upload a file (an ISO): the body is streamed, Content-Length is required; followed as a task"},
		{Method: get, Path: dsPath + "/disks", Handler: fwd, Access: Read, Query: pathQuery,
			Summary: "What qemu-img says of a disk image", Response: api.DiskInfo{}},
		{Method: post, Path: dsPath + "/disks", Handler: fwd, Access: Change, Status: http.StatusCreated,
			Summary: "Create a disk image", Request: api.CreateDiskRequest{}, Response: api.DiskInfo{}},
		{Method: post, Path: dsPath + "/disks/resize", Handler: fwd, Access: Change,
			Summary: "Grow a disk image", Request: api.ResizeDiskRequest{}, Response: api.DiskInfo{}},
		{Method: post, Path: dsPath + "/disks/convert", Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Copy a disk image into a new one of another format, as a task", Request: api.ConvertDiskRequest{}, Response: api.Task{}},

		{Method: post, Path: dsPath + "/" + api.FetchAction, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Fetch a file (disk image, ISO, OVA) from an https:// URL into the datastore, as a task (sha256 checked when given; an image naming another file refused)",
			Request: api.FetchRequest{}, Response: api.Task{}},
		{Method: post, Path: api.MgmtdImportPath, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Import the VM an OVA or OVF on a datastore describes (ESXi, VMware, VirtualBox): disks converted to qcow2, as a task whose result names the VM and lists what was not mapped",
			Request: api.ImportVMRequest{}, Response: api.Task{}},
		{Method: post, Path: vmPath + "/" + api.ExportAction, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Export a stopped VM as an OVA (descriptor, SHA-256 manifest, streamOptimized VMDKs) to a datastore, as a task",
			Request: api.ExportVMRequest{}, Response: api.Task{}},

		{Method: get, Path: vmPath + "/" + api.VMSnapshots, Handler: fwd, Access: Read,
			Summary: "The VM's snapshots, oldest first, and the one its present state came from", Response: api.SnapshotTree{}},
		{Method: post, Path: vmPath + "/" + api.VMSnapshots, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Take a snapshot (qcow2 internal: every writable disk and the UEFI variables; with memory, the running state too), as a task; refused before anything changes when space is short",
			Request: api.SnapshotRequest{}, Response: api.Task{}},
		{Method: del, Path: vmPath + "/" + api.VMSnapshots + "/{snap}", Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Delete a snapshot (its children keep their data), as a task", Response: api.Task{}},
		{Method: post, Path: vmPath + "/" + api.VMSnapshots + "/{snap}/" + api.VMRevert, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Take the VM back to a snapshot (disks, UEFI variables, definition; a memory snapshot's running state), as a task",
			Request: api.RevertRequest{}, Response: api.Task{}},
		{Method: post, Path: vmPath + "/" + api.VMClone, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Clone a stopped VM or one of its snapshots, full (copied disks) or linked (qcow2 overlays on a base kept once), as a task whose result names the new VM",
			Request: api.CloneRequest{}, Response: api.Task{}},
		{Method: post, Path: vmPath + "/" + api.VMTemplate, Handler: fwd, Access: Change,
			Summary: "Make a stopped VM a template (it never starts or changes) or a VM again", Request: api.TemplateRequest{}, Response: api.VM{}},
		{Method: post, Path: vmPath + "/" + api.VMDeploy, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Deploy COUNT clones of a template named by a pattern, in one task (undone whole if one fails)",
			Request: api.DeployRequest{}, Response: api.Task{}},
		{Method: get, Path: vmPath + "/" + api.VMHistory, Handler: fwd, Access: Read,
			Summary: "Every version of the VM's definition, with who changed it, when and why", Response: []api.SpecVersion{}},
		{Method: get, Path: vmPath + "/" + api.VMHistory + "/" + api.VMDiff, Handler: fwd, Access: Read,
			Query:   map[string]string{"from": "a version number (default: the one before to)", "to": "a version number (default: the present one)"},
			Summary: "What changed between two versions of the definition, field by field, each saying whether it needs a restart", Response: api.SpecDiff{}},
		{Method: post, Path: vmPath + "/" + api.VMHistory + "/" + api.VMRevert, Handler: fwd, Access: Change,
			Summary: "Put the definition back as it was at a version (dry_run: answer the diff only)",
			Request: api.RevertDefinitionRequest{}, Response: api.VM{}},

		{Method: get, Path: vmPath + "/" + api.VMBackups, Handler: fwd, Access: Read, Query: backupQuery,
			Summary: "The VM's backups, oldest first, in its backup policy's datastore folder (or the one named)", Response: []api.Backup{}},
		{Method: post, Path: vmPath + "/" + api.VMBackups, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Back the VM up, running (QEMU's blockdev-backup, the guest's file systems frozen through its agent) or stopped, to a datastore folder, as a task: incremental on the last backup where the disks' dirty bitmaps allow, else full with the reason; the policy's retention applied after",
			Request: api.BackupRequest{}, Response: api.Task{}},
		{Method: get, Path: api.MgmtdBackupsPath, Handler: fwd, Access: Read, Query: backupQuery,
			Summary: "Every backup kept in a datastore folder, of VMs defined or gone", Response: []api.Backup{}},
		{Method: post, Path: api.MgmtdBackupsPath + "/" + api.BackupsRestore, Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Restore a backup as a new VM or over its stopped VM, as a task: every file of its chain checked against its recorded SHA-256 first, each disk written flat",
			Request: api.RestoreRequest{}, Response: api.Task{}},

		{Method: get, Path: api.MgmtdSwitchesPath, Handler: fwd, Access: Read,
			Summary: "List virtual switches", Response: []api.Switch{}},
		{Method: post, Path: api.MgmtdSwitchesPath, Handler: fwd, Access: Change, Status: http.StatusCreated,
			Summary: "Create a virtual switch", Request: api.SwitchSpec{}, Response: api.Switch{}},
		{Method: del, Path: switchPath, Handler: fwd, Access: Change, Status: http.StatusNoContent,
			Summary: "Delete a virtual switch no VM NIC is on"},

		{Method: get, Path: api.MgmtdTasksPath, Handler: s.listTasks, Access: Read,
			Summary: "Tasks (uploads, disk conversions), the running and the recently finished", Response: []api.Task{}},
		{Method: get, Path: taskPath, Handler: s.getTask, Access: Read,
			Summary: "One task with its progress", Response: api.Task{}},
		{Method: get, Path: api.MgmtdEventsPath, Handler: fwd, Access: Read, Stream: true, ContentType: "text/event-stream",
			Summary: "Server-sent events: VM state changes and other host events (data: api.Event JSON)"},
		{Method: get, Path: api.MgmtdMetricsPath, Handler: s.metrics, Access: Read, ContentType: "text/plain; version=0.0.4",
			Summary: "Prometheus metrics: host CPU and memory, per-VM state, CPU, memory, disk and network counters"},
		{Method: get, Path: api.MgmtdOpenAPIPath, Handler: s.openAPI, Access: Read,
			Summary: "This document"},
	}
	rs = append(rs, s.hostRoutes()...)
	for _, d := range []struct {
		sub, what string
		req       any
	}{{api.VMDisks, "a disk (virtio-blk only while the VM runs)", api.Disk{}}, {api.VMNICs, "a NIC", api.NIC{}}, {api.VMUSB, "a host USB device", api.USBPassthrough{}}} {
		rs = append(rs,
			Route{Method: post, Path: vmPath + "/" + d.sub, Handler: fwd, Access: Change, Request: d.req, Response: api.VM{},
				Summary: "Plug " + d.what + " into a running VM (descriptors handed to QEMU, then kept in its spec), or add it to a stopped VM's spec; 409 when QEMU or the guest does not take it, the VM left as it was"},
			Route{Method: del, Path: vmPath + "/" + d.sub + "/{index}", Handler: fwd, Access: Change, Response: api.VM{},
				Summary: "Unplug the VM's " + d.sub + " entry at index (the running guest must let a disk or NIC go; 409 when it does not, the device left in place)"})
	}
	rs = append(rs,
		Route{Method: get, Path: vmPath + "/" + api.VMBalloon, Handler: fwd, Access: Read, Response: api.BalloonStatus{},
			Summary: "The running VM's balloon: its target, the memory the guest has, what the guest reports of its memory"},
		Route{Method: put, Path: vmPath + "/" + api.VMBalloon, Handler: fwd, Access: Change, Request: api.BalloonRequest{}, Response: api.BalloonStatus{},
			Summary: "Set the running VM's balloon target, live, between its balloon.min_mib and memory_mib (422 outside, the VM left as it was)"})
	for _, a := range []string{api.ActionStart, api.ActionStop, api.ActionShutdown, api.ActionReset, api.ActionPause, api.ActionResume} {
		rt := Route{Method: post, Path: vmPath + "/" + a, Handler: fwd, Access: Change, Response: api.VM{},
			Summary: "Power action " + a + " on a VM"}
		if a == api.ActionShutdown {
			rt.Request = api.ShutdownRequest{}
			rt.Summary = "Press the VM's ACPI power button; stop it hard after timeout_seconds (optional body)"
		}
		rs = append(rs, rt)
	}
	return rs
}

// pathVar is a path variable, unescaped (the router matches on the
// escaped path so that an ID may hold a slash-free escape).
func pathVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// hostRoutes are the host's settings, vmkernel's (package hostconf):
// forwarded with the audit and lockdown every Change route gets.
func (s *Server) hostRoutes() []Route {
	fwd, m := s.forward, api.Mgmtd
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	return []Route{
		{Method: get, Path: m(api.HostSettingsPath), Handler: fwd, Access: Read,
			Summary: "Every host setting at once: network, password, lockdown, certificate, time, remote logging, SSH, boot mode", Response: api.HostSettings{}},
		{Method: get, Path: m(api.HostNetworkPath), Handler: fwd, Access: Read,
			Summary: "The management network: saved configuration, live state, the change in flight and the last one settled", Response: api.HostNetwork{}},
		{Method: put, Path: m(api.HostNetworkPath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Change the management network (NIC, VLAN, IPv4, IPv6, DNS, host name): applied a second after this answer, then rolled back at its deadline unless confirmed from the new address (POST .../confirm)",
			Request: api.NetworkChangeRequest{}, Response: api.NetworkChange{}},
		{Method: post, Path: m(api.HostNetConfirmPath), Handler: s.confirmNetwork, Forwards: true, Access: Change,
			Summary: "Keep the management network change awaiting confirmation; only from its new address (409 otherwise)", Response: api.NetworkChange{}},
		{Method: post, Path: m(api.HostNetRollbackPath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Roll the change awaiting confirmation back now", Response: api.NetworkChange{}},
		{Method: post, Path: m(api.HostNetRestartPath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Apply the saved management network configuration again (connections may drop for a moment)", Response: api.NetworkChange{}},
		{Method: post, Path: m(api.HostNetRestorePath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Change the management network back to DHCP on the first NIC with a link, to be confirmed like any change",
			Request: api.NetworkChangeRequest{}, Response: api.NetworkChange{}},
		{Method: post, Path: m(api.HostNetTestPath), Handler: fwd, Access: Read,
			Summary: "Ping the gateway and the DNS servers, resolve the host name", Response: []api.NetworkCheck{}},
		{Method: get, Path: m(api.HostPasswordPath), Handler: fwd, Access: Read,
			Summary: "Whether the root password is set", Response: api.PasswordStatus{}},
		{Method: put, Path: m(api.HostPasswordPath), Handler: fwd, Access: Change, Status: http.StatusNoContent,
			Summary: "Set the root password; every session and API token ends", Request: api.PasswordRequest{}},
		{Method: get, Path: m(api.HostLockdownPath), Handler: fwd, Access: Read,
			Summary: "Whether lockdown mode is on", Response: api.LockdownStatus{}},
		{Method: put, Path: m(api.HostLockdownPath), Handler: s.setLockdown, Forwards: true, Access: Change, LockdownExempt: true,
			Summary: "Turn lockdown mode on, or off with the root password (every other change is refused while it is on)",
			Request: api.LockdownRequest{}, Response: api.LockdownStatus{}},
		{Method: get, Path: m(api.HostCertificatePath), Handler: fwd, Access: Read,
			Summary: "The TLS certificate mgmtd serves", Response: api.CertificateInfo{}},
		{Method: put, Path: m(api.HostCertificatePath), Handler: fwd, Access: Change,
			Summary: "Replace the TLS certificate (clients must pin the new fingerprint); served to new connections within a second",
			Request: api.CertificateRequest{}, Response: api.CertificateInfo{}},
		{Method: get, Path: m(api.HostServicesPath), Handler: fwd, Access: Read,
			Summary: "The host's services and their state", Response: []api.ServiceStatus{}},
		{Method: post, Path: m(api.HostServicesRestartPath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Restart services (none named: the management agents, mgmtd, a second after this answer; sessions end)",
			Request: api.ServicesRestartRequest{}},
		{Method: post, Path: m(api.HostResetPath), Handler: fwd, Access: Change, Status: http.StatusAccepted,
			Summary: "Forget the host's configuration (network, host name, password, lockdown, tokens; VMs and datastores are kept) and restart",
			Request: api.ResetRequest{}},
		{Method: get, Path: m(api.HostTimePath), Handler: fwd, Access: Read,
			Summary: "The clock and the NTP client: servers in use and where they came from (API, answer file, DHCP), last sync, offset, what is wrong", Response: api.TimeStatus{}},
		{Method: put, Path: m(api.HostTimePath), Handler: fwd, Access: Change,
			Summary: "Set the NTP client (on or off, servers; none: the answer file's or DHCP's); the servers are asked at once", Request: api.TimeConfig{}, Response: api.TimeStatus{}},
		{Method: post, Path: m(api.HostTimeSyncPath), Handler: fwd, Access: Change,
			Summary: "Ask the NTP servers now and set the clock", Response: api.TimeStatus{}},
		{Method: get, Path: m(api.HostSyslogPath), Handler: fwd, Access: Read,
			Summary: "Remote logging: the syslog servers and each one's state (connected, sent, dropped, what is wrong)", Response: api.SyslogStatus{}},
		{Method: put, Path: m(api.HostSyslogPath), Handler: fwd, Access: Change,
			Summary: "Send the host's log lines (vmkernel, mgmtd, the init, the audit log) to syslog servers as RFC 5424 messages: udp://, tcp:// or tls:// (with ca_pem); no targets: off",
			Request: api.SyslogConfig{}, Response: api.SyslogStatus{}},
		{Method: get, Path: m(api.HostSSHPath), Handler: fwd, Access: Read,
			Summary: "The SSH service: on or off (with a warning while on), port, host key, authorized keys, open sessions", Response: api.SSHStatus{}},
		{Method: put, Path: m(api.HostSSHPath), Handler: fwd, Access: Change,
			Summary: "Turn SSH on or off (off by default; refused while lockdown is on, which turns it off), allow the root password besides keys, and choose what a login gets: the DCUI or a shell",
			Request: api.SSHConfig{}, Response: api.SSHStatus{}},
		{Method: get, Path: m(api.HostSSHKeysPath), Handler: fwd, Access: Read,
			Summary: "root's authorized SSH keys", Response: []api.SSHKey{}},
		{Method: post, Path: m(api.HostSSHKeysPath), Handler: fwd, Access: Change, Status: http.StatusCreated,
			Summary: "Authorize an SSH key for root (one authorized_keys line, without options)", Request: api.SSHKeyRequest{}, Response: api.SSHKey{}},
		{Method: del, Path: m(api.HostSSHKeysPath) + "/{id}", Handler: fwd, Access: Change, Status: http.StatusNoContent,
			Summary: "Remove an authorized SSH key (its id)"},
		{Method: get, Path: m(api.HostSupportBundlePath), Handler: fwd, Access: Read, ContentType: "application/gzip", Stream: true,
			Summary: "A support bundle, streamed: a tar.gz of the logs, hardware inventory, settings and configuration (no secret), VM specs (cloud-init's secrets removed) and recent events"},
		{Method: get, Path: m(api.HostLogsPath), Handler: fwd, Access: Read,
			Summary: "The host's logs", Response: []api.LogInfo{}},
		{Method: get, Path: m(api.HostLogsPath) + "/{name}", Handler: fwd, Access: Read, ContentType: "text/plain",
			Query:   map[string]string{"tail_bytes": "how much of the log's end (default 262144, at most 4194304)"},
			Summary: "The end of one log (X-Log-Size: its whole size)"},
	}
}
