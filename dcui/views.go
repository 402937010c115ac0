package dcui

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/skip2/go-qrcode"

	"github.com/plinth/plinth/api"
)

// Styles: bold and reverse video only, and every state is also said in
// words, so nothing depends on colour (a serial terminal has none).
var (
	titleStyle = lipgloss.NewStyle().Reverse(true).Bold(true)
	selStyle   = lipgloss.NewStyle().Reverse(true)
	boldStyle  = lipgloss.NewStyle().Bold(true)
)

// View draws the current screen: a title bar, the body and a key-hint line
// at the bottom, exactly the terminal's size.
func (m Model) View() string {
	title, body, hints := m.screenView()
	w, h := m.w, m.h
	var out []string
	out = append(out, titleStyle.Render(pad(" "+title, w)))
	out = append(out, "")
	if m.busy != "" {
		body = append(body, "", "  "+m.busy)
	}
	room := h - 3
	if len(body) > room {
		body = body[:room]
	}
	out = append(out, body...)
	for len(out) < h-1 {
		out = append(out, "")
	}
	out = append(out, selStyle.Render(pad(" "+hints, w)))
	for i, l := range out {
		if lipgloss.Width(l) > w {
			out[i] = truncate(l, w)
		}
	}
	return strings.Join(out, "\n")
}

func pad(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return truncate(s, w)
}

func truncate(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		return string(r[:w])
	}
	return s
}

