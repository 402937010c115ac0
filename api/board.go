package api

// Hardware is the inventory of the machine Plinth runs on (package board reads
// it from /sys, /proc and the firmware). A field that could not be read keeps
// its zero value (or -1 where the type says so) and Gaps names why, so a
// partial inventory is still an answer.
type Hardware struct {
	System  HostSystem   `json:"system"`
	CPU     HostCPU      `json:"cpu"`
	Memory  HostMemory   `json:"memory"`
	PCI     []PCIDevice  `json:"pci"`
	USB     []USBDevice  `json:"usb"`
	NICs    []HostNIC    `json:"nics"`
	Disks   []HostDisk   `json:"disks"`
	Sensors []HostSensor `json:"sensors"`
	// Modules are the loadable kernel modules loaded now (those of
	// /sys/module whose initstate is "live"), sorted; built-in drivers are
	// not listed.
	Modules []string `json:"modules"`
	// Gaps lists what could not be read, one "area: path: reason" each, e.g.
	// "system: /sys/class/dmi/id/product_serial: permission denied".
	Gaps []string `json:"gaps"`
}

// Boot modes.
const (
	BootUEFI = "uefi"
	BootBIOS = "bios"
)

// HostSystem is the machine's identity from SMBIOS/DMI and its firmware.
type HostSystem struct {
	Vendor      string `json:"vendor"`
	Product     string `json:"product"`
	Serial      string `json:"serial"`
	UUID        string `json:"uuid"`
	BIOSVendor  string `json:"bios_vendor"`
	BIOSVersion string `json:"bios_version"`
	BIOSDate    string `json:"bios_date"`
	// BootMode is "uefi" or "bios".
	BootMode string `json:"boot_mode"`
	// SecureBoot is nil when unknown (BIOS boot, or the EFI variable unreadable).
	SecureBoot *bool `json:"secure_boot"`
}

// HostCPU is the host's processors.
type HostCPU struct {
	Model   string `json:"model"`
	Sockets int    `json:"sockets"`
	// Cores is the number of physical cores over all sockets.
	Cores int `json:"cores"`
	// Threads is the number of logical CPUs over all sockets.
	Threads int `json:"threads"`
	// Virtualization is the CPU's hardware virtualization flag, "vmx" or
	// "svm", empty when it has neither.
	Virtualization string `json:"virtualization"`
	// SecondLevelPaging is "ept" or "npt" when the CPU has it.
	SecondLevelPaging string `json:"second_level_paging"`
	// KVMModule is the loaded vendor KVM module (kvm_intel, kvm_amd, kvm_pvm).
	KVMModule string `json:"kvm_module"`
	// Nested is whether that module has nested virtualization on.
	Nested bool `json:"nested"`
}

// HostMemory is the host's memory.
type HostMemory struct {
	TotalBytes uint64      `json:"total_bytes"`
	NUMANodes  []NUMANode  `json:"numa_nodes"`
	HugePages  []HugePages `json:"huge_pages"`
}

// NUMANode is one NUMA node's memory and CPUs.
type NUMANode struct {
	ID         int    `json:"id"`
	TotalBytes uint64 `json:"total_bytes"`
	// CPUs is the kernel's cpulist, e.g. "0-7,16-23".
	CPUs string `json:"cpus"`
}

// HugePages is one huge page size's pool.
type HugePages struct {
	SizeBytes uint64 `json:"size_bytes"`
	Total     int    `json:"total"`
	Free      int    `json:"free"`
}

// PCIDevice is one PCI function.
type PCIDevice struct {
	// Address is the domain:bus:device.function, e.g. "0000:00:02.0".
	Address string `json:"address"`
	// VendorID, DeviceID and Class are hex as in lspci -n: "8086", "10d3", "020000".
	VendorID   string `json:"vendor_id"`
	DeviceID   string `json:"device_id"`
	Class      string `json:"class"`
	VendorName string `json:"vendor_name,omitempty"`
	DeviceName string `json:"device_name,omitempty"`
	ClassName  string `json:"class_name,omitempty"`
	// Driver is the bound kernel driver, empty when none is.
	Driver string `json:"driver"`
	// Modalias is the device's modalias, what the driver map resolves to
	// modules.
	Modalias string `json:"modalias,omitempty"`
	// IOMMUGroup is -1 when the device has none (no IOMMU, or it is off).
	IOMMUGroup int `json:"iommu_group"`
	// HostUse says what the host uses the device for (its NIC carries the
	// management network, its disk holds Plinth or a mounted file
	// system), "" when nothing: such a device, and every other device of
	// its IOMMU group, is never given to a VM.
	HostUse string `json:"host_use,omitempty"`
	// PassthroughCapable says whether the device could be given to a VM;
	// PassthroughReason says why not, or what to mind when it can.
	PassthroughCapable bool   `json:"passthrough_capable"`
	PassthroughReason  string `json:"passthrough_reason,omitempty"`
}

