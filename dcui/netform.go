package dcui

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// netForm is Configure Management Network's form.
type netForm struct {
	nics   []api.HostNIC
	nic    int // index in nics; -1: first with a link (automatic)
	fields []field
	focus  int
	probs  []string
}

// The form's rows.
const (
	fNIC = iota
	fVLAN
	fMode
	fAddr
	fMask
	fGW
	fIPv6
	fIPv6Addr
	fDNS
	fSearch
	fHost
	fCount
)

var fieldNames = [fCount]string{"Uplink NIC", "VLAN ID", "IPv4", "IPv4 address", "Subnet mask", "Default gateway",
	"IPv6", "IPv6 address", "DNS servers", "Search domains", "Hostname"}

// IPv6 modes (api.NetworkConfig.IPv6).
const (
	ipv6Auto   = "auto"
	ipv6Static = "static"
	ipv6Off    = "off"
)

// choice rows and their options.
var choices = map[int][]string{
	fMode: {api.NetModeDHCP, api.NetModeStatic},
	fIPv6: {ipv6Auto, ipv6Static, ipv6Off},
}

func newNetForm(c api.NetworkConfig, nics []api.HostNIC) netForm {
	f := netForm{nics: nics, nic: -1, fields: make([]field, fCount)}
	for i, n := range nics {
		if n.Name == c.NIC {
			f.nic = i
		}
	}
	if c.NIC != "" && f.nic < 0 {
		f.nics = append(f.nics, api.HostNIC{Name: c.NIC})
		f.nic = len(f.nics) - 1
	}
	if c.VLAN > 0 {
		f.fields[fVLAN].value = strconv.Itoa(c.VLAN)
	}
	f.fields[fMode].value = c.Mode
	if c.Mode == "" {
		f.fields[fMode].value = api.NetModeDHCP
	}
	if p, err := netip.ParsePrefix(c.Address); err == nil {
		f.fields[fAddr].value = p.Addr().String()
		f.fields[fMask].value = api.NetmaskString(p.Bits())
	}
	f.fields[fGW].value = c.Gateway
	f.fields[fIPv6].value = c.IPv6
	if c.IPv6 == "" {
		f.fields[fIPv6].value = ipv6Auto
	}
	f.fields[fIPv6Addr].value = c.IPv6Address
	f.fields[fDNS].value = strings.Join(c.DNS, ", ")
	f.fields[fSearch].value = strings.Join(c.Search, ", ")
	f.fields[fHost].value = c.Hostname
	return f
}

// enabled reports whether row i is editable under the current choices.
func (f netForm) enabled(i int) bool {
	switch i {
	case fAddr, fMask, fGW:
		return f.fields[fMode].value == api.NetModeStatic
	case fIPv6Addr:
		return f.fields[fIPv6].value == ipv6Static
	}
	return true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, p)
	}
	return out
}

// rowOf is the form's row of each field the API names.
var rowOf = map[string]int{"nic": fNIC, "vlan": fVLAN, "mode": fMode, "address": fAddr, "netmask": fMask,
	"gateway": fGW, "ipv6": fIPv6, "ipv6_address": fIPv6Addr, "dns": fDNS, "search": fSearch, "hostname": fHost}

// config reads the form into the API's configuration; the problems are
// what the form itself can tell (a VLAN that is no number, a netmask):
// the rest the API checks, naming the field (apiProblems).
func (f netForm) config() (api.NetworkConfig, []string) {
	var c api.NetworkConfig
	var probs []string
	bad := func(row int, format string, a ...any) {
		probs = append(probs, fieldNames[row]+": "+fmt.Sprintf(format, a...))
	}
	if f.nic >= 0 && f.nic < len(f.nics) {
		c.NIC = f.nics[f.nic].Name
	}
	if v := strings.TrimSpace(f.fields[fVLAN].value); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			bad(fVLAN, "%q is not a number", v)
		}
		c.VLAN = n
	}
	c.Mode = f.fields[fMode].value
	if c.Mode == api.NetModeStatic {
		a := strings.TrimSpace(f.fields[fAddr].value)
		if _, err := netip.ParseAddr(a); err != nil {
			bad(fAddr, "%q is not an IPv4 address", f.fields[fAddr].value)
		}
		bits, err := api.ParseNetmask(f.fields[fMask].value)
		if err != nil {
			bad(fMask, "%v", err)
		}
		if a != "" && bits > 0 {
			c.Address = a + "/" + strconv.Itoa(bits)
		}
		c.Gateway = strings.TrimSpace(f.fields[fGW].value)
	}
	c.IPv6 = f.fields[fIPv6].value
	if c.IPv6 == ipv6Static {
		c.IPv6Address = strings.TrimSpace(f.fields[fIPv6Addr].value)
		if _, err := netip.ParsePrefix(c.IPv6Address); err != nil {
			bad(fIPv6Addr, "want an IPv6 address with prefix length, e.g. 2001:db8::10/64")
		}
	}
	c.DNS = splitList(f.fields[fDNS].value)
	c.Search = splitList(f.fields[fSearch].value)
	c.Hostname = strings.TrimSpace(f.fields[fHost].value)
	return c, probs
}

