package dcui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
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
	scrSSH // Enable or Disable SSH's confirmation
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

// Items of Troubleshooting Options, in order.
var troubleItems = []string{"Restart Management Agents", "Local Shell", sshItem}

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
	settings    api.HostSettings
	settingsErr error
	// The clock's sync, remote logging and SSH, each from its own call.
	time      api.TimeStatus
	timeErr   error
	syslog    api.SyslogStatus
	syslogErr error
	ssh       api.SSHStatus
	sshErr    error
	// got: gathered at least once (before, the screen says it is asking).
	got bool
	at  time.Time
}

// passwordSet: the root password is set (or the host does not say).
func (f facts) passwordSet() bool { return f.settings.Password.Set || f.settingsErr != nil }

// addrs are the management addresses (without their prefix length).
func (f facts) addrs() []string {
	var out []string
	for _, a := range f.settings.Network.Live.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().IsGlobalUnicast() {
			out = append(out, p.Addr().String())
		}
	}
	return out
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
		n    api.HostNetwork
		err  error
		next screen
	}
	// netAcceptedMsg: the API took a change (or a restart), or refused it.
	netAcceptedMsg struct {
		ch  api.NetworkChange
		err error
	}
	// netPollMsg is the network as the API reports it while a change is
	// in flight.
	netPollMsg struct {
		n   api.HostNetwork
		err error
	}
	netTestMsg []api.NetworkCheck
	logsMsg    struct {
		logs []api.LogInfo
		err  error
	}
	hardwareMsg struct {
		hw  api.Hardware
		err error
	}
	logMsg struct {
		name  string // the log read
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
	netSaved   api.NetworkConfig // the saved configuration, as loaded
	netCh      api.NetworkChange // the change in flight (ID 0: none)
	netWait    bool              // polling the API for netCh
	deadline   time.Time
	checks     []api.NetworkCheck
	logs       []api.LogInfo
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

// refresh gathers the home screen's facts. Every call runs at the same
// time, each within AskWithin, so a slow or failing one is said on its own
// line (apiProblem) while the others are shown; the screen keeps the last
// facts until the new ones are all in, and takes keys meanwhile (the calls
// run in the command, never in Update).
func (m Model) refresh() tea.Cmd {
	d := m.d
	return func() tea.Msg {
		var f facts
		f.at, f.got = d.Now(), true
		h := d.API
		var wg sync.WaitGroup
		// Each call writes its own fields of f.
		ask := func(call func(context.Context)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), d.AskWithin)
				defer cancel()
				call(ctx)
			}()
		}
		ask(func(ctx context.Context) { f.host, f.hostErr = h.Host(ctx) })
		ask(func(ctx context.Context) {
			vms, err := h.ListVMs(ctx)
			f.vmsErr = err
			f.vmsTotal = len(vms)
			for _, v := range vms {
				if st := v.Runtime.State; st == api.VMRunning || st == api.VMPaused || st == api.VMStarting {
					f.vmsRunning++
					f.running = append(f.running, v.Spec.Name)
					f.runningIDs = append(f.runningIDs, v.Spec.ID)
				}
			}
		})
		ask(func(ctx context.Context) {
			if u, err := h.UpgradeStatus(ctx); err == nil {
				f.upgrade = &u
			}
		})
		ask(func(ctx context.Context) { f.settings, f.settingsErr = h.HostSettings(ctx) })
		ask(func(ctx context.Context) { f.time, f.timeErr = h.Time(ctx) })
		ask(func(ctx context.Context) { f.syslog, f.syslogErr = h.Syslog(ctx) })
		ask(func(ctx context.Context) { f.ssh, f.sshErr = h.SSH(ctx) })
		wg.Wait()
		return factsMsg(f)
	}
}

// apiProblem says why a call failed, shortly: no answer in time, the
// API's own words, or the error.
func apiProblem(err error, within time.Duration) string {
	var e *client.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer from vmkernel within " + within.String()
	case errors.As(err, &e) && e.Problem.Detail != "":
		return e.Problem.Detail
	}
	return err.Error()
}

