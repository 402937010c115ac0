package api

import "time"

// Paths of vmkernel's statistics and hardware routes.
const (
	// VMKernelStatsPath: GET the host's and the VMs' counters (Stats), for
	// Prometheus metrics.
	VMKernelStatsPath = "/v1/stats"
	// VMKernelHostHardwarePath: GET the board inventory (Hardware).
	VMKernelHostHardwarePath = "/v1/host/hardware"
)

// Stats is a snapshot of the host's and every defined VM's counters.
// Counters only grow while a VM's QEMU runs; a restart starts them again.
type Stats struct {
	Time time.Time `json:"time"`
	Host HostStats `json:"host"`
	// VMs holds every defined VM, sorted by name; stopped ones with
	// Running false and zero counters.
	VMs []VMStats `json:"vms"`
}

// HostStats are the host's counters.
type HostStats struct {
	// CPUSeconds is the time all CPUs spent in each mode since boot
	// (/proc/stat).
	CPUSeconds HostCPUSeconds `json:"cpu_seconds"`
	// MemoryTotalBytes and MemoryAvailableBytes are MemTotal and
	// MemAvailable of /proc/meminfo.
	MemoryTotalBytes     uint64  `json:"memory_total_bytes"`
	MemoryAvailableBytes uint64  `json:"memory_available_bytes"`
	UptimeSeconds        float64 `json:"uptime_seconds"`
	// KSM is kernel samepage merging's state (nil on a kernel without it).
	KSM *HostKSM `json:"ksm,omitempty"`
}

// HostKSM is kernel samepage merging: identical pages of VMs' memory
// merged into one.
type HostKSM struct {
	// Running says whether ksmd scans and merges.
	Running bool `json:"running"`
	// PagesShared are the merged pages kept; PagesSharing the pages that
	// use them besides, each one saved; PagesUnshared the pages scanned
	// that nothing matched; FullScans the passes over all mergeable memory.
	PagesShared   uint64 `json:"pages_shared"`
	PagesSharing  uint64 `json:"pages_sharing"`
	PagesUnshared uint64 `json:"pages_unshared"`
	FullScans     uint64 `json:"full_scans"`
	// SharedBytes is the memory of the merged pages; SavedBytes the memory
	// merging saved (PagesSharing pages).
	SharedBytes uint64 `json:"shared_bytes"`
	SavedBytes  uint64 `json:"saved_bytes"`
}

// HostCPUSeconds is CPU time per mode, summed over all CPUs.
type HostCPUSeconds struct {
	User    float64 `json:"user"`
	Nice    float64 `json:"nice"`
	System  float64 `json:"system"`
	Idle    float64 `json:"idle"`
	IOWait  float64 `json:"iowait"`
	IRQ     float64 `json:"irq"`
	SoftIRQ float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
}

// VMStats are one VM's counters.
type VMStats struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	// Running is true while a QEMU process runs the VM (running, paused,
	// starting or stopping).
	Running bool `json:"running"`
	// CPUSeconds is the user plus system CPU time of the VM's QEMU process.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryRSSBytes is the QEMU process's resident memory.
	MemoryRSSBytes uint64 `json:"memory_rss_bytes"`
	// MemoryBytes is the guest memory the spec configures.
	MemoryBytes uint64         `json:"memory_bytes"`
	Disks       []VMBlockStats `json:"disks"`
	NICs        []VMNICStats   `json:"nics"`
	// Error says what could not be read (e.g. QMP did not answer in time);
	// the counters that could be read are still given.
	Error string `json:"error,omitempty"`
}

// VMBlockStats are one block device's counters (QMP query-blockstats).
type VMBlockStats struct {
	// Device is the QEMU device (its qdev path, or the legacy drive name).
	Device string `json:"device"`
	// NodeName is the block node (e.g. "disk0").
	NodeName     string `json:"node_name,omitempty"`
	RdBytes      uint64 `json:"rd_bytes"`
	WrBytes      uint64 `json:"wr_bytes"`
	RdOperations uint64 `json:"rd_operations"`
	WrOperations uint64 `json:"wr_operations"`
}

// VMNICStats are one NIC's counters, read from its tap on the host
// (/sys/class/net/TAP/statistics). The tap's view is the host's: its rx is
// what the guest transmitted and its tx what the guest received. NAT NICs
// have no tap and no counters (Tap empty).
type VMNICStats struct {
	Index   int    `json:"index"`
	MAC     string `json:"mac"`
	Tap     string `json:"tap,omitempty"`
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
}

// MgmtdHistoryPath: GET the host's recent performance (HostHistory),
// ?range=hour (the default: a sample every 20 s) or day (every 5 min).
const MgmtdHistoryPath = "/api/v1/host/history"

// History ranges.
const (
	HistoryHour = "hour"
	HistoryDay  = "day"
)

// HostHistory is the host's recent performance as mgmtd keeps it, oldest
// sample first: the charts of the web client, readable by anyone.
type HostHistory struct {
	Range       string       `json:"range"`
	StepSeconds int          `json:"step_seconds"`
	Samples     []HostSample `json:"samples"`
}

// HostSample is the host over one step: CPU and memory as they were, the
// VMs' disk and network traffic as rates over the step (the sums of the
// counters of GET /metrics). Network is seen from the guests: received is
// what their taps sent them.
type HostSample struct {
	Time                    time.Time `json:"time"`
	CPUPercent              float64   `json:"cpu_percent"`
	MemoryUsedBytes         uint64    `json:"memory_used_bytes"`
	MemoryTotalBytes        uint64    `json:"memory_total_bytes"`
	NetRxBytesPerSecond     float64   `json:"net_rx_bytes_per_second"`
	NetTxBytesPerSecond     float64   `json:"net_tx_bytes_per_second"`
	DiskReadBytesPerSecond  float64   `json:"disk_read_bytes_per_second"`
	DiskWriteBytesPerSecond float64   `json:"disk_write_bytes_per_second"`
	RunningVMs              int       `json:"running_vms"`
}
