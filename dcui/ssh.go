package dcui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// Troubleshooting Options' SSH item turns the SSH service on or off, as
// ESXi's "Enable SSH"/"Disable SSH" does: through PUT /host/ssh (the rest
// of the service's configuration kept as the API has it), after a
// confirmation that says what it means. vmkernel refuses turning it on
// while lockdown mode is on; the console says so in the API's words.

// sshItem is the SSH item's name in troubleItems (its line says Enable
// or Disable as SSH is off or on).
const sshItem = "Enable/Disable SSH"

// sshSetMsg is the API's answer to turning SSH on or off.
type sshSetMsg struct {
	on  bool
	st  api.SSHStatus
	err error
}

// sshKnown: the SSH service's state is known (the last refresh read it).
func (m Model) sshKnown() bool { return m.facts.got && m.facts.sshErr == nil }

// sshItemLine is the item as the Troubleshooting menu shows it.
func (m Model) sshItemLine() string {
	switch {
	case !m.facts.got:
		return sshItem + " (asking vmkernel...)"
	case m.facts.sshErr != nil:
		return sshItem + " (state UNKNOWN)"
	case m.facts.ssh.Config.Enabled:
		return "Disable SSH (SSH is ON)"
	}
	return "Enable SSH (SSH is off)"
}

// sshItemHelp is the help line under the menu while the item is selected.
func (m Model) sshItemHelp() string {
	switch {
	case !m.sshKnown():
		if m.facts.sshErr != nil {
			return "SSH's state is unknown: " + apiProblem(m.facts.sshErr, m.d.AskWithin)
		}
		return "Asking vmkernel whether SSH is on..."
	case m.facts.ssh.Config.Enabled:
		return "WARNING: " + orWarning(m.facts.ssh.Warning) + ". Turning it off ends every SSH session."
	case m.facts.settings.Lockdown.Enabled:
		return "SSH is off. Lockdown mode is on: SSH stays off until lockdown is turned off."
	}
	return "SSH is off. Turned on, root can log in over the network (ssh -t HOST dcui|shell)."
}

func orWarning(w string) string {
	if w == "" {
		return "SSH is on"
	}
	return w
}

// sshScreen is the confirmation of turning SSH on or off (scrSSH); what
// it says comes from the facts.
type sshScreen struct{}

// ask opens the confirmation of turning SSH on or off.
func (sshScreen) ask(m *Model) tea.Cmd {
	if !m.sshKnown() {
		text := "vmkernel has not said whether SSH is on yet; try again in a moment."
		if m.facts.sshErr != nil {
			text = "SSH's state is UNKNOWN: " + apiProblem(m.facts.sshErr, m.d.AskWithin)
		}
		return m.message("SSH", text, scrTrouble)
	}
	m.scr, m.problem, m.info = scrSSH, "", ""
	return nil
}

// view is the confirmation screen.
func (sshScreen) view(m *Model) (string, []string, string) {
	s := m.facts.ssh
	var text []string
	if s.Config.Enabled {
		text = append(text, "Turn SSH OFF?", "")
		text = append(text, fmt.Sprintf("The SSH service stops and its %d open session(s) end now (an SSH session showing this console too).", s.Sessions))
		return "Disable SSH", sshBody(text, m.w), "<Enter> Turn SSH off  <Esc> Cancel"
	}
	login := "an authorized key"
	if s.Config.PasswordLogin {
		login += " or the root password"
	}
	gets := "the console's screens (DCUI)"
	if s.Config.Session == api.SSHSessionShell {
		gets = "a root shell"
	}
	text = append(text, "Turn SSH ON?", "",
		fmt.Sprintf("root can then log in to this host over the network with %s (%d key(s) set) and gets %s. The home screen warns while SSH is on; lockdown mode turns it off.", login, len(s.Keys), gets))
	if len(s.Keys) == 0 && !s.Config.PasswordLogin {
		text = append(text, "", "No key is authorized and password login is off: no one can log in until a key is added (plinth host ssh keys add, or POST /api/v1/host/ssh/keys).")
	}
	if m.facts.settings.Lockdown.Enabled {
		text = append(text, "", "Lockdown mode is on: vmkernel will refuse.")
	}
	return "Enable SSH", sshBody(text, m.w), "<Enter> Turn SSH on  <Esc> Cancel"
}

// sshBody wraps paragraphs to the screen, an empty one a blank line.
func sshBody(paras []string, w int) []string {
	var b []string
	for _, p := range paras {
		if p == "" {
			b = append(b, "")
			continue
		}
		b = append(b, indent("  ", wrap(p, w-4))...)
	}
	return b
}

func (sshScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sshSetMsg:
		return onSSHSet(m, msg)
	case tea.KeyMsg:
		return onSSHKey(m, msg.String())
	}
	return nil
}

func onSSHKey(m *Model, key string) tea.Cmd {
	switch key {
	case "esc":
		return m.goTo(scrTrouble)
	case "enter", "f11":
		on := !m.facts.ssh.Config.Enabled
		m.scr, m.busy = scrBusy, "Turning SSH off..."
		if on {
			m.busy = "Turning SSH on..."
		}
		h := m.d.API
		return within(10*time.Second, func(ctx context.Context) tea.Msg {
			// The rest of the configuration (password login, the
			// session) stays as the API has it now.
			cur, err := h.SSH(ctx)
			if err != nil {
				return sshSetMsg{on: on, err: err}
			}
			cfg := cur.Config
			cfg.Enabled = on
			st, err := h.SetSSH(ctx, cfg)
			return sshSetMsg{on: on, st: st, err: err}
		})
	}
	return nil
}

// onSSHSet says the API's answer and refreshes the home screen's facts
// (its SSH line).
func onSSHSet(m *Model, msg sshSetMsg) tea.Cmd {
	m.busy = ""
	title := map[bool]string{true: "Enable SSH", false: "Disable SSH"}[msg.on]
	var text string
	switch {
	case msg.err != nil:
		what := map[bool]string{true: "SSH NOT TURNED ON", false: "SSH NOT TURNED OFF"}[msg.on]
		text = what + ": " + apiProblem(msg.err, 10*time.Second)
		var e *client.Error
		if msg.on && errors.As(msg.err, &e) && e.Status == http.StatusConflict && strings.Contains(e.Problem.Detail, "lockdown") {
			text += ". Turn Lockdown Mode off first (Customize System > Lockdown Mode)."
		}
	case msg.st.Config.Enabled:
		m.facts.ssh, m.facts.sshErr = msg.st, nil
		text = "SSH is on"
		if msg.st.Running {
			text += fmt.Sprintf(", on port %d", msg.st.Port)
		}
		text += ". WARNING: " + orWarning(msg.st.Warning) + "."
		if msg.st.Problem != "" {
			text += " PROBLEM: " + msg.st.Problem
		}
	default:
		m.facts.ssh, m.facts.sshErr = msg.st, nil
		text = "SSH is off; no one can log in over SSH."
	}
	m.message(title, text, scrTrouble)
	return m.refresh()
}
