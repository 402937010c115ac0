package qemutest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The Debian guest: a Debian 12 root made with debootstrap (minbase plus
// cloud-init, qemu-guest-agent and openssh-server), as an ext4 image, for
// tests that need a real guest OS with real cloud-init and a real guest
// agent. It boots with the appliance's kernel and the floor initramfs in
// root mode (DebianCmdline), which hands over to DebianInit: that runs
// cloud-init's init stages, prints what cloud-init did as DebianLine lines,
// starts qemu-ga on its virtio-serial port, prints DebianMarker and waits.
// An ACPI power button does nothing in it (no acpid); the agent's
// guest-shutdown powers it off.
const (
	// DebianMarker is printed once the guest is up with its agent.
	DebianMarker = "PLINTH-DEBIAN-UP"
	// DebianLinePrefix starts the lines the guest prints of itself:
	// "PLINTH-GUEST hostname=NAME", "PLINTH-GUEST key USER KEY".
	DebianLinePrefix = "PLINTH-GUEST "
	// DebianCmdline boots it (with the floor initramfs of DebianModules).
	DebianCmdline = "console=ttyS0 quiet panic=-1 plinthfloor=root:/dev/vda:/usr/sbin/plinth-guest"
	debianSuite   = "bookworm"
	debianMirror  = "http://deb.debian.org/debian"
)

// DebianModules are the modules the floor initramfs loads before handing
// over: the root disk, its file system (and the crc32c its checksums need,
// which modules.dep does not name), the cloud-init seed's file system,
// the agent's channel, the NIC.
var DebianModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "isofs", "nls_utf8", "virtio_console", "virtio_net"}

// debianPackages are added to debootstrap's minbase.
// (python3-cffi-backend by name: debootstrap does not resolve the virtual
// package python3-cryptography depends on.)
var debianPackages = []string{"cloud-init", "python3-cffi-backend", "qemu-guest-agent", "openssh-server", "iproute2"}

// debianInit is the guest's /sbin/plinth-guest: PID 1 after the floor
// initramfs.
const debianInit = `#!/bin/sh
# plinth-guest: the Debian test guest's init (qemu-test/debianguest.go).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/sshd
mount -o remount,rw /
hostname localhost
# cloud-init's init stages, as its systemd units would run them.
cloud-init init --local >/run/ci-local.log 2>&1 || cat /run/ci-local.log
cloud-init init >/run/ci-init.log 2>&1 || cat /run/ci-init.log
echo "PLINTH-GUEST hostname=$(hostname)"
for home in /root /home/*; do
	[ -f "$home/.ssh/authorized_keys" ] || continue
	while read -r key; do
		[ -n "$key" ] && echo "PLINTH-GUEST key $(basename "$home") $key"
	done <"$home/.ssh/authorized_keys"
done
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/$(basename "$p")
done
if [ -n "$port" ]; then
	qemu-ga -m virtio-serial -p "$port" -t /run -f /run/qemu-ga.pid -d
else
	echo "plinth-guest: no guest agent port"
fi
echo "PLINTH-DEBIAN-UP"
while :; do sleep 3600; done
`

// debianShutdown replaces /sbin/shutdown and poweroff: there is no systemd
// to ask; qemu-ga's guest-shutdown runs "shutdown -P +0 ...".
const debianShutdown = `#!/bin/sh
sync
echo o >/proc/sysrq-trigger
`

// debianCloudCfg keeps cloud-init to what the tests look at, and fast
// under emulation: no network configuration (no renderer in a systemd-less
// root), one host key type.
const debianCloudCfg = `datasource_list: [NoCloud, None]
network: {config: disabled}
ssh_genkeytypes: [ed25519]
cloud_init_modules: [seed_random, set_hostname, update_hostname, users-groups, ssh]
`

// DebianGuest returns the Debian guest's ext4 image, building it under
// cacheDir (build/guests) the first time: debootstrap fetches from Debian's
// archive, the only thing a test downloads, once. Builds of the same
// recipe by concurrent tests wait for each other (a lock file).
func DebianGuest(cacheDir string) (string, error) {
	sum := sha256.Sum256([]byte(strings.Join(append([]string{debianSuite, debianInit, debianShutdown, debianCloudCfg}, debianPackages...), "\x00")))
	name := "debian-" + hex.EncodeToString(sum[:6])
	img := filepath.Join(cacheDir, name+".img")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	for _, tool := range []string{"debootstrap", "mke2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("the Debian guest needs %s (make deps installs it)", tool)
		}
	}
	root := filepath.Join(cacheDir, name+".root")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, tail(string(out), 3000))
		}
		return nil
	}
	if err := run("debootstrap", "--variant=minbase", "--include="+strings.Join(debianPackages, ","),
		debianSuite, root, debianMirror); err != nil {
		return "", fmt.Errorf("the Debian guest: %w", err)
	}
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"usr/sbin/plinth-guest": {debianInit, 0o755},
		// qemu-ga's guest-shutdown runs /sbin/shutdown: there is no systemd
		// to ask.
		"usr/sbin/shutdown":                   {debianShutdown, 0o755},
		"usr/sbin/poweroff":                   {debianShutdown, 0o755},
		"etc/cloud/cloud.cfg.d/99-plinth.cfg": {debianCloudCfg, 0o644},
	}
	for p, f := range files {
		full := filepath.Join(root, p)
		os.Remove(full) // a symlink (systemctl's) is replaced, not written through
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(f.data), f.mode); err != nil {
			return "", err
		}
	}
	// apt's cache is not needed in the image.
	os.RemoveAll(filepath.Join(root, "var/cache/apt/archives"))
	tmp := img + ".tmp"
	os.Remove(tmp)
	if err := run("mke2fs", "-q", "-t", "ext4", "-L", "debian-guest", "-d", root, tmp, "1G"); err != nil {
		return "", fmt.Errorf("the Debian guest: %w", err)
	}
	if err := os.Rename(tmp, img); err != nil {
		return "", err
	}
	return img, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
