// Package ovf reads and writes OVF descriptors (DMTF DSP0243), the
// description of a virtual machine that VMware, ESXi and VirtualBox put in
// an OVA: it maps one to a Plinth VM spec, listing what it cannot map
// instead of dropping it, and writes one for a Plinth VM's export.
//
// A descriptor is a stranger's file: it is decoded with bounded size,
// every number range-checked, every name checked before it names a file,
// and nothing in it is ever used as a path outside the OVA's own members.
package ovf

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// MaxDescriptor bounds an OVF descriptor's size.
const MaxDescriptor = 4 << 20

// Envelope is the part of an OVF descriptor Plinth reads.
type Envelope struct {
	XMLName    xml.Name `xml:"Envelope"`
	References []File   `xml:"References>File"`
	Disks      []Disk   `xml:"DiskSection>Disk"`
	Networks   []struct {
		Name string `xml:"name,attr"`
	} `xml:"NetworkSection>Network"`
	System System `xml:"VirtualSystem"`
}

// File is a member of the package (References).
type File struct {
	ID   string `xml:"id,attr"`
	Href string `xml:"href,attr"`
	Size string `xml:"size,attr"`
}

// Disk is a virtual disk (DiskSection).
type Disk struct {
	ID            string `xml:"diskId,attr"`
	FileRef       string `xml:"fileRef,attr"`
	Capacity      string `xml:"capacity,attr"`
	CapacityUnits string `xml:"capacityAllocationUnits,attr"`
	Format        string `xml:"format,attr"`
}

// System is the VirtualSystem.
type System struct {
	ID       string `xml:"id,attr"`
	Name     string `xml:"Name"`
	OS       OS     `xml:"OperatingSystemSection"`
	Hardware struct {
		Items  []Item   `xml:"Item"`
		Config []Config `xml:"Config"`
		System struct {
			Type string `xml:"VirtualSystemType"`
		} `xml:"System"`
	} `xml:"VirtualHardwareSection"`
}

// OS is the OperatingSystemSection.
type OS struct {
	ID          string `xml:"id,attr"`
	Description string `xml:"Description"`
	VMwareType  string `xml:"osType,attr"`
}

// Item is one virtual device (a CIM ResourceAllocationSettingData).
type Item struct {
	InstanceID      string `xml:"InstanceID"`
	ElementName     string `xml:"ElementName"`
	ResourceType    int    `xml:"ResourceType"`
	ResourceSubType string `xml:"ResourceSubType"`
	Quantity        string `xml:"VirtualQuantity"`
	Units           string `xml:"AllocationUnits"`
	Parent          string `xml:"Parent"`
	Address         string `xml:"AddressOnParent"`
	HostResource    string `xml:"HostResource"`
	Connection      string `xml:"Connection"`
	CoresPerSocket  string `xml:"CoresPerSocket"`
}

// Config is a vmw:Config entry (VMware's extra settings).
type Config struct {
	Key   string `xml:"key,attr"`
	Value string `xml:"value,attr"`
}

// CIM resource types (DSP1041) Plinth maps or names.
const (
	rtOther       = 1
	rtProcessor   = 3
	rtMemory      = 4
	rtIDE         = 5
	rtSCSI        = 6
	rtNIC         = 10
	rtFloppy      = 14
	rtCDROM       = 15
	rtDVD         = 16
	rtDisk        = 17
	rtSerial      = 21
	rtParallel    = 22
	rtUSB         = 23
	rtGraphics    = 24
	rtSound       = 35
	rtSATA        = 20
	rtStorageExt  = 19
	rtOtherDevice = 0
)

var resourceNames = map[int]string{rtOther: "other device", rtFloppy: "floppy drive", rtSerial: "serial port",
	rtParallel: "parallel port", rtUSB: "USB controller", rtGraphics: "video card", rtSound: "sound card",
	rtStorageExt: "storage extent", rtCDROM: "CD-ROM drive", rtDVD: "DVD drive"}

// Parse decodes a descriptor (at most MaxDescriptor bytes).
func Parse(r io.Reader) (*Envelope, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDescriptor+1))
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	if len(b) > MaxDescriptor {
		return nil, fmt.Errorf("ovf: the descriptor is larger than %d bytes", MaxDescriptor)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	// No entities, no external anything: the standard decoder never fetches.
	var e Envelope
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("ovf: not an OVF descriptor: %w", err)
	}
	if e.XMLName.Local != "Envelope" {
		return nil, fmt.Errorf("ovf: the root element is %s, not Envelope", e.XMLName.Local)
	}
	return &e, nil
}

// capacityBytes reads a capacity with its allocation units ("byte * 2^30",
// "byte", "GigaBytes", "MegaBytes", ...).
func capacityBytes(v, units string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("capacity %q is not a number", v)
	}
	shift, err := unitShift(units)
	if err != nil {
		return 0, err
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("capacity %s %s is too large", v, units)
	}
	return n << shift, nil
}

// unitShift is the power of two of an OVF allocation unit.
func unitShift(units string) (uint, error) {
	u := strings.ToLower(strings.Join(strings.Fields(units), ""))
	switch u {
	case "", "byte", "bytes":
		return 0, nil
	case "kilobytes", "kb":
		return 10, nil
	case "megabytes", "mb":
		return 20, nil
	case "gigabytes", "gb":
		return 30, nil
	case "terabytes", "tb":
		return 40, nil
	}
	if rest, ok := strings.CutPrefix(u, "byte*2^"); ok {
		if p, err := strconv.Atoi(rest); err == nil && p >= 0 && p <= 50 {
			return uint(p), nil
		}
	}
	return 0, fmt.Errorf("allocation units %q not understood", units)
}

// member checks an href names a member of the package: a plain file name,
// no directory, nothing absolute, no URL.
func member(href string) (string, error) {
	if href == "" || strings.ContainsAny(href, "/\\:\x00") || href == "." || href == ".." || path.Clean(href) != href || len(href) > 255 {
		return "", fmt.Errorf("file reference %q is not a file of the package", href)
	}
	return href, nil
}
