package qemutest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/installer"
)

// The boot media tests boot build/plinth-VERSION.img and .iso (make e2e
// builds them with installer/mkimage.sh --iso) through the firmware, as a
// server boots a stick, instead of QEMU's -kernel.

// mediaPath returns build/plinth-VERSION.EXT.
func mediaPath(t *testing.T, ext string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := os.ReadFile(filepath.Join(root, "build", "version"))
	if err != nil {
		t.Fatalf("build/version: %v (run `make image`)", err)
	}
	p := filepath.Join(root, "build", "plinth-"+strings.TrimSpace(string(v))+"."+ext)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("PLINTH_E2E=1 but %v: run `make iso` (installer/mkimage.sh --iso) first", err)
	}
	return p
}

// mediaOptions boots nothing yet: no kernel, the console kept in build/.
func mediaOptions(t *testing.T, firmware string) Options {
	t.Helper()
	o := e2eOptions(t)
	o.Kernel, o.Initrd = "", ""
	o.Firmware = firmware
	// Subtests' names hold a slash; the log is one file in build/.
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	o.ConsoleLog = filepath.Join(root, "build", "e2e-"+strings.ReplaceAll(t.Name(), "/", "-")+"."+firmware+".console.log")
	o.CPUs, o.MemoryMiB = 2, 2048
	if firmware == FirmwareUEFI {
		v, err := NewUEFIVars(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		o.UEFIVars = v
	}
	return o
}

// stickCopy copies the USB image (sparse) for one VM to write on.
func stickCopy(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "stick.img")
	if out, err := exec.Command("cp", "--sparse=always", mediaPath(t, "img"), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the image: %v: %s", err, out)
	}
	return dst
}

// outsideState hashes every byte of a disk image but the STATE partition's.
func outsideState(t *testing.T, img string) [32]byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tab, err := installer.ReadTable(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tab.Find(installer.LabelState)
	if !ok {
		t.Fatalf("%s has no %s partition", img, installer.LabelState)
	}
	h := sha256.New()
	io.Copy(h, io.NewSectionReader(f, 0, p.Offset()))
	io.Copy(h, io.NewSectionReader(f, p.Offset()+p.Size(), st.Size()-p.Offset()-p.Size()))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func bootToReady(t *testing.T, ctx context.Context, o Options, wantMode string) (*VM, map[string]string) {
	t.Helper()
	vm, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	ready, err := vm.WaitReady(300 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready %.1f s after QEMU started (%s)", time.Since(vm.Started).Seconds(), o.Firmware)
	if ready["mode"] != wantMode {
		t.Errorf("mode=%s, want %s", ready["mode"], wantMode)
	}
	if !strings.Contains(strings.Join(vm.Console(), "\n"), "console=ttyS0") {
		t.Errorf("the kernel command line on the console lacks console=ttyS0")
	}
	return vm, ready
}

func powerOff(t *testing.T, vm *VM) {
	t.Helper()
	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(120 * time.Second); err != nil || code != 0 {
		t.Fatalf("power down: exit %d, %v%s", code, err, formatTail(vm.Tail(TailLines)))
	}
}

// TestApplianceUSBImage boots the stick image on UEFI (systemd-boot) and on
// BIOS (syslinux) to the ready line, installed mode (STATE is on the
// stick), and checks that the boot wrote nothing outside STATE.
func TestApplianceUSBImage(t *testing.T) {
	for _, fw := range []string{FirmwareUEFI, FirmwareBIOS} {
		t.Run(fw, func(t *testing.T) {
			o := mediaOptions(t, fw)
			stick := stickCopy(t)
			before := outsideState(t, stick)
			o.Disks = []Disk{{Path: stick, Serial: "PLINTH-STICK"}}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			vm, _ := bootToReady(t, ctx, o, "installed")
			powerOff(t, vm)
			if outsideState(t, stick) != before {
				t.Errorf("the boot changed the image outside the STATE partition")
			}
		})
	}
}

// TestApplianceISO boots the hybrid ISO as a CD and as a stick (a disk),
// on UEFI (El Torito EFI / the GPT partition: systemd-boot in
// boot/efi.img) and on BIOS (GRUB's El Torito image / boot_hybrid.img MBR,
// which loads the kernel from efi.img): live mode every time.
func TestApplianceISO(t *testing.T) {
	for _, tc := range []struct {
		name, fw string
		stick    bool
	}{
		{"cd-uefi", FirmwareUEFI, false},
		{"cd-bios", FirmwareBIOS, false},
		{"stick-uefi", FirmwareUEFI, true},
		{"stick-bios", FirmwareBIOS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := mediaOptions(t, tc.fw)
			if tc.stick {
				o.Disks = []Disk{{Path: mediaPath(t, "iso")}}
				o.ExtraArgs = append(o.ExtraArgs, "-snapshot") // the stick is not written
			} else {
				o.CDROM, o.BootCDROM = mediaPath(t, "iso"), true
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			vm, _ := bootToReady(t, ctx, o, "live")
			powerOff(t, vm)
		})
	}
}

func (c *pinnedClient) sendJSON(t *testing.T, method, url string, in any, want int) []byte {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, url, resp.Status, want, out)
	}
	return out
}