// wrap breaks s into lines of at most w columns at spaces.
func wrap(s string, w int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > w {
			out = append(out, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
		for len(line) > w {
			out = append(out, line[:w])
			line = line[w:]
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

func indent(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}

func (m Model) problemLines() []string {
	var out []string
	if m.problem != "" {
		out = append(out, "")
		out = append(out, indent("  ", wrap("ERROR: "+m.problem, m.w-4))...)
	}
	if m.info != "" {
		out = append(out, "")
		out = append(out, indent("  ", wrap(m.info, m.w-4))...)
	}
	return out
}

func (m Model) bodyHeight() int { return m.h - 3 }

func (m Model) screenView() (title string, body []string, hints string) {
	switch m.scr {
	case scrHome:
		return m.homeView()
	case scrSetPassword, scrChangePassword:
		t := "Change Root Password"
		var b []string
		if m.scr == scrSetPassword {
			t = "Set Root Password (first boot)"
			b = append(b, "  This host has no root password yet. Set it before anything else:", "  it logs in here, on the console, and to the management API.", "")
		}
		b = append(b, indent("  ", wrap(fmt.Sprintf("At least %d characters mixing three of: lower case, upper case, digits, other characters; not containing \"root\".", 8), m.w-4))...)
		b = append(b, "",
			fmt.Sprintf("  %s New password:     %s", cursor(m.pwFocus == 0), m.pw[0].view(30, m.pwFocus == 0)),
			fmt.Sprintf("  %s Confirm password: %s", cursor(m.pwFocus == 1), m.pw[1].view(30, m.pwFocus == 1)))
		b = append(b, m.problemLines()...)
		return t, b, "<Tab> Next field  <Enter> OK  <Esc> Cancel"
	case scrLogin:
		b := []string{
			"  Authentication required to " + map[bool]string{true: "shut down or restart", false: "customize"}[m.after == scrPower] + " " + orDash(m.facts.host.Hostname) + ".",
			"",
			"  Login name: root",
			"  Password:   " + m.pw[0].view(30, true),
		}
		b = append(b, m.problemLines()...)
		return "Authentication Required", b, "<Enter> OK  <Esc> Cancel"
	case scrMenu:
		var b []string
		for i, it := range menuItems {
			b = append(b, menuLine(it, i == m.menuSel, m.w))
		}
		b = append(b, "", "  "+menuHelp[m.menuSel])
		b = append(b, m.problemLines()...)
		return "System Customization", b, "<Up/Down> Select  <Enter> Open  <F12/Esc 0> Power  <Esc> Log Out"
	case scrLockdown:
		state := "(reading...)"
		action := ""
		if m.lockKnown {
			state = map[bool]string{true: "ON", false: "OFF"}[m.lockdown]
			action = map[bool]string{true: "<Enter> Turn lockdown OFF", false: "<Enter> Turn lockdown ON"}[m.lockdown]
		}
		b := []string{"  Lockdown mode: " + state, ""}
		b = append(b, indent("  ", wrap("When lockdown mode is on, the management API refuses every change to the host and its VMs; only this console can change anything. Reading stays allowed.", m.w-4))...)
		b = append(b, m.problemLines()...)
		return "Lockdown Mode", b, strings.TrimSpace(action + "  <Esc> Back")
	case scrNet:
		return m.netView()
	case scrNetConfirm:
		left := max(0, int(m.deadline.Sub(m.d.Now()).Round(time.Second)/time.Second))
		ch := m.netCh
		b := []string{
			fmt.Sprintf("  The new configuration is in effect: %s on %s (%s).", orNone(ch.Address), orNone(ch.Interface), ch.Config.Mode),
			"",
			"  Can you still reach the host at its new address? Keep this configuration?",
			"",
			boldStyle.Render(fmt.Sprintf("  It is rolled back by itself in %d s unless you keep it.", left)),
			"",
			"  <Y> Keep and save it       <N> Roll back now",
		}
		if ch.Address != "" {
			b = append(b, "", "  Or keep it through the API from the new address:",
				"    POST https://"+prefixAddr(ch.Address)+api.Mgmtd(api.HostNetConfirmPath))
		}
		b = append(b, m.problemLines()...)
		return "Confirm Management Network", b, "<Y> Keep  <N/Esc> Roll back"
	case scrNetRestart:
		b := []string{"  Restart the management network? The saved configuration is applied again:", ""}
		b = append(b, indent("    ", describeNet(m.netSaved))...)
		b = append(b, "", "  Connections to the management API may drop for a moment.")
		b = append(b, m.problemLines()...)
		return "Restart Management Network", b, "<Enter> Restart  <Esc> Cancel"
	case scrNetRestore:
		b := []string{"  Restore the management network to its default: DHCP on the first NIC", "  with a link, no VLAN. Now:", ""}
		b = append(b, indent("    ", describeNet(m.netSaved))...)
		b = append(b, "", fmt.Sprintf("  Like any network change it is rolled back unless kept within %s.", m.d.ConfirmTimeout))
		return "Network Restore Options", b, "<Enter> Restore DHCP  <Esc> Cancel"
	case scrNetTest:
		b := []string{"  Pinging the gateway and the DNS servers, resolving the host name:", ""}
		for _, c := range m.checks {
			st := "OK    "
			if !c.OK {
				st = "FAILED"
			}
			b = append(b, truncate(fmt.Sprintf("  %s  %-30s %s", st, c.What, c.Info), m.w))
		}
		return "Test Management Network", b, "<Esc> Back"
	case scrLogsPick:
		b := []string{"  Which log?", ""}
		for i, l := range m.logs {
			b = append(b, menuLine(fmt.Sprintf("%-10s %s", l.Name, l.Description), i == m.logSel, m.w))
		}
		return "View System Logs", b, "<Up/Down> Select  <Enter> View  <Esc> Back"
	case scrLogView:
		return m.logViewLines()
	case scrSupport:
		return m.supportView()
	case scrReset:
		b := []string{}
		b = append(b, indent("  ", wrap("This removes the host's configuration: the management network, the host name, the root password, lockdown mode and API tokens; then the host restarts as on its first boot. Virtual machines and their disks on the datastores are KEPT.", m.w-4))...)
		b = append(b, "", "  Type RESET to confirm: "+m.reset.view(10, true))
		b = append(b, m.problemLines()...)
		return "Reset System Configuration", b, "<Enter> Reset and restart  <Esc> Cancel"
	case scrTrouble:
		b := []string{
			menuLine(troubleItems[0]+" (mgmtd)", m.troubleSel == 0, m.w),
			menuLine(troubleItems[1]+" (ends after "+spelled(m.d.ShellIdle)+" without input)", m.troubleSel == 1, m.w),
			menuLine(m.sshItemLine(), m.troubleSel == 2, m.w),
			"",
		}
		b = append(b, indent("  ", wrap([]string{
			"Restarting the agents drops API sessions; VMs keep running.",
			"A root shell on this console. Type exit to come back here.",
			m.sshItemHelp(),
		}[m.troubleSel], m.w-4))...)
		return "Troubleshooting Options", b, "<Up/Down> Select  <Enter> Run  <Esc> Back"
	case scrPower:
		return m.powerView()
	case scrMessage:
		return m.msgTitle, indent("  ", wrap(m.msgText, m.w-4)), "<Enter/Esc> OK"
	case scrBusy:
		return "Please Wait", nil, ""
	case scrInstall, scrInstallConfirm:
		return m.installView()
	case scrSSH:
		return m.sshConfirmView()
	}
	return "", nil, ""
}

var menuHelp = []string{
	"Change the root password (console and management API).",
	"Refuse all changes through the management API.",
	"Uplink NIC, VLAN, IPv4/IPv6 addresses, DNS, host name.",
	"Apply the saved management network configuration again.",
	"Ping the gateway and DNS servers; resolve the host name.",
	"Back to DHCP on the first NIC with a link.",
	"Restart the management agents; a local shell; SSH on or off.",
	"Boot log, vmkernel and mgmtd logs.",
	"Serial number, BIOS, version, certificate, time, remote logging, SSH.",
	"Forget the configuration (VMs are kept) and restart.",
}

func cursor(on bool) string {
	if on {
		return ">"
	}
	return " "
}

func menuLine(s string, sel bool, w int) string {
	if sel {
		return "> " + selStyle.Render(pad(s, min(w-4, 60)))
	}
	return "  " + s
}

// spelled says d in words: "5 minutes", "1 minute", "2s".
func spelled(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "1 minute"
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(b uint64) string {
	const gib = 1 << 30
	if b >= gib {
		return fmt.Sprintf("%.1f GiB", float64(b)/gib)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// managementURLs are https://ADDRESS/ for each management address.
func (m Model) managementURLs() []string {
	var out []string
	for _, a := range m.facts.addrs() {
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		out = append(out, "https://"+a+"/")
	}
	return out
}

// fingerprintLines splits the 95-character fingerprint in two.
func fingerprintLines(fp string) []string {
	if len(fp) > 60 {
		return []string{fp[:48], fp[48:]}
	}
	return []string{orDash(fp)}
}

func (m Model) homeView() (string, []string, string) {
	f := m.facts
	h := f.host
	title := "Plinth " + m.d.Version + " - bare-metal hypervisor"
	var b []string
	name := h.Hostname
	cw := min(m.w, 80) // the facts column; a QR code may go right of it
	if f.hostErr != nil {
		b = append(b, indent("  ", wrap("vmkernel does not answer: "+f.hostErr.Error(), cw-4))...)
	}
	b = append(b, "  Host name:  "+boldStyle.Render(orDash(name)))
	switch bm := f.settings.BootMode; bm.Mode {
	case api.BootStateless:
		b = append(b, "  Mode:       "+boldStyle.Render("STATELESS - configuration from the network at every boot"))
		b = append(b, indent("    ", wrap("from "+bm.Source, cw-6))...)
	case api.BootLive:
		b = append(b, "  Mode:       "+boldStyle.Render("LIVE - configuration in RAM, LOST at power-off"))
		b = append(b, indent("    ", wrap(bm.Reason, cw-6))...)
	}
	if h.CPUCount > 0 {
		b = append(b, fmt.Sprintf("  CPU:        %d x %s", h.CPUCount, orDash(h.CPUModel)))
		b = append(b, "  Memory:     "+humanBytes(h.MemoryBytes))
	}
	vms := fmt.Sprintf("%d running, %d total", f.vmsRunning, f.vmsTotal)
	if f.vmsErr != nil {
		vms = "unknown (" + f.vmsErr.Error() + ")"
	}
	b = append(b, "  VMs:        "+vms)
	b = append(b, m.homeStatusLines(cw)...)
	b = append(b, upgradeLines(f.upgrade, cw)...)
	switch h.Acceleration.Mode {
	case api.AccelKVM:
		b = append(b, "  Virtualization: KVM (hardware)")
	case api.AccelTCG:
		b = append(b, "  Virtualization: "+boldStyle.Render("TCG - software emulation, VMs run SLOWLY"))
		b = append(b, indent("    ", wrap("WARNING: no usable hardware virtualization: "+h.Acceleration.Reason, cw-6))...)
	}
	b = append(b, "")
	urls := m.managementURLs()
	if len(urls) == 0 {
		b = append(b, "  No management address yet: configure the network (F2).")
	} else {
		b = append(b, "  Manage this host at:")
		b = append(b, indent("    ", urls)...)
	}
	if p := f.settings.Network.Live.Problem; p != "" {
		b = append(b, indent("    ", wrap("NETWORK PROBLEM: "+p, cw-6))...)
	}
	b = append(b, "  TLS certificate SHA-256 fingerprint:")
	b = append(b, indent("    ", fingerprintLines(f.settings.Certificate.Fingerprint))...)
	if !f.passwordSet() {
		b = append(b, "", "  "+boldStyle.Render("FIRST BOOT: no root password yet. Press F2 (or Enter) to set it."))
	}
	if m.info != "" {
		b = append(b, "", "  "+m.info)
	}
	// The QR code (URL and fingerprint) goes right of the facts when it fits.
	if q := m.qr(); q != nil {
		width := 0
		for _, l := range b {
			width = max(width, lipgloss.Width(l))
		}
		if width+2+lipgloss.Width(q[0]) <= m.w && len(q) <= m.bodyHeight() {
			left := lipgloss.NewStyle().Width(width + 2).Render(strings.Join(b, "\n"))
			b = strings.Split(lipgloss.JoinHorizontal(lipgloss.Top, left, strings.Join(q, "\n")), "\n")
		}
	}
	return title, b, "<F2/Enter> Customize System/View Logs        <F12/S> Shut Down/Restart"
}

// qr is the QR code of the first management URL and the fingerprint, two
// modules a character (half blocks), or nil.
func (m Model) qr() []string {
	urls := m.managementURLs()
	fp := m.facts.settings.Certificate.Fingerprint
	if len(urls) == 0 || fp == "" || m.w < 120 || m.h < 30 {
		return nil
	}
	q, err := qrcode.New(urls[0]+"#sha256="+fp, qrcode.Low)
	if err != nil {
		return nil
	}
	q.DisableBorder = true
	bm := q.Bitmap()
	// A light quiet zone of one module around it.
	n := len(bm) + 2
	at := func(y, x int) bool {
		if y < 1 || x < 1 || y > len(bm) || x > len(bm) {
			return false
		}
		return bm[y-1][x-1]
	}
	var out []string
	for y := 0; y < n; y += 2 {
		var sb strings.Builder
		for x := 0; x < n; x++ {
			top, bot := at(y, x), at(y+1, x)
			// Dark modules are spaces on a light background: drawn as blocks.
			switch {
			case !top && !bot:
				sb.WriteRune('█')
			case !top && bot:
				sb.WriteRune('▀')
			case top && !bot:
				sb.WriteRune('▄')
			default:
				sb.WriteRune(' ')
			}
		}
		out = append(out, sb.String())
	}
	if len(out)+1 > m.bodyHeight() {
		return nil
	}
	return append(out, "Scan to open and pin")
}

func describeNet(c api.NetworkConfig) []string {
	nic := c.NIC
	if nic == "" {
		nic = "first NIC with a link"
	}
	out := []string{"Uplink: " + nic}
	if c.VLAN > 0 {
		out = append(out, fmt.Sprintf("VLAN:   %d", c.VLAN))
	}
	if p, err := netip.ParsePrefix(c.Address); c.Mode == api.NetModeStatic && err == nil {
		out = append(out, fmt.Sprintf("IPv4:   static %s, mask %s, gateway %s", p.Addr(), api.NetmaskString(p.Bits()), orDash(c.Gateway)))
	} else {
		out = append(out, "IPv4:   DHCP")
	}
	if len(c.DNS) > 0 {
		out = append(out, "DNS:    "+strings.Join(c.DNS, ", "))
	}
	if c.Hostname != "" {
		out = append(out, "Name:   "+c.Hostname)
	}
	return out
}

// upgradeLines are the home screen's lines about the system banks: the
// boot bank and the standby's version, an upgrade waiting for its trial,
// and a rollback (said loudly: an upgrade did not come up).
func upgradeLines(u *api.UpgradeStatus, cw int) []string {
	if u == nil || !u.Supported || u.Active == "" {
		return nil
	}
	line := "  Boot bank:  " + u.Active
	for _, b := range u.Banks {
		if b.Name != u.Active && b.Version != "" {
			line += fmt.Sprintf(" (bank %s: %s, %s)", b.Name, b.Version, b.State)
		}
	}
	out := []string{line}
	if p := u.Pending; p != nil {
		out = append(out, indent("    ", wrap(fmt.Sprintf("Upgrade to %s waits in bank %s: it boots on trial at the next restart.", p.ToVersion, p.Bank), cw-6))...)
	}
	if l := u.Last; l != nil && l.Result == api.UpgradeRolledBack {
		out = append(out, "  "+boldStyle.Render("UPGRADE ROLLED BACK: "+l.ToVersion+" did not come up"))
		out = append(out, indent("    ", wrap(l.Reason, cw-6))...)
	}
	return out
}
