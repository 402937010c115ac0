package api

// ProblemContentType is the media type of a Problem (RFC 9457).
const ProblemContentType = "application/problem+json"

// Health statuses.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
)

// Path prefixes of the two APIs. Below them, both servers name the same
// resources the same way: /host, /vms, /datastores, /switches, /events.
const (
	VMKernelPrefix = "/v1"
	MgmtdPrefix    = "/api/v1"
)

// Paths of vmkernel's local API (over VMKernelSocket).
const (
	VMKernelHealthPath = "/v1/healthz"
	VMKernelHostPath   = "/v1/host"
)

// Paths of mgmtd's remote API (HTTPS).
const (
	MgmtdHealthPath = "/healthz"
	MgmtdHostPath   = "/api/v1/host"
	// MgmtdVMsPath lists VMs; MgmtdVMsPath + "/{id}" is one VM.
	MgmtdVMsPath = "/api/v1/vms"
)

// VM paths of vmkernel's local API. VMKernelVMPath takes an ID or a name
// after it; actions are POSTed to VMKernelVMPath + ID + "/" + action.
const (
	VMKernelVMsPath = "/v1/vms"
	VMKernelVMPath  = "/v1/vms/"
	// VMKernelConsole: GET VMKernelVMPath + ID + "/console" answers the
	// last 64 KiB the VM's guest printed on its serial console (text/plain).
	VMKernelConsole = "console"
)

// A VM's devices while it runs (issue 18), below VMKernelVMPath + ID + "/":
// POST VMDisks (an api.Disk), VMNICs (an api.NIC) or VMUSB (an
// api.USBPassthrough) plugs one in (a running VM) or adds it to the spec
// (a stopped one); DELETE .../INDEX takes the one at that index of the
// spec's list out; GET and PUT VMBalloon read and set the balloon
// (api.BalloonStatus, api.BalloonRequest).
const (
	VMDisks   = "disks"
	VMNICs    = "nics"
	VMUSB     = "usb"
	VMBalloon = "balloon"
)

// VM power actions (POST /v1/vms/{id}/{action}).
const (
	ActionStart    = "start"
	ActionStop     = "stop"
	ActionShutdown = "shutdown"
	ActionReset    = "reset"
	ActionPause    = "pause"
	ActionResume   = "resume"
)
