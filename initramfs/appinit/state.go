package appinit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// StateLabel is the file system label of the STATE partition.
const StateLabel = "PLINTH-STATE"

// ext4Label returns the volume label of an ext2/3/4 superblock read from r,
// or ok=false when r holds no ext file system.
func ext4Label(r io.ReaderAt) (label string, ok bool) {
	sb := make([]byte, 136)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return "", false
	}
	if binary.LittleEndian.Uint16(sb[56:58]) != 0xEF53 {
		return "", false
	}
	l := sb[120:136]
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return string(l), true
}

// findByLabel returns the /dev path of the block device (disk or partition)
// whose ext file system has the given label. sysRoot and devRoot are /sys and
// /dev on the appliance.
func findByLabel(sysRoot, devRoot, label string) (string, error) {
	names, err := filepath.Glob(filepath.Join(sysRoot, "class", "block", "*"))
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		dev := filepath.Join(devRoot, filepath.Base(n))
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		l, ok := ext4Label(f)
		f.Close()
		if ok && l == label {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no block device holds an ext4 file system labelled %s", label)
}
