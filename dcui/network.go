package dcui

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// networkScreens are the management network's screens: Configure
// Management Network (the form, netform.go), Restart Management Network,
// Network Restore Options, Test Management Network, and the confirmation
// of a change. Every change goes to the API, which applies it a second
// later and rolls it back unless it is kept (commit-confirm); the DCUI
// follows it (poll) until it awaits confirmation or is settled.
type networkScreens struct {
	form     netForm
	saved    api.NetworkConfig  // the saved configuration, as loaded
	ch       api.NetworkChange  // the change in flight (ID 0: none)
	wait     bool               // polling the API for ch
	deadline time.Time          // when the change awaiting confirmation is rolled back
	checks   []api.NetworkCheck // Test Management Network's results
}

type (
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
)

// What apply asks the API for.
const (
	netCommit  = iota // a change from the form, to be confirmed
	netRestore        // back to DHCP, to be confirmed
	netRestart        // the saved configuration again
)

// open loads the network's configuration for each of the screens but the
// confirmation (which only apply and poll lead to).
func (s *networkScreens) open(m *Model, next screen) tea.Cmd {
	if next == scrNetConfirm {
		return nil
	}
	m.scr = next
	s.form = netForm{}
	h := m.d.API
	return within(10*time.Second, func(ctx context.Context) tea.Msg {
		n, err := h.HostNetwork(ctx)
		return netLoadedMsg{n: n, err: err, next: next}
	})
}

// poll asks the API how the change in flight goes.
func (s *networkScreens) poll(m *Model) tea.Cmd {
	h := m.d.API
	return within(5*time.Second, func(ctx context.Context) tea.Msg {
		n, err := h.HostNetwork(ctx)
		return netPollMsg{n, err}
	})
}

func (s *networkScreens) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case netLoadedMsg:
		if msg.err != nil {
			m.info = "The network configuration could not be read (" + msg.err.Error() + ")."
		}
		s.saved = msg.n.Config
		switch msg.next {
		case scrNet:
			s.form = newNetForm(msg.n.Config, msg.n.NICs)
		case scrNetTest:
			s.checks = nil
			m.busy = "Testing the management network..."
			h := m.d.API
			return within(20*time.Second, func(ctx context.Context) tea.Msg {
				checks, err := h.TestNetwork(ctx)
				if err != nil {
					checks = []api.NetworkCheck{{What: "test", Info: err.Error()}}
				}
				return netTestMsg(checks)
			})
		}
		return nil
	case netTestMsg:
		m.busy = ""
		s.checks = msg
		return nil
	case netAcceptedMsg:
		return s.onAccepted(m, msg)
	case netPollMsg:
		return s.onPoll(m, msg)
	case tea.KeyMsg:
		return s.onKey(m, msg)
	}
	return nil
}

func (s *networkScreens) onKey(m *Model, k tea.KeyMsg) tea.Cmd {
	key := k.String()
	switch m.scr {
	case scrNet:
		switch {
		case key == "esc":
			return m.goTo(scrMenu)
		case len(s.form.fields) < fCount: // still loading
			return nil
		case key == "enter" || key == "f11":
			cfg, probs := s.form.config()
			s.form.probs = probs
			if len(probs) > 0 {
				return nil
			}
			return s.apply(m, netCommit, cfg, "Applying the new management network configuration...")
		}
		s.form.key(k)
	case scrNetConfirm:
		switch key {
		case "y", "Y", "f11":
			return s.settle(m, true)
		case "n", "N", "esc":
			return s.settle(m, false)
		}
	case scrNetRestart:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			return s.apply(m, netRestart, api.NetworkConfig{}, "Restarting the management network...")
		}
	case scrNetRestore:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "enter", "f11":
			return s.apply(m, netRestore, api.NetworkConfig{}, "Restoring DHCP on the first NIC with a link...")
		}
	case scrNetTest:
		if key == "esc" || key == "enter" {
			return m.goTo(scrMenu)
		}
	}
	return nil
}

// apply hands a change (or a restart, a restore) to the API, which
// applies it a second later; the DCUI then follows it (poll) until it
// awaits confirmation or is settled.
func (s *networkScreens) apply(m *Model, kind int, cfg api.NetworkConfig, what string) tea.Cmd {
	m.scr, m.busy, m.problem = scrBusy, what, ""
	h, secs := m.d.API, int(m.d.ConfirmTimeout/time.Second)
	return within(10*time.Second, func(ctx context.Context) tea.Msg {
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
	})
}

func (s *networkScreens) onAccepted(m *Model, msg netAcceptedMsg) tea.Cmd {
	if msg.err != nil {
		m.busy = ""
		var e *client.Error
		if errors.As(msg.err, &e) && len(e.Problem.Problems) > 0 && len(s.form.fields) == fCount {
			m.scr = scrNet
			s.form.probs = s.form.apiProblems(e.Problem.Problems)
			return nil
		}
		text := msg.err.Error()
		if errors.As(msg.err, &e) {
			text = e.Problem.Detail
		}
		return m.message("Management Network", "FAILED: "+text, scrMenu)
	}
	s.ch, s.wait = msg.ch, true
	return s.poll(m)
}

