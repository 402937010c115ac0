package board

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
)

// Probe reads the type and label of the file system at the start of rd from
// its superblock: "iso9660", "ext2"/"ext3"/"ext4" or "vfat". Both are "" when
// it is none of those or cannot be read.
func Probe(rd io.ReaderAt) (fsType, label string) {
	// ISO 9660 first: a hybrid ISO also carries an MBR boot signature.
	pvd := make([]byte, 72)
	if _, err := rd.ReadAt(pvd, 16*2048); err == nil && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return "iso9660", strings.TrimRight(string(pvd[40:72]), " \x00")
	}
	sb := make([]byte, 1024)
	if _, err := rd.ReadAt(sb, 1024); err == nil && binary.LittleEndian.Uint16(sb[0x38:]) == 0xEF53 {
		compat := binary.LittleEndian.Uint32(sb[0x5C:])
		incompat := binary.LittleEndian.Uint32(sb[0x60:])
		t := "ext2"
		switch {
		case incompat&(0x40|0x80) != 0: // extents, 64bit
			t = "ext4"
		case compat&0x4 != 0: // has_journal
			t = "ext3"
		}
		return t, cstring(sb[0x78 : 0x78+16])
	}
	bs := make([]byte, 512)
	if _, err := rd.ReadAt(bs, 0); err == nil && bs[510] == 0x55 && bs[511] == 0xAA {
		var l []byte
		switch {
		case string(bs[0x52:0x57]) == "FAT32":
			l = bs[0x47 : 0x47+11]
		case string(bs[0x36:0x39]) == "FAT":
			l = bs[0x2B : 0x2B+11]
		default:
			return "", ""
		}
		label = strings.TrimRight(string(l), " ")
		if label == "NO NAME" {
			label = ""
		}
		return "vfat", label
	}
	return "", ""
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
