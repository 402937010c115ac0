package dcui

import (
	"context"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// lockdownScreen is Lockdown Mode: its state from the API, and Enter
// turning it the other way through the API.
type lockdownScreen struct {
	on    bool
	known bool
}

// lockMsg is lockdown's state as the API says it (read or set).
type lockMsg struct {
	on  bool
	err error
}

func (s *lockdownScreen) open(m *Model, _ screen) tea.Cmd {
	h := m.d.API
	return within(10*time.Second, func(ctx context.Context) tea.Msg {
		st, err := h.Lockdown(ctx)
		return lockMsg{st.Enabled, err}
	})
}

func (s *lockdownScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case lockMsg:
		if msg.err != nil {
			m.problem = msg.err.Error()
		} else {
			s.on, s.known = msg.on, true
		}
		return nil
	case tea.KeyMsg:
		switch msg.String() {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", " ":
			if !s.known {
				return nil
			}
			h, on := m.d.API, !s.on
			return within(10*time.Second, func(ctx context.Context) tea.Msg {
				st, err := h.SetLockdown(ctx, api.LockdownRequest{Enabled: on})
				return lockMsg{st.Enabled, err}
			})
		}
	}
	return nil
}

func (s *lockdownScreen) view(m *Model) (string, []string, string) {
	state := "(reading...)"
	action := ""
	if s.known {
		state = map[bool]string{true: "ON", false: "OFF"}[s.on]
		action = map[bool]string{true: "<Enter> Turn lockdown OFF", false: "<Enter> Turn lockdown ON"}[s.on]
	}
	b := []string{"  Lockdown mode: " + state, ""}
	b = append(b, indent("  ", wrap("When lockdown mode is on, the management API refuses every change to the host and its VMs; only this console can change anything. Reading stays allowed.", m.w-4))...)
	b = append(b, m.problemLines()...)
	return "Lockdown Mode", b, strings.TrimSpace(action + "  <Esc> Back")
}
