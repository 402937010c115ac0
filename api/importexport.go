package api

// Import, export and fetch routes (vmkernel's below /v1, mgmtd's below
// /api/v1 with the same rest).
const (
	// VMKernelImportPath imports a VM from an OVA or OVF on a datastore.
	VMKernelImportPath = VMKernelPrefix + "/imports"
	MgmtdImportPath    = MgmtdPrefix + "/imports"
	// ExportAction, after a VM's path, exports it as an OVA.
	ExportAction = "export"
	// FetchAction, after a datastore's path, fetches a file from a URL.
	FetchAction = "fetch"
)

// ImportVMRequest imports the VM an OVA (or an OVF with its disks beside
// it) on a datastore describes: its disks converted to qcow2 into Folder
// (default: the VM's name) on the same datastore. It runs as a task whose
// result names the new VM and lists what could not be mapped.
type ImportVMRequest struct {
	Datastore string `json:"datastore"`
	// Path is the .ova or .ovf file in the datastore.
	Path string `json:"path"`
	// Name is the new VM's (default: the descriptor's, made a valid name).
	Name   string `json:"name,omitempty"`
	Folder string `json:"folder,omitempty"`
}

// ExportVMRequest exports a stopped VM as an OVA (an OVF descriptor, a
// SHA-256 manifest and each disk as a streamOptimized VMDK) to a new file
// on a datastore, as a task.
type ExportVMRequest struct {
	Datastore string `json:"datastore"`
	Path      string `json:"path"`
}

// FetchRequest fetches a file (a disk image, an ISO, an OVA) from an
// https:// URL into the datastore of the route, as a task with its
// progress. The file's format is established from its content as for an
// upload (an image naming another file is refused); with SHA256 the
// content must match it or nothing is kept.
type FetchRequest struct {
	URL  string `json:"url"`
	Path string `json:"path"`
	// SHA256 is the file's expected SHA-256 (hex), optional.
	SHA256 string `json:"sha256,omitempty"`
	// TLSFingerprint pins the server's certificate by the SHA-256 of its DER
	// (hex): for a server whose certificate the host cannot verify (the
	// appliance carries no public CA list).
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
}
