package dcui

import (
	tea "github.com/charmbracelet/bubbletea"
)

// The login, shared by every screen behind it: Customize System and
// Shut Down/Restart ask for the root password (or, on the first boot, for
// setting it) unless this console is logged in; the console logs out on
// Esc from the menu and after IdleTimeout without a key (onTick).

// authMsg is the API's answer to a password set or verified; the screen
// that is up when it comes takes it (Login, or Set/Change Root Password).
type authMsg struct{ err error }

// authThen leads to s after the root password: set first (first boot),
// else asked unless this console is logged in.
func (m *Model) authThen(s screen) tea.Cmd {
	m.after = s
	if m.facts.settingsErr != nil {
		m.info = "Cannot read the host's settings: " + m.facts.settingsErr.Error()
	}
	if !m.facts.passwordSet() {
		return m.goTo(scrSetPassword)
	}
	if m.authed {
		return m.goTo(s)
	}
	return m.goTo(scrLogin)
}

func (m *Model) onAuth(msg authMsg) tea.Cmd {
	m.busy = ""
	switch m.scr {
	case scrLogin:
		return m.login.onAuth(m, msg)
	case scrSetPassword, scrChangePassword:
		return m.password.onAuth(m, msg)
	}
	return nil
}
