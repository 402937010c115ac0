package installer

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
)

// Answer is an unattended install's answer file, parsed. Its format is one
// `key = value` a line; `#` starts a comment; blank lines are ignored; a
// key given twice is an error except ssh_key and dns (which add). See
// docs/INSTALL.md for every key.
type Answer struct {
	Disk         DiskSelector
	Overwrite    bool
	PasswordHash string
	Hostname     string
	Network      netconf.Config
	NTP          []string
	SSHKeys      []string
	// After is what the host does once installed: "poweroff" (default) or
	// "reboot".
	After string

	// lines says on which line each key was given, for later errors.
	lines map[string]int
}

// DiskSelector picks the target disk. Every field set must match; a disk
// must also be eligible (not the boot medium, big enough).
type DiskSelector struct {
	Path    string // /dev/vdb or vdb
	Serial  string
	Model   string // a shell pattern (path.Match), e.g. "Samsung*"
	MinSize uint64 // bytes
	MaxSize uint64 // bytes, 0 = no limit
}

// IsZero reports whether nothing was asked of the disk.
func (s DiskSelector) IsZero() bool { return s == DiskSelector{} }

// Matches reports whether d is selected (ignoring eligibility).
func (s DiskSelector) Matches(d api.HostDisk) bool {
	if s.Path != "" && strings.TrimPrefix(s.Path, "/dev/") != d.Name {
		return false
	}
	if s.Serial != "" && s.Serial != d.Serial {
		return false
	}
	if s.Model != "" {
		if ok, _ := path.Match(s.Model, strings.TrimSpace(d.Model)); !ok {
			return false
		}
	}
	if s.MinSize > 0 && d.SizeBytes < s.MinSize {
		return false
	}
	if s.MaxSize > 0 && d.SizeBytes > s.MaxSize {
		return false
	}
	return true
}

// LineError is an answer file error at a line (0: the file as a whole).
type LineError struct {
	Line    int
	Key     string
	Problem string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return "answer file: " + e.Problem
	}
	if e.Key != "" {
		return fmt.Sprintf("answer file line %d (%s): %s", e.Line, e.Key, e.Problem)
	}
	return fmt.Sprintf("answer file line %d: %s", e.Line, e.Problem)
}

// Line is the line at which key was given, 0 if it was not.
func (a *Answer) Line(key string) int { return a.lines[key] }

// ParseSize reads 512M, 20G, 1T (powers of 1024) or a number of bytes.
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512M, 20G)", s)
	}
	return uint64(v * float64(mult)), nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "1", "on":
		return true, nil
	case "no", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", s)
}

