package ovf

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

// esxiOVF is a descriptor the way ESXi 7's export writes one (VMware's
// namespaces and keys), trimmed to one VM with two disks on an LSI Logic
// SCSI controller, a vmxnet3 NIC, an E1000 on another network, a CD-ROM,
// a floppy, a USB controller and a video card, UEFI firmware.
const esxiOVF = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-16850804" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="web 01-disk1.vmdk" ovf:id="file1" ovf:size="1024"/>
    <File ovf:href="web 01-disk2.vmdk" ovf:id="file2" ovf:size="2048"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="1073741824"/>
    <Disk ovf:capacity="512" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network"><Description>The VM Network network</Description></Network>
    <Network ovf:name="lan"><Description>lan</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="web 01">
    <Info>A virtual machine</Info>
    <Name>web 01</Name>
    <OperatingSystemSection ovf:id="96" ovf:version="10" vmw:osType="debian10_64Guest"><Info>The kind of installed guest operating system</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>web 01</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:Description>Number of Virtual CPUs</rasd:Description><rasd:ElementName>4 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity><vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:Description>Memory Size</rasd:Description><rasd:ElementName>4096MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Description>SCSI Controller</rasd:Description><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Description>IDE Controller</rasd:Description><rasd:ElementName>IDE 0</rasd:ElementName><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:AutomaticAllocation>false</rasd:AutomaticAllocation><rasd:ElementName>Video card</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>24</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:AutomaticAllocation>false</rasd:AutomaticAllocation><rasd:ElementName>CD/DVD drive 1</rasd:ElementName><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceSubType>vmware.cdrom.remotepassthrough</rasd:ResourceSubType><rasd:ResourceType>15</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:ElementName>Hard Disk 2</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource><rasd:InstanceID>8</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard Disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>7</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>8</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>lan</rasd:Connection><rasd:ElementName>Network adapter 2</rasd:ElementName><rasd:InstanceID>10</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:ElementName>Floppy drive 1</rasd:ElementName><rasd:InstanceID>11</rasd:InstanceID><rasd:ResourceType>14</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:ElementName>USB controller</rasd:ElementName><rasd:InstanceID>12</rasd:InstanceID><rasd:ResourceSubType>vmware.usb.ehci</rasd:ResourceSubType><rasd:ResourceType>23</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`

func TestMapESXiDescriptor(t *testing.T) {
	e, err := Parse(strings.NewReader(esxiOVF))
	if err != nil {
		t.Fatal(err)
	}
	im, err := Map(e, "", []string{"lan"})
	if err != nil {
		t.Fatal(err)
	}
	s := im.Spec
	if s.Name != "web-01" || s.CPU.Sockets != 2 || s.CPU.Cores != 2 || s.CPU.Threads != 1 || s.MemoryMiB != 4096 || s.Firmware != api.FirmwareUEFI {
		t.Errorf("spec %+v", s)
	}
	if len(im.DiskFiles) != 2 || im.DiskFiles[0].Href != "web 01-disk1.vmdk" || im.DiskFiles[0].CapacityBytes != 16<<30 ||
		im.DiskFiles[1].CapacityBytes != 512<<20 {
		t.Errorf("disks %+v", im.DiskFiles)
	}
	if len(s.NICs) != 2 || !s.NICs[0].NAT || s.NICs[0].Model != api.NICE1000e || s.NICs[1].Switch != "lan" {
		t.Errorf("NICs %+v", s.NICs)
	}
	s.ID = api.NewUUID()
	for i := range s.Disks {
		s.Disks[i].Datastore, s.Disks[i].Path = "ds", "web-01/disk.qcow2"
	}
	s.Defaults()
	if err := s.Validate(); err != nil {
		t.Errorf("the mapped spec does not validate: %v", err)
	}
	notes := strings.Join(im.Notes, "\n")
	for _, want := range []string{"web 01", "VmxNet3", "VM Network", "lsilogic", "video card", "CD-ROM drive", "floppy drive", "USB controller"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// TestExportRoundTrip: what Write says, Parse and Map read back.
func TestExportRoundTrip(t *testing.T) {
	spec := api.VMSpec{Name: "db", CPU: api.CPU{Sockets: 1, Cores: 4, Threads: 1}, MemoryMiB: 2048, Firmware: api.FirmwareUEFI,
		Disks: []api.Disk{{Datastore: "ds", Path: "db/a.qcow2"}, {Datastore: "ds", Path: "db/b.qcow2"}},
		NICs:  []api.NIC{{Model: api.NICVirtio, Switch: "lan"}, {NAT: true}}}
	var b bytes.Buffer
	if err := Write(&b, spec, []ExportDisk{{"db-disk1.vmdk", 100, 8 << 30}, {"db-disk2.vmdk", 200, 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	e, err := Parse(&b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	im, err := Map(e, "", []string{"lan"})
	if err != nil {
		t.Fatal(err)
	}
	if im.Spec.Name != "db" || im.Spec.CPU.VCPUs() != 4 || im.Spec.MemoryMiB != 2048 || im.Spec.Firmware != api.FirmwareUEFI ||
		len(im.DiskFiles) != 2 || im.DiskFiles[1].CapacityBytes != 1<<30 || len(im.Spec.NICs) != 2 ||
		im.Spec.NICs[0].Model != api.NICVirtio || im.Spec.NICs[0].Switch != "lan" || !im.Spec.NICs[1].NAT {
		t.Fatalf("round trip: %+v %+v", im.Spec, im.DiskFiles)
	}
	if !slices.Contains(im.Notes, `NIC "Network adapter 2" was on network "NAT", which is no virtual switch here: it is on NAT`) {
		t.Errorf("notes %q", im.Notes)
	}
}

// TestHostileDescriptor: references that would leave the package, absurd
// numbers and non-OVF XML are refused.
func TestHostileDescriptor(t *testing.T) {
	for _, href := range []string{"../../etc/shadow", "/etc/shadow", "http://evil/x.vmdk", "a/b.vmdk", ".."} {
		x := strings.Replace(esxiOVF, `ovf:href="web 01-disk1.vmdk"`, `ovf:href="`+href+`"`, 1)
		e, err := Parse(strings.NewReader(x))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Map(e, "", nil); err == nil || !strings.Contains(err.Error(), "not a file of the package") {
			t.Errorf("href %q: %v", href, err)
		}
	}
	for _, bad := range []string{
		strings.Replace(esxiOVF, "<rasd:VirtualQuantity>4096</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>99999999999999</rasd:VirtualQuantity>", 1),
		strings.Replace(esxiOVF, "<rasd:VirtualQuantity>4</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>-1</rasd:VirtualQuantity>", 1),
		strings.Replace(esxiOVF, `ovf:capacity="16"`, `ovf:capacity="99999999999999999"`, 1),
	} {
		e, err := Parse(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Map(e, "", nil); err == nil {
			t.Errorf("accepted a descriptor with an absurd number")
		}
	}
	if _, err := Parse(strings.NewReader("<html/>")); err == nil {
		t.Error("accepted an HTML document")
	}
	if _, err := Parse(strings.NewReader(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/shadow">]><Envelope>&e;</Envelope>`)); err == nil {
		t.Error("accepted an external entity")
	}
}

// FuzzMap: whatever the descriptor, Parse and Map return (no panic), and a
// mapped disk's file is always a plain member name.
func FuzzMap(f *testing.F) {
	f.Add([]byte(esxiOVF))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		im, err := Map(e, "", []string{"lan"})
		if err != nil {
			return
		}
		for _, d := range im.DiskFiles {
			if _, err := member(d.Href); err != nil {
				t.Fatalf("mapped a disk to %q", d.Href)
			}
		}
	})
}
