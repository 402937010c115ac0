package runnertest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/plinth/plinth/internal/testenv"
)

// Secure Boot test media: Debian's shim (signed by Microsoft's UEFI CA) and
// GRUB (signed by Debian, which shim trusts), fetched with apt-get download
// at test time into the build directory's cache and never committed. On a
// disk's EFI system partition as the removable-media path
// (EFI/BOOT/BOOTX64.EFI), OVMF with Microsoft's keys enrolled boots it to
// GRUB's prompt (SignedMarker); the same shim with its signature stripped
// is refused (RefusedMarker), and boots under OVMF without keys.
const (
	SignedMarker  = "grub>"
	RefusedMarker = "Access Denied"
)

// secureBootPackages are the Debian packages holding the signed binaries.
var secureBootPackages = map[string]string{
	"shim-signed":           "usr/lib/shim/shimx64.efi.signed",
	"grub-efi-amd64-signed": "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
}

// SecureBootDisks writes two raw disk images into dir, each a GPT disk
// with an EFI system partition: signed.raw boots Debian's signed shim and
// GRUB, unsigned.raw the same shim without its signature. cache is where
// the packages are downloaded to (and found again next time), e.g.
// build/cache/secureboot.
func SecureBootDisks(t testing.TB, cache, dir string) (signed, unsigned string) {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb", "sgdisk", "mkfs.vfat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unmet(t, "%s not installed (apt-get install gdisk dosfstools mtools; make deps does)", tool)
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "pkgs")
	for pkg := range secureBootPackages {
		debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		if len(debs) == 0 {
			cmd := exec.Command("apt-get", "download", "-q", pkg)
			cmd.Dir = cache
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("apt-get download %s: %v\n%s", pkg, err, out)
			}
			debs, _ = filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		}
		if len(debs) == 0 {
			t.Fatalf("no %s package in %s after apt-get download", pkg, cache)
		}
		if out, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
		}
	}
	shim := filepath.Join(root, secureBootPackages["shim-signed"])
	grub := filepath.Join(root, secureBootPackages["grub-efi-amd64-signed"])
	stripped := filepath.Join(dir, "shim-unsigned.efi")
	if err := StripSignature(shim, stripped); err != nil {
		t.Fatal(err)
	}
	signed, unsigned = filepath.Join(dir, "signed.raw"), filepath.Join(dir, "unsigned.raw")
	espDisk(t, signed, shim, grub)
	espDisk(t, unsigned, stripped, grub)
	return signed, unsigned
}

// espDisk makes a 40 MiB GPT disk whose EFI system partition (FAT16, at
// 1 MiB) holds boot as EFI/BOOT/BOOTX64.EFI and grub beside it.
func espDisk(t testing.TB, img, boot, grub string) {
	t.Helper()
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(40 << 20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	run("sgdisk", "-o", "-n", "1:2048:+32M", "-t", "1:ef00", img)
	run("mkfs.vfat", "-F", "16", "--mbr=n", "--offset=2048", img, "32768")
	fat := img + "@@1M"
	run("mmd", "-i", fat, "::EFI", "::EFI/BOOT")
	run("mcopy", "-i", fat, boot, "::EFI/BOOT/BOOTX64.EFI")
	run("mcopy", "-i", fat, grub, "::EFI/BOOT/grubx64.efi")
}

// StripSignature copies the PE32+ image src to dst without its
// Authenticode signature: the security directory emptied and the
// certificate table cut off the end.
func StripSignature(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if len(b) < 0x40 {
		return errors.New("not a PE image")
	}
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	opt := pe + 24 // "PE\0\0" and the COFF header
	if opt+152 > len(b) || string(b[pe:pe+4]) != "PE\x00\x00" || binary.LittleEndian.Uint16(b[opt:]) != 0x20b {
		return fmt.Errorf("%s: not a PE32+ image", src)
	}
	sec := opt + 112 + 4*8 // data directory 4: the certificate table
	off := int(binary.LittleEndian.Uint32(b[sec:]))
	size := int(binary.LittleEndian.Uint32(b[sec+4:]))
	if off == 0 || size == 0 || off+size > len(b) {
		return fmt.Errorf("%s: no signature to strip", src)
	}
	binary.LittleEndian.PutUint64(b[sec:], 0)
	return os.WriteFile(dst, b[:off], 0o644)
}
