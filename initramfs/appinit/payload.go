package appinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// PayloadImage is the squashfs image holding QEMU, its libraries and the guest
// firmware; the init mounts it read-only on /usr (see initramfs/build.sh).
const PayloadImage = "/plinth/payload.sqfs"

// ModulesImage is the squashfs image of the kernel modules, mounted on
// /lib/modules/RELEASE; EarlyModules holds, as plain files, the two the
// init needs to mount it (loop.ko, squashfs.ko).
const (
	ModulesImage = "/plinth/modules.sqfs"
	EarlyModules = "/plinth/early"
)

// mountModules loads loop and squashfs from EarlyModules and mounts
// ModulesImage on dir. A kernel that has them built in, or loaded, is fine.
func mountModules(dir string) (string, error) {
	for _, m := range []string{"loop", "squashfs"} {
		f, err := os.Open(filepath.Join(EarlyModules, m+".ko"))
		if err != nil {
			return "", fmt.Errorf("early module: %w", err)
		}
		err = kmodule.FileInit(f, "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("load early module %s: %w", m, err)
		}
	}
	return mountSquashfs(ModulesImage, dir)
}

// mountPayload mounts the payload image on target.
func mountPayload(image, target string) (string, error) { return mountSquashfs(image, target) }

// mountSquashfs attaches a squashfs image to a free loop device and mounts
// it read-only on target.
func mountSquashfs(image, target string) (string, error) {
	img, err := os.Open(image)
	if err != nil {
		return "", fmt.Errorf("payload image: %w", err)
	}
	defer img.Close()
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open /dev/loop-control (is the loop module loaded?): %w", err)
	}
	n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
	unix.Close(ctl)
	if err != nil {
		return "", fmt.Errorf("find a free loop device: %w", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	lfd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(lfd)
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:], filepath.Base(image))
	if err := unix.IoctlLoopConfigure(lfd, &cfg); err != nil {
		return "", fmt.Errorf("attach %s to %s: %w", image, dev, err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(dev, target, "squashfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return "", fmt.Errorf("mount %s (%s) on %s: %w", dev, image, target, err)
	}
	return dev, nil
}

// checkPayload says which of the payload's entry points are missing.
func checkPayload(root string) error {
	var missing []string
	for _, f := range []string{"bin/qemu-system-x86_64", "bin/qemu-img", "share/seabios/bios-256k.bin", "share/OVMF/OVMF_CODE_4M.secboot.fd"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("payload on %s lacks %s", root, strings.Join(missing, ", "))
	}
	return nil
}
