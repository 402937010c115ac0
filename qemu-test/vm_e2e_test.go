package qemutest

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/inventory"
)

// TestApplianceAutostartsVM boots the appliance from a STATE disk whose
// inventory holds one VM flagged for autostart, and a datastore disk
// (PLINTH-DS1) holding that VM's kernel and initramfs (the floor guest, told
// to stay up). Inside the appliance, booted under TCG with -cpu max, kvm_amd
// gives vmkernel a nested /dev/kvm, so this is where the KVM path runs: the
// VM must start by itself, print its marker on its serial console (read
// through the API), be shut down with the host, and leave its console log in
// STATE.
func TestApplianceAutostartsVM(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()

	// The datastore: the guest's kernel and initramfs.
	ds := filepath.Join(dir, "ds-seed")
	if err := os.MkdirAll(ds, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := InstallGuest(o.Kernel, ds, BuildFloor); err != nil {
		t.Fatal(err)
	}

	// STATE: the inventory, written by vmkernel's own inventory package.
	state := filepath.Join(dir, "state-seed")
	inv, err := inventory.Open(filepath.Join(state, "vmkernel", "vms"))
	if err != nil {
		t.Fatal(err)
	}
	spec := api.VMSpec{
		Name: "inner", MemoryMiB: 256, Serial: true,
		Kernel:    &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: "console=ttyS0 quiet panic=-1 " + NoSelfTests + " " + FloorHangCmdline},
		Autostart: api.Autostart{Enabled: true},
		// On a virtual switch defined in STATE: vmkernel makes the bridge at
		// start (the kernel loads the bridge module through Plinth's modprobe
		// helper) and a tap for the VM.
		NICs: []api.NIC{{Model: api.NICVirtio, Switch: "lan"}},
		// Enforced through the appliance's cgroup v2 hierarchy: a VM asking
		// for a CPU weight or cap does not start where the cpu controller
		// is missing from it.
		Resources: api.Resources{MemoryLimitMiB: 512, CPUWeight: 200, CPULimitPercent: 150},
	}
	if err := inv.Create(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "vmkernel", "switches"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "vmkernel", "switches", "switches.json"), []byte(`{"version":1,"switches":[{"name":"lan"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stateImg, dsImg := filepath.Join(dir, "state.img"), filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-STATE", state, stateImg, "64M")
	mkfs(t, "PLINTH-DS1", ds, dsImg, "160M")

	o.CPUs, o.MemoryMiB = 2, 2048
	o.Cmdline = "plinth.vm_shutdown_timeout=5"
	o.ExtraArgs = []string{
		"-drive", "file=" + stateImg + ",if=virtio,format=raw",
		"-drive", "file=" + dsImg + ",if=virtio,format=raw",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c := newPinnedClient()
	firstLogin(ctx, t, vm, c)
	var host api.Host
	c.getJSON(t, vm.APIURL()+"/api/v1/host", &host)
	t.Logf("appliance acceleration: %s (%s)", host.Acceleration.Mode, host.Acceleration.Reason)

	// The VM starts by itself...
	var got api.VM
	vmURL := vm.APIURL() + "/api/v1/vms/" + url.PathEscape(spec.Name)
	for deadline := time.Now().Add(120 * time.Second); ; {
		c.getJSON(t, vmURL, &got)
		if got.Runtime.State == api.VMRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM not running 120 s after ready: %+v\nvmkernel's log:\n%s", got.Runtime, hostLogTail(t, c, vm, api.LogVMKernel, 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// QEMU runs confined: as the VM's own user, sandboxed (vmkernel
	// checked /proc/PID/status once it started, and would not let it run
	// otherwise), with its tap handed over on the switch.
	if got.Runtime.User < api.VMUIDBase || !got.Runtime.Sandboxed {
		t.Errorf("VM's QEMU runs as uid %d, sandboxed %v; want its own user (>= %d), sandboxed", got.Runtime.User, got.Runtime.Sandboxed, api.VMUIDBase)
	}
	if want := "/sys/fs/cgroup/plinth.vms/vm-" + got.Spec.ID; got.Runtime.Cgroup != want {
		t.Errorf("VM runs in cgroup %q, want %q%s", got.Runtime.Cgroup, want, formatTail(vm.Tail(TailLines)))
	}
	// ...and its guest reaches its marker on the serial console.
	t0 := time.Now()
	var console string
	for deadline := time.Now().Add(NestedMarkerWait); !strings.Contains(console, FloorMarker); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s on the VM's console after %v; console:\n%s%s", FloorMarker, NestedMarkerWait, console, formatTail(vm.Tail(TailLines)))
		}
		time.Sleep(time.Second)
		console = c.getText(t, vmURL+"/console")
	}
	t.Logf("inner guest marker %s after the VM was seen running (acceleration %s)", time.Since(t0).Round(time.Second), host.Acceleration.Mode)

	// The host's power button takes the VM down first, then the host.
	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(120 * time.Second); err != nil || code != 0 {
		t.Fatalf("power down: exit %d, %v%s", code, err, formatTail(vm.Tail(TailLines)))
	}
	if con := strings.Join(vm.Console(), "\n"); !strings.Contains(con, "shutting down VM inner") {
		t.Errorf("the init did not shut the VM down before the host%s", formatTail(vm.Tail(TailLines)))
	}
	out, err := exec.Command("debugfs", "-R", "cat /vmkernel/vm-state/"+got.Spec.ID+"/console.log", stateImg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), FloorMarker) {
		t.Errorf("STATE lacks the VM's console log with the marker: %v\n%s", err, out)
	}
	keepState(t, stateImg) // scanned for secrets after the suite
}

func mkfs(t *testing.T, label, seed, img, size string) {
	t.Helper()
	mkfs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Fatal("mke2fs is missing: apt-get install e2fsprogs (make deps does)")
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-L", label, "-d", seed, img, size).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs %s: %v\n%s", label, err, out)
	}
}

// floorDatastore makes a datastore's seed folder in dir holding the floor
// guest for nested VMs: the appliance's kernel (vmlinuz) and the floor's
// init (init.cpio) with the image's kernel modules mods. The test may add
// files, then makes the image with mkfs.
func floorDatastore(t *testing.T, kernel, dir string, mods ...string) string {
	t.Helper()
	seed := filepath.Join(dir, "ds-seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	modDir := filepath.Join(ImageModules(kernel), kernelRelease(t, kernel))
	if err := InstallGuest(kernel, seed, func(d string) (string, error) {
		return BuildFloorWithModules(d, modDir, mods...)
	}); err != nil {
		t.Fatal(err)
	}
	return seed
}

// hostLogTail is the last n lines of one of the appliance's logs, read
// through the API (for failure messages: after the ready line the console
// belongs to the DCUI, and STATE's file system is not settled while the
// appliance runs).
func hostLogTail(t *testing.T, c *pinnedClient, vm *VM, name string, n int) string {
	t.Helper()
	text := c.getText(t, vm.APIURL()+api.MgmtdPrefix+api.HostLogsPath+"/"+name)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
