package dcui

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/netconf"
)

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

var menuScreens = []screen{scrChangePassword, scrLockdown, scrNet, scrNetRestart, scrNetTest,
	scrNetRestore, scrTrouble, scrLogsPick, scrSupport, scrReset, scrInstall}

// facts is what the home screen shows, gathered by refresh.
type facts struct {
	host        api.Host
	hostErr     error
	vmsRunning  int
	vmsTotal    int
	vmsErr      error
	upgrade     *api.UpgradeStatus // nil: unknown
	running     []string           // names of running VMs
	runningIDs  []string
	fingerprint string
	addrs       []string
	netProblem  string
	passwordSet bool
	authErr     error
	at          time.Time
}

// Messages.
type (
	tickMsg  struct{ t time.Time }
	factsMsg facts
	authMsg  struct{ err error } // password set / verified
	lockMsg  struct {
		on  bool
		err error
	}
	netLoadedMsg struct {
		cfg  netconf.Config
		hw   api.Hardware
		err  error
		next screen
	}
	netAppliedMsg struct {
		res      netconf.Result
		err      error
		rollback bool // the result of a rollback
	}
	netSavedMsg struct {
		err   error
		byAPI bool // the API kept the change (from its new address)
	}
	netPendingMsg   struct{ err error } // the change is published for the API
	netKeptByAPIMsg struct{}
	netTestMsg      []netconf.Check
	hardwareMsg     struct {
		hw  api.Hardware
		err error
	}
	logMsg struct {
		lines []string
		size  int64
		err   error
	}
	doneMsg struct {
		title string
		err   error
		text  string
	}
	execDoneMsg struct{ err error }
)

// Model is the DCUI's state.
type Model struct {
	d      Deps
	w, h   int
	scr    screen
	facts  facts
	authed bool
	// after is where a login (or first password) leads.
	after      screen
	lastKey    time.Time
	menuSel    int
	pw         [2]field // password and its confirmation
	pwFocus    int
	problem    string // the current screen's error line
	info       string // the current screen's note
	lockdown   bool
	lockKnown  bool
	net        netForm
	netPrev    netconf.Config // what a confirm's rollback applies
	netNew     netconf.Config
	netRes     netconf.Result
	deadline   time.Time
	netAPI     bool // the pending change can be kept through the API
	checks     []netconf.Check
	hw         api.Hardware
	hwErr      error
	logSel     int
	log        logView
	troubleSel int
	power      powerForm
	reset      field
	inst       installForm
	msgTitle   string
	msgText    string
	msgBack    screen
	busy       string
}

type powerForm struct {
	sel        int // 0 checkbox, 1 shut down, 2 restart
	gracefully bool
}

// New returns the DCUI's model.
func New(d Deps) Model {
	d.defaults()
	m := Model{d: d, w: 80, h: 24, scr: scrHome}
	m.lastKey = d.Now()
	m.power.gracefully = true
	m.pw[0].masked, m.pw[1].masked = true, true
	return m
}

// Init starts the clock and the first refresh.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.refresh(), m.tick())
}

func (m Model) tick() tea.Cmd {
	return m.d.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg{t} })
}

func (m Model) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// refresh gathers the home screen's facts.
func (m Model) refresh() tea.Cmd {
	d := m.d
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var f facts
		f.at = d.Now()
		if d.Host != nil {
			f.host, f.hostErr = d.Host(ctx)
		} else {
			f.hostErr = errors.New("no vmkernel")
		}
		if d.VMs != nil {
			vms, err := d.VMs(ctx)
			f.vmsErr = err
			f.vmsTotal = len(vms)
			for _, v := range vms {
				if st := v.Runtime.State; st == api.VMRunning || st == api.VMPaused || st == api.VMStarting {
					f.vmsRunning++
					f.running = append(f.running, v.Spec.Name)
					f.runningIDs = append(f.runningIDs, v.Spec.ID)
				}
			}
		}
		if d.Upgrades != nil {
			if u, err := d.Upgrades(ctx); err == nil {
				f.upgrade = &u
			}
		}
		if d.Fingerprint != nil {
			f.fingerprint = d.Fingerprint()
		}
		if d.Addresses != nil {
			f.addrs = d.Addresses()
		}
		if d.NetProblem != nil {
			f.netProblem = d.NetProblem()
		}
		f.passwordSet, f.authErr = auth.PasswordSet(d.AuthDir)
		return factsMsg(f)
	}
}

