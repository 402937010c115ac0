package dcui

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/peerstest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// The home screen's time, remote logging and SSH lines are tested against
// a real vmkernel without a management network (no namespace: these tests
// need neither root's network nor the heavy lock), with Debian's chronyd
// and rsyslogd as the servers that answer and closed ports on the loopback
// as the ones that do not.

// plainRig is a vmkernel with the harness's host facts and hardware and no
// management network; its SSH service listens on the loopback when on.
func plainRig(t *testing.T) *vmkerneltest.Rig {
	return vmkerneltest.Start(t, vmkerneltest.Options{
		Host: func() (api.Host, error) {
			return api.Host{Hostname: "esx-lab1", Version: "1.0.0-test", Kernel: "6.1.0-test", CPUModel: "AMD EPYC 7B13", CPUCount: 2,
				MemoryBytes: 2 << 30, QEMU: "7.2.0"}, nil
		},
		Hardware: func() (api.Hardware, error) { return fixedHardware, nil },
		SSHAddr:  "127.0.0.1:" + strconv.Itoa(peerstest.FreePort(t)),
	})
}

// plainHarness drives a DCUI on the API h (ticks and keys as the harness
// sends them; no rig of its own).
func plainHarness(t *testing.T, h Host, askWithin time.Duration) *harness {
	hs := &harness{t: t}
	hs.m = New(Deps{Version: "1.0.0-test", API: h, Now: time.Now, AskWithin: askWithin})
	hs.run(hs.m.Init())
	hs.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	return hs
}

// flat is the screen with its lines and runs of spaces joined, so a text
// wrapped over lines is found whole.
func (h *harness) flat() string { return strings.Join(strings.Fields(h.m.View()), " ") }

