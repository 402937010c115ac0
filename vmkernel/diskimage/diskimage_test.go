package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// qemuImg runs qemu-img in dir (it must be installed: make deps does).
func qemuImg(t *testing.T, dir string, args ...string) {
	t.Helper()
	// LUKS creation times PBKDF2 by the thread's CPU time, which the kernel
	// counts in ticks: a round that took less than one reads as none, and
	// qemu-img gives up ("Unable to get accurate CPU usage"). Tried again.
	for try := 1; ; try++ {
		cmd := exec.Command("qemu-img", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if try == 3 || !strings.Contains(string(out), "Unable to get accurate CPU usage") {
			t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func inspectFile(t *testing.T, path string) Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Inspect(f, fi.Size())
	if err != nil {
		t.Fatalf("Inspect(%s): %v", filepath.Base(path), err)
	}
	return h
}

// TestImagesMadeByQEMU inspects images qemu-img itself makes: each format
// named from its content, each reference QEMU would follow reported.
func TestImagesMadeByQEMU(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "data.bin") // never inside dir
	cases := []struct {
		name   string
		make   [][]string
		format string
		size   int64
		refs   []Ref
	}{
		{"plain.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "plain.qcow2", "64M"}}, Qcow2, 64 << 20, nil},
		{"abs.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", "abs.qcow2", "1M"}},
			Qcow2, 1 << 20, []Ref{{RefBacking, "/etc/shadow", "raw"}}},
		{"rel.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-u", "-b", "../../etc/passwd", "-F", "raw", "rel.qcow2", "1M"}},
			Qcow2, 1 << 20, []Ref{{RefBacking, "../../etc/passwd", "raw"}}},
		{"json.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-u", "-b", `json:{"driver":"file","filename":"/etc/shadow"}`, "-F", "raw", "json.qcow2", "1M"}},
			Qcow2, 1 << 20, []Ref{{RefBacking, `json:{"driver":"file","filename":"/etc/shadow"}`, "raw"}}},
		{"datafile.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-o", "data_file=" + outside + ",data_file_raw=on", "datafile.qcow2", "1M"}},
			Qcow2, 1 << 20, []Ref{{RefDataFile, outside, ""}}},
		{"v2.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "/etc/hostname", "-F", "raw", "v2.qcow2", "2M"}},
			Qcow2, 2 << 20, []Ref{{RefBacking, "/etc/hostname", "raw"}}},
		{"big-cluster.qcow2", [][]string{{"create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", "big-cluster.qcow2", "10G"}}, Qcow2, 10 << 30, nil},
		{"backed.qed", [][]string{{"create", "-q", "-f", "qed", "-u", "-b", "/etc/passwd", "-F", "raw", "backed.qed", "1M"}},
			QED, 1 << 20, []Ref{{RefBacking, "/etc/passwd", ""}}},
		{"sparse.vmdk", [][]string{{"create", "-q", "-f", "vmdk", "sparse.vmdk", "8M"}}, VMDK, 8 << 20, nil},
		{"child.vmdk", [][]string{{"create", "-q", "-f", "vmdk", "parent.vmdk", "8M"}, {"create", "-q", "-f", "vmdk", "-b", "parent.vmdk", "-F", "vmdk", "child.vmdk"}},
			VMDK, 8 << 20, []Ref{{RefParent, "parent.vmdk", ""}}},
		{"stream.vmdk", [][]string{{"create", "-q", "-f", "raw", "src.raw", "4M"}, {"convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "src.raw", "stream.vmdk"}},
			VMDK, 4 << 20, nil},
		{"disk.vhdx", [][]string{{"create", "-q", "-f", "vhdx", "disk.vhdx", "16M"}}, VHDX, 16 << 20, nil},
		{"dynamic.vhd", [][]string{{"create", "-q", "-f", "vpc", "dynamic.vhd", "4M"}}, VPC, -1, nil},
		{"fixed.vhd", [][]string{{"create", "-q", "-f", "vpc", "-o", "subformat=fixed", "fixed.vhd", "4M"}}, VPC, -1, nil},
		{"disk.vdi", [][]string{{"create", "-q", "-f", "vdi", "disk.vdi", "4M"}}, VDI, 4 << 20, nil},
		{"disk.luks", [][]string{{"create", "-q", "-f", "luks", "--object", "secret,id=s0,data=x", "-o", "key-secret=s0,iter-time=10", "disk.luks", "1M"}}, LUKS, -1, nil},
		{"disk.raw", [][]string{{"create", "-q", "-f", "raw", "disk.raw", "3M"}}, Raw, 3 << 20, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range c.make {
				qemuImg(t, dir, args...)
			}
			h := inspectFile(t, filepath.Join(dir, c.name))
			if h.Format != c.format {
				t.Errorf("format %q, want %q", h.Format, c.format)
			}
			if c.size >= 0 && h.VirtualSize != c.size {
				t.Errorf("virtual size %d, want %d", h.VirtualSize, c.size)
			}
			if !slices.Equal(h.Refs, c.refs) {
				t.Errorf("refs %+v, want %+v", h.Refs, c.refs)
			}
			if (c.format == LUKS) != h.Encrypted {
				t.Errorf("encrypted %v", h.Encrypted)
			}
		})
	}
}

