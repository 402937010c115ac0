package dcui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/plinth/plinth/api"
)

func (m Model) netView() (string, []string, string) {
	f := m.net
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
			b = append(b, truncate(fmt.Sprintf("  %s %-10s %-5s %-18s %-13s %s", mark, n.Name, link, orDash(n.MAC), orDash(n.Driver), speed), m.w))
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
			b = append(b, indent("  ", wrap("ERROR: "+p, m.w-4))...)
		}
	} else if m.info != "" {
		b = append(b, "", "  "+truncate(m.info, m.w-4))
	}
	return "Configure Management Network", b, "<Up/Down> Field  <Left/Right> Choose  <Enter> Apply  <Esc> Cancel"
}

func (m Model) logViewLines() (string, []string, string) {
	v := m.log
	height := m.bodyHeight() - 2
	v.clamp(height)
	var b []string
	switch {
	case v.err != nil:
		b = append(b, "  Cannot read the "+v.file.Name+" log: "+v.err.Error())
	case !v.loaded:
		b = append(b, "  (reading the log...)")
	case len(v.lines) == 0:
		b = append(b, "  (the log is empty)")
	}
	end := min(v.top+height, len(v.lines))
	for i := v.top; i < end; i++ {
		l := v.lines[i]
		if v.last != "" && strings.Contains(strings.ToLower(l), strings.ToLower(v.last)) {
			b = append(b, truncate("*"+l, m.w))
		} else {
			b = append(b, truncate(" "+l, m.w))
		}
	}
	for len(b) < height {
		b = append(b, "")
	}
	status := fmt.Sprintf(" lines %d-%d of %d", min(v.top+1, len(v.lines)), end, len(v.lines))
	if v.follow {
		status += "  FOLLOWING new lines"
	}
	if !v.loaded {
		status = ""
	}
	if v.last != "" && !v.pending {
		status += "  search: " + v.last + " (* marks matches)"
	}
	if v.note != "" { // first: the line is cut at the screen's width
		status = " " + v.note + " " + status
	}
	if v.searching {
		status = " Search for: " + v.search.view(30, true)
	}
	b = append(b, "", truncate(status, m.w))
	return "Log: " + v.file.Name + " (" + v.file.Description + ")", b, "<Up/Down/PgUp/PgDn> Scroll  </> Search  <n> Next  <F> Follow  <Esc> Back"
}

func (m Model) supportView() (string, []string, string) {
	hw := m.hw
	sys := hw.System
	b := []string{
		"  Product:        Plinth " + m.d.Version,
		"  Kernel:         " + orDash(m.facts.host.Kernel),
		"  QEMU:           " + orDash(m.facts.host.QEMU),
		"  System:         " + orDash(strings.TrimSpace(sys.Vendor+" "+sys.Product)),
		"  Serial number:  " + orDash(sys.Serial),
		"  UUID:           " + orDash(sys.UUID),
		"  BIOS:           " + orDash(strings.TrimSpace(sys.BIOSVendor+" "+sys.BIOSVersion+" "+sys.BIOSDate)),
		"  Boot mode:      " + orDash(sys.BootMode),
		"  TLS certificate SHA-256 fingerprint:",
	}
	b = append(b, indent("    ", fingerprintLines(m.facts.settings.Certificate.Fingerprint))...)
	b = append(b, m.supportStatusLines()...)
	if m.hwErr != nil {
		b = append(b, "", "  "+truncate("Hardware inventory: "+m.hwErr.Error(), m.w-4))
	}
	return "Support Information", b, "<Esc> Back"
}

func (m Model) powerView() (string, []string, string) {
	f := m.facts
	var b []string
	if len(f.running) == 0 {
		b = append(b, "  No VM is running.")
	} else {
		b = append(b, fmt.Sprintf("  WARNING: %d VM(s) running on this host:", len(f.running)))
		for i, n := range f.running {
			if i == 5 {
				b = append(b, fmt.Sprintf("    ... and %d more", len(f.running)-5))
				break
			}
			b = append(b, "    - "+n)
		}
	}
	b = append(b, "")
	box := "[ ]"
	if m.power.gracefully {
		box = "[x]"
	}
	grace := fmt.Sprintf("%s Shut running VMs down gracefully first (ACPI, up to %s each);", box, m.d.VMShutdownWait)
	b = append(b, menuLine(grace, m.power.sel == 0, m.w))
	b = append(b, "      "+map[bool]string{true: "then they are stopped hard if still running.", false: "unticked: running VMs are STOPPED HARD (like pulling the plug)."}[m.power.gracefully])
	b = append(b, "")
	b = append(b, menuLine("Shut Down the host", m.power.sel == 1, m.w))
	b = append(b, menuLine("Restart the host", m.power.sel == 2, m.w))
	b = append(b, m.problemLines()...)
	return "Shut Down/Restart " + orDash(f.host.Hostname), b, "<Up/Down> Select  <Space> Tick  <Enter> Do it  <Esc> Cancel"
}

var _ = lipgloss.Width
var _ = api.AccelKVM
