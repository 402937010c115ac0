package api

import "time"

// Paths of mgmtd's remote API beyond health, host and VMs (see http.go).
// Every path but MgmtdHealthPath and a POST to MgmtdSessionsPath needs an
// "Authorization: Bearer TOKEN" header.
const (
	// MgmtdSessionsPath: POST a LoginRequest for a Session.
	MgmtdSessionsPath = "/api/v1/sessions"
	// MgmtdSessionPath: GET who the token is (WhoAmI), DELETE to log out.
	MgmtdSessionPath = "/api/v1/sessions/current"
	// MgmtdTokensPath: GET lists API tokens, POST a TokenRequest makes one;
	// MgmtdTokensPath + "/{id}" DELETE revokes one.
	MgmtdTokensPath = "/api/v1/tokens"
	// MgmtdTicketsPath: POST a TicketRequest for a Ticket, the one way into
	// a websocket (a browser cannot send a header on one).
	MgmtdTicketsPath = "/api/v1/tickets"
	// MgmtdAuditPath: GET the audit log, newest last (?limit=N, default 100).
	MgmtdAuditPath = "/api/v1/audit"
	// MgmtdHostPowerPath: POST a PowerRequest.
	MgmtdHostPowerPath = "/api/v1/host/power"
	// MgmtdHostHardwarePath: GET the board inventory (api.Hardware).
	MgmtdHostHardwarePath = "/api/v1/host/hardware"
	// MgmtdHostInstallPath: GET the install targets ([]InstallCandidate),
	// POST an InstallRequest to install Plinth to a disk (a Task).
	MgmtdHostInstallPath = "/api/v1/host/install"
	// MgmtdHostCertificatePath: GET the TLS certificate (CertificateInfo),
	// PUT a CertificateRequest to replace it.
	MgmtdHostCertificatePath = "/api/v1/host/certificate"
	// MgmtdDatastoresPath lists datastores; MgmtdDatastoresPath + "/{name}/files"
	// browses (GET, ?path=) and deletes (DELETE, ?path=) files,
	// "/{name}/content" downloads (GET) and uploads (PUT, streamed body,
	// Content-Length required) one file, "/{name}/disks" creates (POST) and
	// inspects (GET, ?path=) disk images, "/{name}/disks/resize" grows one.
	MgmtdDatastoresPath = "/api/v1/datastores"
	// MgmtdSwitchesPath lists (GET) and creates (POST) virtual switches;
	// MgmtdSwitchesPath + "/{name}" DELETE removes one.
	MgmtdSwitchesPath = "/api/v1/switches"
	// MgmtdTasksPath lists tasks; MgmtdTasksPath + "/{id}" is one Task.
	MgmtdTasksPath = "/api/v1/tasks"
	// MgmtdEventsPath streams Events as server-sent events.
	MgmtdEventsPath = "/api/v1/events"
	// MgmtdOpenAPIPath is the OpenAPI 3.1 document of this API.
	MgmtdOpenAPIPath = "/api/v1/openapi.json"
	// MgmtdMetricsPath is Prometheus text exposition.
	MgmtdMetricsPath = "/metrics"
	// MgmtdConsoleWS: GET MgmtdVMsPath + "/{id}/" + MgmtdConsoleWS upgrades to
	// a websocket carrying the VM's serial console as binary messages both
	// ways (the last 64 KiB of output first). Websockets take a ticket
	// (TicketQuery) or an Authorization header, never a token in the URL.
	MgmtdConsoleWS = "console/ws"
	// MgmtdVNCWS: GET MgmtdVMsPath + "/{id}/" + MgmtdVNCWS upgrades to a
	// websocket carrying the VM's VNC (RFB) stream, as noVNC expects
	// (subprotocol "binary").
	MgmtdVNCWS = "vnc/ws"
)

// TicketQuery is the query parameter that carries a websocket's ticket:
// GET /api/v1/vms/ID/console/ws?ticket=plinth_k_...
const TicketQuery = "ticket"

