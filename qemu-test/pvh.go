package qemutest

// A bzImage under TCG spends seconds in its own decompressor before the
// kernel's clock starts: Debian's kernel is XZ-compressed, and on this
// machine the floor guest reached its marker 10.3 s after QEMU started as a
// bzImage and 4.9 s after when QEMU booted the same kernel, uncompressed,
// through its PVH entry (docs/PERFORMANCE.md, "The test guests boot through
// the kernel's PVH entry"). On a real server the decompressor runs natively
// in a fraction of a second, and the boot media the installer, ISO, USB,
// PXE and upgrade tests make still boot the bzImage through their own
// loaders; the tests that hand QEMU a kernel (the appliance with -kernel,
// and the floor guests of VMs) give it the uncompressed ELF, which Debian's
// kernels can be booted from (CONFIG_PVH: the Xen note
// XEN_ELFNOTE_PHYS32_ENTRY, which QEMU's -kernel recognises; SeaBIOS's PVH
// option ROM then jumps into it with the command line and initrd).

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/plinth/plinth/atomicfile"
)

// ErrNoPVH says a kernel cannot be booted through a PVH entry (not a
// bzImage, a compression this package does not unpack, or a kernel built
// without CONFIG_PVH); such a kernel boots as it is.
var ErrNoPVH = errors.New("qemutest: no PVH entry")

// PVHDir is where PVHKernel keeps the kernels it unpacked (relative to the
// repository root; `make clean` removes it).
const PVHDir = "build/pvh"

// xenNotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point.
const xenNotePhys32Entry = 18

// PVHKernel returns a kernel QEMU boots through its PVH entry, the same
// kernel as the bzImage at path, uncompressed: path itself if it already is
// such an ELF, else a copy unpacked once per bzImage (keyed by its SHA-256)
// under PVHDir. It fails with ErrNoPVH for a kernel that has no PVH entry.
func PVHKernel(path string) (string, error) {
	img, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("qemutest: kernel: %w", err)
	}
	if bytes.HasPrefix(img, []byte(elf.ELFMAG)) {
		if err := checkPVH(img); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return path, nil
	}
	sum := sha256.Sum256(img)
	dir := filepath.Join(os.TempDir(), "plinth-pvh")
	if root, err := RepoRoot(); err == nil {
		dir = filepath.Join(root, PVHDir)
	}
	out := filepath.Join(dir, "vmlinux-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	payload, err := bzImagePayload(img)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	vmlinux, err := unpackPayload(payload)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := checkPVH(vmlinux); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("qemutest: %w", err)
	}
	// Written whole and renamed into place: test binaries run side by
	// side, and each may unpack the same kernel at its start.
	if err := atomicfile.Write(out, vmlinux, 0o644); err != nil {
		return "", fmt.Errorf("qemutest: unpacked kernel: %w", err)
	}
	return out, nil
}

// bzImagePayload returns a bzImage's compressed kernel (Linux's x86 boot
// protocol, 2.08 and later: payload_offset and payload_length in the setup
// header, counted from the protected-mode code after the setup sectors).
func bzImagePayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("%w: not a bzImage (no HdrS setup header)", ErrNoPVH)
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("%w: boot protocol %#x has no payload fields (2.08 and later do)", ErrNoPVH, v)
	}
	setup := int(img[0x1f1])
	if setup == 0 {
		setup = 4
	}
	start := (setup + 1) * 512
	off := int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if start+off < start || start+off+n < start+off || start+off+n > len(img) {
		return nil, fmt.Errorf("%w: payload (%d bytes at %d) outside the %d-byte file", ErrNoPVH, n, start+off, len(img))
	}
	return img[start+off : start+off+n], nil
}

// unpackPayload decompresses a bzImage's payload: gzip here, XZ with
// Debian's xz (the kernel's XZ streams use the x86 BCJ filter, which no Go
// package at hand reads). The kernel's build appends the uncompressed size
// after the stream; both stop at the stream's end.
func unpackPayload(p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream")
		cmd.Stdin = bytes.NewReader(p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("unpacking the XZ kernel: %v: %s (install Debian's xz-utils)", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, nil
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		r, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("unpacking the gzip kernel: %w", err)
		}
		r.Multistream(false)
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("unpacking the gzip kernel: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: payload compressed as % x..., which this package does not unpack (gzip and XZ it does)", ErrNoPVH, p[:min(len(p), 6)])
}

// checkPVH says whether an ELF kernel has the PVH entry note.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("%w: unpacked kernel is not ELF: %v", ErrNoPVH, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("%w: reading the kernel's notes: %v", ErrNoPVH, err)
		}
		if hasXenNote(b, f.ByteOrder, xenNotePhys32Entry) {
			return nil
		}
	}
	return fmt.Errorf("%w: the kernel has no XEN_ELFNOTE_PHYS32_ENTRY note (built without CONFIG_PVH)", ErrNoPVH)
}

// hasXenNote walks ELF notes (namesz, descsz, type, name and desc padded
// to 4 bytes) for a "Xen" note of type typ.
func hasXenNote(b []byte, bo binary.ByteOrder, typ uint32) bool {
	pad := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, t := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if namesz > uint32(len(b)) || pad(namesz) > len(b) {
			return false
		}
		name := b[:namesz]
		b = b[pad(namesz):]
		if descsz > uint32(len(b)) {
			return false
		}
		b = b[min(pad(descsz), len(b)):]
		if t == typ && string(bytes.TrimRight(name, "\x00")) == "Xen" {
			return true
		}
	}
	return false
}
