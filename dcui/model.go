package dcui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// The DCUI is one root model (this file) and a component per screen, as
// soft-serve's UI is: the root owns what every screen shares — the host's
// facts (facts.go), the terminal's size, the API (Deps), which screen is
// up and how one gets there (goTo, message), the login (auth.go) and the
// busy line — and routes keys to the screen that is up and every other
// message to the components, each of which takes its own. A component
// keeps its screen's state, its keys, its messages and its view in one
// file: home.go, login.go, password.go, menu.go, lockdown.go, network.go
// (with netform.go), logs.go, support.go, trouble.go, ssh.go, reset.go,
// power.go, install.go, message.go.

type screen int

const (
	scrHome screen = iota
	scrSetPassword
	scrLogin
	scrMenu
	scrChangePassword
	scrLockdown
	scrNet
	scrNetConfirm
	scrNetRestart
	scrNetTest
	scrLogsPick
	scrLogView
	scrSupport
	scrNetRestore
	scrReset
	scrTrouble
	scrPower
	scrMessage
	scrBusy
	scrInstall
	scrInstallConfirm
	scrSSH // Enable or Disable SSH's confirmation
)

// A component is one screen, or the few screens of one dialog: its state,
// its keys and messages (update) and its view. Both get the root model
// for what is shared. update gets keys only while one of its screens is
// up, and every message that is not the root's, so it ignores what is
// not its own.
type component interface {
	update(m *Model, msg tea.Msg) tea.Cmd
	view(m *Model) (title string, body []string, hints string)
}

// An opener is a component that does something when one of its screens
// is opened (goTo): load what it shows, clear a form.
type opener interface {
	open(m *Model, s screen) tea.Cmd
}

// The root's own messages.
type (
	tickMsg  struct{ t time.Time }
	factsMsg facts
)

// Model is the DCUI's state: what the screens share, and each screen's
// component.
type Model struct {
	d     Deps
	w, h  int
	scr   screen
	facts facts
	// authed: this console is logged in; after is where a login (or the
	// first password) leads.
	authed  bool
	after   screen
	lastKey time.Time
	problem string // the current screen's error line
	info    string // the current screen's note
	busy    string // what is under way, under the screen's body

	home     homeScreen
	login    loginScreen
	password passwordScreen
	menu     menuScreen
	lock     lockdownScreen
	net      networkScreens
	logs     logsScreen
	support  supportScreen
	trouble  troubleScreen
	ssh      sshScreen
	reset    resetScreen
	power    powerScreen
	inst     installScreen
	msg      messageScreen
}

// New returns the DCUI's model.
func New(d Deps) Model {
	d.defaults()
	m := Model{d: d, w: 80, h: 24, scr: scrHome}
	m.lastKey = d.Now()
	m.power.gracefully = true
	m.login.pw.masked = true
	m.password.pw[0].masked, m.password.pw[1].masked = true, true
	return m
}

// Init starts the clock and the first refresh.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.refresh(), m.tick())
}

func (m Model) tick() tea.Cmd {
	return m.d.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg{t} })
}

// components are the screens' components, each once.
func (m *Model) components() []component {
	return []component{&m.home, &m.login, &m.password, &m.menu, &m.lock, &m.net, &m.logs,
		&m.support, &m.trouble, &m.ssh, &m.reset, &m.power, &m.inst, &m.msg}
}

// current is the component of the screen that is up.
func (m *Model) current() component {
	switch m.scr {
	case scrHome:
		return &m.home
	case scrLogin:
		return &m.login
	case scrSetPassword, scrChangePassword:
		return &m.password
	case scrMenu:
		return &m.menu
	case scrLockdown:
		return &m.lock
	case scrNet, scrNetConfirm, scrNetRestart, scrNetTest, scrNetRestore:
		return &m.net
	case scrLogsPick, scrLogView:
		return &m.logs
	case scrSupport:
		return &m.support
	case scrTrouble:
		return &m.trouble
	case scrSSH:
		return &m.ssh
	case scrReset:
		return &m.reset
	case scrPower:
		return &m.power
	case scrInstall, scrInstallConfirm:
		return &m.inst
	case scrMessage, scrBusy:
		return &m.msg
	}
	return &m.msg
}

// goTo opens screen s: its problem and note cleared, then what its
// component does on opening.
func (m *Model) goTo(s screen) tea.Cmd {
	m.scr, m.problem, m.info = s, "", ""
	if o, ok := m.current().(opener); ok {
		return o.open(m, s)
	}
	return nil
}

// message shows a message screen; Enter or Esc leads to back.
func (m *Model) message(title, text string, back screen) tea.Cmd {
	m.scr, m.msg = scrMessage, messageScreen{title: title, text: text, back: back}
	return nil
}

// Update is the DCUI's state machine.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		if m.w <= 0 || m.h <= 0 { // a serial line has no size: assume a VT100's
			m.w, m.h = 80, 24
		}
		return nil
	case tickMsg:
		return m.onTick(msg.t)
	case factsMsg:
		m.facts = facts(msg)
		return nil
	case authMsg:
		return m.onAuth(msg)
	case tea.KeyMsg:
		m.lastKey = m.d.Now()
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Keys typed faster than they are read (a serial line) come as
			// one message: take them one by one, like a person typing.
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				cmds = append(cmds, m.onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
			}
			return tea.Batch(cmds...)
		}
		return m.onKey(msg)
	}
	// Every other message belongs to one component.
	var cmds []tea.Cmd
	for _, c := range m.components() {
		cmds = append(cmds, c.update(m, msg))
	}
	return tea.Batch(cmds...)
}

func (m *Model) onTick(now time.Time) tea.Cmd {
	cmds := []tea.Cmd{m.tick()}
	if now.Sub(m.facts.at) >= m.d.RefreshEvery && (m.scr == scrHome || m.scr == scrPower || m.scr == scrSupport) {
		cmds = append(cmds, m.refresh())
		m.facts.at = now // not twice while one is under way
	}
	if m.net.wait {
		cmds = append(cmds, m.net.poll(m))
	}
	if m.scr == scrLogView && m.logs.pager.follow {
		cmds = append(cmds, m.logs.pager.read(m.d.API))
	}
	if m.authed && !m.net.wait && m.scr != scrBusy && now.Sub(m.lastKey) >= m.d.IdleTimeout {
		m.authed = false
		m.scr = scrHome
		m.info = "Logged out after " + m.d.IdleTimeout.String() + " without a key press."
		cmds = append(cmds, m.refresh())
	}
	return tea.Batch(cmds...)
}

// Key names that mean F2 and F12 on terminals without function keys:
// Esc 2 and Esc 0 arrive as alt+2 and alt+0.
func isF2(k string) bool  { return k == "f2" || k == "alt+2" }
func isF12(k string) bool { return k == "f12" || k == "alt+0" }

// onKey: Ctrl+L redraws on every screen; the rest is the screen's.
func (m *Model) onKey(k tea.KeyMsg) tea.Cmd {
	if k.String() == "ctrl+l" {
		return tea.ClearScreen
	}
	return m.current().update(m, k)
}

// within is a command that calls the API with fn, bounded by d.
func within(d time.Duration, fn func(context.Context) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return fn(ctx)
	}
}
