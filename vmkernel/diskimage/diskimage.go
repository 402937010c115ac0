// Package diskimage reads what a disk image's header says without trusting
// it: the image's format, from its content alone, and every other file the
// header names (a qcow2 or QED backing file, a qcow2 external data file, a
// VMDK extent or parent, a VHDX, VHD or VDI parent). Plinth never lets QEMU
// guess a format or follow a name found in an image; this package is how it
// knows what there would be to follow.
//
// It only reads: Inspect takes an io.ReaderAt and the file's size, reads at
// most a few MiB, and never opens anything. Every offset and length read from
// a header is checked against the file's size before use, so a hostile header
// gives an error, never a panic or a huge allocation.
package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Formats, by QEMU's driver names where QEMU has one.
const (
	Raw       = "raw"
	ISO       = "iso" // ISO 9660: raw to QEMU
	Qcow2     = "qcow2"
	Qcow      = "qcow" // version 1
	QED       = "qed"
	VMDK      = "vmdk"
	VMDK3     = "vmdk3" // ESX 2's COWD sparse format: not supported
	VHDX      = "vhdx"
	VPC       = "vpc" // VHD
	VDI       = "vdi"
	LUKS      = "luks"
	Bochs     = "bochs"
	Cloop     = "cloop"
	DMG       = "dmg"
	Parallels = "parallels"
)

// Kinds of references a header can make to another file.
const (
	RefBacking  = "backing file"
	RefDataFile = "external data file"
	RefExtent   = "extent"
	RefParent   = "parent image"
)

// Ref is one other file an image's header names. Name is as written in
// the header (it may be empty when the header says there is one but not
// which, as a qcow2 external data file without its name extension).
type Ref struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Format is the format the header gives for it ("" if none: QEMU would
	// probe it).
	Format string `json:"format,omitempty"`
}

func (r Ref) String() string {
	name := r.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s %q", r.Kind, name)
}

// Header is what an image's first bytes say.
type Header struct {
	Format string
	// VirtualSize is the disk's size as the guest sees it (the file's size
	// for raw and ISO).
	VirtualSize int64
	// Refs are the other files the header names; an image with any is not
	// self-contained.
	Refs []Ref
	// Encrypted: the image needs a secret to be read (qcow2 AES or LUKS).
	Encrypted bool
}

// Errors, for errors.Is.
var (
	// ErrMalformed: the content starts like the format but its header is
	// inconsistent (offsets out of the file, sizes out of bounds).
	ErrMalformed = errors.New("malformed image header")
	// ErrNotFormat: InspectAs was told a format the content is not.
	ErrNotFormat = errors.New("content is not of this format")
)

// Limits on what Inspect reads.
const (
	maxQcow2Cluster = 2 << 20 // cluster_bits <= 21
	maxDescriptor   = 1 << 20 // a VMDK descriptor larger than this is refused
	maxName         = 4096
)

// Inspect establishes an image's format from its content and reads its
// header. Content that no format claims is raw (or ISO, with an ISO 9660
// volume descriptor).
func Inspect(r io.ReaderAt, size int64) (Header, error) {
	return inspect(r, size, Detect(r, size))
}

// InspectAs reads the header of an image that must be of format (as
// recorded when it entered a datastore). Raw and ISO have no header to
// read: any content is theirs. For another format, content that does not
// start as that format gives ErrNotFormat.
func InspectAs(r io.ReaderAt, size int64, format string) (Header, error) {
	if format == Raw || format == ISO {
		return Header{Format: format, VirtualSize: size}, nil
	}
	if got := Detect(r, size); got != format {
		return Header{}, fmt.Errorf("%w: recorded as %s, content is %s", ErrNotFormat, format, got)
	}
	return inspect(r, size, format)
}

func inspect(r io.ReaderAt, size int64, format string) (Header, error) {
	h := Header{Format: format, VirtualSize: size}
	var err error
	switch format {
	case Qcow2, Qcow:
		err = qcow(r, size, &h)
	case QED:
		err = qed(r, size, &h)
	case VMDK:
		err = vmdk(r, size, &h)
	case VHDX:
		err = vhdx(r, size, &h)
	case VPC:
		err = vpc(r, size, &h)
	case VDI:
		err = vdi(r, size, &h)
	case LUKS:
		h.Encrypted = true
	}
	if err != nil {
		return Header{}, fmt.Errorf("%s image: %w", format, err)
	}
	return h, nil
}