func (m Model) goTo(s screen) (Model, tea.Cmd) {
	m.scr, m.problem, m.info = s, "", ""
	switch s {
	case scrSetPassword, scrChangePassword, scrLogin:
		m.pw[0].value, m.pw[1].value, m.pwFocus = "", "", 0
	case scrLockdown:
		h := m.d.API
		return m, func() tea.Msg {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := h.Lockdown(ctx)
			return lockMsg{st.Enabled, err}
		}
	case scrNet, scrNetRestart, scrNetTest, scrNetRestore:
		return m.loadNet(s)
	case scrSupport:
		h := m.d.API
		return m, tea.Batch(m.refresh(), func() tea.Msg {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hw, err := h.Hardware(ctx)
			return hardwareMsg{hw, err}
		})
	case scrLogsPick:
		h := m.d.API
		return m, func() tea.Msg {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			logs, err := h.Logs(ctx)
			return logsMsg{logs, err}
		}
	case scrReset:
		m.reset.value = ""
	case scrInstall:
		return m.loadInstall()
	case scrPower:
		m.power.sel = 1
		return m, m.refresh()
	case scrTrouble:
		return m, m.refresh() // SSH's item says whether it is on
	}
	return m, nil
}

func (m Model) loadNet(next screen) (Model, tea.Cmd) {
	m.scr = next
	m.net = netForm{}
	h := m.d.API
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := h.HostNetwork(ctx)
		return netLoadedMsg{n: n, err: err, next: next}
	}
}