// onPoll follows the change in flight: to the confirm screen once it
// awaits confirmation, to a message once it is settled.
func (s *networkScreens) onPoll(m *Model, msg netPollMsg) tea.Cmd {
	if !s.wait || msg.err != nil {
		return nil
	}
	id := s.ch.ID
	if p := msg.n.Pending; p != nil && p.ID == id {
		s.ch = *p
		if p.State == api.NetChangePending && m.scr != scrNetConfirm {
			m.scr, m.busy, s.deadline = scrNetConfirm, "", p.Deadline
			return m.refresh()
		}
		if p.State == api.NetChangeRollingBack && m.scr == scrNetConfirm {
			m.scr, m.busy = scrBusy, capitalize(p.Outcome)+": rolling back to the previous configuration..."
		}
		return nil
	}
	l := msg.n.LastChange
	if l == nil || l.ID != id {
		return nil
	}
	s.ch, s.wait, m.busy = *l, false, ""
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
func (s *networkScreens) settle(m *Model, keep bool) tea.Cmd {
	m.scr, m.problem = scrBusy, ""
	m.busy = "Saving the configuration..."
	if !keep {
		m.busy = "You chose to roll back: rolling back to the previous configuration..."
	}
	h := m.d.API
	return within(10*time.Second, func(ctx context.Context) tea.Msg {
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
	})
}

func (s *networkScreens) view(m *Model) (string, []string, string) {
	switch m.scr {
	case scrNetConfirm:
		left := max(0, int(s.deadline.Sub(m.d.Now()).Round(time.Second)/time.Second))
		ch := s.ch
		b := []string{
			fmt.Sprintf("  The new configuration is in effect: %s on %s (%s).", orNone(ch.Address), orNone(ch.Interface), ch.Config.Mode),
			"",
			"  Can you still reach the host at its new address? Keep this configuration?",
			"",
			boldStyle.Render(fmt.Sprintf("  It is rolled back by itself in %d s unless you keep it.", left)),
			"",
			"  <Y> Keep and save it       <N> Roll back now",
		}
		if ch.Address != "" {
			b = append(b, "", "  Or keep it through the API from the new address:",
				"    POST https://"+prefixAddr(ch.Address)+api.Mgmtd(api.HostNetConfirmPath))
		}
		b = append(b, m.problemLines()...)
		return "Confirm Management Network", b, "<Y> Keep  <N/Esc> Roll back"
	case scrNetRestart:
		b := []string{"  Restart the management network? The saved configuration is applied again:", ""}
		b = append(b, indent("    ", describeNet(s.saved))...)
		b = append(b, "", "  Connections to the management API may drop for a moment.")
		b = append(b, m.problemLines()...)
		return "Restart Management Network", b, "<Enter> Restart  <Esc> Cancel"
	case scrNetRestore:
		b := []string{"  Restore the management network to its default: DHCP on the first NIC", "  with a link, no VLAN. Now:", ""}
		b = append(b, indent("    ", describeNet(s.saved))...)
		b = append(b, "", fmt.Sprintf("  Like any network change it is rolled back unless kept within %s.", m.d.ConfirmTimeout))
		return "Network Restore Options", b, "<Enter> Restore DHCP  <Esc> Cancel"
	case scrNetTest:
		b := []string{"  Pinging the gateway and the DNS servers, resolving the host name:", ""}
		for _, c := range s.checks {
			st := "OK    "
			if !c.OK {
				st = "FAILED"
			}
			b = append(b, truncate(fmt.Sprintf("  %s  %-30s %s", st, c.What, c.Info), m.w))
		}
		return "Test Management Network", b, "<Esc> Back"
	}
	return s.form.view(m.w, m.info)
}

func describeNet(c api.NetworkConfig) []string {
	nic := c.NIC
	if nic == "" {
		nic = "first NIC with a link"
	}
	out := []string{"Uplink: " + nic}
	if c.VLAN > 0 {
		out = append(out, fmt.Sprintf("VLAN:   %d", c.VLAN))
	}
	if p, err := netip.ParsePrefix(c.Address); c.Mode == api.NetModeStatic && err == nil {
		out = append(out, fmt.Sprintf("IPv4:   static %s, mask %s, gateway %s", p.Addr(), api.NetmaskString(p.Bits()), orDash(c.Gateway)))
	} else {
		out = append(out, "IPv4:   DHCP")
	}
	if len(c.DNS) > 0 {
		out = append(out, "DNS:    "+strings.Join(c.DNS, ", "))
	}
	if c.Hostname != "" {
		out = append(out, "Name:   "+c.Hostname)
	}
	return out
}

// prefixAddr is the address of a CIDR ("10.0.2.20/24": "10.0.2.20").
func prefixAddr(cidr string) string {
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.Addr().String()
	}
	return orNone(cidr)
}
