package qemutest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// FloorConsoleCmdline is the kernel command line of the floor ISO: the
// console on the screen (which keeps what the BIOS and GRUB drew, so a VNC
// viewer sees a drawn screen) and, with the floor init answering it, on
// the serial port. The kernel is quiet and skips the crypto self-tests
// (NoSelfTests): in the appliance the ISO's VM runs nested, where every
// character written to the emulated UART or the VGA text screen is an exit
// to the appliance's KVM and QEMU (docs/PERFORMANCE.md, "Two costs every
// test paid").
const FloorConsoleCmdline = "console=tty0 console=ttyS0 quiet panic=-1 " + NoSelfTests + " plinthfloor=console"

// BuildFloorISO makes a small BIOS-bootable ISO in dir, as a user would
// upload one: GRUB (El Torito, its configuration built in) boots kernel
// with the floor initramfs in console mode (FloorConsoleCmdline). It answers
// the ISO's path. It needs grub-mkimage (grub-pc-bin) and xorriso.
func BuildFloorISO(kernel, dir string) (string, error) {
	root := filepath.Join(dir, "iso-root")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		return "", err
	}
	if err := InstallGuest(kernel, root, BuildFloor); err != nil {
		return "", err
	}
	cfg := filepath.Join(dir, "grub.cfg")
	conf := "serial --unit=0 --speed=115200\nterminal_output console serial\n" +
		"echo 'Plinth floor ISO'\nlinux /vmlinuz " + FloorConsoleCmdline + "\ninitrd /init.cpio\nboot\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return "", err
	}
	mk := exec.Command("grub-mkimage", "-O", "i386-pc-eltorito", "-p", "/boot/grub", "-c", cfg,
		"-o", filepath.Join(root, "boot", "grub", "eltorito.img"), "biosdisk", "iso9660", "linux", "normal", "echo", "serial", "terminal")
	if out, err := mk.CombinedOutput(); err != nil {
		return "", fmt.Errorf("grub-mkimage: %v: %s", err, out)
	}
	iso := filepath.Join(dir, "floor.iso")
	x := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-V", "FLOOR",
		"-b", "boot/grub/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-r", root)
	if out, err := x.CombinedOutput(); err != nil {
		return "", fmt.Errorf("xorriso: %v: %s", err, out)
	}
	return iso, nil
}
