package upgrade

// Boot-once for syslinux (BIOS boot) without the syslinux binary.
//
// syslinux keeps a small key/value store, the ADV ("auxiliary data
// vector"), in the last two 512-byte sectors of ldlinux.sys. At boot,
// ldlinux (com32/elflink/ldlinux/ldlinux.c) looks up the ADV_BOOTONCE
// record; if present it deletes the record, writes the ADV back to those
// two sectors and runs the command once. `syslinux --once=CMD` sets that
// record and `syslinux --clear-once` deletes it.
//
// Format, as implemented by syslinux 6.04 (libinstaller/setadv.c,
// com32/lib/syslinux/getadv.c, com32/include/syslinux/advconst.h,
// core/adv.inc); all words little-endian:
//
//	ADV_SIZE = 512, stored twice (copy 0 then copy 1, identical)
//	offset   0: uint32 ADV_MAGIC1 = 0x5a2d2fa5 (head signature)
//	offset   4: uint32 checksum, chosen so that the uint32 sum of the
//	            words at offsets 4..507 equals ADV_MAGIC2 = 0xa3041767
//	offset   8: 500 bytes (ADV_LEN = ADV_SIZE-3*4) of records:
//	            tag uint8, len uint8, len bytes of data; tag 0 (ADV_END)
//	            ends the list, the rest is zero
//	offset 508: uint32 ADV_MAGIC3 = 0xdd28bf64 (tail signature)
//
// Tags: ADV_BOOTONCE = 1, ADV_MENUSAVE = 2. A copy is valid when both
// magics and the checksum are right; readers use copy 0 if valid, else
// copy 1.
//
// The installer wrote ldlinux.sys's sector list (ADV sectors included)
// into the boot sector and into ldlinux.sys itself, so the file must be
// modified strictly in place: same size, same clusters. This code only
// ever pwrite()s the last 1024 bytes of the existing file.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

const (
	advSize   = 512
	advLen    = advSize - 3*4 // usable record bytes per copy
	advMagic1 = 0x5a2d2fa5    // head signature
	advMagic2 = 0xa3041767    // total checksum
	advMagic3 = 0xdd28bf64    // tail signature

	advEnd      = 0 // ADV_END
	advBootOnce = 1 // ADV_BOOTONCE

	// MaxBootOnceLen is the longest boot-once command syslinux can store:
	// a record's length is one byte. Other ADV records (e.g. a menu-save
	// label) may leave less room; SetBootOnce reports that case too.
	MaxBootOnceLen = 255
)

// ReadBootOnce returns the syslinux boot-once command stored in the ADV of
// ldlinuxSys (the path of ldlinux.sys), or "" when none is set. It fails
// if the file does not end in a valid ADV (both copies with bad magic or
// checksum).
func ReadBootOnce(ldlinuxSys string) (string, error) {
	f, err := os.Open(ldlinuxSys)
	if err != nil {
		return "", fmt.Errorf("syslinux ADV: %w", err)
	}
	defer f.Close()
	_, adv, err := readADV(f, ldlinuxSys)
	if err != nil {
		return "", err
	}
	val, ok := advGet(adv, advBootOnce)
	if !ok {
		return "", nil
	}
	return string(val), nil
}

