package cloudinit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// File is one file of an ISO image.
type File struct {
	Name string
	Data []byte
}

const sector = 2048

// WriteISO writes an ISO 9660 image holding files in its root directory,
// with a Joliet tree (so Linux sees the names as given: "user-data", not
// "USER_DAT.;1") and the volume label label (upper-cased in the primary
// volume descriptor, as given in Joliet's). It is the small writer
// cloud-init's NoCloud seed needs: one directory, a few small files.
func WriteISO(w io.Writer, label string, files []File, when time.Time) error {
	if len(label) > 16 || label == "" {
		return fmt.Errorf("iso: label %q: 1 to 16 characters", label)
	}
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name == "" || len(f.Name) > 64 || strings.ContainsAny(f.Name, "/;\x00") {
			return fmt.Errorf("iso: file name %q", f.Name)
		}
		if seen[isoName(f.Name)] {
			return fmt.Errorf("iso: two files are %s in the primary tree", isoName(f.Name))
		}
		seen[isoName(f.Name)] = true
	}
	// Layout: system area (16), PVD, SVD, terminator, four path tables,
	// the two root directories, then the files.
	const (
		pvdLBA, svdLBA, termLBA = 16, 17, 18
		lPath, mPath            = 19, 20
		jlPath, jmPath          = 21, 22
		rootLBA, jrootLBA       = 23, 24
		firstFile               = 25
	)
	lba := make([]uint32, len(files))
	next := uint32(firstFile)
	for i, f := range files {
		lba[i] = next
		next += uint32((len(f.Data) + sector - 1) / sector)
		if len(f.Data) == 0 {
			next++ // an empty file still gets its own (empty) extent
		}
	}
	total := next
	root := dirRecords(rootLBA, files, lba, isoName, when)
	jroot := dirRecords(jrootLBA, files, lba, jolietName, when)
	if len(root) > sector || len(jroot) > sector {
		return fmt.Errorf("iso: %d files do not fit one directory sector", len(files))
	}

	img := make([]byte, int(total)*sector)
	put := func(l uint32, b []byte) { copy(img[int(l)*sector:], b) }
	put(pvdLBA, volumeDescriptor(1, strings.ToUpper(label), total, lPath, mPath, rootLBA, when, false))
	put(svdLBA, volumeDescriptor(2, label, total, jlPath, jmPath, jrootLBA, when, true))
	put(termLBA, append([]byte{255}, "CD001\x01"...))
	put(lPath, pathTable(rootLBA, binary.LittleEndian))
	put(mPath, pathTable(rootLBA, binary.BigEndian))
	put(jlPath, pathTable(jrootLBA, binary.LittleEndian))
	put(jmPath, pathTable(jrootLBA, binary.BigEndian))
	put(rootLBA, root)
	put(jrootLBA, jroot)
	for i, f := range files {
		put(lba[i], f.Data)
	}
	_, err := w.Write(img)
	return err
}

// isoName is a file's name in the primary tree: ISO 9660 level 1 (8.3,
// upper case, d-characters), with the version.
func isoName(name string) string {
	base, ext, _ := strings.Cut(name, ".")
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, c := range strings.ToUpper(s) {
			if b.Len() == n {
				break
			}
			if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				b.WriteRune(c)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	return clean(base, 8) + "." + clean(ext, 3) + ";1"
}

// jolietName is a file's name in the Joliet tree: UCS-2 big-endian.
func jolietName(name string) string {
	var b bytes.Buffer
	for _, u := range utf16.Encode([]rune(name)) {
		binary.Write(&b, binary.BigEndian, u)
	}
	return b.String()
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

// dirRecord is one directory record.
func dirRecord(lba, size uint32, flags byte, id []byte, when time.Time) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	both32(r[2:], lba)
	both32(r[10:], size)
	t := when.UTC()
	r[18], r[19], r[20] = byte(t.Year()-1900), byte(t.Month()), byte(t.Day())
	r[21], r[22], r[23] = byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	r[25] = flags
	both16(r[28:], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	return r
}

// dirRecords is the root directory: ".", "..", then the files.
func dirRecords(self uint32, files []File, lba []uint32, name func(string) string, when time.Time) []byte {
	var b []byte
	b = append(b, dirRecord(self, sector, 2, []byte{0}, when)...)
	b = append(b, dirRecord(self, sector, 2, []byte{1}, when)...)
	for i, f := range files {
		b = append(b, dirRecord(lba[i], uint32(len(f.Data)), 0, []byte(name(f.Name)), when)...)
	}
	return b
}

func pathTable(root uint32, order binary.ByteOrder) []byte {
	t := make([]byte, 10)
	t[0] = 1
	order.PutUint32(t[2:], root)
	order.PutUint16(t[6:], 1)
	return t
}

// volumeDescriptor is a primary (type 1) or Joliet supplementary (type 2)
// volume descriptor.
func volumeDescriptor(typ byte, label string, total, lPath, mPath, root uint32, when time.Time, joliet bool) []byte {
	d := make([]byte, sector)
	d[0] = typ
	copy(d[1:], "CD001")
	d[6] = 1
	text := func(off, n int, s string) {
		if joliet {
			u := jolietName(s)
			for i := 0; i+1 < n; i += 2 { // UCS-2 spaces
				d[off+i], d[off+i+1] = 0, ' '
			}
			copy(d[off:off+n], u)
			return
		}
		copy(d[off:off+n], fmt.Sprintf("%-*s", n, s))
	}
	text(8, 32, "LINUX")
	text(40, 32, label)
	both32(d[80:], total)
	if joliet {
		copy(d[88:], "%/E") // UCS-2 level 3
	}
	both16(d[120:], 1)
	both16(d[124:], 1)
	both16(d[128:], sector)
	both32(d[132:], 10)
	binary.LittleEndian.PutUint32(d[140:], lPath)
	binary.BigEndian.PutUint32(d[148:], mPath)
	copy(d[156:], dirRecord(root, sector, 2, []byte{0}, when))
	for _, f := range [][2]int{{190, 128}, {318, 128}, {446, 128}, {574, 128}, {702, 37}, {739, 37}, {776, 37}} {
		text(f[0], f[1], "")
	}
	text(574, 128, "PLINTH")
	stamp := when.UTC().Format("20060102150405") + "00"
	for _, off := range []int{813, 830} {
		copy(d[off:], stamp)
	}
	for _, off := range []int{847, 864} {
		copy(d[off:], "0000000000000000")
	}
	d[881] = 1
	return d
}
