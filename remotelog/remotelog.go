// Package remotelog sends the host's log lines to remote syslog servers,
// as ESXi's Syslog.global.logHost: each line an RFC 5424 message, over UDP
// (RFC 5426, one datagram each), TCP (RFC 6587, octet counting) or TLS
// (RFC 5425, the server's certificate checked against a given CA). Each
// target has a bounded queue that keeps the newest lines while its server
// does not answer (counting what it drops) and a sender that reconnects
// with a growing pause; nothing here ever blocks the caller. Follow reads
// the lines from log files as they grow (see follow.go).
package remotelog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
)

// Facilities and severities (RFC 5424 6.2.1) Plinth uses.
const (
	FacilityDaemon = 3
	FacilityAudit  = 13

	SevError   = 3
	SevWarning = 4
	SevNotice  = 5
	SevInfo    = 6
	SevDebug   = 7
)

// Message is one log line to send.
type Message struct {
	Time     time.Time
	Facility int
	Severity int
	// App is the APP-NAME (vmkernel, mgmtd, plinth-init, audit); MsgID the
	// MSGID ("" is the nil value "-").
	App, MsgID string
	Text       string
}

// Limits.
const (
	MaxTargets = 4
	// queueLen is how many messages a target keeps while its server does
	// not answer.
	queueLen = 2000
	// maxStream and maxDatagram bound a message over TCP/TLS and UDP
	// (RFC 5426 says 2048 bytes are safe).
	maxStream   = 8192
	maxDatagram = 2048
	maxCAPEM    = 64 << 10
)

// Format is m as an RFC 5424 message from hostname, at most max bytes
// (the text is cut at a character boundary).
func Format(m Message, hostname string, max int) []byte {
	pri := m.Facility*8 + m.Severity
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s - ", pri, m.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		field(hostname, 255), field(m.App, 48), field(m.MsgID, 32))
	text := strings.ToValidUTF8(m.Text, "\uFFFD")
	text = strings.Map(func(r rune) rune { // no line breaks or controls inside a message
		if r < 0x20 && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	room := max - b.Len()
	for len(text) > room && room >= 0 {
		_, size := utf8.DecodeLastRuneInString(text)
		text = text[:len(text)-size]
	}
	b.WriteString(text)
	return b.Bytes()
}

// field is a header field: printable US-ASCII without spaces, at most n
// characters, "-" when empty.
func field(s string, n int) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// Check validates cfg: every problem names its field.
func Check(cfg api.SyslogConfig) []api.FieldProblem {
	var probs []api.FieldProblem
	if len(cfg.Targets) > MaxTargets {
		probs = append(probs, api.FieldProblem{Field: "targets", Message: fmt.Sprintf("%d targets: at most %d", len(cfg.Targets), MaxTargets)})
	}
	needCA := false
	for i, t := range cfg.Targets {
		u, err := parseTarget(t)
		if err != nil {
			probs = append(probs, api.FieldProblem{Field: fmt.Sprintf("targets[%d]", i), Message: err.Error()})
			continue
		}
		needCA = needCA || u.Scheme == "tls"
	}
	switch {
	case len(cfg.CAPEM) > maxCAPEM:
		probs = append(probs, api.FieldProblem{Field: "ca_pem", Message: fmt.Sprintf("%d bytes: at most %d", len(cfg.CAPEM), maxCAPEM)})
	case cfg.CAPEM != "":
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.CAPEM)) {
			probs = append(probs, api.FieldProblem{Field: "ca_pem", Message: "holds no PEM certificate"})
		}
	case needCA:
		probs = append(probs, api.FieldProblem{Field: "ca_pem", Message: "is empty: a tls:// target's certificate is checked against this CA"})
	}
	return probs
}

// target is a parsed target URL.
type target struct {
	Scheme, Host, Addr string
}

func parseTarget(s string) (target, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return target{}, fmt.Errorf("%q is not a URL", s)
	}
	def := map[string]string{"udp": "514", "tcp": "514", "tls": "6514"}[u.Scheme]
	if def == "" {
		return target{}, fmt.Errorf("%q: the scheme must be udp, tcp or tls", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return target{}, fmt.Errorf("%q: want SCHEME://HOST[:PORT] only", s)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = def
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return target{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if _, err := netip.ParseAddr(host); err != nil && !netconf.ValidHostname(host) {
		return target{}, fmt.Errorf("%q: %q is not a host name or IP address", s, host)
	}
	return target{Scheme: u.Scheme, Host: host, Addr: net.JoinHostPort(host, port)}, nil
}

// Forwarder sends messages to the configured targets.
type Forwarder struct {
	log      *slog.Logger
	hostname func() string

	mu      sync.Mutex
	cfg     api.SyslogConfig
	targets []*sender
}

// New makes a Forwarder with no target; hostname names the host in each
// message; log hears of targets connecting and failing (nil: discarded).
func New(hostname func() string, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{log: log, hostname: hostname}
}

// Configure replaces the targets (the old ones' queues are dropped).
// cfg must have passed Check.
func (f *Forwarder) Configure(cfg api.SyslogConfig) error {
	if probs := Check(cfg); len(probs) > 0 {
		return &api.ValidationError{Subject: "remote logging", Problems: probs}
	}
	var pool *x509.CertPool
	if cfg.CAPEM != "" {
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(cfg.CAPEM))
	}
	var next []*sender
	for _, s := range cfg.Targets {
		t, _ := parseTarget(s)
		next = append(next, newSender(strings.TrimSpace(s), t, pool, f.hostname, f.log))
	}
	f.mu.Lock()
	old := f.targets
	f.cfg, f.targets = cfg, next
	f.mu.Unlock()
	for _, s := range old {
		s.close()
	}
	for _, s := range next {
		go s.run()
	}
	return nil
}

// Active reports whether any target is configured.
func (f *Forwarder) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.targets) > 0
}