// Detect names the format the content starts as, reading no further than
// its magic numbers (Inspect also reads the header).
func Detect(r io.ReaderAt, size int64) string {
	head := make([]byte, 512)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		if len(head) >= 8 && binary.BigEndian.Uint32(head[4:]) == 1 {
			return Qcow
		}
		return Qcow2
	case bytes.HasPrefix(head, []byte("QED\x00")):
		return QED
	case bytes.HasPrefix(head, []byte("KDMV")):
		return VMDK
	case bytes.HasPrefix(head, []byte("COWD")):
		return VMDK3
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return VHDX
	case bytes.HasPrefix(head, []byte("conectix")):
		return VPC
	case bytes.HasPrefix(head, []byte("LUKS\xba\xbe")):
		return LUKS
	case bytes.HasPrefix(head, []byte("Bochs Virtual HD Image")):
		return Bochs
	case bytes.HasPrefix(head, []byte("#!/bin/sh\n#V2.0 Format\n")):
		return Cloop
	case bytes.HasPrefix(head, []byte("WithoutFreeSpace")), bytes.HasPrefix(head, []byte("WithouFreSpacExt")):
		return Parallels
	case len(head) >= 0x44 && binary.LittleEndian.Uint32(head[0x40:]) == 0xbeda107f:
		return VDI
	case isVMDKDescriptor(head):
		return VMDK
	}
	tail := make([]byte, 512)
	if size >= 512 {
		if n, _ := r.ReadAt(tail, size-512); n == 512 {
			switch {
			case bytes.HasPrefix(tail, []byte("conectix")):
				return VPC // a fixed VHD: its footer only at the end
			case bytes.HasPrefix(tail, []byte("koly")):
				return DMG
			}
		}
	}
	if size > 0x8006 {
		id := make([]byte, 5)
		if n, _ := r.ReadAt(id, 0x8001); n == 5 && string(id) == "CD001" {
			return ISO
		}
	}
	return Raw
}

// isVMDKDescriptor: a text VMDK descriptor (QEMU's vmdk driver reads any
// file that does not start with a sparse header as one).
func isVMDKDescriptor(head []byte) bool {
	s := strings.TrimLeft(string(head), " \t\r\n\ufeff")
	return strings.HasPrefix(s, "# Disk DescriptorFile")
}

// readAt reads exactly n bytes at off, refusing ranges outside the file.
func readAt(r io.ReaderAt, size, off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > size || int64(n) > size-off {
		return nil, fmt.Errorf("%w: %d bytes at offset %d are beyond the end of the file (%d bytes)", ErrMalformed, n, off, size)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, off, err)
	}
	return b, nil
}

// qcow2 header extension types.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extDataFile      = 0x44415441
)

// qcow2 incompatible feature bits.
const (
	incompatDataFile = 1 << 2
)

