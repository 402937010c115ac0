package dcui

import (
	"fmt"
	"math"
	"strings"

	"github.com/plinth/plinth/api"
)

// The clock's sync, remote logging and the SSH service, as the home
// screen says them (one line each, more when a problem needs the room) and
// the support screen in full. A problem is said in capitals and bold, so
// it shows on a serial terminal without colour.

// statusLine is one labelled line, wrapped under its label.
func statusLine(label, text string, loud bool, cw int) []string {
	const col = "              " // where the text starts, below the label
	var out []string
	for i, l := range wrap(text, max(20, cw-len(col)-1)) {
		if loud {
			l = boldStyle.Render(l)
		}
		if i == 0 {
			out = append(out, fmt.Sprintf("  %-12s", label)+l)
		} else {
			out = append(out, col+l)
		}
	}
	return out
}

// millis rounds seconds to milliseconds, without a negative zero.
func millis(s float64) float64 { return math.Round(s*1000)/1000 + 0 }

// timeText is the clock's sync state; loud when it is not synced (or the
// last try failed) or the API did not say.
func (m Model) timeText() (string, bool) {
	t, err := m.facts.time, m.facts.timeErr
	if err != nil {
		return "UNKNOWN: " + apiProblem(err, m.d.AskWithin), true
	}
	if !t.Config.Enabled {
		return "NTP is off: the clock is not kept", false
	}
	if t.Synced && t.LastSync != nil {
		s := fmt.Sprintf("synced with %s at %s UTC, offset %+.3f s", orDash(t.Server), t.LastSync.UTC().Format("15:04:05"), millis(t.OffsetSeconds))
		if t.Problem != "" {
			return s + "; NOW FAILING: " + t.Problem, true
		}
		return s, false
	}
	if len(t.Servers) == 0 && (t.Problem == "" || strings.HasPrefix(t.Problem, "no NTP server:")) {
		return "NOT SYNCED - no NTP server set (API, answer file or DHCP)", true
	}
	if t.Problem != "" {
		return "NOT SYNCED - " + t.Problem, true
	}
	var addrs []string
	for _, s := range t.Servers {
		addrs = append(addrs, s.Address)
	}
	return "not synced yet: asking " + strings.Join(addrs, ", "), false
}

// syslogText is remote logging's state: "" when it is off; loud when a
// target fails (each failing one named with its problem) or the API did
// not say.
func (m Model) syslogText() (string, bool) {
	s, err := m.facts.syslog, m.facts.syslogErr
	if err != nil {
		return "UNKNOWN: " + apiProblem(err, m.d.AskWithin), true
	}
	var failing, urls []string
	for _, t := range s.Targets {
		urls = append(urls, t.URL)
		if t.Problem != "" {
			f := t.URL + ": " + t.Problem
			if t.Dropped > 0 {
				f += fmt.Sprintf(" (%d lines dropped)", t.Dropped)
			}
			failing = append(failing, f)
		}
	}
	if len(failing) > 0 {
		return "FAILING: " + strings.Join(failing, "; "), true
	}
	if len(urls) == 0 {
		urls = s.Config.Targets
	}
	if len(urls) == 0 {
		return "", false
	}
	return "sending to " + strings.Join(urls, ", "), false
}

// sshText is the SSH service's state: "" when it is off, the API's
// warning while it is on (ESXi's "SSH for the host has been enabled").
func (m Model) sshText() (string, bool) {
	s, err := m.facts.ssh, m.facts.sshErr
	if err != nil {
		return "UNKNOWN: " + apiProblem(err, m.d.AskWithin), true
	}
	if !s.Config.Enabled {
		return "", false
	}
	w := s.Warning
	if w == "" {
		w = "SSH is on"
	}
	text := "WARNING: " + w
	if s.Sessions > 0 {
		text += fmt.Sprintf(" (%d session(s) open)", s.Sessions)
	}
	if s.Problem != "" {
		text += "; PROBLEM: " + s.Problem
	}
	return text, true
}