func (m Model) goTo(s screen) (Model, tea.Cmd) {
	m.scr, m.problem, m.info = s, "", ""
	switch s {
	case scrSetPassword, scrChangePassword, scrLogin:
		m.pw[0].value, m.pw[1].value, m.pwFocus = "", "", 0
	case scrLockdown:
		dir := m.d.AuthDir
		return m, func() tea.Msg { on, err := auth.Lockdown(dir); return lockMsg{on, err} }
	case scrNet, scrNetRestart, scrNetTest, scrNetRestore:
		return m.loadNet(s)
	case scrSupport:
		if m.d.Hardware == nil {
			m.hwErr = errors.New("no hardware inventory on this host")
			return m, nil
		}
		hw := m.d.Hardware
		return m, func() tea.Msg { h, err := hw(); return hardwareMsg{h, err} }
	case scrReset:
		m.reset.value = ""
	case scrInstall:
		return m.loadInstall()
	case scrPower:
		m.power.sel = 1
		return m, m.refresh()
	}
	return m, nil
}

func (m Model) loadNet(next screen) (Model, tea.Cmd) {
	m.scr = next
	m.net = netForm{}
	d := m.d
	return m, func() tea.Msg {
		var msg netLoadedMsg
		msg.next = next
		msg.cfg = netconf.Default()
		if d.LoadNet != nil {
			msg.cfg, msg.err = d.LoadNet()
		}
		if d.Hardware != nil {
			msg.hw, _ = d.Hardware()
		}
		return msg
	}
}

func (m Model) message(title, text string, back screen) (Model, tea.Cmd) {
	m.scr, m.msgTitle, m.msgText, m.msgBack = scrMessage, title, text, back
	return m, nil
}

// Update is the DCUI's state machine.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		if m.w <= 0 || m.h <= 0 { // a serial line has no size: assume a VT100's
			m.w, m.h = 80, 24
		}
		return m, nil
	case tickMsg:
		return m.onTick(msg.t)
	case factsMsg:
		m.facts = facts(msg)
		return m, nil
	case tea.KeyMsg:
		m.lastKey = m.d.Now()
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Keys typed faster than they are read (a serial line) come as
			// one message: take them one by one, like a person typing.
			var cmds []tea.Cmd
			var cur tea.Model = m
			for _, r := range msg.Runes {
				var c tea.Cmd
				cur, c = cur.(Model).onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt})
				cmds = append(cmds, c)
			}
			return cur, tea.Batch(cmds...)
		}
		return m.onKey(msg)
	case authMsg:
		return m.onAuth(msg)
	case lockMsg:
		if msg.err != nil {
			m.problem = msg.err.Error()
		} else {
			m.lockdown, m.lockKnown = msg.on, true
		}
		return m, nil
	case hardwareMsg:
		m.hw, m.hwErr = msg.hw, msg.err
		return m, nil
	case netLoadedMsg:
		m.hw = msg.hw
		if msg.err != nil {
			m.info = "The saved configuration could not be read (" + msg.err.Error() + "); showing the default."
		}
		m.netPrev = msg.cfg
		switch msg.next {
		case scrNet:
			m.net = newNetForm(msg.cfg, msg.hw.NICs)
		case scrNetTest:
			m.checks = nil
			m.busy = "Testing the management network..."
			d := m.d
			cfg := msg.cfg
			return m, func() tea.Msg {
				if d.TestNet == nil {
					return netTestMsg(nil)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				return netTestMsg(d.TestNet(ctx, cfg))
			}
		}
		return m, nil
	case netTestMsg:
		m.busy = ""
		m.checks = msg
		if msg == nil {
			m.checks = []netconf.Check{{What: "test", Info: "this host cannot test its network"}}
		}
		return m, nil
	case netAppliedMsg:
		return m.onApplied(msg)
	case netSavedMsg:
		m.busy = ""
		kept := "The new configuration is kept"
		if msg.byAPI {
			kept = "Confirmed through the API from " + prefixAddr(m.netRes.Address) + ": the new configuration is kept"
		}
		if msg.err != nil {
			return m.message("Configure Management Network", kept+" and in effect, but could not be saved: "+msg.err.Error(), scrMenu)
		}
		return m.message("Configure Management Network", kept+" and saved; it holds after a restart.", scrMenu)
	case netPendingMsg:
		if m.scr == scrNetConfirm {
			m.netAPI = msg.err == nil
			if msg.err != nil {
				m.problem = "The API cannot keep this change (" + msg.err.Error() + "); keep it here."
			}
		}
		return m, nil
	case netKeptByAPIMsg:
		if m.scr != scrNetConfirm { // kept or rolled back meanwhile: that settled it
			return m, nil
		}
		return m.keep(true)
	case logMsg:
		m.log.load(msg)
		return m, nil
	case installTargetsMsg, installProgressMsg, installDoneMsg:
		return m.onInstallMsg(msg)
	case doneMsg:
		m.busy = ""
		if msg.err != nil {
			return m.message(msg.title, "FAILED: "+msg.err.Error(), scrMenu)
		}
		return m.message(msg.title, msg.text, scrMenu)
	case execDoneMsg:
		m.lastKey = m.d.Now()
		if msg.err != nil {
			return m.message("Troubleshooting Options", "The shell ended: "+msg.err.Error(), scrTrouble)
		}
		return m, tea.ClearScreen
	}
	return m, nil
}