func qcow(r io.ReaderAt, size int64, h *Header) error {
	hdr, err := readAt(r, size, 0, 72)
	if err != nil {
		return err
	}
	be := binary.BigEndian
	version := be.Uint32(hdr[4:])
	if version == 1 {
		// QCOW version 1: backing file offset (u64) and size (u32) at 8.
		boff, blen := int64(be.Uint64(hdr[8:])), int(be.Uint32(hdr[16:]))
		h.VirtualSize = int64(be.Uint64(hdr[24:]))
		if boff != 0 {
			name, err := headerName(r, size, boff, blen)
			if err != nil {
				return fmt.Errorf("backing file name: %w", err)
			}
			h.Refs = append(h.Refs, Ref{Kind: RefBacking, Name: name})
		}
		return nil
	}
	if version != 2 && version != 3 {
		return fmt.Errorf("%w: version %d", ErrMalformed, version)
	}
	clusterBits := be.Uint32(hdr[20:])
	if clusterBits < 9 || clusterBits > 21 {
		return fmt.Errorf("%w: cluster_bits %d", ErrMalformed, clusterBits)
	}
	cluster := int64(1) << clusterBits
	virt := be.Uint64(hdr[24:])
	if virt > 1<<62 {
		return fmt.Errorf("%w: virtual size %d", ErrMalformed, virt)
	}
	h.VirtualSize = int64(virt)
	if be.Uint32(hdr[32:]) != 0 {
		h.Encrypted = true
	}
	headerLen := int64(72)
	var incompat uint64
	if version == 3 {
		v3, err := readAt(r, size, 72, 32)
		if err != nil {
			return err
		}
		incompat = be.Uint64(v3[0:])
		headerLen = int64(be.Uint32(v3[28:]))
		if headerLen < 104 || headerLen > cluster {
			return fmt.Errorf("%w: header_length %d", ErrMalformed, headerLen)
		}
	}
	// The header, its extensions and the backing file name all lie in the
	// first cluster (QEMU refuses images where they do not).
	boff, blen := int64(be.Uint64(hdr[8:])), int(be.Uint32(hdr[16:]))
	var backing Ref
	if boff != 0 {
		if boff > cluster || int64(blen) > cluster-boff || blen > 1023 {
			return fmt.Errorf("%w: backing file name at %d (%d bytes) is outside the first cluster", ErrMalformed, boff, blen)
		}
		name, err := headerName(r, size, boff, blen)
		if err != nil {
			return fmt.Errorf("backing file name: %w", err)
		}
		backing = Ref{Kind: RefBacking, Name: name}
	}
	var dataFile *Ref
	if incompat&incompatDataFile != 0 {
		dataFile = &Ref{Kind: RefDataFile}
	}
	// Extensions, read as QEMU reads them: from the header's end to the
	// backing file name (or the end of the first cluster), each a type
	// (u32), a length (u32) and data padded to 8 bytes, until the end marker.
	end := cluster
	if boff != 0 {
		end = boff
	}
	for off := headerLen; off < end; {
		e, err := readAt(r, size, off, 8)
		if err != nil {
			return fmt.Errorf("header extension: %w", err)
		}
		typ, n := be.Uint32(e[0:]), int64(be.Uint32(e[4:]))
		off += 8
		if off > end || n > end-off {
			return fmt.Errorf("%w: header extension 0x%08x of %d bytes is too large", ErrMalformed, typ, n)
		}
		if typ == extEnd {
			break
		}
		switch typ {
		case extBackingFormat:
			f, err := headerName(r, size, off, int(n))
			if err != nil {
				return fmt.Errorf("backing format: %w", err)
			}
			backing.Format = f
		case extDataFile:
			f, err := headerName(r, size, off, int(n))
			if err != nil {
				return fmt.Errorf("external data file name: %w", err)
			}
			if dataFile == nil {
				// A name without the feature bit: QEMU ignores it, but it
				// is a name all the same.
				dataFile = &Ref{Kind: RefDataFile}
			}
			dataFile.Name = f
		}
		off += (n + 7) &^ 7
	}
	if boff != 0 {
		h.Refs = append(h.Refs, backing)
	}
	if dataFile != nil {
		h.Refs = append(h.Refs, *dataFile)
	}
	return nil
}

// headerName reads a name of n bytes at off: text, as QEMU reads it (up to
// the first NUL).
func headerName(r io.ReaderAt, size, off int64, n int) (string, error) {
	if n > maxName {
		return "", fmt.Errorf("%w: %d bytes long", ErrMalformed, n)
	}
	b, err := readAt(r, size, off, n)
	if err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), nil
}

func qed(r io.ReaderAt, size int64, h *Header) error {
	hdr, err := readAt(r, size, 0, 64)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	h.VirtualSize = int64(le.Uint64(hdr[48:]))
	const hasBacking = 1
	if le.Uint64(hdr[16:])&hasBacking != 0 || le.Uint32(hdr[56:]) != 0 {
		name, err := headerName(r, size, int64(le.Uint32(hdr[56:])), int(le.Uint32(hdr[60:])))
		if err != nil {
			return fmt.Errorf("backing file name: %w", err)
		}
		h.Refs = append(h.Refs, Ref{Kind: RefBacking, Name: name})
	}
	return nil
}

func vmdk(r io.ReaderAt, size int64, h *Header) error {
	head, err := readAt(r, size, 0, int(min(size, 512)))
	if err != nil {
		return err
	}
	var desc []byte
	switch {
	case bytes.HasPrefix(head, []byte("KDMV")):
		if len(head) < 77 {
			return fmt.Errorf("%w: short sparse VMDK header", ErrMalformed)
		}
		le := binary.LittleEndian
		h.VirtualSize = int64(le.Uint64(head[12:]) * 512)
		if h.VirtualSize < 0 {
			return fmt.Errorf("%w: capacity", ErrMalformed)
		}
		doff, dlen := le.Uint64(head[28:]), le.Uint64(head[36:])
		if doff == 0 {
			return nil // no embedded descriptor
		}
		if dlen > maxDescriptor/512 || doff > uint64(size)/512 {
			return fmt.Errorf("%w: embedded descriptor of %d sectors at sector %d", ErrMalformed, dlen, doff)
		}
		// QEMU follows only the parent of a sparse file's embedded
		// descriptor; its extents name the file itself.
		desc, err = readAt(r, size, int64(doff)*512, int(min(int64(dlen)*512, size-int64(doff)*512)))
		if err != nil {
			return err
		}
		refs, _ := parseDescriptor(desc)
		for _, ref := range refs {
			if ref.Kind == RefParent {
				h.Refs = append(h.Refs, ref)
			}
		}
		return nil
	}
	// A text descriptor: every extent with a file name is another file.
	if size > maxDescriptor {
		return fmt.Errorf("%w: a VMDK descriptor of %d bytes", ErrMalformed, size)
	}
	desc, err = readAt(r, size, 0, int(size))
	if err != nil {
		return err
	}
	refs, virt := parseDescriptor(desc)
	h.Refs, h.VirtualSize = refs, virt
	return nil
}

