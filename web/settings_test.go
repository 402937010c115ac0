package web_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/vishvananda/netns"
	"golang.org/x/crypto/ssh"

	"github.com/plinth/plinth/internal/peerstest"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
	"github.com/plinth/plinth/web/webtest"
)

// The management network of the settings tests: the host's NIC eth9 in a
// network namespace of its own, a veth whose other end (in this machine's
// namespace, where Chromium runs) has .1; the host starts on .10 and the
// tour moves it to .11. TEST-NET-3, which no other test uses.
const (
	netHostEnd = "203.0.113.1/24"
	netOld     = "203.0.113.10"
	netNew     = "203.0.113.11"
)

// serveNet is serveRig with a management network the host settings drive
// for real: vmkernel applies changes to eth9 in a network namespace, and
// mgmtd listens there on every address (as on the appliance), so that a
// change is kept only by a request that reaches its new address. It
// answers the site with its NetChange.
func serveNet(t *testing.T) (webtest.Site, *vmkerneltest.Rig) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unmet(t, "needs root for a network namespace")
	}
	id := os.Getpid()%100000*10 + int(time.Now().UnixNano()%10)
	ns, hostEnd := fmt.Sprintf("plinth-web-%d", id), fmt.Sprintf("pweb%d", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth9", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostEnd).Run() })
	run("ip", "addr", "add", netHostEnd, "dev", hostEnd)
	run("ip", "link", "set", hostEnd, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "link", "set", "eth9", "up")
	run("ip", "-n", ns, "addr", "add", netOld+"/24", "dev", "eth9")

	rig := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}, ApplyDelay: time.Second,
		Net: &netconf.Host{Applier: &netconf.Applier{SysRoot: "/sys", ProcRoot: "/proc", ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}, NetNS: ns}})
	l := listenIn(t, ns)
	url := serveOn(t, rig, l)
	port := url[strings.LastIndex(url, ":")+1:]
	return webtest.Site{URL: "https://" + netOld + ":" + port, Password: password, Datastore: "ds1",
		Net: &webtest.NetChange{NIC: "eth9", Address: netNew + "/24", Gateway: "203.0.113.1", NewURL: "https://" + netNew + ":" + port}}, rig
}

// listenIn listens on every address of the network namespace ns, on a
// thread that enters it and is then thrown away (the socket stays there).
func listenIn(t *testing.T, ns string) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		h, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: err}
			return
		}
		l, err := net.Listen("tcp", ":0")
		ch <- result{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}

// TestBrowserNetworkChange drives the management network's change on the
// host settings page in Chromium against a real vmkernel and mgmtd whose
// management network lives in a namespace: a bad address refused beside
// its field; a static address applied, its countdown shown, kept from the
// new address after logging in there.
func TestBrowserNetworkChange(t *testing.T) {
	site, rig := serveNet(t)
	b := webtest.Start(t, shots(t), 1280, 900)
	webtest.Login(t, b, site)
	webtest.KeepNetworkChange(t, b, site)
	n, err := rig.Client.HostNetwork(t.Context())
	if err != nil || !n.Saved || n.Config.Address != netNew+"/24" || n.Config.NIC != "eth9" || n.Pending != nil {
		t.Fatalf("after keeping the change the host has %+v (pending %+v), %v", n.Config, n.Pending, err)
	}
	if n.LastChange == nil || !strings.Contains(n.LastChange.Outcome, "from "+netNew) {
		t.Errorf("the last change: %+v, want kept through the API from %s", n.LastChange, netNew)
	}
}

