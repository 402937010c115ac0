package vmkernel_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// vmwareOVF is a descriptor as ESXi writes one for a VM with one disk on
// an LSI Logic controller, a vmxnet3 NIC on "VM Network" and a floppy.
func vmwareOVF(name, href string, fileSize, capacity int64) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-16850804" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="%s" ovf:id="file1" ovf:size="%d"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network"><Description>The VM Network network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%s">
    <Info>A virtual machine</Info>
    <Name>%s</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info>The kind of installed guest operating system</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>1 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>256MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard Disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:ElementName>Floppy drive 1</rasd:ElementName><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceType>14</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, href, fileSize, capacity, name, name, name)
}

// makeOVA packs an OVA the way VMware does (descriptor, manifest, disk)
// with GNU tar: the disk is a streamOptimized VMDK qemu-img makes of raw.
// corrupt changes one byte of the disk after its digest is taken.
func makeOVA(t *testing.T, dir, name, raw string, corrupt bool) string {
	t.Helper()
	work := filepath.Join(dir, name+".d")
	os.MkdirAll(work, 0o755)
	vmdk := filepath.Join(work, name+"-disk1.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	return packOVA(t, dir, name, vmdk, fi.Size(), corrupt)
}

// packOVA packs disk (any file: the test's hostile images too) as the one
// disk of an OVA.
func packOVA(t *testing.T, dir, name, disk string, capacity int64, corrupt bool) string {
	t.Helper()
	work := filepath.Join(dir, name+".pack")
	os.MkdirAll(work, 0o755)
	href := name + "-disk1.vmdk"
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(work, href), b, 0o644)
	desc := vmwareOVF(name, href, int64(len(b)), capacity)
	os.WriteFile(filepath.Join(work, name+".ovf"), []byte(desc), 0o644)
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	mf := fmt.Sprintf("SHA256(%s.ovf)= %s\nSHA256(%s)= %s\n", name, sum([]byte(desc)), href, sum(b))
	os.WriteFile(filepath.Join(work, name+".mf"), []byte(mf), 0o644)
	if corrupt {
		b[len(b)-600] ^= 0xff
		os.WriteFile(filepath.Join(work, href), b, 0o644)
	}
	ova := filepath.Join(dir, name+".ova")
	if out, err := exec.Command("tar", "-C", work, "--format=ustar", "-cf", ova, name+".ovf", name+".mf", href).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	return ova
}

// rootDisk is a small ext4 disk whose /sbin/init is the floor guest's init:
// booted from it, the guest prints the floor marker and powers off.
func rootDisk(t *testing.T, dir string) string {
	t.Helper()
	testenv.Command(t, "mke2fs")
	root := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	repo, _ := qemutest.RepoRoot()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(root, "sbin", "init"), "./qemu-test/floorinit")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building floorinit: %v: %s", err, out)
	}
	raw := filepath.Join(dir, "root.raw")
	if out, err := exec.Command("mke2fs", "-q", "-t", "ext4", "-d", root, raw, "24M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	return raw
}

func upload(t *testing.T, r *vmRig, local, rel string) {
	t.Helper()
	f, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, err := r.c.UploadFile(ctxFor(t, time.Minute), "ds", rel, f, fi.Size(), false); err != nil {
		t.Fatalf("upload %s: %v", rel, err)
	}
}

