package appinit

import (
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

// labels maps the ext file system label of every block device under sysRoot
// to its /dev path (the first, in name order, when two share a label).
func labels(sysRoot, devRoot string) map[string]string {
	names, _ := filepath.Glob(filepath.Join(sysRoot, "class", "block", "*"))
	sort.Strings(names)
	out := map[string]string{}
	for _, n := range names {
		dev := filepath.Join(devRoot, filepath.Base(n))
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		fsType, l := board.Probe(f)
		f.Close()
		ok := strings.HasPrefix(fsType, "ext")
		if _, dup := out[l]; ok && l != "" && !dup {
			out[l] = dev
		}
	}
	return out
}

// findByLabel returns the /dev path of the block device (disk or partition)
// whose ext file system has the given label.
func findByLabel(sysRoot, devRoot, label string) (string, error) {
	if dev, ok := labels(sysRoot, devRoot)[label]; ok {
		return dev, nil
	}
	return "", fmt.Errorf("no block device holds an ext4 file system labelled %s", label)
}
