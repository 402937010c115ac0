package dcui

import (
	tea "github.com/charmbracelet/bubbletea"
)

// messageScreen is the screen that says how an action ended (Enter or Esc
// goes back), and the busy screen (Please Wait, the busy line under it)
// while one runs.
type messageScreen struct {
	title, text string
	back        screen
}

// doneMsg is how an action ended, said on the message screen; it leads
// back to the menu.
type doneMsg struct {
	title string
	err   error
	text  string
}

func (s *messageScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case doneMsg:
		m.busy = ""
		if msg.err != nil {
			return m.message(msg.title, "FAILED: "+msg.err.Error(), scrMenu)
		}
		return m.message(msg.title, msg.text, scrMenu)
	case tea.KeyMsg:
		if m.scr != scrMessage {
			return nil // busy: no key does anything
		}
		if key := msg.String(); key == "esc" || key == "enter" {
			if s.back == scrHome || !m.authed {
				m.scr = scrHome
				return m.refresh()
			}
			return m.goTo(s.back)
		}
	}
	return nil
}

func (s *messageScreen) view(m *Model) (string, []string, string) {
	if m.scr == scrBusy {
		return "Please Wait", nil, ""
	}
	return s.title, indent("  ", wrap(s.text, m.w-4)), "<Enter/Esc> OK"
}