// SetBootOnce sets (cmd != "") or clears (cmd == "") syslinux's boot-once
// command in the ADV of ldlinuxSys, like `syslinux --once=CMD` and
// `syslinux --clear-once`. Other ADV records are kept. Both ADV copies are
// rewritten in place (pwrite + fsync, copy 0 first, then copy 1, so that a
// valid copy exists at every moment); the file's size and sectors do not
// change.
func SetBootOnce(ldlinuxSys, cmd string) error {
	if len(cmd) > MaxBootOnceLen {
		return fmt.Errorf("syslinux boot-once command is %d bytes, syslinux allows at most %d", len(cmd), MaxBootOnceLen)
	}
	if i := bytes.IndexByte([]byte(cmd), 0); i >= 0 {
		return fmt.Errorf("syslinux boot-once command contains a NUL byte at offset %d", i)
	}

	f, err := os.OpenFile(ldlinuxSys, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("syslinux ADV: %w", err)
	}
	defer f.Close()

	off, adv, err := readADV(f, ldlinuxSys)
	if err != nil {
		return err
	}
	if err := advSet(adv, advBootOnce, []byte(cmd)); err != nil {
		return fmt.Errorf("syslinux ADV in %s: %w", ldlinuxSys, err)
	}
	advSeal(adv)

	for c := int64(0); c < 2; c++ {
		if _, err := f.WriteAt(adv, off+c*advSize); err != nil {
			return fmt.Errorf("syslinux ADV: writing copy %d to %s: %w", c, ldlinuxSys, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syslinux ADV: fsync %s: %w", ldlinuxSys, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("syslinux ADV: closing %s: %w", ldlinuxSys, err)
	}
	return nil
}

// readADV locates the ADV (last 2*512 bytes of the file) and returns its
// file offset and one valid 512-byte copy (copy 0 preferred, as syslinux
// does).
func readADV(f *os.File, name string) (int64, []byte, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("syslinux ADV: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return 0, nil, fmt.Errorf("syslinux ADV: %s is not a regular file", name)
	}
	if size < 2*advSize || size%512 != 0 {
		return 0, nil, fmt.Errorf("syslinux ADV: %s is %d bytes, not an ldlinux.sys with an ADV (needs a multiple of 512, at least %d)", name, size, 2*advSize)
	}
	off := size - 2*advSize
	buf := make([]byte, 2*advSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return 0, nil, fmt.Errorf("syslinux ADV: reading %s: %w", name, err)
	}
	var probs [2]error
	for c := 0; c < 2; c++ {
		cp := buf[c*advSize : (c+1)*advSize]
		if probs[c] = advCheck(cp); probs[c] == nil {
			return off, append([]byte(nil), cp...), nil
		}
	}
	return 0, nil, fmt.Errorf("syslinux ADV: no valid ADV at the end of %s (copy 0: %v; copy 1: %v)", name, probs[0], probs[1])
}

// advCheck is syslinux's adv_consistent().
func advCheck(p []byte) error {
	le := binary.LittleEndian
	if m := le.Uint32(p[0:]); m != advMagic1 {
		return fmt.Errorf("bad head magic %#08x, want %#08x", m, uint32(advMagic1))
	}
	if m := le.Uint32(p[advSize-4:]); m != advMagic3 {
		return fmt.Errorf("bad tail magic %#08x, want %#08x", m, uint32(advMagic3))
	}
	var sum uint32
	for i := 4; i < advSize-4; i += 4 {
		sum += le.Uint32(p[i:])
	}
	if sum != advMagic2 {
		return errors.New("bad checksum")
	}
	return nil
}

// advSeal is syslinux's cleanup_adv() for one copy: head magic, checksum,
// tail magic.
func advSeal(p []byte) {
	le := binary.LittleEndian
	le.PutUint32(p[0:], advMagic1)
	sum := uint32(advMagic2)
	for i := 8; i < advSize-4; i += 4 {
		sum -= le.Uint32(p[i:])
	}
	le.PutUint32(p[4:], sum)
	le.PutUint32(p[advSize-4:], advMagic3)
}

// advGet is syslinux_getadv(): the data of the first record with tag.
func advGet(adv []byte, tag byte) ([]byte, bool) {
	p := adv[8 : 8+advLen]
	for len(p) >= 2 {
		ptag, plen := p[0], int(p[1])
		p = p[2:]
		if ptag == advEnd || len(p) < plen {
			return nil, false
		}
		if ptag == tag {
			return p[:plen], true
		}
		p = p[plen:]
	}
	return nil, false
}

// advSet is syslinux_setadv(): delete every record with tag, then append
// tag/data (when data is not empty) after the remaining records and zero
// the rest. It does not seal the copy.
func advSet(adv []byte, tag byte, data []byte) error {
	if tag == advEnd {
		return errors.New("impossible ADV tag 0")
	}
	if len(data) > 255 {
		return fmt.Errorf("ADV record of %d bytes, at most 255 fit", len(data))
	}
	tmp := make([]byte, advLen)
	copy(tmp, adv[8:8+advLen])
	p, left := 0, advLen
	for left >= 2 {
		ptag, plen := tmp[p], int(tmp[p+1])+2
		if ptag == advEnd {
			break
		}
		if ptag == tag {
			if plen >= left {
				break // the whole remainder is our tag
			}
			copy(tmp[p:], tmp[p+plen:p+left])
		} else {
			if plen > left {
				break // corrupt record (overrun): overwrite it
			}
			left -= plen
			p += plen
		}
	}
	if len(data) > 0 {
		if left < len(data)+2 {
			return fmt.Errorf("not enough space for a %d-byte record (%d bytes free)", len(data), max(left-2, 0))
		}
		tmp[p] = tag
		tmp[p+1] = byte(len(data))
		copy(tmp[p+2:], data)
		p += len(data) + 2
		left -= len(data) + 2
	}
	clear(tmp[p : p+left])
	copy(adv[8:8+advLen], tmp)
	return nil
}
