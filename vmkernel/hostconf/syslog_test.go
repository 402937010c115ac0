package hostconf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/peerstest"
	"github.com/plinth/plinth/layout"
)

// TestSyslogToRsyslog sends the host's log lines to Debian's rsyslogd
// over UDP, TCP and TLS at once, as rsyslogd parses RFC 5424: vmkernel's
// and mgmtd's lines, the init's (not the services' copies in the boot log)
// and an audit entry; then a TCP server that is down at first gets the
// lines queued meanwhile once it is up.
func TestSyslogToRsyslog(t *testing.T) {
	udp, tcp, tlsPort := peerstest.FreePort(t), peerstest.FreePort(t), peerstest.FreePort(t)
	ca, cert, key := peerstest.ServerCert(t, "127.0.0.1")
	srv := peerstest.Rsyslog(t, "127.0.0.1", peerstest.SyslogPorts{UDP: udp, TCP: tcp, TLS: tlsPort, CertPEM: cert, KeyPEM: key})

	lay := layout.Under(t.TempDir())
	for _, d := range []string{lay.State, lay.Run, lay.LogDir(), lay.AuthDir()} {
		os.MkdirAll(d, 0o755)
	}
	// Lines from before vmkernel started are not sent.
	appendLine(t, lay.ServiceLog(layout.VMKernel), "2026-12-06T09:00:00Z level=INFO msg=\"before the start\"")
	h := New(Config{Layout: lay, NoTimeKeeper: true, Hostname: func() string { return "esx-log" }})
	ctx := t.Context()
	h.Run(ctx)

	_, err := h.SetSyslog(api.SyslogConfig{Targets: []string{"tls://127.0.0.1:" + strconv.Itoa(tlsPort)}})
	var verr *api.ValidationError
	if !errors.As(err, &verr) || verr.Problems[0].Field != "ca_pem" {
		t.Fatalf("tls without a CA: %v", err)
	}
	st, err := h.SetSyslog(api.SyslogConfig{CAPEM: string(ca), Targets: []string{
		"udp://127.0.0.1:" + strconv.Itoa(udp), "tcp://127.0.0.1:" + strconv.Itoa(tcp), "tls://127.0.0.1:" + strconv.Itoa(tlsPort)}})
	if err != nil || len(st.Targets) != 3 {
		t.Fatalf("set: %+v, %v", st, err)
	}
	time.Sleep(2 * logPoll) // Follow has taken the files' ends
	appendLine(t, lay.ServiceLog(layout.VMKernel), "2026-12-06T10:00:00.25Z level=WARN msg=\"vmkernel: a warning\"")
	appendLine(t, lay.ServiceLog(layout.Mgmtd), "2026-12-06T10:00:01Z level=INFO msg=\"mgmtd: a line\"")
	appendLine(t, lay.BootLog(), "[vmkernel] level=WARN msg=\"vmkernel: a warning\"")
	appendLine(t, lay.BootLog(), "plinth-init: step network done in 1.2s")
	appendLine(t, lay.AuditLog(), `{"time":"2026-12-06T10:00:02Z","user":"root","remote":"10.0.2.2","action":"PUT /api/v1/host/lockdown","target":"/api/v1/host/lockdown","status":200}`)

	for _, want := range [][]string{
		{"1 vmkernel - - esx-log warning | ", `msg="vmkernel: a warning"`},
		{"1 mgmtd - - esx-log info | ", `msg="mgmtd: a line"`},
		{"1 plinth-init - - esx-log info | plinth-init: step network done"},
		{"1 audit - audit esx-log notice | ", `"action":"PUT /api/v1/host/lockdown"`},
	} {
		if _, err := srv.Wait(10*time.Second, want...); err != nil {
			t.Fatal(err)
		}
	}
	// Each line came three times (one per transport); none twice more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := count(srv.Lines(), "a warning")
		if n == 3 {
			break
		}
		if n > 3 || time.Now().After(deadline) {
			t.Fatalf("%d copies of the warning (want 3, one per transport):\n%s", n, strings.Join(srv.Lines(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(srv.Lines(), "before the start"); n != 0 {
		t.Errorf("a line from before the start was sent %d times", n)
	}
	st = h.Syslog()
	for _, tg := range st.Targets {
		if !tg.Connected || tg.Sent != 4 || tg.Problem != "" {
			t.Errorf("target %+v: want connected, 4 sent", tg)
		}
	}

	// A server that is not there yet: reported, lines queued, sent once
	// it listens.
	late := peerstest.FreePort(t)
	if _, err := h.SetSyslog(api.SyslogConfig{Targets: []string{"tcp://127.0.0.1:" + strconv.Itoa(late)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * logPoll)
	appendLine(t, lay.ServiceLog(layout.Mgmtd), "2026-12-06T10:00:03Z level=ERROR msg=\"mgmtd: while the server is down\"")
	waitFor(t, 10*time.Second, func() bool {
		tg := h.Syslog().Targets[0]
		return !tg.Connected && strings.Contains(tg.Problem, "refused")
	})
	srv2 := peerstest.Rsyslog(t, "127.0.0.1", peerstest.SyslogPorts{TCP: late})
	if _, err := srv2.Wait(40*time.Second, "1 mgmtd - - esx-log err | ", "while the server is down"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { tg := h.Syslog().Targets[0]; return tg.Connected && tg.Problem == "" && tg.Sent == 1 })

	// Saved: a new Host starts with it; none: off.
	var saved api.SyslogConfig
	if _, err := loadJSON(lay.SyslogFile(), &saved); err != nil || len(saved.Targets) != 1 {
		t.Errorf("saved %+v, %v", saved, err)
	}
	if st, err := h.SetSyslog(api.SyslogConfig{}); err != nil || len(st.Targets) != 0 || h.syslog.Active() {
		t.Errorf("off: %+v, %v", st, err)
	}
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line)
	f.Close()
}

func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