// TicketRequest is the body of POST /api/v1/tickets.
type TicketRequest struct {
	// Path is the websocket the ticket opens, as it will be requested,
	// e.g. /api/v1/vms/web1/console/ws.
	Path string `json:"path"`
}

// Ticket opens one websocket, once, within seconds of being made: send it
// as ?ticket= on Path. It is bound to the session or token that asked for
// it and ends with it.
type Ticket struct {
	Ticket    string    `json:"ticket"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RootUser is the one account of a Plinth host, as on ESXi.
const RootUser = "root"

// LoginRequest is the body of POST /api/v1/sessions.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Session is a logged-in session's bearer token.
type Session struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

// WhoAmI is the answer of GET /api/v1/sessions/current.
type WhoAmI struct {
	User string `json:"user"`
	// Kind is "session" or "token".
	Kind string `json:"kind"`
	// TokenID is the API token's ID when Kind is "token".
	TokenID   string     `json:"token_id,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Lockdown is on when only the DCUI may change the host.
	Lockdown bool `json:"lockdown"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	// Name says what the token is for (1 to 64 printable characters).
	Name string `json:"name"`
	// ExpiresInSeconds is the token's lifetime; 0 means it never expires.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// APIToken is a long-lived API token. Secret is only ever present in the
// answer that made it; the host keeps only its hash.
type APIToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	User       string     `json:"user"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Secret     string     `json:"secret,omitempty"`
}

// AuditEntry is one change recorded in the audit log.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Remote string    `json:"remote"`
	// Action is the method and route, e.g. "POST /api/v1/vms/{id}/start".
	Action string `json:"action"`
	// Target is the path as requested, e.g. "/api/v1/vms/web1/start".
	Target string `json:"target"`
	Status int    `json:"status"`
	// Detail is the problem's detail for a failed change.
	Detail string `json:"detail,omitempty"`
	// Count, when more than 1, says the entry stands for that many alike
	// (failed or throttled logins from one client, or from many once they
	// come too fast), from First to Time; what strangers send is counted,
	// not written line by line.
	Count int        `json:"count,omitempty"`
	First *time.Time `json:"first,omitempty"`
}

// Host power actions.
const (
	PowerReboot   = "reboot"
	PowerShutdown = "shutdown"
)

// PowerRequest is the body of POST /api/v1/host/power.
type PowerRequest struct {
	// Action is "reboot" or "shutdown".
	Action string `json:"action"`
	// Reason is recorded in the audit log and the host's log (required).
	Reason string `json:"reason"`
	// Confirm must be the host's hostname, so a script aimed at the wrong
	// host does nothing.
	Confirm string `json:"confirm"`
}

// CertificateInfo describes mgmtd's TLS certificate.
type CertificateInfo struct {
	Fingerprint string    `json:"fingerprint_sha256"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	SelfSigned  bool      `json:"self_signed"`
}

// CertificateRequest replaces mgmtd's TLS certificate (PEM, the key
// unencrypted; the certificate may be followed by its chain).
type CertificateRequest struct {
	CertificatePEM string `json:"certificate_pem"`
	KeyPEM         string `json:"key_pem"`
}

// Task states.
const (
	TaskRunning   = "running"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
)

// Task is long work (an upload, a disk conversion) with its progress.
type Task struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Target is what the task works on, e.g. "ds1:iso/debian.iso".
	Target string `json:"target"`
	User   string `json:"user"`
	State  string `json:"state"`
	// Done and Total are the progress in bytes (Total 0 when unknown).
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Error string `json:"error,omitempty"`
	// Results name what the task made, as it makes them: the new VMs' IDs
	// (clone, deploy, restore), the backup's or snapshot's ID.
	Results    []string   `json:"results,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Result is what a task that succeeded made, when it made something.
	Result *TaskResult `json:"result,omitempty"`
}

// TaskResult is what a finished task made: a VM (an import), a file (an
// export, a fetch), and notes for the user (what an import could not map).
type TaskResult struct {
	VM        string   `json:"vm,omitempty"`
	Datastore string   `json:"datastore,omitempty"`
	Path      string   `json:"path,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}
