package qemu

import (
	"encoding/json"
	"fmt"
)

// Node is one image of a block graph as QEMU is to open it: its format
// named (never probed), the file it reads given by a name Plinth chose (a
// descriptor: /dev/fdset/N for QEMU, /proc/self/fd/N for qemu-img), and its
// backing image given explicitly, so that QEMU never follows a name it
// finds in an image's header.
type Node struct {
	// Format is the format driver: "raw", "qcow2" (VMs), or for qemu-img
	// sources also "vmdk", "vhdx", "vpc" or "vdi".
	Format string
	// Filename is what the file driver opens.
	Filename string
	// Backing is the next image of a chain Plinth made; nil is none, and a
	// qcow2 node then says "backing": null.
	Backing *Node
}

// NodeOptions are the options of a node's whole chain.
type NodeOptions struct {
	// Name is the format node's node-name ("" for none); its file and
	// backing nodes are named after it.
	Name string
	// ReadOnly opens the top image read-only (backing images always are).
	ReadOnly bool
	// Direct and NoFlush are cache.direct and cache.no-flush.
	Direct, NoFlush bool
	backing         bool // a node below a backing link
}

// hasBacking: the format drivers that could open a backing file of their
// own; each gets "backing" set explicitly.
var hasBacking = map[string]bool{"qcow2": true, "qed": true, "vmdk": true}

// Blockdev is the node's -blockdev (or qemu-img json:) description.
func (n Node) Blockdev(o NodeOptions) (map[string]any, error) {
	if n.Format == "" || n.Filename == "" {
		return nil, fmt.Errorf("block node %q: format and file are required: %w", o.Name, ErrEnv)
	}
	if err := checkValue(n.Filename); err != nil {
		return nil, err
	}
	file := map[string]any{"driver": "file", "filename": n.Filename, "read-only": o.ReadOnly}
	node := map[string]any{"driver": n.Format, "file": file, "read-only": o.ReadOnly}
	if !o.backing {
		// Backing images inherit the cache mode (QEMU takes no cache
		// options below a backing link).
		cache := map[string]any{"direct": o.Direct, "no-flush": o.NoFlush}
		file["cache"], node["cache"] = cache, cache
	}
	if o.Name != "" {
		node["node-name"] = o.Name
		file["node-name"] = o.Name + "-file"
	}
	if hasBacking[n.Format] {
		node["backing"] = nil
	}
	if n.Backing != nil {
		if !hasBacking[n.Format] {
			return nil, fmt.Errorf("block node %q: a %s image has no backing image: %w", o.Name, n.Format, ErrEnv)
		}
		bo := o
		bo.ReadOnly, bo.backing = true, true
		if o.Name != "" {
			bo.Name = o.Name + "-b"
		}
		b, err := n.Backing.Blockdev(bo)
		if err != nil {
			return nil, err
		}
		node["backing"] = b
	}
	return node, nil
}

// JSON is Blockdev encoded, for -blockdev; qemu-img takes it as a
// "json:" file name.
func (n Node) JSON(o NodeOptions) (string, error) {
	m, err := n.Blockdev(o)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
