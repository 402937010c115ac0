// Package api holds Plinth's wire types: the one definition of every request
// and response that vmkernel, mgmtd, the DCUI, the CLI and the tests exchange.
// It imports only the standard library, and nothing in Plinth is imported by it.
package api

// Version is the Plinth version. The image build sets it with
// -ldflags "-X github.com/plinth/plinth/api.Version=...".
var Version = "0.0.0-dev"

// Release is the build's monotonic release number, in decimal: every build
// of a later commit has a higher one (the image build sets the commit count,
// `git rev-list --count HEAD`, with -ldflags "-X
// github.com/plinth/plinth/api.Release=..."; `make next` adds one). Upgrade
// images carry it in their signed manifest, and an older release is refused
// unless a downgrade is asked for. "0": a development build, older than any.
var Release = "0"

// Acceleration modes.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Acceleration says how this host runs virtual machines and why.
type Acceleration struct {
	// Mode is "kvm" or "tcg".
	Mode string `json:"mode"`
	// Reason explains the decision, e.g. "tcg: /dev/kvm is kvm_pvm, which
	// cannot run stock guest kernels".
	Reason string `json:"reason"`
	// Module is the loaded KVM module (kvm_intel, kvm_amd, kvm_pvm), if any.
	Module string `json:"module,omitempty"`
	// APIVersion is KVM_GET_API_VERSION, 0 when /dev/kvm could not be opened.
	APIVersion int `json:"api_version,omitempty"`
	// MaxVCPUs is KVM_CAP_MAX_VCPUS, 0 when unknown.
	MaxVCPUs int `json:"max_vcpus,omitempty"`
	// CPUFlag is the CPU's virtualization flag ("vmx" or "svm"), if any.
	CPUFlag string `json:"cpu_flag,omitempty"`
	// Nested reports whether the KVM module has nested virtualization on.
	Nested bool `json:"nested"`
}

// Host is the facts a host reports about itself (GET /api/v1/host).
type Host struct {
	Hostname      string       `json:"hostname"`
	Version       string       `json:"version"`
	Kernel        string       `json:"kernel"`
	CPUModel      string       `json:"cpu_model"`
	CPUCount      int          `json:"cpu_count"`
	MemoryBytes   uint64       `json:"memory_bytes"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Acceleration  Acceleration `json:"acceleration"`
	// QEMU is the version of the QEMU that runs VMs, from `qemu-system-x86_64
	// --version` at vmkernel's start, e.g. "7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)";
	// empty when QEMU cannot run (vmkernel logs why).
	QEMU string `json:"qemu"`
}

// Health is the answer of GET /healthz.
type Health struct {
	// Status is "ok" when the API and vmkernel answer, else "degraded".
	Status string `json:"status"`
	// Services maps a service name to "ok" or the problem it has.
	Services map[string]string `json:"services,omitempty"`
}

// Problem is an RFC 9457 problem details document
// (Content-Type: application/problem+json), used for every API error.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the request field at fault, when there is one (the first
	// of Problems when there are several).
	Field string `json:"field,omitempty"`
	// Problems lists every field problem of a request that did not validate.
	Problems []FieldProblem `json:"problems,omitempty"`
}

// ReadyPrefix starts the one machine-readable line the appliance init prints
// on the console once the API answers. The rest of the line is space-separated
// key=value pairs (see initramfs/appinit).
const ReadyPrefix = "PLINTH-READY"

// MgmtdUID and MgmtdGID are the unprivileged identity mgmtd runs as (where
// things are on the host is package layout's).
const (
	MgmtdUID = 101
	MgmtdGID = 101
	// ImageUID and ImageGID are the unprivileged identity qemu-img runs as.
	// The datastore files Plinth uses belong to group ImageGID (mode 0660,
	// in directories only root enters), and qemu-img is handed each one as
	// an open descriptor: it reaches no file it was not given.
	ImageUID = 199998
	ImageGID = 199998
	// KVMGID is the group of /dev/kvm; each VM's QEMU has it when the host
	// runs VMs on KVM.
	KVMGID = 199999
	// VMUIDBase is the first of the unprivileged users VMs' QEMUs run as
	// (one each, VMUIDCount at most; the user's group has the same number).
	VMUIDBase  = 200000
	VMUIDCount = 65536
)
