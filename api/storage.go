package api

// Paths of vmkernel's datastore routes. VMKernelDatastorePath takes a
// datastore name after it, then "files" or "disks" (or "disks/resize"); the
// file inside the datastore is the "path" query parameter.
const (
	VMKernelDatastoresPath = "/v1/datastores"
	VMKernelDatastorePath  = "/v1/datastores/"
)

// Formats of a datastore entry besides the disk formats (FormatQcow2,
// FormatRaw).
const (
	// FileFormatISO is an ISO image, attachable as a CD-ROM.
	FileFormatISO = "iso"
)

// Kinds of a datastore entry.
const (
	EntryFile  = "file"
	EntryDir   = "dir"
	EntryOther = "other"
)

// Datastore is one of the host's datastores with its space.
type Datastore struct {
	Name          string `json:"name"`
	Root          string `json:"root"`
	CapacityBytes uint64 `json:"capacity_bytes"`
	FreeBytes     uint64 `json:"free_bytes"`
}

// DatastoreEntry is one entry of a datastore directory.
type DatastoreEntry struct {
	Name string `json:"name"`
	// Path is relative to the datastore's root.
	Path      string `json:"path"`
	Kind      string `json:"kind"`
	SizeBytes int64  `json:"size_bytes"`
	// Format is the file's format as established from its content when it
	// entered the datastore (upload, create, convert) or at its first use
	// as an image: "raw", "iso", "qcow2", "vmdk", "vhdx", "vpc", "vdi", ...;
	// empty for a file never used as an image. Plinth always opens the file
	// as this format, whatever its first bytes say later.
	Format string `json:"format,omitempty"`
}

// CreateDiskRequest asks for a new disk image on a datastore.
type CreateDiskRequest struct {
	Path string `json:"path"`
	// Format is "qcow2" (default) or "raw".
	Format    string `json:"format,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
}

// ResizeDiskRequest grows a disk image to SizeBytes (never shrinks it).
type ResizeDiskRequest struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
}

// DiskInfo is what qemu-img says of a disk image (opened as its
// established format). BackingFile is the datastore path of its backing
// image, which only an image Plinth made has.
type DiskInfo struct {
	Path             string `json:"path"`
	Format           string `json:"format"`
	VirtualSizeBytes int64  `json:"virtual_size_bytes"`
	ActualSizeBytes  int64  `json:"actual_size_bytes"`
	BackingFile      string `json:"backing_file,omitempty"`
}

// ConvertDiskRequest copies a disk image into a new one of Format
// (qemu-img convert), e.g. an uploaded qcow2 into a raw disk. It runs as a
// task: the answer is the api.Task to follow.
type ConvertDiskRequest struct {
	// Path is the source image, Target the new one (which must not exist),
	// both in the datastore of the route.
	Path   string `json:"path"`
	Target string `json:"target"`
	// Format of the new image: "qcow2" (default) or "raw".
	Format string `json:"format,omitempty"`
}
