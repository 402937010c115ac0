package dcui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// Items of Troubleshooting Options, in order.
var troubleItems = []string{"Restart Management Agents", "Local Shell", sshItem}

// troubleScreen is Troubleshooting Options: restart the management
// agents (through the API), a root shell on this console (the one thing
// the DCUI runs itself), and SSH on or off (ssh.go).
type troubleScreen struct {
	sel int
}

// execDoneMsg: the shell ended.
type execDoneMsg struct{ err error }

func (s *troubleScreen) open(m *Model, _ screen) tea.Cmd {
	return m.refresh() // SSH's item says whether it is on
}

func (s *troubleScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case execDoneMsg:
		m.lastKey = m.d.Now()
		if msg.err != nil {
			return m.message("Troubleshooting Options", "The shell ended: "+msg.err.Error(), scrTrouble)
		}
		return tea.ClearScreen
	case tea.KeyMsg:
		switch msg.String() {
		case "esc":
			return m.goTo(scrMenu)
		case "up", "k":
			s.sel = (s.sel + len(troubleItems) - 1) % len(troubleItems)
		case "down", "j", "tab":
			s.sel = (s.sel + 1) % len(troubleItems)
		case "enter":
			if troubleItems[s.sel] == sshItem {
				return m.ssh.ask(m)
			}
			if s.sel == 0 {
				m.scr, m.busy = scrBusy, "Restarting the management agents..."
				h := m.d.API
				return within(10*time.Second, func(ctx context.Context) tea.Msg {
					return doneMsg{"Restart Management Agents", h.RestartServices(ctx, api.ServiceMgmtd),
						"mgmtd is being restarted; its supervisor starts it again within seconds."}
				})
			}
			if m.d.Shell == nil {
				return m.message("Local Shell", "No shell on this host.", scrTrouble)
			}
			return tea.Exec(m.d.Shell(), func(err error) tea.Msg { return execDoneMsg{err} })
		}
	}
	return nil
}

func (s *troubleScreen) view(m *Model) (string, []string, string) {
	b := []string{
		menuLine(troubleItems[0]+" (mgmtd)", s.sel == 0, m.w),
		menuLine(troubleItems[1]+" (ends after "+spelled(m.d.ShellIdle)+" without input)", s.sel == 1, m.w),
		menuLine(m.sshItemLine(), s.sel == 2, m.w),
		"",
	}
	b = append(b, indent("  ", wrap([]string{
		"Restarting the agents drops API sessions; VMs keep running.",
		"A root shell on this console. Type exit to come back here.",
		m.sshItemHelp(),
	}[s.sel], m.w-4))...)
	return "Troubleshooting Options", b, "<Up/Down> Select  <Enter> Run  <Esc> Back"
}