// USBDevice is one USB device of the host (root hubs left out).
type USBDevice struct {
	// Port is the bus-port path sysfs names it by, e.g. "1-2.3".
	Port string `json:"port"`
	// Bus and Device are its bus and device numbers (/dev/bus/usb/BBB/DDD).
	Bus    int `json:"bus"`
	Device int `json:"device"`
	// VendorID, ProductID and Class are hex, as lsusb shows them.
	VendorID     string  `json:"vendor_id"`
	ProductID    string  `json:"product_id"`
	Class        string  `json:"class,omitempty"`
	Manufacturer string  `json:"manufacturer,omitempty"`
	Product      string  `json:"product,omitempty"`
	Serial       string  `json:"serial,omitempty"`
	SpeedMbps    float64 `json:"speed_mbps,omitempty"`
	// HostUse says what the host uses it for (a stick holding Plinth),
	// "" when nothing; such a device is never given to a VM.
	HostUse string `json:"host_use,omitempty"`
}

// HostNIC is a physical network interface of the host.
type HostNIC struct {
	Name   string `json:"name"`
	MAC    string `json:"mac"`
	Driver string `json:"driver"`
	Link   bool   `json:"link"`
	// SpeedMbps is -1 when unknown (no link, or the driver does not say).
	SpeedMbps int `json:"speed_mbps"`
	// Duplex is "full", "half" or "" when unknown.
	Duplex string `json:"duplex"`
	// PCIAddress is empty when the NIC is not on PCI (e.g. USB).
	PCIAddress string `json:"pci_address,omitempty"`
}

// Disk transports.
const (
	TransportNVMe   = "nvme"
	TransportSATA   = "sata"
	TransportSAS    = "sas"
	TransportUSB    = "usb"
	TransportVirtio = "virtio"
	TransportSCSI   = "scsi"
	TransportMMC    = "mmc"
)

// HostDisk is a physical (or, in a VM, virtual) block device of the host.
type HostDisk struct {
	Name       string `json:"name"`
	Model      string `json:"model"`
	Serial     string `json:"serial"`
	SizeBytes  uint64 `json:"size_bytes"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
	// Transport is one of the Transport constants, or "" when unknown.
	Transport  string      `json:"transport"`
	PCIAddress string      `json:"pci_address,omitempty"`
	Partitions []Partition `json:"partitions"`
	// PlinthInstall is whether a partition is labelled PLINTH-STATE or PLINTH-EFI.
	PlinthInstall bool `json:"plinth_install"`
}

// Partition is one partition of a HostDisk.
type Partition struct {
	Name      string `json:"name"`
	SizeBytes uint64 `json:"size_bytes"`
	// Label and FSType come from the file system's superblock ("ext4",
	// "vfat", "iso9660"); both are empty when it is none of those.
	Label  string `json:"label"`
	FSType string `json:"fs_type"`
}

// Sensor kinds and their units.
const (
	SensorTemp = "temp" // degrees Celsius
	SensorFan  = "fan"  // revolutions per minute
)

// HostSensor is one hwmon reading.
type HostSensor struct {
	// Chip is the hwmon device's name, e.g. "coretemp".
	Chip string `json:"chip"`
	// Name is the hwmon attribute, e.g. "temp1".
	Name string `json:"name"`
	// Label is the hwmon label, e.g. "Package id 0", empty when there is none.
	Label string `json:"label"`
	// Kind is "temp" or "fan".
	Kind  string  `json:"kind"`
	Value float64 `json:"value"`
}
