package dcui

import (
	"context"
	"errors"
	"net/http"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/client"
)

// loginScreen is Authentication Required: the root password, checked by
// the API, before Customize System or Shut Down/Restart (m.after).
type loginScreen struct {
	pw field
}

func (s *loginScreen) open(*Model, screen) tea.Cmd {
	s.pw.value = ""
	return nil
}

func (s *loginScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch k.String() {
	case "esc":
		m.scr = scrHome
		return nil
	case "enter":
		if s.pw.value == "" {
			return nil
		}
		h, pw := m.d.API, s.pw.value
		m.busy = "Checking the password..."
		return within(30*time.Second, func(ctx context.Context) tea.Msg {
			return authMsg{h.VerifyPassword(ctx, pw)}
		})
	}
	s.pw.key(k)
	return nil
}

// onAuth takes the API's verdict on the password typed.
func (s *loginScreen) onAuth(m *Model, msg authMsg) tea.Cmd {
	if msg.err != nil {
		s.pw.value = ""
		var e *client.Error
		if errors.As(msg.err, &e) && e.Status == http.StatusUnauthorized {
			m.problem = "Wrong password."
		} else if errors.As(msg.err, &e) {
			m.problem = e.Problem.Detail
		} else {
			m.problem = msg.err.Error()
		}
		return nil
	}
	m.authed = true
	return m.goTo(m.after)
}

func (s *loginScreen) view(m *Model) (string, []string, string) {
	b := []string{
		"  Authentication required to " + map[bool]string{true: "shut down or restart", false: "customize"}[m.after == scrPower] + " " + orDash(m.facts.host.Hostname) + ".",
		"",
		"  Login name: root",
		"  Password:   " + s.pw.view(30, true),
	}
	b = append(b, m.problemLines()...)
	return "Authentication Required", b, "<Enter> OK  <Esc> Cancel"
}
