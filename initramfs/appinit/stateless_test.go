package appinit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

const statelessPassword = "Stateless-pass-1"

func statelessAnswer(t *testing.T, extra string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(statelessPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "# a stateless host\nhostname = esx-pxe-7\nnic = eth1\nroot_password_hash = " + string(hash) +
		"\nntp = pool.ntp.org\ndisk = /dev/sda\n" + extra
}

// statelessHost is an init that found no STATE, with plinth.config=url, its
// STATE and run directories in t.TempDir, and the network brought up with
// netcfg.
func statelessHost(t *testing.T, url string, netcfg netconf.Config, cmdline Cmdline) (*initProc, *bytes.Buffer) {
	t.Helper()
	var console bytes.Buffer
	c := Cmdline{ConfigKey: url}
	for k, v := range cmdline {
		c[k] = v
	}
	p := &initProc{cfg: Config{Console: &console, Layout: testLayout(t), Cmdline: c}, live: true, netcfg: netcfg}
	p.noState(errors.New("no block device holds an ext4 file system labelled PLINTH-STATE"))
	return p, &console
}

func readMode(t *testing.T, p *initProc) api.BootMode {
	t.Helper()
	b, err := os.ReadFile(p.cfg.Layout.BootModeFile())
	if err != nil {
		t.Fatal(err)
	}
	var m api.BootMode
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// pinned is the command line that pins an answer file's content, as
// plinth-pxe writes it.
func pinned(content string) Cmdline {
	sum := sha256.Sum256([]byte(content))
	return Cmdline{installer.AnswerSHA256Key: hex.EncodeToString(sum[:])}
}

func TestStatelessAppliesAnswer(t *testing.T) {
	answer := statelessAnswer(t, "")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/answers/52-54-00-50-58-45.txt" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	url := srv.URL + "/answers/52-54-00-50-58-45.txt"
	// What plinth-pxe's command line brought up: DHCP on eth1.
	up := netconf.Default()
	up.NIC = "eth1"
	applied := false
	defer func(f func(context.Context, netconf.Config, func(string, ...any)) (netconf.Result, error)) {
		applyNet = f
	}(applyNet)
	applyNet = func(context.Context, netconf.Config, func(string, ...any)) (netconf.Result, error) {
		applied = true
		return netconf.Result{}, nil
	}
	p, console := statelessHost(t, url, up, pinned(answer))
	if !strings.Contains(console.String(), "STATELESS MODE") {
		t.Errorf("no stateless banner:\n%s", console)
	}
	p.bootMode()
	if p.mode.Mode != api.BootStateless || p.mode.Source != url {
		t.Fatalf("mode %+v, want stateless from %s; console:\n%s", p.mode, url, console)
	}
	if m := readMode(t, p); m != p.mode {
		t.Errorf("boot mode file %+v, want %+v", m, p.mode)
	}
	if applied {
		t.Error("the network was applied again though the command line's was the answer's")
	}
	if p.netcfg.Hostname != "esx-pxe-7" || p.netcfg.NIC != "eth1" {
		t.Errorf("network configuration %+v, want the answer's (host name esx-pxe-7 on eth1)", p.netcfg)
	}
	dir := p.cfg.Layout.State
	if err := auth.Verify(filepath.Join(dir, "mgmtd"), api.RootUser, statelessPassword); err != nil {
		t.Errorf("the answer's root password does not log in: %v", err)
	}
	if cfg, ok, err := netconf.Load(dir); !ok || err != nil || cfg.NIC != "eth1" || cfg.Hostname != "esx-pxe-7" {
		t.Errorf("STATE network.json: %+v %v %v", cfg, ok, err)
	}
	for f, want := range map[string]string{"config/hostname": "esx-pxe-7\n", "config/ntp": "pool.ntp.org\n"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(b) != want {
			t.Errorf("STATE %s = %q (%v), want %q", f, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "config", "installed")); err == nil {
		t.Error("a stateless host is marked installed")
	}
}

// An answer whose network the command line could not carry (a VLAN) is
// applied once more.
func TestStatelessReappliesNetwork(t *testing.T) {
	answer := statelessAnswer(t, "vlan = 42\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	up := netconf.Default()
	up.NIC = "eth1"
	var got netconf.Config
	defer func(f func(context.Context, netconf.Config, func(string, ...any)) (netconf.Result, error)) {
		applyNet = f
	}(applyNet)
	applyNet = func(_ context.Context, c netconf.Config, _ func(string, ...any)) (netconf.Result, error) {
		got = c
		return netconf.Result{Interface: "eth1.42", Address: "192.0.2.7/24", Method: "dhcp"}, nil
	}
	p, console := statelessHost(t, srv.URL+"/a.txt", up, pinned(answer))
	p.bootMode()
	if p.mode.Mode != api.BootStateless || got.VLAN != 42 || p.net.Address != "192.0.2.7/24" {
		t.Errorf("mode %+v, applied %+v, result %+v; console:\n%s", p.mode, got, p.net, console)
	}
}

// Without a usable answer file the host runs live and says why: one the
// command line does not pin (or that is not what it pins) is not used.
func TestStatelessFallsBackToLive(t *testing.T) {
	bad, clear, good := statelessAnswer(t, "colour = blue\n"), "hostname = h\nroot_password = Secret-1\n", statelessAnswer(t, "")
	var fetched atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		switch r.URL.Path {
		case "/bad.txt":
			w.Write([]byte(bad))
		case "/clear.txt":
			w.Write([]byte(clear))
		case "/good.txt":
			w.Write([]byte(good))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/a.txt"
	l.Close()

	for _, c := range []struct {
		name, url string
		pin       Cmdline
		want      []string
		maxTime   time.Duration
	}{
		{"missing", srv.URL + "/nobody.txt", pinned(good), []string{"GET " + srv.URL + "/nobody.txt: 404 Not Found"}, 5 * time.Second},
		{"bad-key", srv.URL + "/bad.txt", pinned(bad), []string{srv.URL + "/bad.txt: answer file line 7 (colour): unknown key"}, 5 * time.Second},
		{"clear-password", srv.URL + "/clear.txt", pinned(clear), []string{"line 2 (root_password)"}, 5 * time.Second},
		{"no-server", closed, pinned(good), []string{"no answer in 1s", "connection refused"}, 10 * time.Second},
		{"not-http", "tftp://192.0.2.2/a.txt", nil, []string{"want an http:// or https:// URL"}, 5 * time.Second},
		{"unpinned", srv.URL + "/good.txt", nil, []string{"plain http", installer.AnswerSHA256Key + "=HEX"}, 5 * time.Second},
		{"not-the-pinned-file", srv.URL + "/good.txt", pinned(bad), []string{"the answer file's sha256 is", "plinth.answer_sha256 says"}, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmdline := Cmdline{ConfigTimeoutKey: "1"}
			for k, v := range c.pin {
				cmdline[k] = v
			}
			before := fetched.Load()
			p, console := statelessHost(t, c.url, netconf.Default(), cmdline)
			t0 := time.Now()
			p.bootMode()
			if took := time.Since(t0); took > c.maxTime {
				t.Errorf("took %s, want under %s", took, c.maxTime)
			}
			t.Logf("console:\n%s", console)
			if p.mode.Mode != api.BootLive {
				t.Fatalf("mode %+v, want live; console:\n%s", p.mode, console)
			}
			for _, w := range c.want {
				if !strings.Contains(p.mode.Reason, w) {
					t.Errorf("reason %q does not say %q", p.mode.Reason, w)
				}
			}
			if !strings.Contains(console.String(), "LIVE MODE: no stateless configuration: ") {
				t.Errorf("no live banner with the reason on the console:\n%s", console)
			}
			if m := readMode(t, p); m.Mode != api.BootLive || m.Reason != p.mode.Reason {
				t.Errorf("boot mode file %+v, want %+v", m, p.mode)
			}
			if _, err := os.Stat(filepath.Join(p.cfg.Layout.AuthDir(), "passwd.json")); err == nil {
				t.Error("a root password was written from an answer file that was refused")
			}
			if c.name == "unpinned" && fetched.Load() != before {
				t.Error("an unpinned http URL was fetched")
			}
		})
	}
}

// A server error is tried again; a host without plinth.config runs live.
func TestStatelessRetriesAndLive(t *testing.T) {
	var hits atomic.Int32
	answer := statelessAnswer(t, "")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	var log bytes.Buffer
	pin, _ := installer.PinFromCmdline(pinned(answer))
	b, err := FetchConfig(context.Background(), srv.URL, pin, 20*time.Second, func(f string, a ...any) { log.WriteString(f + "\n") })
	if err != nil || !bytes.Contains(b, []byte("esx-pxe-7")) || hits.Load() != 2 {
		t.Errorf("fetch: %v after %d tries, %q; log:\n%s", err, hits.Load(), b, log.String())
	}

	var console bytes.Buffer
	p := &initProc{cfg: Config{Console: &console, Layout: testLayout(t), Cmdline: Cmdline{}}, live: true}
	p.noState(errors.New("no STATE here"))
	p.bootMode()
	if p.mode.Mode != api.BootLive || p.mode.Reason != "no STATE here" || !strings.Contains(console.String(), "LIVE MODE: no STATE here.") {
		t.Errorf("mode %+v; console:\n%s", p.mode, console.String())
	}
	q := &initProc{cfg: Config{Console: &console, Layout: testLayout(t)}}
	q.bootMode()
	if q.mode.Mode != api.BootInstalled {
		t.Errorf("with STATE: mode %+v, want installed", q.mode)
	}
}

// testLayout is a host layout in a temporary directory, its STATE and run
// directories made (the init makes them on the appliance).
func testLayout(t *testing.T) layout.Host {
	t.Helper()
	l := layout.Under(t.TempDir())
	for _, d := range []string{l.State, l.Run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// An unattended install from an answer file over plain http that the
// command line does not pin is refused before anything is fetched, with
// the reason on the console; one whose sha256 does not match is refused
// once fetched. (An install that goes ahead runs end to end in qemu-test.)
func TestInstallRefusesUnpinnedAnswer(t *testing.T) {
	answer := statelessAnswer(t, "")
	var fetched atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	for _, c := range []struct {
		name string
		pin  Cmdline
		want string
	}{
		{"unpinned", nil, installer.AnswerSHA256Key + "=HEX"},
		{"another file", pinned("hostname = other\n"), "the answer file's sha256 is"},
	} {
		var console bytes.Buffer
		cmdline := Cmdline{installer.CmdlineKey: srv.URL + "/a.cfg"}
		for k, v := range c.pin {
			cmdline[k] = v
		}
		before := fetched.Load()
		p := &initProc{cfg: Config{Console: &console, Layout: testLayout(t), Cmdline: cmdline}}
		if done, _ := p.installUnattended(); done {
			t.Fatalf("%s: the install went ahead", c.name)
		}
		out := console.String()
		if !strings.Contains(out, InstallFailedPrefix) || !strings.Contains(out, c.want) || !strings.Contains(out, "refused") {
			t.Errorf("%s: console does not say %s with %q:\n%s", c.name, InstallFailedPrefix, c.want, out)
		}
		if c.pin == nil && fetched.Load() != before {
			t.Errorf("%s: the unpinned answer file was fetched", c.name)
		}
	}
}