func (m Model) onTick(now time.Time) (tea.Model, tea.Cmd) {
	cmds := []tea.Cmd{m.tick()}
	if now.Sub(m.facts.at) >= m.d.RefreshEvery && (m.scr == scrHome || m.scr == scrPower) {
		cmds = append(cmds, m.refresh())
		m.facts.at = now // not twice while one is under way
	}
	if m.scr == scrNetConfirm && !now.Before(m.deadline) {
		mm, c := m.rollback("No answer within " + m.d.ConfirmTimeout.String())
		return mm, tea.Batch(append(cmds, c)...)
	}
	if m.scr == scrNetConfirm && m.d.PendingConfirmed != nil {
		confirmed := m.d.PendingConfirmed
		cmds = append(cmds, func() tea.Msg {
			if confirmed() {
				return netKeptByAPIMsg{}
			}
			return nil
		})
	}
	if m.scr == scrLogView && m.log.follow {
		cmds = append(cmds, m.log.read())
	}
	if m.authed && m.scr != scrNetConfirm && m.scr != scrBusy && now.Sub(m.lastKey) >= m.d.IdleTimeout {
		m.authed = false
		m.scr = scrHome
		m.info = "Logged out after " + m.d.IdleTimeout.String() + " without a key press."
		cmds = append(cmds, m.refresh())
	}
	return m, tea.Batch(cmds...)
}

// Key names that mean F2 and F12 on terminals without function keys:
// Esc 2 and Esc 0 arrive as alt+2 and alt+0.
func isF2(k string) bool  { return k == "f2" || k == "alt+2" }
func isF12(k string) bool { return k == "f12" || k == "alt+0" }

