package dcui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// passwordScreen is Set Root Password (the first boot, before anything
// else) and Change Root Password: the password twice, checked here by the
// API's own rule, then set through the API.
type passwordScreen struct {
	pw    [2]field // password and its confirmation
	focus int
}

func (s *passwordScreen) open(*Model, screen) tea.Cmd {
	s.pw[0].value, s.pw[1].value, s.focus = "", "", 0
	return nil
}

func (s *passwordScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch k.String() {
	case "esc":
		if m.scr == scrSetPassword {
			m.scr = scrHome
			return nil
		}
		return m.goTo(scrMenu)
	case "up", "shift+tab":
		s.focus = 0
	case "down", "tab":
		s.focus = 1
	case "enter":
		if s.focus == 0 {
			if err := api.CheckPassword(api.RootUser, s.pw[0].value); err != nil {
				m.problem = capitalize(err.Error()) + "."
				return nil
			}
			m.problem = ""
			s.focus = 1
			return nil
		}
		if s.pw[0].value != s.pw[1].value {
			m.problem = "The two passwords differ; type them again."
			s.pw[0].value, s.pw[1].value, s.focus = "", "", 0
			return nil
		}
		if err := api.CheckPassword(api.RootUser, s.pw[0].value); err != nil {
			m.problem = capitalize(err.Error()) + "."
			s.focus = 0
			return nil
		}
		h, pw := m.d.API, s.pw[0].value
		m.busy = "Setting the password..."
		return within(30*time.Second, func(ctx context.Context) tea.Msg {
			err := h.SetPassword(ctx, pw)
			var e *client.Error
			if errors.As(err, &e) {
				err = errors.New(e.Problem.Detail)
			}
			return authMsg{err}
		})
	default:
		s.pw[s.focus].key(k)
	}
	return nil
}

// onAuth takes the API's answer to setting the password: logged in, and
// on to where the first boot was going, or back to the menu.
func (s *passwordScreen) onAuth(m *Model, msg authMsg) tea.Cmd {
	if msg.err != nil {
		m.problem = msg.err.Error()
		return nil
	}
	first := m.scr == scrSetPassword
	m.facts.settings.Password.Set = true
	m.authed = true
	if first {
		c := m.goTo(m.after)
		m.info = "The root password is set."
		return c
	}
	return m.message("Change Root Password", "The root password is changed.", scrMenu)
}

func (s *passwordScreen) view(m *Model) (string, []string, string) {
	t := "Change Root Password"
	var b []string
	if m.scr == scrSetPassword {
		t = "Set Root Password (first boot)"
		b = append(b, "  This host has no root password yet. Set it before anything else:", "  it logs in here, on the console, and to the management API.", "")
	}
	b = append(b, indent("  ", wrap(fmt.Sprintf("At least %d characters mixing three of: lower case, upper case, digits, other characters; not containing \"root\".", 8), m.w-4))...)
	b = append(b, "",
		fmt.Sprintf("  %s New password:     %s", cursor(s.focus == 0), s.pw[0].view(30, s.focus == 0)),
		fmt.Sprintf("  %s Confirm password: %s", cursor(s.focus == 1), s.pw[1].view(30, s.focus == 1)))
	b = append(b, m.problemLines()...)
	return t, b, "<Tab> Next field  <Enter> OK  <Esc> Cancel"
}