// parseDescriptor reads a VMDK descriptor's extents (those naming a file)
// and parent, and the disk's size from its extents.
func parseDescriptor(desc []byte) (refs []Ref, virtual int64) {
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	for _, line := range strings.Split(string(desc), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok {
			k = strings.TrimSpace(k)
			v = strings.Trim(strings.TrimSpace(v), `"`)
			if strings.EqualFold(k, "parentFileNameHint") && v != "" {
				refs = append(refs, Ref{Kind: RefParent, Name: v})
			}
			continue
		}
		// RW|RDONLY|NOACCESS <sectors> <type> ["file" [offset]]
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "RW", "RDONLY", "NOACCESS":
		default:
			continue
		}
		var sectors int64
		fmt.Sscan(f[1], &sectors)
		if sectors > 0 && sectors < 1<<53 {
			virtual += sectors * 512
		}
		if i := strings.IndexByte(line, '"'); i >= 0 {
			name := line[i+1:]
			if j := strings.IndexByte(name, '"'); j >= 0 {
				name = name[:j]
			}
			refs = append(refs, Ref{Kind: RefExtent, Name: name})
		} else if strings.ToUpper(f[2]) != "ZERO" {
			refs = append(refs, Ref{Kind: RefExtent, Name: ""})
		}
	}
	return refs, virtual
}

// VHDX metadata item GUIDs (as stored: little-endian first three fields).
var (
	vhdxMetadataRegion = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams     = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize    = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxParentLocator  = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

func guid(s string) [16]byte {
	var g [16]byte
	var b []byte
	for _, c := range strings.ReplaceAll(s, "-", "") {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = byte(c - '0')
		default:
			v = byte(c-'A') + 10
		}
		b = append(b, v)
	}
	raw := make([]byte, 16)
	for i := range raw {
		raw[i] = b[2*i]<<4 | b[2*i+1]
	}
	// Data1 (4 bytes), Data2, Data3 (2 each) little-endian; Data4 as is.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g
}

func vhdx(r io.ReaderAt, size int64, h *Header) error {
	le := binary.LittleEndian
	// Two copies of the region table, at 192 KiB and 256 KiB; the first
	// suffices to find the metadata (QEMU checks both checksums; a table
	// it would refuse is refused here only if unreadable).
	rt, err := readAt(r, size, 192<<10, 64<<10)
	if err != nil {
		return err
	}
	if string(rt[:4]) != "regi" {
		return fmt.Errorf("%w: no region table", ErrMalformed)
	}
	count := le.Uint32(rt[8:])
	if count > 2047 {
		return fmt.Errorf("%w: %d regions", ErrMalformed, count)
	}
	var metaOff int64
	var metaLen int64
	for i := range int(count) {
		e := rt[16+32*i : 16+32*i+32]
		if [16]byte(e[:16]) == vhdxMetadataRegion {
			metaOff, metaLen = int64(le.Uint64(e[16:])), int64(le.Uint32(e[24:]))
		}
	}
	if metaOff == 0 || metaLen < 64<<10 || metaLen > 32<<20 {
		return fmt.Errorf("%w: no usable metadata region", ErrMalformed)
	}
	mt, err := readAt(r, size, metaOff, 64<<10)
	if err != nil {
		return err
	}
	if string(mt[:8]) != "metadata" {
		return fmt.Errorf("%w: no metadata table", ErrMalformed)
	}
	entries := int(le.Uint16(mt[10:]))
	if entries > 2047 {
		return fmt.Errorf("%w: %d metadata entries", ErrMalformed, entries)
	}
	item := func(off, n uint32) ([]byte, error) {
		if int64(off) < 64<<10 || int64(off)+int64(n) > metaLen {
			return nil, fmt.Errorf("%w: metadata item outside its region", ErrMalformed)
		}
		return readAt(r, size, metaOff+int64(off), int(n))
	}
	for i := range entries {
		e := mt[32+32*i : 32+32*i+32]
		id, off, n := [16]byte(e[:16]), le.Uint32(e[16:]), le.Uint32(e[20:])
		switch id {
		case vhdxFileParams:
			b, err := item(off, 8)
			if err != nil {
				return err
			}
			if le.Uint32(b[4:])&2 != 0 { // HasParent
				h.Refs = append(h.Refs, Ref{Kind: RefParent})
			}
		case vhdxVirtualSize:
			b, err := item(off, 8)
			if err != nil {
				return err
			}
			h.VirtualSize = int64(le.Uint64(b))
		case vhdxParentLocator:
			if n > 64<<10 {
				return fmt.Errorf("%w: parent locator of %d bytes", ErrMalformed, n)
			}
			b, err := item(off, n)
			if err != nil {
				return err
			}
			h.Refs = append(h.Refs, Ref{Kind: RefParent, Name: vhdxParentPath(b)})
		}
	}
	// One parent reference, named when the locator names it.
	var named []Ref
	for _, ref := range h.Refs {
		if ref.Name != "" {
			named = append(named, ref)
		}
	}
	if len(named) > 0 {
		h.Refs = named[:1]
	} else if len(h.Refs) > 1 {
		h.Refs = h.Refs[:1]
	}
	if h.VirtualSize < 0 {
		return fmt.Errorf("%w: virtual size", ErrMalformed)
	}
	return nil
}

