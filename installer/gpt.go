package installer

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// SectorSize is the logical sector size the installer writes for. Disks
// with 4096-byte logical sectors are refused (see Plan).
const SectorSize = 512

// GPT partition type GUIDs.
const (
	TypeEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxFS   = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// AttrLegacyBIOSBootable is GPT attribute bit 2: syslinux's gptmbr.bin
// boots the partition that has it.
const AttrLegacyBIOSBootable = 1 << 2

const (
	gptEntries    = 128
	gptEntrySize  = 128
	gptArrayBytes = gptEntries * gptEntrySize // 32 sectors
)

// Partition is one GPT entry. First and Last are inclusive LBAs.
type Partition struct {
	Type       string // GUID, e.g. TypeEFISystem
	GUID       string
	Name       string
	First      uint64
	Last       uint64
	Attributes uint64
}

// Size is the partition's size in bytes.
func (p Partition) Size() int64 { return int64(p.Last-p.First+1) * SectorSize }

// Offset is where the partition starts, in bytes.
func (p Partition) Offset() int64 { return int64(p.First) * SectorSize }

// Table is a GUID partition table for a disk of Sectors sectors.
type Table struct {
	DiskGUID   string
	Sectors    uint64
	Partitions []Partition
}

// FirstUsable and LastUsable are the LBAs partitions may use.
func (t Table) FirstUsable() uint64 { return 2 + gptArrayBytes/SectorSize }
func (t Table) LastUsable() uint64  { return t.Sectors - 2 - gptArrayBytes/SectorSize }

// encodeGUID turns "C12A7328-F81F-..." into GPT's mixed-endian 16 bytes.
func encodeGUID(s string) ([16]byte, error) {
	var g [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 || len(s) != 36 {
		return g, fmt.Errorf("bad GUID %q", s)
	}
	// The first three fields are little-endian, the rest as written.
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, nil
}

func decodeGUID(g []byte) string {
	b := []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]}
	b = append(b, g[8:16]...)
	h := strings.ToUpper(hex.EncodeToString(b))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Validate checks that the partitions are inside the usable area, in order
// and not overlapping.
func (t Table) Validate() error {
	if t.Sectors < 2*t.FirstUsable()+1 {
		return fmt.Errorf("disk of %d sectors is too small for a GPT", t.Sectors)
	}
	if len(t.Partitions) > gptEntries {
		return errors.New("too many partitions")
	}
	prev := t.FirstUsable() - 1
	for i, p := range t.Partitions {
		if p.First <= prev || p.Last < p.First || p.Last > t.LastUsable() {
			return fmt.Errorf("partition %d (%s): LBAs %d-%d outside the free area after %d (last usable %d)", i+1, p.Name, p.First, p.Last, prev, t.LastUsable())
		}
		prev = p.Last
	}
	return nil
}

// Marshal returns the bytes of LBA 0 to 33 (protective MBR with bootCode
// as its first up-to-440 bytes, primary header, entry array) and of the
// last 33 sectors (entry array, backup header).
func (t Table) Marshal(bootCode []byte) (primary, backup []byte, err error) {
	if err := t.Validate(); err != nil {
		return nil, nil, err
	}
	array := make([]byte, gptArrayBytes)
	for i, p := range t.Partitions {
		e := array[i*gptEntrySize : (i+1)*gptEntrySize]
		ty, err := encodeGUID(p.Type)
		if err != nil {
			return nil, nil, err
		}
		id, err := encodeGUID(p.GUID)
		if err != nil {
			return nil, nil, err
		}
		copy(e[0:16], ty[:])
		copy(e[16:32], id[:])
		binary.LittleEndian.PutUint64(e[32:], p.First)
		binary.LittleEndian.PutUint64(e[40:], p.Last)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return nil, nil, fmt.Errorf("partition name %q is longer than 36 characters", p.Name)
		}
		for j, c := range name {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	arrayCRC := crc32.ChecksumIEEE(array)
	disk, err := encodeGUID(t.DiskGUID)
	if err != nil {
		return nil, nil, err
	}
	header := func(self, other, arrayLBA uint64) []byte {
		h := make([]byte, SectorSize)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], self)
		binary.LittleEndian.PutUint64(h[32:], other)
		binary.LittleEndian.PutUint64(h[40:], t.FirstUsable())
		binary.LittleEndian.PutUint64(h[48:], t.LastUsable())
		copy(h[56:72], disk[:])
		binary.LittleEndian.PutUint64(h[72:], arrayLBA)
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
		binary.LittleEndian.PutUint32(h[88:], arrayCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	last := t.Sectors - 1
	mbr := make([]byte, SectorSize)
	if len(bootCode) > 440 {
		bootCode = bootCode[:440]
	}
	copy(mbr, bootCode)
	// One protective partition of type 0xEE over the whole disk.
	pe := mbr[446:462]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00
	pe[4] = 0xEE
	pe[5], pe[6], pe[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(pe[8:], 1)
	n := last
	if n > 0xFFFFFFFF {
		n = 0xFFFFFFFF
	}
	binary.LittleEndian.PutUint32(pe[12:], uint32(n))
	mbr[510], mbr[511] = 0x55, 0xAA

	primary = append(append(mbr, header(1, last, 2)...), array...)
	backup = append(append([]byte{}, array...), header(last, 1, last-gptArrayBytes/SectorSize)...)
	return primary, backup, nil
}

// ReadTable reads the primary GPT of a disk of size bytes.
func ReadTable(r io.ReaderAt, size int64) (Table, error) {
	h := make([]byte, SectorSize)
	if _, err := r.ReadAt(h, SectorSize); err != nil {
		return Table{}, fmt.Errorf("read GPT header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return Table{}, errors.New("no GPT header at LBA 1")
	}
	sum := binary.LittleEndian.Uint32(h[16:])
	hc := append([]byte{}, h[:92]...)
	binary.LittleEndian.PutUint32(hc[16:], 0)
	if crc32.ChecksumIEEE(hc) != sum {
		return Table{}, errors.New("GPT header checksum mismatch")
	}
	t := Table{DiskGUID: decodeGUID(h[56:72]), Sectors: uint64(size) / SectorSize}
	n := binary.LittleEndian.Uint32(h[80:])
	es := binary.LittleEndian.Uint32(h[84:])
	if es < 128 || n > 1024 {
		return Table{}, fmt.Errorf("GPT header: %d entries of %d bytes", n, es)
	}
	array := make([]byte, int(n)*int(es))
	if _, err := r.ReadAt(array, int64(binary.LittleEndian.Uint64(h[72:]))*SectorSize); err != nil {
		return Table{}, fmt.Errorf("read GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(array) != binary.LittleEndian.Uint32(h[88:]) {
		return Table{}, errors.New("GPT entry array checksum mismatch")
	}
	for i := 0; i < int(n); i++ {
		e := array[i*int(es) : i*int(es)+128]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue
		}
		var name []uint16
		for j := 0; j < 36; j++ {
			c := binary.LittleEndian.Uint16(e[56+2*j:])
			if c == 0 {
				break
			}
			name = append(name, c)
		}
		t.Partitions = append(t.Partitions, Partition{
			Type: decodeGUID(e[0:16]), GUID: decodeGUID(e[16:32]), Name: string(utf16.Decode(name)),
			First: binary.LittleEndian.Uint64(e[32:]), Last: binary.LittleEndian.Uint64(e[40:]),
			Attributes: binary.LittleEndian.Uint64(e[48:]),
		})
	}
	return t, nil
}

// Find returns the partition named name.
func (t Table) Find(name string) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}