// homeUntil refreshes the home screen (the R key, as the 5 s poll would)
// until cond holds of its flat text, within d.
func (h *harness) homeUntil(d time.Duration, what string, cond func(string) bool) {
	h.t.Helper()
	end := time.Now().Add(d)
	for {
		h.keys("r")
		if cond(h.flat()) {
			return
		}
		if time.Now().After(end) {
			h.t.Fatalf("%s: not on the home screen within %v:\n%s", what, d, h.m.View())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHomeSaysTimeSyslogSSH: an NTP server that does not answer, a syslog
// target that refuses, and SSH on are each said on the home screen (and
// in full on the support screen) with the API's reason; once chronyd
// answers, rsyslogd takes the lines and SSH is off, the problems and the
// warning are gone and the clock says whom it synced with.
func TestHomeSaysTimeSyslogSSH(t *testing.T) {
	rig := plainRig(t)
	h := plainHarness(t, rig.Client, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A fresh host: no NTP server, no remote logging, SSH off.
	scr := h.flat()
	if !strings.Contains(scr, "Host name: esx-lab1") || !strings.Contains(scr, "Time: NOT SYNCED - no NTP server set (API, answer file or DHCP)") {
		t.Fatalf("a host without an NTP server is not said so:\n%s", h.m.View())
	}
	if strings.Contains(scr, "Remote log:") || strings.Contains(scr, "SSH:") {
		t.Fatalf("remote logging or SSH said while off:\n%s", h.m.View())
	}

	// Nothing answers on these ports.
	ntpDead := "127.0.0.1:" + strconv.Itoa(peerstest.FreePort(t))
	logDead := "tcp://127.0.0.1:" + strconv.Itoa(peerstest.FreePort(t))
	if _, err := rig.Client.SetTime(ctx, api.TimeConfig{Enabled: true, Servers: []string{ntpDead}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.SetSyslog(ctx, api.SyslogConfig{Targets: []string{logDead}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.SetSSH(ctx, api.SSHConfig{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	h.homeUntil(15*time.Second, "the three problems", func(s string) bool {
		return strings.Contains(s, "Time: NOT SYNCED - no NTP server answers: NTP "+ntpDead+":") &&
			strings.Contains(s, "Remote log: FAILING: "+logDead+": dial tcp") &&
			strings.Contains(s, "SSH: WARNING: SSH is on: root can log in to this host over the network")
	})
	t.Logf("home screen:\n%s", h.m.View())
	for i, l := range strings.Split(h.m.View(), "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line %d is wider than the screen: %q", i+1, l)
		}
	}

	// The support screen: each server's and target's own error, SSH's
	// port and host key.
	h.keys("enter")
	h.keys("Plinth-Test-42", "enter") // no password yet: set it first
	h.keys("Plinth-Test-42", "enter")
	if h.m.scr != scrMenu {
		t.Fatalf("not at the menu:\n%s", h.m.View())
	}
	h.menu("View Support Information")
	st, err := rig.Client.SSH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scr = h.flat()
	for _, want := range []string{
		"Time: NOT SYNCED " + ntpDead + " (api): FAILING: ",
		"Remote log: " + logDead + ": not connected, 0 sent,",
		"FAILING: dial tcp " + strings.TrimPrefix(logDead, "tcp://"),
		"SSH: ON - port " + strconv.Itoa(st.Port) + ", a login gets the DCUI, 0 key(s), 0 session(s) host key " + st.HostKeyFingerprint,
	} {
		if !strings.Contains(scr, want) {
			t.Errorf("the support screen lacks %q:\n%s", want, h.m.View())
		}
	}
	t.Logf("support screen:\n%s", h.m.View())
	h.keys("esc", "esc") // back to the menu, logged out to the home screen

	// Debian's chronyd and rsyslogd answer; SSH off.
	ntpPort := peerstest.FreePort(t)
	peerstest.Chrony(t, "127.0.0.1", ntpPort)
	logPort := peerstest.FreePort(t)
	peerstest.Rsyslog(t, "127.0.0.1", peerstest.SyslogPorts{TCP: logPort})
	ntpOK, logOK := "127.0.0.1:"+strconv.Itoa(ntpPort), "tcp://127.0.0.1:"+strconv.Itoa(logPort)
	if ts, err := rig.Client.SetTime(ctx, api.TimeConfig{Enabled: true, Servers: []string{ntpOK}}); err != nil || !ts.Synced {
		t.Fatalf("time against chronyd: %+v, %v", ts, err)
	}
	if _, err := rig.Client.SetSyslog(ctx, api.SyslogConfig{Targets: []string{logOK}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.SetSSH(ctx, api.SSHConfig{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	h.homeUntil(15*time.Second, "the problems gone", func(s string) bool {
		return strings.Contains(s, "Time: synced with "+ntpOK+" at ") && strings.Contains(s, "Remote log: sending to "+logOK) &&
			!strings.Contains(s, "SSH:") && !strings.Contains(s, "NOT SYNCED") && !strings.Contains(s, "FAILING")
	})
	t.Logf("home screen:\n%s", h.m.View())
}

// TestHomeSaysSlowOrFailingAPI: a call vmkernel does not answer within
// AskWithin is said as such on its line while the other facts are shown,
// the refresh ends by AskWithin (the calls run at the same time), and the
// console takes keys meanwhile; with vmkernel gone every line says so.
func TestHomeSaysSlowOrFailingAPI(t *testing.T) {
	rig := plainRig(t)
	// A real proxy in front of vmkernel's socket that holds GET
	// /v1/host/time until the test ends.
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	sock := filepath.Join(rig.Base, "slow.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "vmkernel"})
	proxy.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", rig.Socket)
	}}
	var asked atomic.Int64 // requests that reached vmkernel's socket
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path == api.VMKernel(api.HostTimePath) {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	slow, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}

	const within = time.Second
	t0 := time.Now()
	h := plainHarness(t, slow, within)
	took := time.Since(t0)
	scr := h.flat()
	if !strings.Contains(scr, "Time: UNKNOWN: no answer from vmkernel within 1s") || !strings.Contains(scr, "Host name: esx-lab1") ||
		!strings.Contains(scr, "VMs: 0 running, 0 total") {
		t.Fatalf("a slow time call is not said as such beside the other facts:\n%s", h.m.View())
	}
	if took > within+10*time.Second { // the held call's deadline, not a hang
		t.Errorf("the refresh took %v with one call held: want about %v (the calls at the same time)", took, within)
	}

	// Update never waits on the API: a tick that starts a refresh, and a
	// key, return a command that makes the calls; Update itself asks
	// vmkernel nothing.
	before := asked.Load()
	if before == 0 {
		t.Fatal("the refresh's calls did not reach the counting proxy")
	}
	nm, cmd := h.m.Update(tickMsg{time.Now().Add(time.Hour)})
	nm, _ = nm.(Model).Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'r'}})
	if n := asked.Load() - before; n != 0 || cmd == nil {
		t.Errorf("Update made %d calls to vmkernel (command %v), want none and a command", n, cmd != nil)
	}
	h.m = nm.(Model)

	// vmkernel gone: every line says it.
	gone, err := client.NewVMKernel(filepath.Join(rig.Base, "nonexistent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	h = plainHarness(t, gone, within)
	scr = h.flat()
	for _, want := range []string{"vmkernel does not answer:", "Time: UNKNOWN: client: GET /v1/host/time:", "Remote log: UNKNOWN:", "SSH: UNKNOWN:"} {
		if !strings.Contains(scr, want) {
			t.Errorf("with vmkernel gone the home screen lacks %q:\n%s", want, h.m.View())
		}
	}
}

// TestMillis: an offset below half a millisecond either way reads +0.000.
func TestMillis(t *testing.T) {
	for in, want := range map[float64]string{-0.0002: "+0.000", 0.0002: "+0.000", -0.65: "-0.650", 1.2346: "+1.235"} {
		if got := fmt.Sprintf("%+.3f", millis(in)); got != want {
			t.Errorf("millis(%v) = %s, want %s", in, got, want)
		}
	}
}