// Send queues m for every target; it never blocks.
func (f *Forwarder) Send(m Message) {
	f.mu.Lock()
	ts := f.targets
	f.mu.Unlock()
	for _, s := range ts {
		s.enqueue(m)
	}
}

// Status is the configuration and each target's state.
func (f *Forwarder) Status() api.SyslogStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := api.SyslogStatus{Config: f.cfg, Targets: []api.SyslogTarget{}}
	if out.Config.Targets == nil {
		out.Config.Targets = []string{}
	}
	for _, s := range f.targets {
		out.Targets = append(out.Targets, s.status())
	}
	return out
}

// Close stops every target.
func (f *Forwarder) Close() {
	f.mu.Lock()
	old := f.targets
	f.targets = nil
	f.mu.Unlock()
	for _, s := range old {
		s.close()
	}
}

// sender is one target: its queue and the goroutine that empties it.
type sender struct {
	url      string
	t        target
	pool     *x509.CertPool
	hostname func() string
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wake     chan struct{}

	mu        sync.Mutex
	queue     []Message
	connected bool
	sent      uint64
	dropped   uint64
	problem   string
}

func newSender(u string, t target, pool *x509.CertPool, hostname func() string, log *slog.Logger) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{url: u, t: t, pool: pool, hostname: hostname, log: log, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

func (s *sender) close() { s.cancel() }

func (s *sender) enqueue(m Message) {
	s.mu.Lock()
	if len(s.queue) >= queueLen {
		s.queue = s.queue[1:]
		s.dropped++
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) status() api.SyslogTarget {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.SyslogTarget{URL: s.url, Connected: s.connected, Sent: s.sent, Dropped: s.dropped, Problem: s.problem}
}

func (s *sender) setState(connected bool, problem string) {
	s.mu.Lock()
	was, wasProblem := s.connected, s.problem
	s.connected, s.problem = connected, problem
	s.mu.Unlock()
	switch {
	case connected && !was:
		s.log.Info("remotelog: connected", "target", s.url)
	case problem != "" && wasProblem == "":
		s.log.Warn("remotelog: target failing; its lines are queued", "target", s.url, "err", problem)
	}
}

func (s *sender) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	switch s.t.Scheme {
	case "udp":
		return d.DialContext(ctx, "udp", s.t.Addr)
	case "tcp":
		return d.DialContext(ctx, "tcp", s.t.Addr)
	}
	td := tls.Dialer{NetDialer: &d, Config: &tls.Config{RootCAs: s.pool, ServerName: s.t.Host, MinVersion: tls.VersionTLS12}}
	return td.DialContext(ctx, "tcp", s.t.Addr)
}

// run sends the queue until the target is closed, reconnecting after a
// pause that grows from 1 s to 30 s.
func (s *sender) run() {
	pause := time.Second
	for s.ctx.Err() == nil {
		conn, err := s.dial()
		if err != nil {
			s.setState(false, err.Error())
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(pause*2, 30*time.Second)
			continue
		}
		pause = time.Second
		s.setState(true, "")
		err = s.drain(conn)
		conn.Close()
		if err != nil && s.ctx.Err() == nil {
			s.setState(false, err.Error())
		}
	}
}

// drain writes queued messages to conn until an error or the end.
func (s *sender) drain(conn net.Conn) error {
	udp := s.t.Scheme == "udp"
	// A stream server that closes the connection is noticed by reading.
	closed := make(chan error, 1)
	if !udp {
		go func() {
			var b [256]byte
			for {
				if _, err := conn.Read(b[:]); err != nil {
					closed <- fmt.Errorf("the server closed the connection: %w", err)
					return
				}
			}
		}()
	}
	for {
		s.mu.Lock()
		var m Message
		have := len(s.queue) > 0
		if have {
			m = s.queue[0]
		}
		s.mu.Unlock()
		if !have {
			select {
			case <-s.ctx.Done():
				return nil
			case err := <-closed:
				return err
			case <-s.wake:
				continue
			}
		}
		var frame []byte
		if udp {
			frame = Format(m, s.hostname(), maxDatagram)
		} else {
			msg := Format(m, s.hostname(), maxStream)
			frame = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := conn.Write(frame)
		s.mu.Lock()
		switch {
		case err == nil:
			s.sent++
			s.queue = s.queue[1:]
			if udp && s.problem != "" {
				s.problem = ""
			}
		case udp:
			// A datagram refused (ICMP) is lost, not retried.
			s.dropped++
			s.queue = s.queue[1:]
			s.problem = err.Error()
		}
		s.mu.Unlock()
		if err != nil && !udp {
			return err
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			return err
		}
	}
}
