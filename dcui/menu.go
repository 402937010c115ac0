package dcui

import (
	tea "github.com/charmbracelet/bubbletea"
)

// Menu items of Customize System, in order.
var menuItems = []string{
	"Change Root Password",
	"Lockdown Mode",
	"Configure Management Network",
	"Restart Management Network",
	"Test Management Network",
	"Network Restore Options",
	"Troubleshooting Options",
	"View System Logs",
	"View Support Information",
	"Reset System Configuration",
	"Install Plinth to Disk",
}

// menuScreens are the screens the items open.
var menuScreens = []screen{scrChangePassword, scrLockdown, scrNet, scrNetRestart, scrNetTest,
	scrNetRestore, scrTrouble, scrLogsPick, scrSupport, scrReset, scrInstall}

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
	"Write Plinth and this host's configuration to a disk, to boot from it.",
}

// menuScreen is System Customization, the menu behind the login; Esc
// logs out.
type menuScreen struct {
	sel int
}

func (s *menuScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch key := k.String(); key {
	case "esc":
		m.authed = false
		m.scr = scrHome
		return m.refresh()
	case "up", "k":
		s.sel = (s.sel + len(menuItems) - 1) % len(menuItems)
	case "down", "j", "tab":
		s.sel = (s.sel + 1) % len(menuItems)
	case "enter":
		return m.goTo(menuScreens[s.sel])
	default:
		if isF12(key) {
			return m.goTo(scrPower)
		}
	}
	return nil
}

func (s *menuScreen) view(m *Model) (string, []string, string) {
	var b []string
	for i, it := range menuItems {
		b = append(b, menuLine(it, i == s.sel, m.w))
	}
	b = append(b, "", "  "+menuHelp[s.sel])
	b = append(b, m.problemLines()...)
	return "System Customization", b, "<Up/Down> Select  <Enter> Open  <F12/Esc 0> Power  <Esc> Log Out"
}