// homeStatusLines are the home screen's lines on time, remote logging and
// SSH: the clock always, the others while there is something to say.
func (m Model) homeStatusLines(cw int) []string {
	if !m.facts.got {
		return []string{"  Time:       (asking vmkernel...)"}
	}
	text, loud := m.timeText()
	out := statusLine("Time:", text, loud, cw)
	if text, loud := m.syslogText(); text != "" {
		out = append(out, statusLine("Remote log:", text, loud, cw)...)
	}
	if text, loud := m.sshText(); text != "" {
		out = append(out, statusLine("SSH:", text, loud, cw)...)
	}
	return out
}

// supportStatusLines are the support screen's, in its columns: the
// clock with each NTP server's last error, each syslog target with its
// counts and failure, the SSH service's port and host key.
func (m Model) supportStatusLines() []string {
	f := m.facts
	cw := min(m.w, 100)
	if !f.got {
		return []string{"  Time, remote logging, SSH: (asking vmkernel...)"}
	}
	label := func(name, text string, loud bool) []string {
		if loud {
			text = boldStyle.Render(text)
		}
		return indent(fmt.Sprintf("  %-16s", name), []string{text})
	}
	under := func(text string) []string { return indent("    ", wrap(text, cw-6)) }
	var b []string

	t := f.time
	switch {
	case f.timeErr != nil:
		b = append(b, under("Time: UNKNOWN: "+apiProblem(f.timeErr, m.d.AskWithin))...)
	case !t.Config.Enabled:
		b = append(b, label("Time:", "NTP is off", false)...)
	case t.Synced && t.LastSync != nil:
		b = append(b, label("Time:", fmt.Sprintf("synced with %s at %s UTC, offset %+.3f s, stratum %d",
			orDash(t.Server), t.LastSync.UTC().Format("15:04:05"), millis(t.OffsetSeconds), t.Stratum), false)...)
	default:
		text, _ := m.timeText()
		failed := false
		for _, s := range t.Servers {
			failed = failed || s.LastError != ""
		}
		if failed {
			text = "NOT SYNCED"
		}
		b = append(b, label("Time:", text, true)...)
	}
	if f.timeErr == nil {
		for _, s := range t.Servers {
			st := "no error"
			if s.LastError != "" {
				st = "FAILING: " + strings.TrimPrefix(s.LastError, "NTP "+s.Address+": ")
			}
			b = append(b, under(fmt.Sprintf("%s (%s): %s", s.Address, s.Source, st))...)
		}
	}

	switch {
	case f.syslogErr != nil:
		b = append(b, under("Remote log: UNKNOWN: "+apiProblem(f.syslogErr, m.d.AskWithin))...)
	case len(f.syslog.Targets) == 0:
		b = append(b, label("Remote log:", "off", false)...)
	}
	for i, tg := range f.syslog.Targets {
		st := "not connected"
		if tg.Connected {
			st = "connected"
		}
		line := fmt.Sprintf("%s: %s, %d sent, %d dropped", tg.URL, st, tg.Sent, tg.Dropped)
		if i == 0 {
			b = append(b, label("Remote log:", line, tg.Problem != "")...)
		} else {
			b = append(b, indent(strings.Repeat(" ", 18), []string{line})...)
		}
		if tg.Problem != "" {
			b = append(b, under("FAILING: "+tg.Problem)...)
		}
	}

	switch s := f.ssh; {
	case f.sshErr != nil:
		b = append(b, under("SSH: UNKNOWN: "+apiProblem(f.sshErr, m.d.AskWithin))...)
	case !s.Config.Enabled:
		b = append(b, label("SSH:", "off", false)...)
	default:
		st := "ON - not listening"
		if s.Running {
			st = fmt.Sprintf("ON - port %d", s.Port)
		}
		session := "the DCUI"
		if s.Config.Session == api.SSHSessionShell {
			session = "a root shell"
		}
		b = append(b, label("SSH:", fmt.Sprintf("%s, a login gets %s, %d key(s), %d session(s)", st, session, len(s.Keys), s.Sessions), true)...)
		b = append(b, under("host key "+orDash(s.HostKeyFingerprint))...)
		if s.Problem != "" {
			b = append(b, under("PROBLEM: "+s.Problem)...)
		}
	}
	return b
}
