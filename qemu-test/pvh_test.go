package qemutest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The image's kernel (Debian's, XZ with the x86 BCJ filter) unpacks to an
// ELF with the PVH note, once: the second call finds the first's file.
func TestPVHKernelUnpacksTheImageKernel(t *testing.T) {
	kernel, err := FindKernel()
	if err != nil {
		NoKernel(t, "%v", err)
	}
	k, err := PVHKernel(kernel)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(elf.ELFMAG)) {
		t.Fatalf("%s does not start with ELF's magic: % x", k, b[:4])
	}
	if err := checkPVH(b); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(k)
	time.Sleep(10 * time.Millisecond)
	again, err := PVHKernel(kernel)
	if err != nil || again != k {
		t.Fatalf("second call: %q, %v; want %q", again, err, k)
	}
	if fi2, _ := os.Stat(k); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("the second call wrote %s again", k)
	}
	// An ELF with the note is booted as it is.
	if same, err := PVHKernel(k); err != nil || same != k {
		t.Errorf("PVHKernel(its own ELF) = %q, %v", same, err)
	}
}

func TestPVHKernelRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bz := func(version uint16, setup byte, off, n uint32, payload []byte) []byte {
		b := make([]byte, 0x1000)
		b[0x1f1] = setup
		copy(b[0x202:], "HdrS")
		binary.LittleEndian.PutUint16(b[0x206:], version)
		binary.LittleEndian.PutUint32(b[0x248:], off)
		binary.LittleEndian.PutUint32(b[0x24c:], n)
		return append(b, payload...)
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"not a kernel", []byte("just some bytes, no setup header at all"), "not a bzImage"},
		{"an old boot protocol", bz(0x206, 7, 0, 0, nil), "boot protocol 0x206"},
		{"a payload past the end", bz(0x20f, 7, 0, 1<<20, nil), "outside the"},
		{"a compression it does not unpack", bz(0x20f, 7, 0, 8, []byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4}), "does not unpack"},
		{"an ELF without the note", minimalELF(t), "no XEN_ELFNOTE_PHYS32_ENTRY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PVHKernel(write(tc.name, tc.img))
			if !errors.Is(err, ErrNoPVH) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("PVHKernel: %v; want ErrNoPVH saying %q", err, tc.want)
			}
		})
	}
	if _, err := PVHKernel(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrNoPVH) {
		t.Errorf("a missing file: %v; want an error other than ErrNoPVH", err)
	}
}

func TestHasXenNote(t *testing.T) {
	note := func(name string, typ uint32, desc []byte) []byte {
		var b []byte
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = binary.LittleEndian.AppendUint32(b, typ)
		b = append(b, name...)
		b = append(b, 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	le := binary.LittleEndian
	withEntry := append(note("Linux", 18, []byte{1, 2, 3}), note("Xen", 18, []byte{0, 0, 0, 1, 0, 0, 0, 0})...)
	for _, tc := range []struct {
		name  string
		notes []byte
		want  bool
	}{
		{"the Xen PVH entry after another note", withEntry, true},
		{"another Xen note only", note("Xen", 6, []byte("linux\x00")), false},
		{"type 18 of another owner", note("Linux", 18, []byte{1}), false},
		{"truncated", withEntry[:len(withEntry)-6], false},
		{"a name size past the end", append(le.AppendUint32(nil, 1<<30), make([]byte, 8)...), false},
		{"empty", nil, false},
	} {
		if got := hasXenNote(tc.notes, le, xenNotePhys32Entry); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// minimalELF is a valid 64-bit ELF header with no program headers.
func minimalELF(t *testing.T) []byte {
	t.Helper()
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1, Ehsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
