// Command plinth-capture boots a QEMU machine with the appliance's kernel and
// modules and a capture init (qemu-test/captureinit), and writes the sysfs
// and procfs files board's inventory reads into a fixture directory, as
// plinth-hw -capture would have inside the machine. board/capture-qemu.sh
// runs it for the fixtures in board/testdata.
//
//	plinth-capture -preset q35 -o board/testdata/q35
//	plinth-capture -machine pc -o DIR -- -device e1000,netdev=n0 -netdev user,id=n0
//
// It needs build/vmlinuz and build/modules from `make image`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(os.Args, os.Stderr); err != nil {
		log.Fatal(err)
	}
}

// A preset is a machine type and its devices. Disks are sparse raw images
// made in a temporary directory: disk:ID:SIZE_MIB in args stands for the
// "-drive" that backs the device whose drive=ID.
type preset struct {
	machine string
	args    []string
}

var presets = map[string]preset{
	// Several NICs and disks: the appliance's end-to-end hardware plus a
	// SATA disk on the q35's own AHCI controller.
	"q35": {"q35", []string{
		"-uuid", "5c0a2b7e-35a1-4e0b-9f31-000000000035", "-smbios", "type=1,serial=Q35-0001",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:35:01",
		"-netdev", "user,id=n1", "-device", "virtio-net-pci,netdev=n1,mac=52:54:00:00:35:02",
		"-netdev", "user,id=n2", "-device", "e1000e,netdev=n2,mac=52:54:00:00:35:03",
		"disk:vd:1024", "-device", "virtio-blk-pci,drive=vd,serial=Q35-VIRTIO",
		"disk:nv:2048", "-device", "nvme,drive=nv,serial=Q35-NVME",
		"disk:sata:3072", "-device", "ide-hd,drive=sata,bus=ide.0,serial=Q35-SATA",
		"disk:usb:512", "-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=usb,removable=on,serial=Q35-USB",
		"-device", "virtio-rng-pci",
	}},
	// q35 with an emulated IOMMU (VT-d; its interrupt remapping needs the
	// split irqchip) for the passthrough code: every device in an IOMMU
	// group; a spare e1000e beside the virtio NIC; USB devices on xhci.
	// The second -append (QEMU keeps the last) turns the IOMMU on.
	"q35-iommu": {"q35,kernel-irqchip=split", []string{
		"-uuid", "5c0a2b7e-35a1-4e0b-9f31-000000000018", "-smbios", "type=1,serial=Q35-IOMMU-0001",
		"-device", "intel-iommu,intremap=on,caching-mode=on",
		"-append", "console=ttyS0 panic=-1 quiet intel_iommu=on iommu=pt",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:18:01",
		"-netdev", "user,id=n1", "-device", "e1000e,netdev=n1,mac=52:54:00:00:18:02",
		"disk:nv:1024", "-device", "nvme,drive=nv,serial=IOMMU-NVME",
		"disk:usb:256", "-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=usb,removable=on,serial=IOMMU-USB",
		"-device", "usb-kbd,bus=xhci.0", "-device", "usb-tablet,bus=xhci.0",
		"-device", "virtio-rng-pci",
	}},
	// The classic i440FX PC with an e1000 and a SATA disk (on an added AHCI
	// controller: the pc machine's own disk controller is PIIX IDE).
	"pc": {"pc", []string{
		"-uuid", "5c0a2b7e-35a1-4e0b-9f31-000000000440", "-smbios", "type=1,serial=PC-0001",
		"-netdev", "user,id=n0", "-device", "e1000,netdev=n0,mac=52:54:00:00:44:01",
		"-device", "ahci,id=ahci0",
		"disk:sata:2048", "-device", "ide-hd,drive=sata,bus=ahci0.0,serial=PC-SATA",
	}},
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	name := fs.String("preset", "", "a machine of the fixtures: "+strings.Join(presetNames(), ", "))
	machine := fs.String("machine", "q35", "QEMU machine type (without -preset; QEMU arguments follow --)")
	out := fs.String("o", "", "fixture `directory` to write (must not exist)")
	verbose := fs.Bool("v", false, "copy the guest's console to stderr")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	p := preset{machine: *machine, args: fs.Args()}
	if *name != "" {
		var ok bool
		if p, ok = presets[*name]; !ok {
			return fmt.Errorf("no preset %q (have %s)", *name, strings.Join(presetNames(), ", "))
		}
	}
	if *out == "" {
		return fmt.Errorf("-o DIR is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists; remove it first", *out)
	}
	kernel, _, err := qemutest.ImagePaths()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "plinth-capture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	devices, err := disks(tmp, p.args)
	if err != nil {
		return err
	}
	initrd, err := qemutest.BuildCapture(tmp, qemutest.ImageModules(kernel))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var logw io.Writer
	if *verbose {
		logw = stderr
	}
	c, err := qemutest.RunCapture(ctx, qemutest.CaptureArgs(p.machine, kernel, initrd, devices), logw)
	if err != nil {
		return err
	}
	if err := c.Unpack(*out, "sys", "proc"); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "plinth-capture: wrote %s (the guest loaded: %s)\n", *out, strings.Join(c.Modules, " "))
	return nil
}

// disks replaces each "disk:ID:MIB" in args with a -drive backed by a new
// sparse raw image of that size in dir.
func disks(dir string, args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		id, size, ok := strings.Cut(strings.TrimPrefix(a, "disk:"), ":")
		if !strings.HasPrefix(a, "disk:") || !ok {
			out = append(out, a)
			continue
		}
		var mib int64
		if _, err := fmt.Sscan(size, &mib); err != nil || mib <= 0 {
			return nil, fmt.Errorf("bad disk %q: want disk:ID:SIZE_MIB", a)
		}
		img := filepath.Join(dir, id+".img")
		f, err := os.Create(img)
		if err != nil {
			return nil, err
		}
		err = f.Truncate(mib << 20)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, "-drive", "if=none,format=raw,id="+id+",file="+img)
	}
	return out, nil
}

func presetNames() []string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