// blankDisk makes a sparse raw disk of size bytes.
func blankDisk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "target.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

var installDone = regexp.MustCompile(`PLINTH-INSTALL-(DONE|FAILED)`)

// installUnattended installs Plinth from the stick to a new blank 4 GiB
// disk (serial TARGET0) with an answer file through fw_cfg (the e2e
// password, host name, static 10.0.2.15/24) and returns the disk once the
// installer has powered the host off.
func installUnattended(t *testing.T, ctx context.Context, hostname string) string {
	t.Helper()
	o := mediaOptions(t, FirmwareUEFI)
	o.ConsoleLog = strings.Replace(o.ConsoleLog, ".uefi.", ".1-install.", 1)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(e2ePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	answer := filepath.Join(dir, "answer.cfg")
	if err := os.WriteFile(answer, []byte(`# e2e answer file
disk.serial = TARGET0
root_password_hash = `+string(hash)+`
hostname = `+hostname+`
network = static
address = 10.0.2.15/24
gateway = 10.0.2.2
dns = 10.0.2.3
ntp = 10.0.2.2
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stick := stickCopy(t)
	target := blankDisk(t, 4<<30)
	o.Disks = []Disk{{Path: stick, Serial: "PLINTH-STICK"}, {Path: target, Serial: "TARGET0"}}
	o.FWCfg = []FWCfgFile{{Name: installer.FWCfgName, File: answer}}
	vm, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	line, err := vm.Expect(installDone, 420*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "PLINTH-INSTALL-DONE") {
		t.Fatalf("install failed: %s%s", line, formatTail(vm.Tail(TailLines)))
	}
	t.Logf("%s (%.1f s after QEMU started)", line, time.Since(vm.Started).Seconds())
	if code, err := vm.Wait(120 * time.Second); err != nil || code != 0 {
		t.Fatalf("after the install the host did not power off: exit %d, %v%s", code, err, formatTail(vm.Tail(TailLines)))
	}
	return target
}

// TestApplianceInstallUnattended: the stick, a blank disk and an answer
// file through fw_cfg; the install runs and powers off; the disk alone
// then boots (BIOS, then UEFI) with the answer's password, host name and
// static address, and a VM made on it keeps its disk on the DATASTORE
// across a reboot.
func TestApplianceInstallUnattended(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	target := installUnattended(t, ctx, "plinth-installed")

	// The stick removed: the disk alone, on BIOS.
	o2 := mediaOptions(t, FirmwareBIOS)
	o2.ConsoleLog = strings.Replace(o2.ConsoleLog, ".bios.", ".2-installed-bios.", 1)
	o2.Disks = []Disk{{Path: target, Serial: "TARGET0"}}
	vm2, ready := bootToReady(t, ctx, o2, "installed")
	if ready["hostname"] != "plinth-installed" || ready["addr"] != "10.0.2.15/24" {
		t.Errorf("ready line hostname=%s addr=%s, want plinth-installed 10.0.2.15/24", ready["hostname"], ready["addr"])
	}
	if !strings.Contains(strings.Join(vm2.Console(), "\n"), "static") {
		t.Errorf("no static network on the console%s", formatTail(vm2.Tail(TailLines)))
	}
	c := newPinnedClient()
	c.login(t, vm2.APIURL(), e2ePassword) // 201 with the answer file's password
	var host api.Host
	c.getJSON(t, vm2.APIURL()+"/api/v1/host", &host)
	if host.Hostname != "plinth-installed" {
		t.Errorf("API host name %q, want plinth-installed", host.Hostname)
	}
	var dss []api.Datastore
	c.getJSON(t, vm2.APIURL()+"/api/v1/datastores", &dss)
	if len(dss) != 1 || dss[0].Name != "ds1" {
		t.Fatalf("datastores %+v, want ds1 (the DATASTORE partition)", dss)
	}
	c.sendJSON(t, http.MethodPost, vm2.APIURL()+"/api/v1/datastores/ds1/disks", api.CreateDiskRequest{Path: "web1/disk0.qcow2", SizeBytes: 64 << 20}, http.StatusCreated)
	c.sendJSON(t, http.MethodPost, vm2.APIURL()+"/api/v1/vms", api.VMSpec{
		Name: "web1", CPU: api.CPU{Sockets: 1, Cores: 1, Threads: 1}, MemoryMiB: 128,
		Disks: []api.Disk{{Datastore: "ds1", Path: "web1/disk0.qcow2"}},
	}, http.StatusCreated)
	powerOff(t, vm2)

	// Again, on UEFI: the VM and its disk are still there.
	o3 := mediaOptions(t, FirmwareUEFI)
	o3.ConsoleLog = strings.Replace(o3.ConsoleLog, ".uefi.", ".3-installed-uefi.", 1)
	o3.Disks = o2.Disks
	vm3, _ := bootToReady(t, ctx, o3, "installed")
	c3 := newPinnedClient()
	c3.login(t, vm3.APIURL(), e2ePassword)
	var got api.VM
	c3.getJSON(t, vm3.APIURL()+"/api/v1/vms/web1", &got)
	if len(got.Spec.Disks) != 1 || got.Spec.Disks[0].Datastore != "ds1" {
		t.Errorf("VM after reboot: %+v", got.Spec)
	}
	ls := c3.getText(t, vm3.APIURL()+"/api/v1/datastores/ds1/files?path=web1")
	if !strings.Contains(ls, "disk0.qcow2") {
		t.Errorf("ds1:web1 after reboot lacks disk0.qcow2: %s", ls)
	}
	powerOff(t, vm3)
	keepState(t, target) // scanned for secrets after the suite
}

// TestApplianceInstallRefuses: answer files that must stop the install
// before anything is written: an unknown key (named with its line), a
// selector that matches only the boot medium, and a clear-text password in
// an answer file found on the stick's ESP (plinth/answer.cfg).
func TestApplianceInstallRefuses(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte(e2ePassword), bcrypt.MinCost)
	for _, tc := range []struct {
		name, answer, want string
		onMedium           bool // on the stick's ESP, not through fw_cfg
	}{
		{"unknown-key", "disk.serial = TARGET0\nroot_password_hash = " + string(hash) + "\ncolour = blue\n", "answer file line 3 (colour): unknown key", false},
		{"boot-medium", "disk.serial = PLINTH-STICK\nroot_password_hash = " + string(hash) + "\n", "boot medium", false},
		{"clear-password-on-stick", "\n# the stick's own answer file\nroot_password = Secret-pass-1\n", "answer file line 3 (root_password): a clear-text password is refused", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := mediaOptions(t, FirmwareBIOS)
			answer := filepath.Join(t.TempDir(), "answer.cfg")
			os.WriteFile(answer, []byte(tc.answer), 0o644)
			stick := stickCopy(t)
			if tc.onMedium {
				// mtools writes into the ESP at 1 MiB, no mounting.
				if out, err := exec.Command("mcopy", "-i", stick+"@@1M", answer, "::"+installer.MediaAnswerFile).CombinedOutput(); err != nil {
					t.Fatalf("mcopy the answer file onto the stick: %v: %s", err, out)
				}
			}
			before := outsideState(t, stick)
			target := blankDisk(t, 4<<30)
			o.Disks = []Disk{{Path: stick, Serial: "PLINTH-STICK"}, {Path: target, Serial: "TARGET0"}}
			if !tc.onMedium {
				o.FWCfg = []FWCfgFile{{Name: installer.FWCfgName, File: answer}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			vm, err := Start(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			line, err := vm.Expect(installDone, 300*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(line, "PLINTH-INSTALL-FAILED") || !strings.Contains(line, tc.want) {
				t.Fatalf("got %q, want PLINTH-INSTALL-FAILED with %q", line, tc.want)
			}
			// The boot goes on, live on the stick's STATE, to the ready line.
			if _, err := vm.WaitReady(240 * time.Second); err != nil {
				t.Fatal(err)
			}
			powerOff(t, vm)
			if n := allocated(t, target); n != 0 {
				t.Errorf("the blank disk has %d bytes allocated after a refused install", n)
			}
			if outsideState(t, stick) != before {
				t.Errorf("the refused install changed the stick outside STATE")
			}
		})
	}
}

// allocated is how many bytes of a sparse file are allocated.
func allocated(t *testing.T, p string) int64 {
	out, err := exec.Command("du", "--block-size=1", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	return n
}