// TestProbedBackingFormat: a backing file without a format (QEMU would
// probe it) is reported with an empty format.
func TestProbedBackingFormat(t *testing.T) {
	dir := t.TempDir()
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "p.qcow2", "1M")
	p := filepath.Join(dir, "p.qcow2")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the backing format extension into the end marker.
	magic := binary.BigEndian.AppendUint32(nil, extBackingFormat)
	i := bytes.Index(b[:65536], magic)
	if i < 0 {
		t.Fatal("no backing format extension")
	}
	copy(b[i:], make([]byte, 8))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h := inspectFile(t, p)
	if want := []Ref{{RefBacking, "/etc/shadow", ""}}; !slices.Equal(h.Refs, want) {
		t.Fatalf("refs %+v, want %+v", h.Refs, want)
	}
}

// TestVMDKDescriptor: a text descriptor whose extents name host files.
func TestVMDKDescriptor(t *testing.T) {
	desc := `# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "/etc/shadow" 0
RDONLY 4096 FLAT "../../root/.ssh/id_rsa" 0
RW 100 ZERO
`
	p := filepath.Join(t.TempDir(), "evil.vmdk")
	os.WriteFile(p, []byte(desc), 0o600)
	h := inspectFile(t, p)
	want := []Ref{{RefExtent, "/etc/shadow", ""}, {RefExtent, "../../root/.ssh/id_rsa", ""}}
	if h.Format != VMDK || !slices.Equal(h.Refs, want) || h.VirtualSize != (2048+4096+100)*512 {
		t.Fatalf("got %+v, want vmdk with %+v", h, want)
	}
	// QEMU would also open this one (it reads any non-sparse file named
	// vmdk as a descriptor); content-wise it is vmdk only with the header.
	h = inspectFile(t, writeTemp(t, "RW 2048 FLAT \"/etc/shadow\" 0\n"))
	if h.Format != Raw {
		t.Fatalf("a headerless text file is %s, want raw", h.Format)
	}
}

func writeTemp(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRawWithQcow2Header: content decides at entry, the record decides
// afterwards: a raw disk a guest wrote a qcow2 header into stays raw.
func TestRawWithQcow2Header(t *testing.T) {
	dir := t.TempDir()
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", "evil.qcow2", "1M")
	p := filepath.Join(dir, "evil.qcow2")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	h, err := InspectAs(f, fi.Size(), Raw)
	if err != nil || h.Format != Raw || len(h.Refs) != 0 {
		t.Fatalf("InspectAs raw = %+v, %v; want raw without refs", h, err)
	}
	if _, err := InspectAs(f, fi.Size(), VMDK); !errors.Is(err, ErrNotFormat) {
		t.Fatalf("InspectAs vmdk = %v, want ErrNotFormat", err)
	}
	if h, err := InspectAs(f, fi.Size(), Qcow2); err != nil || len(h.Refs) != 1 {
		t.Fatalf("InspectAs qcow2 = %+v, %v", h, err)
	}
}

func TestISO(t *testing.T) {
	b := make([]byte, 0x9000)
	copy(b[0x8001:], "CD001")
	h := inspectFile(t, writeTemp(t, string(b)))
	if h.Format != ISO {
		t.Fatalf("format %s, want iso", h.Format)
	}
}

// TestMalformed: headers whose offsets point outside the file are errors,
// never panics.
func TestMalformed(t *testing.T) {
	hdr := make([]byte, 104)
	copy(hdr, "QFI\xfb")
	binary.BigEndian.PutUint32(hdr[4:], 3)
	binary.BigEndian.PutUint64(hdr[8:], 4096) // backing name beyond the end
	binary.BigEndian.PutUint32(hdr[16:], 10)
	binary.BigEndian.PutUint32(hdr[20:], 16)
	binary.BigEndian.PutUint32(hdr[100:], 104)
	_, err := Inspect(bytes.NewReader(hdr), int64(len(hdr)))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Inspect = %v, want ErrMalformed", err)
	}
	binary.BigEndian.PutUint32(hdr[20:], 40) // cluster_bits out of range
	if _, err := Inspect(bytes.NewReader(hdr), int64(len(hdr))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Inspect = %v, want ErrMalformed", err)
	}
}

// FuzzInspect: whatever the bytes, Inspect returns (no panic, no huge
// allocation), and a format it names is one InspectAs agrees with.
func FuzzInspect(f *testing.F) {
	dir := f.TempDir()
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", "a", "1M"},
		{"create", "-q", "-f", "qed", "-u", "-b", "/x", "-F", "raw", "b", "1M"},
		{"create", "-q", "-f", "vmdk", "c", "1M"},
		{"create", "-q", "-f", "vpc", "d", "1M"},
		{"create", "-q", "-f", "vdi", "e", "1M"},
	} {
		cmd := exec.Command("qemu-img", args...)
		cmd.Dir = dir
		if err := cmd.Run(); err == nil {
			b, _ := os.ReadFile(filepath.Join(dir, args[len(args)-2]))
			f.Add(b[:min(len(b), 8192)])
		}
	}
	f.Add([]byte("# Disk DescriptorFile\nparentFileNameHint=\"/etc/x\"\nRW 1 FLAT \"/etc/y\" 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Inspect(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		h2, err := InspectAs(bytes.NewReader(b), int64(len(b)), h.Format)
		if err != nil {
			t.Fatalf("Inspect says %s, InspectAs(%s) fails: %v", h.Format, h.Format, err)
		}
		if !slices.Equal(h.Refs, h2.Refs) {
			t.Fatalf("refs differ: %v vs %v", h.Refs, h2.Refs)
		}
	})
}