// TestBrowserHostSettings drives the rest of the host settings page in
// Chromium against a real vmkernel and mgmtd: a bad NTP server beside its
// field, then Debian's chronyd, with which the host is in sync; a bad
// syslog target beside its field, then Debian's rsyslogd, which receives
// the audit log's lines; a bad SSH key beside its field, a real one
// listed, SSH on past its warning (and a real SSH server answering), then
// lockdown on turning it off; a wrong password to turn lockdown off shown
// beside the field without ending the session, the right one; a bad
// certificate beside its field; a log read; the support bundle downloaded
// (a tar.gz with the host's facts and events); a weak password beside its
// field, then a new one that ends the session, and a login with it.
func TestBrowserHostSettings(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}, SSHAddr: "127.0.0.1:0"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	site := webtest.Site{URL: serveOn(t, rig, l), Password: password, Datastore: "ds1"}
	b := webtest.Start(t, shots(t), 1280, 900)
	webtest.Login(t, b, site)
	webtest.Click(t, b, "open the host settings", `a[href="/settings"]`)
	b.WaitFor("the settings", `document.querySelector('#time-facts') && document.querySelector('#ssh-state')`, 30*time.Second)

	// Time: a server that is not one beside the field, naming its line;
	// then Debian's chronyd, asked at once.
	ntpPort := peerstest.FreePort(t)
	peerstest.Chrony(t, "127.0.0.1", ntpPort)
	webtest.TypeInto(t, b, `#time [name=servers]`, "bad_host!")
	webtest.Click(t, b, "save the time servers", `#time button[type=submit]`)
	b.WaitFor("the bad server beside its field", `(e => e && e.textContent.includes('line 1 (bad_host!)'))(document.querySelector('#time .error[data-field=servers]'))`, 20*time.Second)
	b.Shot("time-refused")
	ntp := fmt.Sprintf("127.0.0.1:%d", ntpPort)
	webtest.TypeInto(t, b, `#time [name=servers]`, ntp)
	webtest.Click(t, b, "save the time servers", `#time button[type=submit]`)
	b.WaitFor("in sync with chronyd", `(e => e.textContent.includes('in sync') && e.textContent.includes('stratum 8') && e.textContent.includes(`+jsq(ntp)+`))(document.querySelector('#time-facts'))`, 30*time.Second)
	b.Shot("time-synced")
	if ts := rig.HostConf.Time(); !ts.Synced || ts.Server == "" || ts.Stratum != 8 {
		t.Errorf("time after setting chronyd: %+v", ts)
	}

	// Remote logging: a target that is no syslog URL beside its field;
	// then Debian's rsyslogd over UDP.
	logPort := peerstest.FreePort(t)
	rsyslog := peerstest.Rsyslog(t, "127.0.0.1", peerstest.SyslogPorts{UDP: logPort})
	webtest.TypeInto(t, b, `#syslog [name=targets]`, "ftp://127.0.0.1")
	webtest.Click(t, b, "save the syslog servers", `#syslog button[type=submit]`)
	b.WaitFor("the bad target beside its field", `document.querySelector('#syslog .error[data-field=targets]')`, 20*time.Second)
	b.Shot("syslog-refused")
	target := fmt.Sprintf("udp://127.0.0.1:%d", logPort)
	webtest.TypeInto(t, b, `#syslog [name=targets]`, target)
	webtest.Click(t, b, "save the syslog servers", `#syslog button[type=submit]`)
	b.WaitFor("the target listed", `(e => e && e.textContent.includes(`+jsq(target)+`))(document.querySelector('#syslog-targets'))`, 20*time.Second)

	// SSH: a key that is not one beside its field; a real one listed; SSH
	// on, past its warning, and a real SSH server on its port.
	webtest.TypeInto(t, b, `#ssh [name=key]`, "ssh-ed25519 not-a-key")
	webtest.Click(t, b, "add the bad key", `[aria-label="Authorize an SSH key"] button[type=submit]`)
	b.WaitFor("the bad key beside its field", `document.querySelector('#ssh .error[data-field=key]')`, 20*time.Second)
	b.Shot("ssh-key-refused")
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " web-test"
	webtest.TypeInto(t, b, `#ssh [name=key]`, line)
	webtest.Click(t, b, "add the key", `[aria-label="Authorize an SSH key"] button[type=submit]`)
	b.WaitFor("the key listed", `(e => e && e.textContent.includes(`+jsq(ssh.FingerprintSHA256(sshPub))+`) && e.textContent.includes('web-test'))(document.querySelector('#ssh-keys'))`, 20*time.Second)
	webtest.Click(t, b, "tick SSH on", `#ssh [name=enabled]`)
	webtest.Click(t, b, "save", `#ssh-save`)
	b.WaitFor("the warning before", `document.querySelector('.modal') && document.querySelector('.modal').textContent.includes('root on this host')`, 20*time.Second)
	webtest.Click(t, b, "turn SSH on", `.modal button[type=submit]`)
	b.WaitFor("SSH on with its warning", `document.querySelector('#ssh-warning') && document.querySelector('#ssh-state').textContent.startsWith('on, port')`, 20*time.Second)
	b.Shot("ssh-on")
	st := rig.HostConf.SSH()
	if !st.Running || st.Port == 0 || st.Warning == "" {
		t.Fatalf("SSH after turning it on: %+v", st)
	}
	if banner := sshBanner(t, st.Port); !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("port %d answers %q, not an SSH server", st.Port, banner)
	}

	// Lockdown: on, which turns SSH off; off refused with a wrong password
	// beside the field (and the session goes on); off with the right one.
	webtest.Click(t, b, "lockdown on", `#lockdown-on`)
	webtest.Click(t, b, "confirm", `.modal button[type=submit]`)
	b.WaitFor("the header says lockdown", `document.querySelector('header .lockdown')`, 20*time.Second)
	b.WaitFor("SSH shown off", `document.querySelector('#ssh-state').textContent === 'off' && !document.querySelector('#ssh-warning')`, 20*time.Second)
	b.Shot("lockdown-on")
	if on, err := rig.HostConf.Lockdown(); err != nil || !on.Enabled {
		t.Fatalf("lockdown after turning it on: %+v, %v", on, err)
	}
	if st := rig.HostConf.SSH(); st.Running || st.Config.Enabled {
		t.Errorf("SSH under lockdown: %+v", st)
	}
	webtest.TypeInto(t, b, `#lockdown [name=password]`, "Wrong-password-1\r")
	b.WaitFor("the wrong password beside its field", `(e => e && e.textContent.includes('wrong'))(document.querySelector('#lockdown .error[data-field=password]'))`, 20*time.Second)
	b.Shot("lockdown-wrong-password")
	webtest.TypeInto(t, b, `#lockdown [name=password]`, password+"\r")
	b.WaitFor("lockdown off", `document.querySelector('#lockdown-state').textContent.includes('is off') && !document.querySelector('header .lockdown')`, 20*time.Second)

	// rsyslogd got the audit log's lines of it, and the page counts them.
	if _, err := rsyslog.Wait(30*time.Second, "audit", "lockdown"); err != nil {
		t.Errorf("rsyslogd: %v\nreceived:\n%s", err, strings.Join(rsyslog.Lines(), "\n"))
	}
	b.WaitFor("messages counted sent", `(r => r && Number(r.cells[2].textContent) > 0)(document.querySelector('#syslog-targets tbody tr'))`, 30*time.Second)

	// A certificate that is not one: its problem beside the field.
	webtest.Click(t, b, "replace the certificate", `#cert-replace`)
	webtest.TypeInto(t, b, `.cert-form [name=certificate_pem]`, "not a certificate")
	webtest.TypeInto(t, b, `.cert-form [name=key_pem]`, "not a key")
	webtest.Click(t, b, "send it", `.cert-form button[type=submit]`)
	b.WaitFor("the certificate's problem beside it", `document.querySelector('.cert-form .error[data-field=certificate_pem], .cert-form .error[data-field=key_pem]')`, 20*time.Second)
	b.Shot("certificate-refused")

	// The audit log has the lockdown changes.
	webtest.Click(t, b, "view the audit log", `button[data-log=audit]`)
	b.WaitFor("the audit log's end", `(e => e && e.textContent.includes('lockdown'))(document.querySelector('#log-text'))`, 20*time.Second)

	// The support bundle: a tar.gz holding the settings.
	dl := t.TempDir()
	b.Do("allow downloads", 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		c := chromedp.FromContext(ctx)
		_, err := cdp.Call(ctx, c.Browser, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl, BrowserContextID: c.BrowserContextID})
		return err
	}))
	webtest.Click(t, b, "download the support bundle", `#bundle-get`)
	b.WaitFor("the bundle downloaded", `(e => e && e.textContent.includes('plinth-support-'))(document.querySelector('#bundle-done'))`, 60*time.Second)
	b.Shot("support-bundle")
	checkBundle(t, dl)

	// The root password: a weak one beside its field; a good one ends the
	// session; the new one logs in.
	webtest.TypeInto(t, b, `[aria-label="Change the root password"] [name=password]`, "weak")
	webtest.TypeInto(t, b, `[aria-label="Change the root password"] [name=repeat]`, "weak\r")
	b.WaitFor("the weak password's problem beside it", `document.querySelector('[aria-label="Change the root password"] .error[data-field=password]')`, 20*time.Second)
	b.Shot("password-refused")
	const newPassword = "Plinth-web-2b"
	webtest.TypeInto(t, b, `[aria-label="Change the root password"] [name=password]`, newPassword)
	webtest.TypeInto(t, b, `[aria-label="Change the root password"] [name=repeat]`, newPassword+"\r")
	b.WaitFor("the login page saying why", `document.querySelector('input[name=password]') && document.body.textContent.includes('root password changed')`, 20*time.Second)
	b.Shot("password-changed")
	site.Password = newPassword
	webtest.Login(t, b, site)
	if pw, err := rig.HostConf.PasswordStatus(); err != nil || !pw.Set {
		t.Errorf("password status %+v, %v", pw, err)
	}
}

// jsq quotes s as a JavaScript string.
func jsq(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sshBanner is the first line the server on 127.0.0.1:port says.
func sshBanner(t *testing.T, port int) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatalf("SSH port: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("SSH banner: %v", err)
	}
	return strings.TrimSpace(line)
}

// checkBundle waits for the one support bundle Chromium saves in dir and
// checks it is a tar.gz holding the host's settings and events.
func checkBundle(t *testing.T, dir string) {
	t.Helper()
	var path string
	for deadline := time.Now().Add(30 * time.Second); path == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no support bundle saved in %s", dir)
		}
		m, _ := filepath.Glob(filepath.Join(dir, "plinth-support-*.tar.gz"))
		if len(m) == 1 {
			path = m[0]
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(z)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		_, name, _ := strings.Cut(h.Name, "/") // below the bundle's directory
		names[name] = true
	}
	var all []string
	for n := range names {
		all = append(all, n)
	}
	if !names["events.json"] || !names["host.json"] {
		t.Errorf("the support bundle holds %v: want events.json and host.json among them", all)
	}
	t.Logf("support bundle %s: %d files", filepath.Base(path), len(names))
}
