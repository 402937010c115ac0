package dcui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// resetScreen is Reset System Configuration: typing RESET asks the API to
// forget the host's configuration (VMs kept) and restart.
type resetScreen struct {
	confirm field
}

func (s *resetScreen) open(*Model, screen) tea.Cmd {
	s.confirm.value = ""
	return nil
}

func (s *resetScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch k.String() {
	case "esc":
		return m.goTo(scrMenu)
	case "enter":
		if s.confirm.value != "RESET" {
			m.problem = "Type RESET in capital letters to confirm."
			return nil
		}
		m.scr, m.busy = scrBusy, "Resetting the configuration and restarting..."
		h, name := m.d.API, m.facts.host.Hostname
		return within(30*time.Second, func(ctx context.Context) tea.Msg {
			return doneMsg{"Reset System Configuration", h.ResetConfig(ctx, name), "The configuration is reset; the host is restarting."}
		})
	}
	s.confirm.key(k)
	return nil
}

func (s *resetScreen) view(m *Model) (string, []string, string) {
	b := []string{}
	b = append(b, indent("  ", wrap("This removes the host's configuration: the management network, the host name, the root password, lockdown mode and API tokens; then the host restarts as on its first boot. Virtual machines and their disks on the datastores are KEPT.", m.w-4))...)
	b = append(b, "", "  Type RESET to confirm: "+s.confirm.view(10, true))
	b = append(b, m.problemLines()...)
	return "Reset System Configuration", b, "<Enter> Reset and restart  <Esc> Cancel"
}
