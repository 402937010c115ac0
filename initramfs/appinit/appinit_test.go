package appinit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/netconf"

	"github.com/plinth/plinth/internal/testenv"
)

func TestParseCmdline(t *testing.T) {
	c := ParseCmdline(`console=ttyS0 quiet plinth.hostname=esx1 uroot.uinitargs="-v -x" plinth.ip=10.0.0.5/24` + "\n")
	if c["console"] != "ttyS0" || c["plinth.hostname"] != "esx1" || c["uroot.uinitargs"] != "-v -x" {
		t.Errorf("got %v", c)
	}
	if _, ok := c["quiet"]; !ok {
		t.Error("bare word lost")
	}
}

func TestParseNetConfig(t *testing.T) {
	n, err := ParseNetConfig(Cmdline{"plinth.ip": "192.0.2.10/24", "plinth.gw": "192.0.2.1", "plinth.dns": "192.0.2.53,9.9.9.9", "plinth.nic": "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Address.String() != "192.0.2.10/24" || n.Gateway.String() != "192.0.2.1" || len(n.DNS) != 2 || n.NIC != "eth1" {
		t.Errorf("got %+v", n)
	}
	if n, err := ParseNetConfig(Cmdline{}); err != nil || n.Address.IsValid() {
		t.Errorf("empty command line: %+v %v, want DHCP", n, err)
	}
	for _, bad := range []struct {
		c    Cmdline
		want string
	}{
		{Cmdline{"plinth.ip": "192.0.2.10"}, "plinth.ip"},
		{Cmdline{"plinth.ip": "banana/24"}, "plinth.ip"},
		{Cmdline{"plinth.ip": "192.0.2.10/24", "plinth.gw": "198.51.100.1"}, "outside the subnet"},
		{Cmdline{"plinth.dns": "1.1.1.1,x"}, `"x" is not an IP`},
	} {
		if _, err := ParseNetConfig(bad.c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: err = %v, want it to mention %q", bad.c, err, bad.want)
		}
	}
}

func TestFindStateByLabel(t *testing.T) {
	mkfs, err := exec.LookPath("mke2fs")
	if err != nil {
		testenv.Unmet(t, "mke2fs not installed (apt-get install e2fsprogs)")
	}
	dir := t.TempDir()
	sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	for _, n := range []string{"vda", "vdb", "vdb1"} {
		if err := os.MkdirAll(filepath.Join(sys, "class", "block", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	// vda: zeros; vdb: ext4 with another label; vdb1: STATE.
	if err := os.WriteFile(filepath.Join(dev, "vda"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, label := range map[string]string{"vdb": "OTHER", "vdb1": StateLabel} {
		img := filepath.Join(dev, name)
		if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-L", label, img, "4M").CombinedOutput(); err != nil {
			t.Fatalf("mke2fs: %v\n%s", err, out)
		}
	}
	got, err := findByLabel(sys, dev, StateLabel)
	if err != nil || got != filepath.Join(dev, "vdb1") {
		t.Fatalf("findByLabel = %q, %v; want vdb1", got, err)
	}
	if _, err := findByLabel(sys, dev, "NOPE"); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("missing label: err = %v", err)
	}
}

func TestKernelTimeline(t *testing.T) {
	kmsg := "6,1,0,-;Linux version 6.1.0\n" +
		"5,300,812345,-;Trying to unpack rootfs image as initramfs...\n" +
		"6,301,1512000,-;Freeing initrd memory: 30000K\n" +
		"6,400,1900999,-;Run /init as init process\n" +
		" SUBSYSTEM=acpi\n"
	tl := KernelTimeline(strings.NewReader(kmsg))
	if tl["unpack_start"] != 812 || tl["unpack_end"] != 1512 || tl["userspace"] != 1900 {
		t.Errorf("timeline = %v", tl)
	}
}

func TestPowerPress(t *testing.T) {
	ev := make([]byte, inputEventSize)
	binary.LittleEndian.PutUint16(ev[16:], evKey)
	binary.LittleEndian.PutUint16(ev[18:], keyPower)
	binary.LittleEndian.PutUint32(ev[20:], 1)
	if !isPowerPress(ev) {
		t.Error("power key down not recognised")
	}
	binary.LittleEndian.PutUint32(ev[20:], 0)
	if isPowerPress(ev) {
		t.Error("key release taken for a press")
	}
}

func TestValidHostname(t *testing.T) {
	for h, ok := range map[string]bool{"esx-01": true, "a.b.c": true, "-bad": false, "sp ace": false, "": false, "x..y": false} {
		if validHostname(h) != ok {
			t.Errorf("validHostname(%q) = %v", h, !ok)
		}
	}
}

func TestDatastoreName(t *testing.T) {
	for label, want := range map[string]string{"PLINTH-DS1": "ds1", "PLINTH-DSfast": "dsfast", "PLINTH-DS": "", "PLINTH-STATE": "", "PLINTH-DS/x": ""} {
		if got := datastoreName(label); got != want {
			t.Errorf("datastoreName(%q) = %q, want %q", label, got, want)
		}
	}
}

func TestNetworkConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	logf := func(string, ...any) {}
	if c, src, err := networkConfig(dir, Cmdline{"plinth.nic": "eth1"}, logf); err != nil || c.Mode != netconf.ModeDHCP || c.NIC != "eth1" || src != "default" {
		t.Errorf("nothing saved: %+v %s %v", c, src, err)
	}
	saved := netconf.Config{Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.10/24"), Hostname: "saved"}
	if err := netconf.Save(dir, saved); err != nil {
		t.Fatal(err)
	}
	if c, _, err := networkConfig(dir, Cmdline{}, logf); err != nil || c.Address != saved.Address || c.Hostname != "saved" {
		t.Errorf("saved: %+v %v", c, err)
	}
	// plinth.ip= on the command line overrides what is saved.
	if c, src, err := networkConfig(dir, Cmdline{"plinth.ip": "10.0.2.15/24"}, logf); err != nil || c.Address.String() != "10.0.2.15/24" || src != "kernel command line" {
		t.Errorf("command line: %+v %s %v", c, src, err)
	}
}

func TestBootLogMutes(t *testing.T) {
	var console strings.Builder
	b := newBootLog(&console)
	fmt.Fprintln(b, "early")
	path := filepath.Join(t.TempDir(), "boot.log")
	b.openFile(path)
	b.setMuted(true)
	fmt.Fprintln(b, "quiet")
	b.setMuted(false)
	fmt.Fprintln(b, "loud")
	if console.String() != "early\nloud\n" {
		t.Errorf("console got %q", console.String())
	}
	if got, _ := os.ReadFile(path); string(got) != "early\nquiet\nloud\n" {
		t.Errorf("boot log got %q", got)
	}
}

// TestBlockScanSeesDisksAsTheyCome: STATE is looked for while disks
// appear; each device is read once, one in sysfs without its /dev node yet
// is read when the node is there, and a later disk is found by a later
// scan.
func TestBlockScanSeesDisksAsTheyCome(t *testing.T) {
	mkfs := testenv.Command(t, "mke2fs")
	dir := t.TempDir()
	sys, dev := filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	os.MkdirAll(dev, 0o755)
	appear := func(name, label string, node bool) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(sys, "class", "block", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if !node {
			return
		}
		img := filepath.Join(dev, name)
		if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-L", label, img, "4M").CombinedOutput(); err != nil {
			t.Fatalf("mke2fs: %v\n%s", err, out)
		}
	}
	b := newBlockScan(sys, dev)
	appear("sda", "PLINTH-DS1", true)
	appear("vda", StateLabel, false) // in sysfs, no node yet
	b.scan()
	if _, ok := b.labels[StateLabel]; ok || b.labels["PLINTH-DS1"] == "" || b.ext != 1 {
		t.Fatalf("first scan: %v (ext %d)", b.labels, b.ext)
	}
	appear("vda", StateLabel, true)
	b.scan()
	if b.labels[StateLabel] != filepath.Join(dev, "vda") || b.ext != 2 {
		t.Fatalf("second scan: %v (ext %d)", b.labels, b.ext)
	}
	// Read once: a device already read is not opened again.
	os.Remove(filepath.Join(dev, "sda"))
	b.scan()
	if b.ext != 2 || b.labels["PLINTH-DS1"] == "" {
		t.Fatalf("third scan: %v (ext %d)", b.labels, b.ext)
	}
}

func TestNeededForReady(t *testing.T) {
	for path, want := range map[string]bool{
		"kernel/drivers/ata/ahci.ko":                   true,
		"kernel/drivers/block/virtio_blk.ko":           true,
		"kernel/drivers/net/virtio_net.ko":             true,
		"kernel/drivers/net/ethernet/intel/igb/igb.ko": true,
		"kernel/drivers/virtio/virtio_pci.ko":          true,
		"kernel/drivers/usb/storage/usb-storage.ko":    true,
		"kernel/arch/x86/kvm/kvm-amd.ko":               false, // Run loads it after the storage drivers
		"kernel/drivers/input/evdev.ko":                true,
		"kernel/drivers/acpi/button.ko":                true,
		"kernel/drivers/char/hw_random/virtio-rng.ko":  false,
		"kernel/drivers/firmware/qemu_fw_cfg.ko":       false,
		"kernel/arch/x86/crypto/crc32c-intel.ko":       false,
		"kernel/drivers/hwmon/k10temp.ko":              false,
		"kernel/drivers/hid/usbhid/usbhid.ko":          false,
		"":                                             false,
	} {
		if got := neededForReady(path); got != want {
			t.Errorf("neededForReady(%q) = %v, want %v", path, got, want)
		}
	}
}

// The command line's switches for vmkernel: KSM is on unless plinth.ksm
// turns it off; -accel is auto unless plinth.accel names kvm or tcg. A
// value that is none of those keeps the default and says so on the console.
func TestCmdlineSwitches(t *testing.T) {
	ksm := func(p *initProc) string { return p.ksmMode() }
	acc := func(p *initProc) string { return p.accelMode() }
	for _, c := range []struct {
		key     string
		get     func(*initProc) string
		cmdline Cmdline
		want    string
		says    bool
	}{
		{"plinth.ksm", ksm, Cmdline{}, "on", false},
		{"plinth.ksm", ksm, Cmdline{"plinth.ksm": "on"}, "on", false},
		{"plinth.ksm", ksm, Cmdline{"plinth.ksm": "off"}, "off", false},
		{"plinth.ksm", ksm, Cmdline{"plinth.ksm": "maybe"}, "on", true},
		{"plinth.accel", acc, Cmdline{}, "auto", false},
		{"plinth.accel", acc, Cmdline{"plinth.accel": "tcg"}, "tcg", false},
		{"plinth.accel", acc, Cmdline{"plinth.accel": "kvm"}, "kvm", false},
		{"plinth.accel", acc, Cmdline{"plinth.accel": "auto"}, "auto", false},
		{"plinth.accel", acc, Cmdline{"plinth.accel": "xen"}, "auto", true},
	} {
		var console bytes.Buffer
		p := &initProc{cfg: Config{Console: &console, Cmdline: c.cmdline}}
		if got := c.get(p); got != c.want {
			t.Errorf("%s with %v = %q, want %q", c.key, c.cmdline, got, c.want)
		}
		if said := strings.Contains(console.String(), c.key+"="); said != c.says {
			t.Errorf("%s with %v: console %q", c.key, c.cmdline, console.String())
		}
	}
}