// TestImportExportOVA: an OVA made the way VMware makes one is uploaded
// and imported (its disk converted to qcow2, the unmappable listed), and
// the imported VM boots from its disk; exported again as an OVA (descriptor,
// manifest, streamOptimized disk), it re-imports and boots. A package whose
// disk does not match its manifest is refused, leaving nothing.
func TestImportExportOVA(t *testing.T) {
	t.Parallel() // see startVMs
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	modDir := runnertest.Modules(t, "../build")
	r := startVMs(t)
	if err := qemutest.InstallGuest(kernel, r.ds, func(dir string) (string, error) {
		return qemutest.BuildFloorWithModules(dir, modDir, "ahci", "sd_mod", "crc32c_generic", "ext4")
	}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 10*time.Minute)
	dir := t.TempDir()
	raw := rootDisk(t, dir)
	upload(t, r, makeOVA(t, dir, "appliance", raw, false), "ova/appliance.ova")

	importAndBoot := func(path, name string) api.VM {
		t.Helper()
		task, err := r.c.ImportVM(ctx, api.ImportVMRequest{Datastore: "ds", Path: path, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		task, err = r.c.WaitTask(ctx, task.ID, 100*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		if task.Result == nil || task.Result.VM == "" {
			t.Fatalf("import task %+v: no VM", task)
		}
		vm, err := r.c.GetVM(ctx, task.Result.VM)
		if err != nil {
			t.Fatal(err)
		}
		notes := strings.Join(task.Result.Notes, "\n")
		for _, want := range []string{"VmxNet3", "VM Network", "floppy drive"} {
			if name == "" && !strings.Contains(notes, want) {
				t.Errorf("import notes lack %q:\n%s", want, notes)
			}
		}
		s := vm.Spec
		if s.MemoryMiB != 256 || s.CPU.VCPUs() != 1 || len(s.Disks) != 1 || s.Disks[0].Format != api.FormatQcow2 || len(s.NICs) != 1 {
			t.Fatalf("imported spec %+v", s)
		}
		info, err := r.c.DiskInfo(ctx, "ds", s.Disks[0].Path)
		if err != nil || info.Format != "qcow2" || info.VirtualSizeBytes != 24<<20 {
			t.Fatalf("imported disk %+v, %v", info, err)
		}
		// Booted from its disk: the kernel directly, the root from the
		// imported disk (the guest has no boot loader of its own).
		s.Kernel = &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio",
			Cmdline: runnertest.FloorCmdline("root:/dev/sda:/sbin/init")}
		s.Serial = true
		if vm, err = r.c.UpdateVM(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.VMAction(ctx, s.ID, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		runnertest.WaitConsole(t, func() ([]byte, error) { return r.c.VMConsole(ctx, s.ID) }, qemutest.FloorMarker, 3*time.Minute)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			if vm, _ = r.c.GetVM(ctx, s.ID); vm.Runtime.State == api.VMStopped || time.Now().After(deadline) {
				break
			}
		}
		if vm.Runtime.State != api.VMStopped {
			t.Fatalf("the imported VM did not power itself off: %+v", vm.Runtime)
		}
		return vm
	}
	first := importAndBoot("ova/appliance.ova", "")
	if first.Spec.Name != "appliance" {
		t.Errorf("imported as %q", first.Spec.Name)
	}

	// Export, then import the export.
	task, err := r.c.ExportVM(ctx, first.Spec.ID, api.ExportVMRequest{Datastore: "ds", Path: "exports/appliance.ova"})
	if err != nil {
		t.Fatal(err)
	}
	if task, err = r.c.WaitTask(ctx, task.ID, 100*time.Millisecond, nil); err != nil || task.Result == nil || task.Result.Path != "exports/appliance.ova" {
		t.Fatalf("export: %+v, %v", task, err)
	}
	ova := download(t, r.c, "exports/appliance.ova")
	checkOVA(t, ova, []string{"appliance.ovf", "appliance.mf", "appliance-disk1.vmdk"})
	importAndBoot("exports/appliance.ova", "appliance-again")

	// A disk that does not match the manifest: refused, nothing left.
	upload(t, r, makeOVA(t, dir, "corrupt", raw, true), "ova/corrupt.ova")
	task, err = r.c.ImportVM(ctx, api.ImportVMRequest{Datastore: "ds", Path: "ova/corrupt.ova"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = r.c.WaitTask(ctx, task.ID, 100*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("import of a corrupt OVA: %v", err)
	}
	if _, err := r.c.GetVM(ctx, "corrupt"); err == nil {
		t.Error("the corrupt OVA made a VM")
	}
	if des, _ := os.ReadDir(filepath.Join(r.ds, "corrupt")); len(des) != 0 {
		t.Errorf("the refused import left %v", des)
	}
}

// checkOVA reads an OVA back: its members in order, each listed in the
// manifest with its SHA-256.
func checkOVA(t *testing.T, b []byte, want []string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	sums := map[string]string{}
	var names []string
	var manifest string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		s := sha256.Sum256(data)
		sums[h.Name] = hex.EncodeToString(s[:])
		if strings.HasSuffix(h.Name, ".mf") {
			manifest = string(data)
		}
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("OVA members %v, want %v", names, want)
	}
	for _, n := range want {
		if strings.HasSuffix(n, ".mf") {
			continue
		}
		if line := fmt.Sprintf("SHA256(%s)= %s", n, sums[n]); !strings.Contains(manifest, line) {
			t.Errorf("manifest lacks %q:\n%s", line, manifest)
		}
	}
}

// TestFetch fetches a disk image from an https server: with its
// certificate pinned and its checksum checked; a wrong checksum keeps
// nothing; an unpinned self-signed server is refused saying how to pin it;
// plain http is refused at the door.
func TestFetch(t *testing.T) {
	r := startVMs(t)
	ctx := ctxFor(t, 2*time.Minute)
	img := filepath.Join(t.TempDir(), "disk.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", img, "64M")
	body, _ := os.ReadFile(img)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	pinSum := sha256.Sum256(srv.TLS.Certificates[0].Certificate[0])
	pin := hex.EncodeToString(pinSum[:])
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])

	fetch := func(req api.FetchRequest) (api.Task, error) {
		task, err := r.c.Fetch(ctx, "ds", req)
		if err != nil {
			return task, err
		}
		return r.c.WaitTask(ctx, task.ID, 50*time.Millisecond, nil)
	}
	task, err := fetch(api.FetchRequest{URL: srv.URL + "/disk.qcow2", Path: "images/disk.qcow2", SHA256: good, TLSFingerprint: pin})
	if err != nil || task.Done != int64(len(body)) || task.Total != int64(len(body)) {
		t.Fatalf("fetch: %+v, %v", task, err)
	}
	if info, err := r.c.DiskInfo(ctx, "ds", "images/disk.qcow2"); err != nil || info.Format != "qcow2" || info.VirtualSizeBytes != 64<<20 {
		t.Fatalf("fetched image: %+v, %v", info, err)
	}
	_, err = fetch(api.FetchRequest{URL: srv.URL + "/disk.qcow2", Path: "images/bad.qcow2", SHA256: strings.Repeat("0", 64), TLSFingerprint: pin})
	if err == nil || !strings.Contains(err.Error(), "not kept") {
		t.Fatalf("wrong checksum: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.ds, "images/bad.qcow2")); !os.IsNotExist(err) {
		t.Errorf("a mismatching fetch left its file: %v", err)
	}
	_, err = fetch(api.FetchRequest{URL: srv.URL + "/disk.qcow2", Path: "images/unpinned.qcow2"})
	if err == nil || !strings.Contains(err.Error(), "tls_fingerprint") {
		t.Fatalf("unpinned self-signed server: %v", err)
	}
	_, err = r.c.Fetch(ctx, "ds", api.FetchRequest{URL: "http://example.org/x.iso", Path: "x.iso"})
	if e := apiErr(t, err, http.StatusUnprocessableEntity); e.Problem.Field != "url" {
		t.Errorf("http:// URL: %+v", e.Problem)
	}
}
