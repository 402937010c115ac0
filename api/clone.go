package api

import (
	"fmt"
	"strconv"
	"strings"
)

// CloneRequest is the body of POST .../clone: a new VM made of a stopped
// VM, or of one of its snapshots, its disks on the same datastores.
type CloneRequest struct {
	Name string `json:"name"`
	// Linked makes each disk a qcow2 overlay on a base that never changes
	// (inside the datastore): a template's own disks, or for a VM or a
	// snapshot a copy made once (kept under bases/ while clones need it).
	// Otherwise each disk is copied whole.
	Linked bool `json:"linked,omitempty"`
	// Snapshot clones the VM as it was in this snapshot (name or ID).
	Snapshot string `json:"snapshot,omitempty"`
	// Start starts the clone once it is made.
	Start bool `json:"start,omitempty"`
}

// Validate returns the request's problems as a *ValidationError, or nil.
func (r CloneRequest) Validate() error {
	var v validator
	v.name("name", r.Name)
	return v.err("clone request")
}

// TemplateRequest is the body of POST .../template: a template never
// starts and its disks never change; VMs are deployed from it.
type TemplateRequest struct {
	// Template marks (true) or unmarks (false) the VM as a template;
	// unmarking is refused while linked clones rest on its disks.
	Template bool `json:"template"`
}

// MaxDeploy is the most clones one deploy makes.
const MaxDeploy = 100

// DeployRequest is the body of POST .../deploy on a template: Count VMs
// named by NamePattern, linked clones unless Full. It is a struct so that
// each clone can later carry more of its own (a cloud-init of its own).
type DeployRequest struct {
	Count int `json:"count"`
	// NamePattern names the clones: "{n}" is replaced by each one's
	// number (First, First+1, ...); "-{n}" is added to a pattern without it.
	NamePattern string `json:"name_pattern"`
	// First is the first clone's number (default 1).
	First int `json:"first,omitempty"`
	// Full copies the template's disks whole instead of linking.
	Full bool `json:"full,omitempty"`
	// Start starts each clone once it is made.
	Start bool `json:"start,omitempty"`
}

// Names are the clones' names, or a *ValidationError.
func (r DeployRequest) Names() ([]string, error) {
	var v validator
	if r.Count < 1 || r.Count > MaxDeploy {
		v.add("count", fmt.Sprintf("must be between 1 and %d", MaxDeploy))
	}
	if r.First < 0 {
		v.add("first", "must not be negative")
	}
	pattern := r.NamePattern
	if pattern == "" {
		v.add("name_pattern", "required, e.g. web-{n}")
	} else if !strings.Contains(pattern, "{n}") {
		pattern += "-{n}"
	}
	if err := v.err("deploy request"); err != nil {
		return nil, err
	}
	first := r.First
	if first == 0 {
		first = 1
	}
	names := make([]string, r.Count)
	for i := range names {
		names[i] = strings.ReplaceAll(pattern, "{n}", strconv.Itoa(first+i))
		if msg := CheckName(names[i]); msg != "" {
			v.add("name_pattern", fmt.Sprintf("gives %q: %s", names[i], msg))
			return nil, v.err("deploy request")
		}
	}
	return names, nil
}