func (m Model) onKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	key := k.String()
	if key == "ctrl+l" {
		return m, tea.ClearScreen
	}
	switch m.scr {
	case scrHome:
		m.info = ""
		switch {
		case isF2(key) || key == "enter" || key == "c":
			return m.authThen(scrMenu)
		case isF12(key) || key == "s":
			return m.authThen(scrPower)
		case key == "r":
			return m, m.refresh()
		}
		return m, nil
	case scrSetPassword, scrChangePassword:
		return m.onPasswordKey(k)
	case scrLogin:
		switch key {
		case "esc":
			m.scr = scrHome
			return m, nil
		case "enter":
			if m.pw[0].value == "" {
				return m, nil
			}
			dir, pw := m.d.AuthDir, m.pw[0].value
			m.busy = "Checking the password..."
			return m, func() tea.Msg { return authMsg{auth.Verify(dir, api.RootUser, pw)} }
		}
		m.pw[0].key(k)
		return m, nil
	case scrMenu:
		switch key {
		case "esc":
			m.authed = false
			m.scr = scrHome
			return m, m.refresh()
		case "up", "k":
			m.menuSel = (m.menuSel + len(menuItems) - 1) % len(menuItems)
		case "down", "j", "tab":
			m.menuSel = (m.menuSel + 1) % len(menuItems)
		case "enter":
			return m.goTo(menuScreens[m.menuSel])
		default:
			if isF12(key) {
				return m.goTo(scrPower)
			}
		}
		return m, nil
	case scrLockdown:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", " ":
			if !m.lockKnown {
				return m, nil
			}
			dir, on := m.d.AuthDir, !m.lockdown
			return m, func() tea.Msg { return lockMsg{on, auth.SetLockdown(dir, on)} }
		}
		return m, nil
	case scrNet:
		if len(m.net.fields) < fCount { // still loading
			if key == "esc" {
				return m.goTo(scrMenu)
			}
			return m, nil
		}
		return m.onNetKey(k)
	case scrNetConfirm:
		switch key {
		case "y", "Y", "f11":
			return m.keep(false)
		case "n", "N", "esc":
			return m.rollback("You chose to roll back")
		}
		return m, nil
	case scrNetRestart:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			return m.apply(m.netPrev, false, "Restarting the management network...")
		}
		return m, nil
	case scrNetRestore:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			cfg := netconf.Default()
			cfg.Hostname = m.netPrev.Hostname
			return m.apply(cfg, true, "Restoring DHCP on the first NIC with a link...")
		}
		return m, nil
	case scrNetTest, scrSupport, scrMessage:
		if key == "esc" || key == "enter" {
			if m.scr == scrMessage {
				if m.msgBack == scrHome || !m.authed {
					m.scr = scrHome
					return m, m.refresh()
				}
				return m.goTo(m.msgBack)
			}
			return m.goTo(scrMenu)
		}
		return m, nil
	case scrLogsPick:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "up", "k":
			m.logSel = (m.logSel + len(m.d.Logs) - 1) % max(1, len(m.d.Logs))
		case "down", "j", "tab":
			m.logSel = (m.logSel + 1) % max(1, len(m.d.Logs))
		case "enter":
			if len(m.d.Logs) == 0 {
				return m, nil
			}
			m.scr = scrLogView
			m.log = newLogView(m.d.Logs[m.logSel])
			return m, m.log.read()
		}
		return m, nil
	case scrLogView:
		if key == "esc" && !m.log.searching {
			m.scr = scrLogsPick
			return m, nil
		}
		m.log.key(k, m.bodyHeight()-2)
		return m, nil
	case scrTrouble:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "up", "k", "down", "j", "tab":
			m.troubleSel = 1 - m.troubleSel
		case "enter":
			if m.troubleSel == 0 {
				if m.d.RestartAgents == nil {
					return m.message("Restart Management Agents", "This host cannot restart its agents.", scrTrouble)
				}
				m.scr, m.busy = scrBusy, "Restarting the management agents..."
				ra := m.d.RestartAgents
				return m, func() tea.Msg {
					return doneMsg{"Restart Management Agents", ra(), "mgmtd was restarted; the supervisor starts it again within a second."}
				}
			}
			if m.d.Shell == nil {
				return m.message("Local Shell", "No shell on this host.", scrTrouble)
			}
			return m, tea.Exec(m.d.Shell(), func(err error) tea.Msg { return execDoneMsg{err} })
		}
		return m, nil
	case scrReset:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter":
			if m.reset.value != "RESET" {
				m.problem = "Type RESET in capital letters to confirm."
				return m, nil
			}
			if m.d.ResetConfig == nil || m.d.Power == nil {
				return m.message("Reset System Configuration", "This host cannot reset its configuration.", scrMenu)
			}
			m.scr, m.busy = scrBusy, "Resetting the configuration and restarting..."
			reset, power := m.d.ResetConfig, m.d.Power
			return m, func() tea.Msg {
				if err := reset(); err != nil {
					return doneMsg{"Reset System Configuration", err, ""}
				}
				return doneMsg{"Reset System Configuration", power(true), "The configuration is reset; the host is restarting."}
			}
		}
		m.reset.key(k)
		return m, nil
	case scrPower:
		return m.onPowerKey(key)
	case scrInstall, scrInstallConfirm:
		return m.onInstallKey(k)
	case scrBusy:
		return m, nil
	}
	return m, nil
}

