package dcui

import (
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/skip2/go-qrcode"

	"github.com/plinth/plinth/api"
)

// homeScreen is the home screen: the host's facts (the root's), the
// management addresses and the certificate's fingerprint, with a QR code
// of both on a large terminal. F2 leads to Customize System, F12 to Shut
// Down/Restart, both after the login.
type homeScreen struct{}

func (homeScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	key := k.String()
	m.info = ""
	switch {
	case isF2(key) || key == "enter" || key == "c":
		return m.authThen(scrMenu)
	case isF12(key) || key == "s":
		return m.authThen(scrPower)
	case key == "r":
		return m.refresh()
	}
	return nil
}

func (homeScreen) view(m *Model) (string, []string, string) {
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
	urls := managementURLs(f)
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
	if q := homeQR(m); q != nil {
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

// managementURLs are https://ADDRESS/ for each management address.
func managementURLs(f facts) []string {
	var out []string
	for _, a := range f.addrs() {
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		out = append(out, "https://"+a+"/")
	}
	return out
}

// homeQR is the QR code of the first management URL and the fingerprint,
// two modules a character (half blocks), or nil.
func homeQR(m *Model) []string {
	urls := managementURLs(m.facts)
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
