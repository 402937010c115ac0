package drivers

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Devname is one line of modules.devname (made by depmod): a module whose
// device node may exist before the module is loaded, so that opening the
// node makes the kernel load it (as kmod's static-nodes and udev set up):
// "tun net/tun c10:200".
type Devname struct {
	Module string
	// Name is the node's path under /dev, e.g. "net/tun".
	Name string
	// Block is true for a block device, false for a character device.
	Block        bool
	Major, Minor uint32
}

// ParseDevnames reads modules.devname.
func ParseDevnames(r io.Reader) ([]Devname, error) {
	var out []Devname
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[2]) < 2 || (f[2][0] != 'c' && f[2][0] != 'b') {
			return nil, fmt.Errorf("modules.devname line %d: want \"MODULE NAME cMAJOR:MINOR\", got %q", n, line)
		}
		maj, min, ok := strings.Cut(f[2][1:], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("modules.devname line %d: bad device number %q", n, f[2])
		}
		if strings.Contains(f[1], "..") || strings.HasPrefix(f[1], "/") {
			return nil, fmt.Errorf("modules.devname line %d: node %q is not a path under /dev", n, f[1])
		}
		out = append(out, Devname{Module: f[0], Name: f[1], Block: f[2][0] == 'b', Major: uint32(ma), Minor: uint32(mi)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.devname: %w", err)
	}
	return out, nil
}
