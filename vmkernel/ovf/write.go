package ovf

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/plinth/plinth/api"
)

// ExportDisk is one disk of an export: its member of the package (a
// streamOptimized VMDK), the member's size and the disk's capacity.
type ExportDisk struct {
	Href          string
	FileSize      int64
	CapacityBytes int64
}

// Write writes an OVF 1.0 descriptor for spec with disks (in spec order),
// as VMware writes one, so ESXi, VirtualBox and Plinth can import it.
func Write(w io.Writer, spec api.VMSpec, disks []ExportDisk) error {
	if len(disks) != len(spec.Disks) {
		return fmt.Errorf("ovf: %d disk files for %d disks", len(disks), len(spec.Disks))
	}
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		xml.EscapeText(&e, []byte(s))
		return strings.ReplaceAll(e.String(), `"`, "&#34;")
	}
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<Envelope vmw:buildId="plinth" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + "\n")
	p("  <References>\n")
	for i, d := range disks {
		if _, err := member(d.Href); err != nil {
			return fmt.Errorf("ovf: %w", err)
		}
		p(`    <File ovf:href="%s" ovf:id="file%d" ovf:size="%d"/>`+"\n", esc(d.Href), i+1, d.FileSize)
	}
	p("  </References>\n")
	p("  <DiskSection>\n    <Info>Virtual disk information</Info>\n")
	for i, d := range disks {
		p(`    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`+"\n",
			d.CapacityBytes, i+1, i+1)
	}
	p("  </DiskSection>\n")
	networks := map[string]bool{}
	var netOrder []string
	for _, n := range spec.NICs {
		name := netName(n)
		if !networks[name] {
			networks[name] = true
			netOrder = append(netOrder, name)
		}
	}
	p("  <NetworkSection>\n    <Info>The list of logical networks</Info>\n")
	for _, n := range netOrder {
		p(`    <Network ovf:name="%s"><Description>%s</Description></Network>`+"\n", esc(n), esc(n))
	}
	p("  </NetworkSection>\n")
	p(`  <VirtualSystem ovf:id="%s">`+"\n", esc(spec.Name))
	p("    <Info>A virtual machine exported by Plinth</Info>\n    <Name>%s</Name>\n", esc(spec.Name))
	p(`    <OperatingSystemSection ovf:id="1"><Info>The kind of installed guest operating system</Info></OperatingSystemSection>` + "\n")
	p("    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n")
	p("      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType></System>\n", esc(spec.Name))
	id := 0
	item := func(rt int, name string, extra string) int {
		id++
		p("      <Item><rasd:ElementName>%s</rasd:ElementName><rasd:InstanceID>%d</rasd:InstanceID><rasd:ResourceType>%d</rasd:ResourceType>%s</Item>\n", esc(name), id, rt, extra)
		return id
	}
	cpus := spec.CPU.VCPUs()
	item(rtProcessor, fmt.Sprintf("%d virtual CPU(s)", cpus), fmt.Sprintf("<rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:VirtualQuantity>%d</rasd:VirtualQuantity><vmw:CoresPerSocket ovf:required=\"false\">%d</vmw:CoresPerSocket>", cpus, spec.CPU.Cores*spec.CPU.Threads))
	item(rtMemory, fmt.Sprintf("%d MB of memory", spec.MemoryMiB), fmt.Sprintf("<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:VirtualQuantity>%d</rasd:VirtualQuantity>", spec.MemoryMiB))
	sata := item(rtSATA, "SATA Controller 0", "<rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType>")
	for i := range disks {
		item(rtDisk, fmt.Sprintf("Hard Disk %d", i+1), fmt.Sprintf("<rasd:AddressOnParent>%d</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk%d</rasd:HostResource><rasd:Parent>%d</rasd:Parent>", i, i+1, sata))
	}
	for i, n := range spec.NICs {
		sub := "E1000e"
		if n.Model == api.NICVirtio {
			sub = "VirtIO"
		}
		item(rtNIC, fmt.Sprintf("Network adapter %d", i+1), fmt.Sprintf("<rasd:AddressOnParent>%d</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>%s</rasd:Connection><rasd:ResourceSubType>%s</rasd:ResourceSubType>", 7+i, esc(netName(n)), sub))
	}
	if spec.Firmware == api.FirmwareUEFI {
		p(`      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>` + "\n")
	}
	p("    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// netName is the network an exported NIC is on: its switch, or "NAT".
func netName(n api.NIC) string {
	if n.Switch != "" {
		return n.Switch
	}
	return "NAT"
}