// pollNet asks the API how the change in flight goes.
func (m Model) pollNet() tea.Cmd {
	h := m.d.API
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := h.HostNetwork(ctx)
		return netPollMsg{n, err}
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
		if msg.err != nil {
			m.info = "The network configuration could not be read (" + msg.err.Error() + ")."
		}
		m.netSaved = msg.n.Config
		switch msg.next {
		case scrNet:
			m.net = newNetForm(msg.n.Config, msg.n.NICs)
		case scrNetTest:
			m.checks = nil
			m.busy = "Testing the management network..."
			h := m.d.API
			return m, func() tea.Msg {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				checks, err := h.TestNetwork(ctx)
				if err != nil {
					checks = []api.NetworkCheck{{What: "test", Info: err.Error()}}
				}
				return netTestMsg(checks)
			}
		}
		return m, nil
	case netTestMsg:
		m.busy = ""
		m.checks = msg
		return m, nil
	case netAcceptedMsg:
		return m.onAccepted(msg)
	case netPollMsg:
		return m.onNetPoll(msg)
	case logsMsg:
		m.logs = msg.logs
		if msg.err != nil {
			m.problem = msg.err.Error()
		}
		return m, nil
	case logMsg:
		if m.scr == scrLogView && msg.name == m.log.file.Name { // not a read of a log left meanwhile
			m.log.load(msg, m.bodyHeight()-2)
		}
		return m, nil
	case installTargetsMsg, installProgressMsg, installDoneMsg:
		return m.onInstallMsg(msg)
	case sshSetMsg:
		return m.onSSHSet(msg)
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
	if now.Sub(m.facts.at) >= m.d.RefreshEvery && (m.scr == scrHome || m.scr == scrPower || m.scr == scrSupport) {
		cmds = append(cmds, m.refresh())
		m.facts.at = now // not twice while one is under way
	}
	if m.netWait {
		cmds = append(cmds, m.pollNet())
	}
	if m.scr == scrLogView && m.log.follow {
		cmds = append(cmds, m.log.read(m.d.API))
	}
	if m.authed && !m.netWait && m.scr != scrBusy && now.Sub(m.lastKey) >= m.d.IdleTimeout {
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
			h, pw := m.d.API, m.pw[0].value
			m.busy = "Checking the password..."
			return m, func() tea.Msg {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return authMsg{h.VerifyPassword(ctx, pw)}
			}
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
			h, on := m.d.API, !m.lockdown
			return m, func() tea.Msg {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				st, err := h.SetLockdown(ctx, api.LockdownRequest{Enabled: on})
				return lockMsg{st.Enabled, err}
			}
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
			return m.settle(true)
		case "n", "N", "esc":
			return m.settle(false)
		}
		return m, nil
	case scrNetRestart:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			return m.apply(netRestart, api.NetworkConfig{}, "Restarting the management network...")
		}
		return m, nil
	case scrNetRestore:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			return m.apply(netRestore, api.NetworkConfig{}, "Restoring DHCP on the first NIC with a link...")
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
			m.logSel = (m.logSel + len(m.logs) - 1) % max(1, len(m.logs))
		case "down", "j", "tab":
			m.logSel = (m.logSel + 1) % max(1, len(m.logs))
		case "enter":
			if len(m.logs) == 0 {
				return m, nil
			}
			m.scr = scrLogView
			m.log = newLogView(m.logs[m.logSel%len(m.logs)])
			return m, m.log.read(m.d.API)
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
		case "up", "k":
			m.troubleSel = (m.troubleSel + len(troubleItems) - 1) % len(troubleItems)
		case "down", "j", "tab":
			m.troubleSel = (m.troubleSel + 1) % len(troubleItems)
		case "enter":
			if troubleItems[m.troubleSel] == sshItem {
				return m.sshAsk()
			}
			if m.troubleSel == 0 {
				m.scr, m.busy = scrBusy, "Restarting the management agents..."
				h := m.d.API
				return m, func() tea.Msg {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					return doneMsg{"Restart Management Agents", h.RestartServices(ctx, api.ServiceMgmtd),
						"mgmtd is being restarted; its supervisor starts it again within seconds."}
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
			m.scr, m.busy = scrBusy, "Resetting the configuration and restarting..."
			h, name := m.d.API, m.facts.host.Hostname
			return m, func() tea.Msg {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return doneMsg{"Reset System Configuration", h.ResetConfig(ctx, name), "The configuration is reset; the host is restarting."}
			}
		}
		m.reset.key(k)
		return m, nil
	case scrPower:
		return m.onPowerKey(key)
	case scrSSH:
		return m.onSSHKey(key)
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

func (m Model) onAuth(msg authMsg) (tea.Model, tea.Cmd) {
	m.busy = ""
	switch m.scr {
	case scrLogin:
		if msg.err != nil {
			m.pw[0].value = ""
			var e *client.Error
			if errors.As(msg.err, &e) && e.Status == http.StatusUnauthorized {
				m.problem = "Wrong password."
			} else if errors.As(msg.err, &e) {
				m.problem = e.Problem.Detail
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
		m.facts.settings.Password.Set = true
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
			if err := api.CheckPassword(api.RootUser, m.pw[0].value); err != nil {
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
		if err := api.CheckPassword(api.RootUser, m.pw[0].value); err != nil {
			m.problem = capitalize(err.Error()) + "."
			m.pwFocus = 0
			return m, nil
		}
		h, pw := m.d.API, m.pw[0].value
		m.busy = "Setting the password..."
		return m, func() tea.Msg {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := h.SetPassword(ctx, pw)
			var e *client.Error
			if errors.As(err, &e) {
				err = errors.New(e.Problem.Detail)
			}
			return authMsg{err}
		}
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

// What apply asks the API for.
const (
	netCommit  = iota // a change from the form, to be confirmed
	netRestore        // back to DHCP, to be confirmed
	netRestart        // the saved configuration again
)

// apply hands a change (or a restart, a restore) to the API, which
// applies it a second later; the DCUI then follows it (pollNet) until it
// awaits confirmation or is settled.
func (m Model) apply(kind int, cfg api.NetworkConfig, what string) (tea.Model, tea.Cmd) {
	m.scr, m.busy, m.problem = scrBusy, what, ""
	h, secs := m.d.API, int(m.d.ConfirmTimeout/time.Second)
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ch api.NetworkChange
		var err error
		switch kind {
		case netCommit:
			ch, err = h.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: cfg, ConfirmSeconds: secs})
		case netRestore:
			ch, err = h.RestoreNetwork(ctx, secs)
		default:
			ch, err = h.RestartNetwork(ctx)
		}
		return netAcceptedMsg{ch, err}
	}
}

func (m Model) onAccepted(msg netAcceptedMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.busy = ""
		var e *client.Error
		if errors.As(msg.err, &e) && len(e.Problem.Problems) > 0 && len(m.net.fields) == fCount {
			m.scr = scrNet
			m.net.probs = m.net.apiProblems(e.Problem.Problems)
			return m, nil
		}
		text := msg.err.Error()
		if errors.As(msg.err, &e) {
			text = e.Problem.Detail
		}
		return m.message("Management Network", "FAILED: "+text, scrMenu)
	}
	m.netCh, m.netWait = msg.ch, true
	return m, m.pollNet()
}

// onNetPoll follows the change in flight: to the confirm screen once it
// awaits confirmation, to a message once it is settled.
func (m Model) onNetPoll(msg netPollMsg) (tea.Model, tea.Cmd) {
	if !m.netWait || msg.err != nil {
		return m, nil
	}
	id := m.netCh.ID
	if p := msg.n.Pending; p != nil && p.ID == id {
		m.netCh = *p
		if p.State == api.NetChangePending && m.scr != scrNetConfirm {
			m.scr, m.busy, m.deadline = scrNetConfirm, "", p.Deadline
			return m, m.refresh()
		}
		if p.State == api.NetChangeRollingBack && m.scr == scrNetConfirm {
			m.scr, m.busy = scrBusy, capitalize(p.Outcome)+": rolling back to the previous configuration..."
		}
		return m, nil
	}
	l := msg.n.LastChange
	if l == nil || l.ID != id {
		return m, nil
	}
	m.netCh, m.netWait, m.busy = *l, false, ""
	live := fmt.Sprintf("The management network is %s on %s.", orNone(strings.Join(msg.n.Live.Addresses, ", ")), orNone(msg.n.Live.Interface))
	switch {
	case l.State == api.NetChangeKept && !l.Confirmed: // a restart
		return m.message("Restart Management Network", live, scrMenu)
	case l.State == api.NetChangeKept:
		kept := "The new configuration is kept"
		if strings.Contains(l.Outcome, "through the API") {
			kept = "Confirmed through the API from " + prefixAddr(l.Address) + ": the new configuration is kept"
		}
		if l.Error != "" {
			return m.message("Configure Management Network", kept+" and in effect, but "+l.Error, scrMenu)
		}
		return m.message("Configure Management Network", kept+" and saved; it holds after a restart.", scrMenu)
	case l.State == api.NetChangeRolledBack:
		text := capitalize(l.Outcome) + ". " + live
		if l.Error != "" && !strings.Contains(l.Outcome, l.Error) {
			text += " (" + l.Error + ")"
		}
		return m.message("Network Change Rolled Back", text, scrMenu)
	}
	return m.message("Management Network", "FAILED: "+orNone(l.Error), scrMenu)
}

// settle keeps the change awaiting confirmation (on the console) or rolls
// it back now.
func (m Model) settle(keep bool) (Model, tea.Cmd) {
	m.scr, m.problem = scrBusy, ""
	m.busy = "Saving the configuration..."
	if !keep {
		m.busy = "You chose to roll back: rolling back to the previous configuration..."
	}
	h := m.d.API
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if keep {
			_, err = h.ConfirmNetwork(ctx)
		} else {
			_, err = h.RollbackNetwork(ctx)
		}
		if err != nil { // settled meanwhile (by the API, the deadline): the poll says how
			return nil
		}
		n, err := h.HostNetwork(ctx)
		return netPollMsg{n, err}
	}
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
		reboot := m.power.sel == 2
		d, ids, graceful, name := m.d, m.facts.runningIDs, m.power.gracefully, m.facts.host.Hostname
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
				if graceful {
					_, err = d.API.ShutdownVM(ctx, id, d.VMShutdownWait)
				} else {
					_, err = d.API.VMAction(ctx, id, api.ActionStop)
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			action := api.PowerShutdown
			if reboot {
				action = api.PowerReboot
			}
			err := d.API.HostPower(ctx, action, "asked on the console (DCUI)", name)
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

// IPv6 modes (api.NetworkConfig.IPv6).
const (
	ipv6Auto   = "auto"
	ipv6Static = "static"
	ipv6Off    = "off"
)

// choice rows and their options.
var choices = map[int][]string{
	fMode: {api.NetModeDHCP, api.NetModeStatic},
	fIPv6: {ipv6Auto, ipv6Static, ipv6Off},
}

func newNetForm(c api.NetworkConfig, nics []api.HostNIC) netForm {
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
		f.fields[fMode].value = api.NetModeDHCP
	}
	if p, err := netip.ParsePrefix(c.Address); err == nil {
		f.fields[fAddr].value = p.Addr().String()
		f.fields[fMask].value = api.NetmaskString(p.Bits())
	}
	f.fields[fGW].value = c.Gateway
	f.fields[fIPv6].value = c.IPv6
	if c.IPv6 == "" {
		f.fields[fIPv6].value = ipv6Auto
	}
	f.fields[fIPv6Addr].value = c.IPv6Address
	f.fields[fDNS].value = strings.Join(c.DNS, ", ")
	f.fields[fSearch].value = strings.Join(c.Search, ", ")
	f.fields[fHost].value = c.Hostname
	return f
}

// enabled reports whether row i is editable under the current choices.
func (f netForm) enabled(i int) bool {
	switch i {
	case fAddr, fMask, fGW:
		return f.fields[fMode].value == api.NetModeStatic
	case fIPv6Addr:
		return f.fields[fIPv6].value == ipv6Static
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

// rowOf is the form's row of each field the API names.
var rowOf = map[string]int{"nic": fNIC, "vlan": fVLAN, "mode": fMode, "address": fAddr, "netmask": fMask,
	"gateway": fGW, "ipv6": fIPv6, "ipv6_address": fIPv6Addr, "dns": fDNS, "search": fSearch, "hostname": fHost}

// config reads the form into the API's configuration; the problems are
// what the form itself can tell (a VLAN that is no number, a netmask):
// the rest the API checks, naming the field (apiProblems).
func (f netForm) config() (api.NetworkConfig, []string) {
	var c api.NetworkConfig
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
	if c.Mode == api.NetModeStatic {
		a := strings.TrimSpace(f.fields[fAddr].value)
		if _, err := netip.ParseAddr(a); err != nil {
			bad(fAddr, "%q is not an IPv4 address", f.fields[fAddr].value)
		}
		bits, err := api.ParseNetmask(f.fields[fMask].value)
		if err != nil {
			bad(fMask, "%v", err)
		}
		if a != "" && bits > 0 {
			c.Address = a + "/" + strconv.Itoa(bits)
		}
		c.Gateway = strings.TrimSpace(f.fields[fGW].value)
	}
	c.IPv6 = f.fields[fIPv6].value
	if c.IPv6 == ipv6Static {
		c.IPv6Address = strings.TrimSpace(f.fields[fIPv6Addr].value)
		if _, err := netip.ParsePrefix(c.IPv6Address); err != nil {
			bad(fIPv6Addr, "want an IPv6 address with prefix length, e.g. 2001:db8::10/64")
		}
	}
	c.DNS = splitList(f.fields[fDNS].value)
	c.Search = splitList(f.fields[fSearch].value)
	c.Hostname = strings.TrimSpace(f.fields[fHost].value)
	return c, probs
}

// apiProblems are the API's refusal of the form's configuration, each on
// its row.
func (f netForm) apiProblems(probs []api.FieldProblem) []string {
	var out []string
	for _, p := range probs {
		row, ok := rowOf[strings.TrimPrefix(p.Field, "config.")]
		name := p.Field
		if ok {
			name = fieldNames[row]
		}
		out = append(out, name+": "+p.Message)
	}
	return out
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
		return m.apply(netCommit, cfg, "Applying the new management network configuration...")
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