// authThen leads to s after the root password: set first (first boot),
// else asked unless this console is logged in.
func (m Model) authThen(s screen) (tea.Model, tea.Cmd) {
	m.after = s
	if m.facts.authErr != nil {
		m.info = "Cannot read the account: " + m.facts.authErr.Error()
	}
	if !m.facts.passwordSet {
		return m.goTo(scrSetPassword)
	}
	if m.authed {
		return m.goTo(s)
	}
	return m.goTo(scrLogin)
}

func (m Model) onAuth(msg authMsg) (tea.Model, tea.Cmd) {
	m.busy = ""
	switch m.scr {
	case scrLogin:
		if msg.err != nil {
			m.pw[0].value = ""
			if errors.Is(msg.err, auth.ErrBadCredentials) {
				m.problem = "Wrong password."
			} else {
				m.problem = msg.err.Error()
			}
			return m, nil
		}
		m.authed = true
		return m.goTo(m.after)
	case scrSetPassword, scrChangePassword:
		if msg.err != nil {
			m.problem = msg.err.Error()
			return m, nil
		}
		first := m.scr == scrSetPassword
		m.facts.passwordSet = true
		m.authed = true
		if first {
			mm, c := m.goTo(m.after)
			mm.info = "The root password is set."
			return mm, c
		}
		return m.message("Change Root Password", "The root password is changed.", scrMenu)
	}
	return m, nil
}

func (m Model) onPasswordKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "esc":
		if m.scr == scrSetPassword {
			m.scr = scrHome
			return m, nil
		}
		return m.goTo(scrMenu)
	case "up", "shift+tab":
		m.pwFocus = 0
	case "down", "tab":
		m.pwFocus = 1
	case "enter":
		if m.pwFocus == 0 {
			if err := auth.CheckStrength(api.RootUser, m.pw[0].value); err != nil {
				m.problem = capitalize(err.Error()) + "."
				return m, nil
			}
			m.problem = ""
			m.pwFocus = 1
			return m, nil
		}
		if m.pw[0].value != m.pw[1].value {
			m.problem = "The two passwords differ; type them again."
			m.pw[0].value, m.pw[1].value, m.pwFocus = "", "", 0
			return m, nil
		}
		if err := auth.CheckStrength(api.RootUser, m.pw[0].value); err != nil {
			m.problem = capitalize(err.Error()) + "."
			m.pwFocus = 0
			return m, nil
		}
		dir, pw := m.d.AuthDir, m.pw[0].value
		m.busy = "Setting the password..."
		return m, func() tea.Msg { return authMsg{auth.SetPassword(dir, api.RootUser, pw)} }
	default:
		m.pw[m.pwFocus].key(k)
	}
	return m, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// apply applies cfg; commit, when true, then asks to keep it (rolling back to
// m.netPrev unless kept in time); otherwise the result is just shown.
func (m Model) apply(cfg netconf.Config, commit bool, what string) (tea.Model, tea.Cmd) {
	if m.d.ApplyNet == nil {
		return m.message("Management Network", "This host cannot change its network.", scrMenu)
	}
	m.netNew = cfg
	m.scr, m.busy = scrBusy, what
	applyNet := m.d.ApplyNet
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		r, err := applyNet(ctx, cfg)
		return netAppliedMsg{res: r, err: err, rollback: !commit}
	}
}

// keep ends the pending change by keeping it (byAPI: the API confirmed it)
// and saves it in STATE.
func (m Model) keep(byAPI bool) (Model, tea.Cmd) {
	m.scr, m.busy, m.problem = scrBusy, "Saving the configuration...", ""
	settle, save, cfg := m.d.SettlePending, m.d.SaveNet, m.netNew
	return m, func() tea.Msg {
		if settle != nil {
			if b, _ := settle(); b {
				byAPI = true
			}
		}
		if save == nil {
			return netSavedMsg{errors.New("this host cannot save its network configuration"), byAPI}
		}
		return netSavedMsg{save(cfg), byAPI}
	}
}

