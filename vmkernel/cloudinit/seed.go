// Package cloudinit makes a VM's cloud-init NoCloud seed: the meta-data,
// user-data and network-config files cloud-init reads at boot, in an ISO
// 9660 image labelled "cidata" (made here in Go, no tool), which vmkernel
// attaches read-only to the VM.
package cloudinit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
)

// Label is the volume label NoCloud looks for.
const Label = "cidata"

// Files are the seed's files for spec (which has Defaults applied and a
// CloudInit): meta-data (instance-id and local-hostname), user-data (the
// spec's own, or a #cloud-config from its fields) and network-config (the
// spec's own, or version 2 from its Network, matched by MAC).
//
// The instance-id is the VM's ID and a digest of the rest: cloud-init runs
// its once-per-instance steps again when the configuration changes, and a
// clone (its own ID) is a new instance.
func Files(spec api.VMSpec) ([]File, error) {
	ci := spec.CloudInit
	if ci == nil {
		return nil, fmt.Errorf("cloud-init: the VM has none")
	}
	host := ci.Hostname
	if host == "" {
		host = spec.Name
	}
	user := ci.UserData
	if user == "" {
		user = cloudConfig(ci, host)
	}
	netcfg := ci.NetworkConfig
	if netcfg == "" {
		netcfg = networkConfig(spec)
	}
	sum := sha256.Sum256([]byte(host + "\x00" + user + "\x00" + netcfg))
	id := spec.ID + "-" + hex.EncodeToString(sum[:4])
	meta := "instance-id: " + quote(id) + "\nlocal-hostname: " + quote(host) + "\n"
	return []File{
		{Name: "meta-data", Data: []byte(meta)},
		{Name: "user-data", Data: []byte(user)},
		{Name: "network-config", Data: []byte(netcfg)},
	}, nil
}

// Image is the seed as an ISO 9660 image.
func Image(spec api.VMSpec) ([]byte, error) {
	files, err := Files(spec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	// A fixed time: the same spec makes the same bytes.
	if err := WriteISO(&b, Label, files, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// quote is a YAML double-quoted scalar (JSON's string syntax is one).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// cloudConfig writes a #cloud-config from the spec's fields. Every value
// is quoted: nothing a user typed becomes YAML structure.
func cloudConfig(ci *api.CloudInit, host string) string {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	fmt.Fprintf(&b, "hostname: %s\n", quote(host))
	fmt.Fprintf(&b, "preserve_hostname: false\n")
	keys := func(indent string) {
		if len(ci.SSHAuthorizedKeys) == 0 {
			return
		}
		fmt.Fprintf(&b, "%sssh_authorized_keys:\n", indent)
		for _, k := range ci.SSHAuthorizedKeys {
			fmt.Fprintf(&b, "%s  - %s\n", indent, quote(k))
		}
	}
	switch {
	case ci.User == "":
		keys("")
		if ci.PasswordHash != "" {
			fmt.Fprintf(&b, "password: %s\nchpasswd:\n  expire: false\n", quote(ci.PasswordHash))
		}
	case ci.User == "root":
		keys("")
		fmt.Fprintf(&b, "disable_root: false\n")
		if ci.PasswordHash != "" {
			fmt.Fprintf(&b, "chpasswd:\n  expire: false\n  users:\n    - name: root\n      password: %s\n      type: hash\n", quote(ci.PasswordHash))
		}
	default:
		fmt.Fprintf(&b, "users:\n  - default\n  - name: %s\n    shell: /bin/bash\n    sudo: %s\n", quote(ci.User), quote("ALL=(ALL) NOPASSWD:ALL"))
		if ci.PasswordHash != "" {
			fmt.Fprintf(&b, "    lock_passwd: false\n    hashed_passwd: %s\n", quote(ci.PasswordHash))
		}
		keys("    ")
	}
	return b.String()
}

// networkConfig is a version 2 network-config: each NIC matched by its
// MAC, DHCP unless the spec gives it an address.
func networkConfig(spec api.VMSpec) string {
	byNIC := map[int]api.CloudInitNIC{}
	for _, n := range spec.CloudInit.Network {
		byNIC[n.NIC] = n
	}
	var b strings.Builder
	b.WriteString("version: 2\nethernets:\n")
	for i, nic := range spec.NICs {
		fmt.Fprintf(&b, "  nic%d:\n    match:\n      macaddress: %s\n    set-name: %s\n", i, quote(strings.ToLower(nic.MAC)), quote(fmt.Sprintf("eth%d", i)))
		n, ok := byNIC[i]
		if !ok || n.DHCP {
			b.WriteString("    dhcp4: true\n")
			continue
		}
		fmt.Fprintf(&b, "    addresses: [%s]\n", quote(n.Address))
		if n.Gateway != "" {
			if strings.Contains(n.Gateway, ":") {
				fmt.Fprintf(&b, "    gateway6: %s\n", quote(n.Gateway))
			} else {
				fmt.Fprintf(&b, "    gateway4: %s\n", quote(n.Gateway))
			}
		}
		if len(n.DNS) > 0 {
			var q []string
			for _, d := range n.DNS {
				q = append(q, quote(d))
			}
			fmt.Fprintf(&b, "    nameservers:\n      addresses: [%s]\n", strings.Join(q, ", "))
		}
	}
	if len(spec.NICs) == 0 {
		return "version: 2\n"
	}
	return b.String()
}
