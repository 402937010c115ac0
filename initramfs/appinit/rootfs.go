package appinit

import (
	"errors"
	"fmt"
	"os"

	"github.com/u-root/u-root/pkg/libinit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rootfs is what a Linux userland needs mounted, in order. Plinth's init is
// PID 1 and sets it up itself, with u-root's libinit types: the kernel
// leaves it an initramfs with nothing mounted. cgroup v2 is mounted at once
// and no v1 hierarchy ever is (u-root's init mounted eleven, which this init
// then had to undo, flipping static keys in the kernel's text).
var rootfs = []libinit.Creator{
	libinit.Dir{Name: "/dev", Mode: 0o755},
	libinit.Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Opts: "mode=0755"},
	libinit.Dir{Name: "/proc", Mode: 0o555},
	libinit.Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	libinit.Dir{Name: "/sys", Mode: 0o555},
	libinit.Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	libinit.Mount{Source: "cgroup2", Target: "/sys/fs/cgroup", FSType: "cgroup2", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Opts: "nsdelegate"},
	libinit.Dir{Name: "/dev/pts", Mode: 0o755},
	libinit.Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Opts: "newinstance,ptmxmode=0666,gid=5,mode=0620"},
	libinit.Symlink{NewPath: "/dev/ptmx", Target: "pts/ptmx"},
	libinit.Dir{Name: "/dev/shm", Mode: 0o1777},
	libinit.Mount{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV},
	libinit.Symlink{NewPath: "/dev/fd", Target: "/proc/self/fd"},
	libinit.Dir{Name: "/run", Mode: 0o755},
	libinit.Mount{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Opts: "mode=0755"},
	libinit.Dir{Name: "/tmp", Mode: 0o1777},
	libinit.Mount{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV},
	libinit.Dir{Name: "/etc", Mode: 0o755},
	libinit.Dir{Name: "/root", Mode: 0o700},
}

// pid1Env is the environment every program the init starts inherits.
var pid1Env = map[string]string{
	"PATH": "/bbin:/bin:/usr/bin:/usr/sbin:/sbin",
	"HOME": "/root",
	"USER": "root",
}

// setUpRoot mounts rootfs, sets the environment and brings the loopback
// interface up (the init asks the API on 127.0.0.1 whether it answers). A
// mount that is already there (the init restarted by hand) is no error.
func setUpRoot() error {
	old := unix.Umask(0) // the modes above, as written
	defer unix.Umask(old)
	var errs []error
	for _, c := range rootfs {
		if err := c.Create(); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
		}
	}
	for k, v := range pid1Env {
		os.Setenv(k, v)
	}
	if lo, err := netlink.LinkByName("lo"); err != nil {
		errs = append(errs, fmt.Errorf("loopback: %w", err))
	} else if err := netlink.LinkSetUp(lo); err != nil {
		errs = append(errs, fmt.Errorf("loopback up: %w", err))
	}
	return errors.Join(errs...)
}