// ParseAnswer reads an answer file. Its errors are *LineError values that
// name the line and key at fault. Nothing about the machine is checked
// here (see Plan for the disk).
func ParseAnswer(r io.Reader) (*Answer, error) {
	a := &Answer{Network: netconf.Default(), After: "poweroff", lines: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &LineError{Line: n, Problem: fmt.Sprintf("%q is not `key = value`", line)}
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		// A value may be quoted; a comment after an unquoted value is cut.
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		bad := func(format string, args ...any) error {
			return &LineError{Line: n, Key: k, Problem: fmt.Sprintf(format, args...)}
		}
		if _, dup := a.lines[k]; dup && k != "ssh_key" && k != "dns" && k != "ntp" {
			return nil, bad("given twice (first on line %d)", a.lines[k])
		}
		a.lines[k] = n
		switch k {
		case "disk", "disk.path":
			if !strings.HasPrefix(v, "/dev/") && strings.Contains(v, "/") || v == "" {
				return nil, bad("want a device such as /dev/sda")
			}
			a.Disk.Path = v
		case "disk.serial":
			a.Disk.Serial = v
		case "disk.model":
			if _, err := path.Match(v, ""); err != nil {
				return nil, bad("bad pattern: %v", err)
			}
			a.Disk.Model = v
		case "disk.min_size", "disk.max_size":
			s, err := ParseSize(v)
			if err != nil {
				return nil, bad("%v", err)
			}
			if k == "disk.min_size" {
				a.Disk.MinSize = s
			} else {
				a.Disk.MaxSize = s
			}
		case "overwrite":
			b, err := parseBool(v)
			if err != nil {
				return nil, bad("%v", err)
			}
			a.Overwrite = b
		case "root_password_hash":
			if _, err := bcrypt.Cost([]byte(v)); err != nil {
				return nil, bad("not a bcrypt hash ($2a$/$2b$/$2y$...): give the hash, never the password (e.g. `htpasswd -nbBC 10 root PASSWORD | cut -d: -f2`)")
			}
			a.PasswordHash = v
		case "root_password":
			return nil, bad("a clear-text password is refused: give root_password_hash (bcrypt)")
		case "hostname":
			if !netconf.ValidHostname(v) {
				return nil, bad("%q is not a valid host name", v)
			}
			a.Hostname = v
		case "network":
			switch v {
			case netconf.ModeDHCP, netconf.ModeStatic:
				a.Network.Mode = v
			default:
				return nil, bad("want dhcp or static, not %q", v)
			}
		case "nic":
			a.Network.NIC = v
		case "vlan":
			id, err := strconv.Atoi(v)
			if err != nil {
				return nil, bad("%q is not a VLAN id", v)
			}
			a.Network.VLAN = id
		case "address":
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, bad("want ADDRESS/PREFIX, e.g. 192.0.2.10/24")
			}
			a.Network.Address = p
		case "gateway":
			g, err := netip.ParseAddr(v)
			if err != nil {
				return nil, bad("%q is not an IP address", v)
			}
			a.Network.Gateway = g
		case "dns":
			for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
				d, err := netip.ParseAddr(f)
				if err != nil {
					return nil, bad("%q is not an IP address", f)
				}
				a.Network.DNS = append(a.Network.DNS, d)
			}
		case "search":
			a.Network.Search = strings.Fields(strings.ReplaceAll(v, ",", " "))
		case "ntp":
			for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
				if !netconf.ValidHostname(f) {
					if _, err := netip.ParseAddr(f); err != nil {
						return nil, bad("%q is neither a host name nor an IP address", f)
					}
				}
				a.NTP = append(a.NTP, f)
			}
		case "ssh_key":
			if f := strings.Fields(v); len(f) < 2 || !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") {
				return nil, bad("want an OpenSSH public key line (ssh-ed25519 AAAA... comment)")
			}
			a.SSHKeys = append(a.SSHKeys, v)
		case "after":
			if v != "poweroff" && v != "reboot" {
				return nil, bad("want poweroff or reboot, not %q", v)
			}
			a.After = v
		default:
			return nil, bad("unknown key")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &LineError{Line: n + 1, Problem: err.Error()}
	}
	if a.PasswordHash == "" {
		return nil, &LineError{Problem: "root_password_hash is required"}
	}
	if a.Network.Mode == netconf.ModeStatic && !a.Network.Address.IsValid() {
		return nil, &LineError{Line: a.lines["network"], Key: "network", Problem: "static needs an address = ADDRESS/PREFIX line"}
	}
	if a.Network.Mode == netconf.ModeDHCP {
		for _, k := range []string{"address", "gateway"} {
			if l := a.lines[k]; l > 0 {
				return nil, &LineError{Line: l, Key: k, Problem: "only with network = static"}
			}
		}
	}
	a.Network.Hostname = a.Hostname
	if err := a.Network.Validate(); err != nil {
		// Name the line of the first field at fault.
		line, key := 0, ""
		if p, ok := err.(netconf.Problems); ok && len(p) > 0 {
			key = p[0].Field
			line = a.lines[key]
		}
		return nil, &LineError{Line: line, Key: key, Problem: err.Error()}
	}
	return a, nil
}