// rollback applies the previous configuration again, unless the API has
// kept the change meanwhile.
func (m Model) rollback(why string) (Model, tea.Cmd) {
	m.scr, m.busy, m.problem = scrBusy, why+": rolling back to the previous configuration...", ""
	applyNet, prev := m.d.ApplyNet, m.netPrev
	settle, save, cfg := m.d.SettlePending, m.d.SaveNet, m.netNew
	m.info = why
	return m, func() tea.Msg {
		if settle != nil {
			if byAPI, _ := settle(); byAPI && save != nil {
				return netSavedMsg{save(cfg), true}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		r, err := applyNet(ctx, prev)
		return netAppliedMsg{res: r, err: err, rollback: true}
	}
}

func (m Model) onApplied(msg netAppliedMsg) (tea.Model, tea.Cmd) {
	m.busy = ""
	m.netRes = msg.res
	if msg.rollback {
		title := "Management Network"
		if m.info != "" {
			title = "Network Change Rolled Back"
		}
		text := fmt.Sprintf("The management network is %s on %s (%s).", orNone(msg.res.Address), orNone(msg.res.Interface), msg.res.Method)
		if m.info != "" {
			text = m.info + ". " + text
		}
		if msg.err != nil {
			text = "FAILED: " + msg.err.Error()
		}
		m.info = ""
		return m.message(title, text, scrMenu)
	}
	if msg.err != nil {
		mm, c := m.rollback("The new configuration failed (" + msg.err.Error() + ")")
		return mm, c
	}
	m.scr = scrNetConfirm
	m.deadline = m.d.Now().Add(m.d.ConfirmTimeout)
	m.netAPI = false
	cmds := []tea.Cmd{m.refresh()}
	if mark := m.d.MarkPending; mark != nil {
		prev := m.netPrev
		ch := netconf.Change{Config: m.netNew, Interface: msg.res.Interface, Deadline: m.deadline, Previous: &prev}
		ch.Address, _ = netip.ParsePrefix(msg.res.Address)
		cmds = append(cmds, func() tea.Msg { return netPendingMsg{mark(ch)} })
	}
	return m, tea.Batch(cmds...)
}

// prefixAddr is the address of a CIDR ("10.0.2.20/24": "10.0.2.20").
func prefixAddr(cidr string) string {
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.Addr().String()
	}
	return orNone(cidr)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (m Model) onPowerKey(key string) (tea.Model, tea.Cmd) {
	switch key {
	case "esc":
		if m.authed {
			return m.goTo(scrMenu)
		}
		m.scr = scrHome
		return m, nil
	case "up", "k":
		m.power.sel = (m.power.sel + 2) % 3
	case "down", "j", "tab":
		m.power.sel = (m.power.sel + 1) % 3
	case " ", "x":
		m.power.gracefully = !m.power.gracefully
	case "enter":
		if m.power.sel == 0 {
			m.power.gracefully = !m.power.gracefully
			return m, nil
		}
		if m.d.Power == nil {
			return m.message("Shut Down/Restart", "This host cannot power itself off.", scrMenu)
		}
		reboot := m.power.sel == 2
		d, ids, graceful := m.d, m.facts.runningIDs, m.power.gracefully
		m.scr = scrBusy
		if reboot {
			m.busy = "Restarting the host..."
		} else {
			m.busy = "Shutting the host down..."
		}
		if len(ids) > 0 {
			m.busy = fmt.Sprintf("%s first %s %d running VM(s)...", m.busy,
				map[bool]string{true: "shutting down", false: "stopping"}[graceful], len(ids))
		}
		return m, func() tea.Msg {
			ctx, cancel := context.WithTimeout(context.Background(), d.VMShutdownWait+30*time.Second)
			defer cancel()
			var errs []error
			for _, id := range ids {
				var err error
				if graceful && d.ShutdownVM != nil {
					err = d.ShutdownVM(ctx, id, d.VMShutdownWait)
				} else if d.StopVM != nil {
					err = d.StopVM(ctx, id)
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			err := d.Power(reboot)
			what := map[bool]string{true: "restarting", false: "shutting down"}[reboot]
			return doneMsg{"Shut Down/Restart", errors.Join(append(errs, err)...), "The host is " + what + "."}
		}
	}
	return m, nil
}

// netForm is Configure Management Network's form.
type netForm struct {
	nics   []api.HostNIC
	nic    int // index in nics; -1: first with a link (automatic)
	fields []field
	focus  int
	probs  []string
}

// The form's rows.
const (
	fNIC = iota
	fVLAN
	fMode
	fAddr
	fMask
	fGW
	fIPv6
	fIPv6Addr
	fDNS
	fSearch
	fHost
	fCount
)

var fieldNames = [fCount]string{"Uplink NIC", "VLAN ID", "IPv4", "IPv4 address", "Subnet mask", "Default gateway",
	"IPv6", "IPv6 address", "DNS servers", "Search domains", "Hostname"}

// choice rows and their options.
var choices = map[int][]string{
	fMode: {netconf.ModeDHCP, netconf.ModeStatic},
	fIPv6: {netconf.IPv6Auto, netconf.IPv6Static, netconf.IPv6Off},
}

func newNetForm(c netconf.Config, nics []api.HostNIC) netForm {
	f := netForm{nics: nics, nic: -1, fields: make([]field, fCount)}
	for i, n := range nics {
		if n.Name == c.NIC {
			f.nic = i
		}
	}
	if c.NIC != "" && f.nic < 0 {
		f.nics = append(f.nics, api.HostNIC{Name: c.NIC})
		f.nic = len(f.nics) - 1
	}
	if c.VLAN > 0 {
		f.fields[fVLAN].value = strconv.Itoa(c.VLAN)
	}
	f.fields[fMode].value = c.Mode
	if c.Mode == "" {
		f.fields[fMode].value = netconf.ModeDHCP
	}
	if c.Address.IsValid() {
		f.fields[fAddr].value = c.Address.Addr().String()
		f.fields[fMask].value = netconf.MaskString(c.Address.Bits())
	}
	if c.Gateway.IsValid() {
		f.fields[fGW].value = c.Gateway.String()
	}
	f.fields[fIPv6].value = c.IPv6
	if c.IPv6 == "" {
		f.fields[fIPv6].value = netconf.IPv6Auto
	}
	if c.IPv6Address.IsValid() {
		f.fields[fIPv6Addr].value = c.IPv6Address.String()
	}
	var dns []string
	for _, d := range c.DNS {
		dns = append(dns, d.String())
	}
	f.fields[fDNS].value = strings.Join(dns, ", ")
	f.fields[fSearch].value = strings.Join(c.Search, ", ")
	f.fields[fHost].value = c.Hostname
	return f
}

// enabled reports whether row i is editable under the current choices.
func (f netForm) enabled(i int) bool {
	switch i {
	case fAddr, fMask, fGW:
		return f.fields[fMode].value == netconf.ModeStatic
	case fIPv6Addr:
		return f.fields[fIPv6].value == netconf.IPv6Static
	}
	return true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, p)
	}
	return out
}

// config parses the form; the problems name the form's rows.
func (f netForm) config() (netconf.Config, []string) {
	var c netconf.Config
	var probs []string
	bad := func(row int, format string, a ...any) {
		probs = append(probs, fieldNames[row]+": "+fmt.Sprintf(format, a...))
	}
	if f.nic >= 0 && f.nic < len(f.nics) {
		c.NIC = f.nics[f.nic].Name
	}
	if v := strings.TrimSpace(f.fields[fVLAN].value); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			bad(fVLAN, "%q is not a number", v)
		}
		c.VLAN = n
	}
	c.Mode = f.fields[fMode].value
	if c.Mode == netconf.ModeStatic {
		a, err := netip.ParseAddr(strings.TrimSpace(f.fields[fAddr].value))
		if err != nil {
			bad(fAddr, "%q is not an IPv4 address", f.fields[fAddr].value)
		}
		bits, err := netconf.ParseMask(f.fields[fMask].value)
		if err != nil {
			bad(fMask, "%v", err)
		}
		if a.IsValid() && bits > 0 {
			c.Address = netip.PrefixFrom(a, bits)
		}
		if v := strings.TrimSpace(f.fields[fGW].value); v != "" {
			g, err := netip.ParseAddr(v)
			if err != nil {
				bad(fGW, "%q is not an IPv4 address", v)
			}
			c.Gateway = g
		}
	}
	c.IPv6 = f.fields[fIPv6].value
	if c.IPv6 == netconf.IPv6Static {
		p, err := netip.ParsePrefix(strings.TrimSpace(f.fields[fIPv6Addr].value))
		if err != nil {
			bad(fIPv6Addr, "want an IPv6 address with prefix length, e.g. 2001:db8::10/64")
		}
		c.IPv6Address = p
	}
	for _, s := range splitList(f.fields[fDNS].value) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			bad(fDNS, "%q is not an IP address", s)
			continue
		}
		c.DNS = append(c.DNS, a)
	}
	c.Search = splitList(f.fields[fSearch].value)
	c.Hostname = strings.TrimSpace(f.fields[fHost].value)
	if len(probs) > 0 {
		return c, probs
	}
	var p netconf.Problems
	if err := c.Validate(); errors.As(err, &p) {
		rows := map[string]int{"nic": fNIC, "vlan": fVLAN, "mode": fMode, "address": fAddr, "netmask": fMask,
			"gateway": fGW, "ipv6": fIPv6, "ipv6_address": fIPv6Addr, "dns": fDNS, "search": fSearch, "hostname": fHost}
		for _, e := range p {
			bad(rows[e.Field], "%s", e.Problem)
		}
	}
	return c, probs
}

