package remotelog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestFormat(t *testing.T) {
	m := Message{Time: time.Date(2026, 12, 6, 10, 0, 0, 123456000, time.UTC), Facility: FacilityAudit, Severity: SevNotice,
		App: "audit", MsgID: "audit", Text: "line\nwith a break\x00"}
	got := string(Format(m, "esx 1", 2048))
	want := "<109>1 2026-12-06T10:00:00.123456Z esx1 audit - audit - line with a break "
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	long := Format(Message{Time: m.Time, Text: strings.Repeat("é", 2000), App: "vmkernel"}, "h", 100)
	if len(long) > 100 || !strings.HasSuffix(string(long), "é") {
		t.Errorf("cut: %d bytes, %q", len(long), long)
	}
}

func TestCheck(t *testing.T) {
	probs := Check(api.SyslogConfig{Targets: []string{"tcp://logs.example.org", "http://x", "udp://10.0.0.1:0", "tls://[2001:db8::1]:6514", "tcp://h/path"}})
	var fields []string
	for _, p := range probs {
		fields = append(fields, p.Field)
	}
	if got := strings.Join(fields, " "); got != "targets targets[1] targets[2] targets[4] ca_pem" {
		t.Errorf("fields %q (%v)", got, probs)
	}
	if probs := Check(api.SyslogConfig{Targets: []string{"udp://h"}, CAPEM: "not pem"}); len(probs) != 1 || probs[0].Field != "ca_pem" {
		t.Errorf("bad CA: %v", probs)
	}
}

// TestFollow: lines added to files are read from where Follow started,
// across a rotation (rename) and a truncation, a file that appears later
// from its start; nothing is sent while inactive.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	os.WriteFile(a, []byte("old line\n"), 0o644)
	var mu sync.Mutex
	var got []string
	var active = true
	send := func(m Message) { mu.Lock(); got = append(got, m.App+":"+m.Text); mu.Unlock() }
	isActive := func() bool { mu.Lock(); defer mu.Unlock(); return active }
	parse := func(app string) func(string) (Message, bool) {
		return func(l string) (Message, bool) { return Message{App: app, Text: l}, l != "skip" }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Follow(ctx, []Source{{a, parse("a")}, {b, parse("b")}}, 10*time.Millisecond, isActive, send)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	appendTo := func(p, s string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	wait := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			g := strings.Join(got, "|")
			mu.Unlock()
			if g == strings.Join(want, "|") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %q, want %q", g, strings.Join(want, "|"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond)
	appendTo(a, "one\nskip\ntw")
	wait("a:one")
	appendTo(a, "o\n")
	wait("a:one", "a:two")
	appendTo(b, "b1\n") // b appears: from its start
	wait("a:one", "a:two", "b:b1")
	// Rotation: the last line of the old file, then the new one's.
	appendTo(a, "last of old\n")
	os.Rename(a, a+".1")
	appendTo(a, "first of new\n")
	wait("a:one", "a:two", "b:b1", "a:last of old", "a:first of new")
	// Truncation.
	os.WriteFile(b, []byte("x\n"), 0o644)
	wait("a:one", "a:two", "b:b1", "a:last of old", "a:first of new", "b:x")
	// Inactive: read past, not sent; active again: only what follows.
	mu.Lock()
	active = false
	mu.Unlock()
	appendTo(a, "unsent\n")
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	active = true
	mu.Unlock()
	appendTo(a, "sent\n")
	wait("a:one", "a:two", "b:b1", "a:last of old", "a:first of new", "b:x", "a:sent")
}

func TestParsers(t *testing.T) {
	m, ok := ServiceLine("vmkernel")("2026-12-06T10:00:00.5Z time=2026-12-06T10:00:00.500Z level=WARN msg=\"vmkernel: x\"")
	if !ok || m.Severity != SevWarning || m.App != "vmkernel" || m.Time.Nanosecond() != 5e8 || !strings.HasPrefix(m.Text, "time=") {
		t.Errorf("service line: %+v", m)
	}
	if _, ok := BootLine("vmkernel", "mgmtd")("[vmkernel] time=..."); ok {
		t.Error("a service's boot log line is sent twice")
	}
	if m, ok := BootLine("vmkernel")("plinth-init: step network done in 2s"); !ok || m.App != "plinth-init" {
		t.Errorf("init line: %+v", m)
	}
	m, ok = AuditLine(`{"time":"2026-12-06T10:00:00Z","user":"root","remote":"10.0.2.2","action":"PUT /api/v1/host/lockdown","target":"/api/v1/host/lockdown","status":200}`)
	if !ok || m.Facility != FacilityAudit || m.MsgID != "audit" || m.Time.IsZero() {
		t.Errorf("audit line: %+v", m)
	}
	if _, ok := AuditLine("not json"); ok {
		t.Error("a broken audit line is sent")
	}
}