// apiProblems are the API's refusal of the form's configuration, each on
// its row.
func (f netForm) apiProblems(probs []api.FieldProblem) []string {
	var out []string
	for _, p := range probs {
		row, ok := rowOf[strings.TrimPrefix(p.Field, "config.")]
		name := p.Field
		if ok {
			name = fieldNames[row]
		}
		out = append(out, name+": "+p.Message)
	}
	return out
}

// key moves between the rows, turns a choice or edits a row; Enter
// and Esc are the screen's (networkScreens).
func (f *netForm) key(k tea.KeyMsg) {
	key := k.String()
	move := func(dir int) {
		for i := 0; i < fCount; i++ {
			f.focus = (f.focus + dir + fCount) % fCount
			if f.enabled(f.focus) {
				return
			}
		}
	}
	switch key {
	case "up", "shift+tab":
		move(-1)
	case "down", "tab":
		move(1)
	case "left", "right", " ":
		dir := 1
		if key == "left" {
			dir = -1
		}
		if f.focus == fNIC {
			n := len(f.nics) + 1 // plus "automatic"
			f.nic = (f.nic+1+dir+n)%n - 1
		} else if opts, ok := choices[f.focus]; ok {
			i := 0
			for j, o := range opts {
				if o == f.fields[f.focus].value {
					i = j
				}
			}
			f.fields[f.focus].value = opts[(i+dir+len(opts))%len(opts)]
		} else if key == " " {
			f.fields[f.focus].key(k)
		}
	default:
		if _, ok := choices[f.focus]; !ok && f.focus != fNIC {
			f.fields[f.focus].key(k)
		}
	}
}

// view is Configure Management Network's screen: the NICs, the rows, and
// the problems (the form's or the API's) or the note.
func (f netForm) view(w int, info string) (string, []string, string) {
	var b []string
	if len(f.fields) < fCount {
		return "Configure Management Network", []string{"  Reading the configuration..."}, "<Esc> Cancel"
	}
	if len(f.nics) == 0 {
		b = append(b, "  No NIC found.")
	} else {
		b = append(b, "    NIC        LINK  MAC                DRIVER        SPEED")
		for i, n := range f.nics {
			mark := " "
			if i == f.nic {
				mark = "*"
			}
			link := "down"
			if n.Link {
				link = "UP"
			}
			speed := "-"
			if n.SpeedMbps > 0 {
				speed = fmt.Sprintf("%d Mb/s", n.SpeedMbps)
			}
			b = append(b, truncate(fmt.Sprintf("  %s %-10s %-5s %-18s %-13s %s", mark, n.Name, link, orDash(n.MAC), orDash(n.Driver), speed), w))
		}
	}
	b = append(b, "")
	for i := 0; i < fCount; i++ {
		var v string
		switch {
		case i == fNIC:
			v = "< automatic: first NIC with a link >"
			if f.nic >= 0 && f.nic < len(f.nics) {
				v = "< " + f.nics[f.nic].Name + " >"
			}
		case choices[i] != nil:
			v = "< " + f.fields[i].value + " >"
		case !f.enabled(i):
			v = "(not used)"
		default:
			v = f.fields[i].view(40, i == f.focus)
		}
		line := fmt.Sprintf("  %s %-16s %s", cursor(i == f.focus), fieldNames[i]+":", v)
		if i == f.focus {
			line = fmt.Sprintf("  %s %s %s", cursor(true), selStyle.Render(fmt.Sprintf("%-16s", fieldNames[i]+":")), v)
		}
		b = append(b, line)
	}
	if len(f.probs) > 0 {
		b = append(b, "")
		for _, p := range f.probs {
			b = append(b, indent("  ", wrap("ERROR: "+p, w-4))...)
		}
	} else if info != "" {
		b = append(b, "", "  "+truncate(info, w-4))
	}
	return "Configure Management Network", b, "<Up/Down> Field  <Left/Right> Choose  <Enter> Apply  <Esc> Cancel"
}