func (m Model) onNetKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	f := &m.net
	key := k.String()
	move := func(dir int) {
		for i := 0; i < fCount; i++ {
			f.focus = (f.focus + dir + fCount) % fCount
			if f.enabled(f.focus) {
				return
			}
		}
	}
	switch key {
	case "esc":
		return m.goTo(scrMenu)
	case "up", "shift+tab":
		move(-1)
	case "down", "tab":
		move(1)
	case "left", "right", " ":
		dir := 1
		if key == "left" {
			dir = -1
		}
		if f.focus == fNIC {
			n := len(f.nics) + 1 // plus "automatic"
			f.nic = (f.nic+1+dir+n)%n - 1
		} else if opts, ok := choices[f.focus]; ok {
			i := 0
			for j, o := range opts {
				if o == f.fields[f.focus].value {
					i = j
				}
			}
			f.fields[f.focus].value = opts[(i+dir+len(opts))%len(opts)]
		} else if key == " " {
			f.fields[f.focus].key(k)
		}
	case "enter", "f11":
		cfg, probs := f.config()
		f.probs = probs
		if len(probs) > 0 {
			return m, nil
		}
		return m.apply(cfg, true, "Applying the new management network configuration...")
	default:
		if _, ok := choices[f.focus]; !ok && f.focus != fNIC {
			f.fields[f.focus].key(k)
		}
	}
	return m, nil
}

// field is a one-line text entry; the cursor is always at its end.
type field struct {
	value  string
	masked bool
}

func (f *field) key(k tea.KeyMsg) {
	switch k.Type {
	case tea.KeyBackspace, tea.KeyDelete:
		if r := []rune(f.value); len(r) > 0 {
			f.value = string(r[:len(r)-1])
		}
	case tea.KeyCtrlU:
		f.value = ""
	case tea.KeyRunes, tea.KeySpace:
		if len(f.value) < 200 {
			f.value += string(k.Runes)
		}
	}
}

func (f field) view(width int, focused bool) string {
	v := f.value
	if f.masked {
		v = strings.Repeat("*", len([]rune(v)))
	}
	if focused {
		v += "_"
	}
	r := []rune(v)
	if len(r) > width {
		r = r[len(r)-width:]
	}
	return "[" + string(r) + strings.Repeat(" ", width-len(r)) + "]"
}