// vhdxParentPath finds a path in a VHDX parent locator (key/value pairs of
// UTF-16LE strings): relative_path, else absolute_win32_path.
func vhdxParentPath(b []byte) string {
	if len(b) < 20 {
		return ""
	}
	le := binary.LittleEndian
	n := int(le.Uint16(b[18:]))
	str := func(off uint32, l uint16) string {
		if int64(off)+int64(l) > int64(len(b)) || l%2 != 0 {
			return ""
		}
		u := make([]uint16, l/2)
		for i := range u {
			u[i] = le.Uint16(b[int(off)+2*i:])
		}
		return string(utf16.Decode(u))
	}
	vals := map[string]string{}
	for i := range n {
		o := 20 + 12*i
		if o+12 > len(b) {
			break
		}
		k := str(le.Uint32(b[o:]), le.Uint16(b[o+8:]))
		v := str(le.Uint32(b[o+4:]), le.Uint16(b[o+10:]))
		vals[k] = v
	}
	for _, k := range []string{"relative_path", "absolute_win32_path", "volume_path"} {
		if v := vals[k]; v != "" {
			return v
		}
	}
	return ""
}

func vpc(r io.ReaderAt, size int64, h *Header) error {
	footer, err := readAt(r, size, 0, int(min(size, 512)))
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(footer, []byte("conectix")) {
		if footer, err = readAt(r, size, size-512, 512); err != nil {
			return err
		}
	}
	if len(footer) < 512 {
		return fmt.Errorf("%w: short footer", ErrMalformed)
	}
	be := binary.BigEndian
	h.VirtualSize = int64(be.Uint64(footer[48:]))
	if h.VirtualSize < 0 {
		return fmt.Errorf("%w: virtual size", ErrMalformed)
	}
	const differencing = 4
	if be.Uint32(footer[60:]) != differencing {
		return nil
	}
	ref := Ref{Kind: RefParent}
	dyn := int64(be.Uint64(footer[16:]))
	if d, err := readAt(r, size, dyn, 1024); err == nil {
		u := make([]uint16, 256)
		for i := range u {
			u[i] = be.Uint16(d[64+2*i:])
		}
		name := string(utf16.Decode(u))
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		ref.Name = name
	}
	h.Refs = append(h.Refs, ref)
	return nil
}

func vdi(r io.ReaderAt, size int64, h *Header) error {
	hdr, err := readAt(r, size, 0, 0x180)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	h.VirtualSize = int64(le.Uint64(hdr[0x170:]))
	if h.VirtualSize < 0 {
		return fmt.Errorf("%w: virtual size", ErrMalformed)
	}
	switch le.Uint32(hdr[0x4c:]) {
	case 1, 2: // dynamic, static
	default: // undo and differencing images have a parent
		h.Refs = append(h.Refs, Ref{Kind: RefParent})
	}
	return nil
}
