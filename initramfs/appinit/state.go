package appinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plinth/plinth/board"
)

// StateLabel is the file system label of the STATE partition.
const StateLabel = "PLINTH-STATE"

// DatastorePrefix starts the label of every datastore file system
// (PLINTH-DS1, PLINTH-DS2, ...); each is mounted on layout.Datastores/<name>, the
// name being the rest of the label in lower case with "ds" before it
// (PLINTH-DS1 -> ds1), and handed to vmkernel as a datastore.
const DatastorePrefix = "PLINTH-DS"

// datastoreName maps a datastore label to its name, "" for other labels.
func datastoreName(label string) string {
	rest, ok := strings.CutPrefix(label, DatastorePrefix)
	if !ok || rest == "" || !validHostname(rest) {
		return ""
	}
	return "ds" + strings.ToLower(rest)
}

// blockScan finds the ext file systems on the block devices under sysRoot
// (their nodes in devRoot), reading each device's superblock once: a scan
// can be repeated cheaply while disks appear (opening an empty CD-ROM drive
// takes a while).
type blockScan struct {
	sys, dev string
	seen     map[string]bool
	// labels maps an ext label to its /dev path (the first, in name order
	// within a scan, when two share a label).
	labels map[string]string
	ext    int // ext file systems seen
}

func newBlockScan(sysRoot, devRoot string) *blockScan {
	return &blockScan{sys: sysRoot, dev: devRoot, seen: map[string]bool{}, labels: map[string]string{}}
}

// scan reads the devices not read before.
func (b *blockScan) scan() {
	names, _ := filepath.Glob(filepath.Join(b.sys, "class", "block", "*"))
	sort.Strings(names)
	for _, n := range names {
		name := filepath.Base(n)
		if b.seen[name] {
			continue
		}
		dev := filepath.Join(b.dev, name)
		f, err := os.Open(dev)
		if errors.Is(err, os.ErrNotExist) {
			continue // in sysfs before its node is in /dev: next time
		}
		b.seen[name] = true
		if err != nil {
			continue
		}
		fsType, l := board.Probe(f)
		f.Close()
		if !strings.HasPrefix(fsType, "ext") {
			continue
		}
		b.ext++
		if _, dup := b.labels[l]; l != "" && !dup {
			b.labels[l] = dev
		}
	}
}

// labels maps the ext file system label of every block device under sysRoot
// to its /dev path (the first, in name order, when two share a label).
func labels(sysRoot, devRoot string) map[string]string {
	b := newBlockScan(sysRoot, devRoot)
	b.scan()
	return b.labels
}

// findByLabel returns the /dev path of the block device (disk or partition)
// whose ext file system has the given label.
func findByLabel(sysRoot, devRoot, label string) (string, error) {
	if dev, ok := labels(sysRoot, devRoot)[label]; ok {
		return dev, nil
	}
	return "", fmt.Errorf("no block device holds an ext4 file system labelled %s", label)
}
