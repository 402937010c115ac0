package dcui

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"

	"github.com/plinth/plinth/internal/testenv"
)

// The tests here run the real dcui binary in tmux (at 80x24) against a
// real vmkernel and mgmtd started from their own binaries.

// buildBin builds a command of this module into dir.
func buildBin(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

type tmux struct {
	t      *testing.T
	sock   string
	target string
}

func needTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("PLINTH_REQUIRE_KERNEL") == "1" {
			t.Fatal("tmux is not installed (scripts/deps.sh installs it)")
		}
		testenv.Unmet(t, "tmux is not installed")
	}
}

// startTmux runs argv in a detached 80x24 tmux session on a private
// server. The server is the test's child, not a daemon (tmux -D), and is
// killed when the test's process ends (a test binary killed, or timed
// out, runs no cleanup): its panes hang up and what they run ends with it,
// where a daemon's DCUI ran on for hours.
func startTmux(t *testing.T, env []string, argv ...string) *tmux {
	t.Helper()
	tm := &tmux{t: t, sock: "plinth-dcui-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10), target: "dcui"}
	srv := exec.Command("tmux", "-L", tm.sock, "-f", "/dev/null", "-D")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	srv.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startTied(t, srv); err != nil {
		t.Fatalf("tmux -D: %v", err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	t.Cleanup(func() {
		// kill-server hangs the pane's terminal up, but a process that no
		// longer has it as its controlling terminal is not told (the
		// DCUI's local shell takes the terminal for its own session):
		// end everything the pane started first, and fail on any of it
		// still running.
		if b, err := exec.Command("tmux", "-L", tm.sock, "display-message", "-p", "-t", tm.target, "#{pane_pid}").Output(); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if left := killTree(pid); len(left) > 0 {
					t.Errorf("processes of the tmux pane still run 5 s after SIGKILL: %v", left)
				}
			}
		}
		exec.Command("tmux", "-L", tm.sock, "kill-server").Run()
		select {
		case <-srvDone:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-srvDone
			t.Errorf("the tmux server did not end on kill-server:\n%s", srvOut.String())
		}
	})
	args := []string{"-L", tm.sock, "-f", "/dev/null", "new-session", "-d", "-s", tm.target, "-x", "80", "-y", "24"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, strings.Join(quoteAll(argv), " ")+"; sleep 30")
	// The server listens a moment after it starts.
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := exec.Command("tmux", args...).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmux new-session: %v\n%s\nthe server: %s", err, b, srvOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tm
}

// startTied starts c so that the kernel kills it when the test's process
// ends (Pdeathsig), cleanup or not. The signal comes when the thread that
// forked c ends, so that thread is held, locked, until the test's cleanup.
func startTied(t *testing.T, c *exec.Cmd) error {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started, release := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		started <- c.Start()
		<-release
	}()
	t.Cleanup(func() { close(release) })
	return <-started
}

// killTree kills pid and every process descended from it, and waits (a
// few seconds at most) until they are gone; it returns those that are not.
func killTree(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
	}
	var tree []int
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				tree = append(tree, pid)
				break
			}
		}
	}
	for _, pid := range tree {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var alive []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		alive = alive[:0]
		for _, pid := range tree {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return nil
		}
	}
	return alive
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

func (tm *tmux) screen() string {
	b, _ := exec.Command("tmux", "-L", tm.sock, "capture-pane", "-p", "-t", tm.target).Output()
	return string(b)
}

// wait polls the pane until it shows want.
func (tm *tmux) wait(want string, timeout time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := tm.screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the DCUI did not show %q within %v; the screen:\n%s", want, timeout, s)
		}
		time.Sleep(5 * time.Millisecond) // polling tmux's pane; nothing to wait on
	}
}

// keys sends tmux key names (Enter, Escape, Down, F2...) or literal text (-l).
func (tm *tmux) keys(keys ...string) {
	tm.t.Helper()
	for _, k := range keys {
		args := []string{"-L", tm.sock, "send-keys", "-t", tm.target}
		switch k {
		case "Enter", "Escape", "Up", "Down", "Left", "Right", "Tab", "F2", "F12", "C-u", "BSpace":
			args = append(args, k)
		default:
			args = append(args, "-l", k)
		}
		if b, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
			tm.t.Fatalf("tmux send-keys %q: %v\n%s", k, err, b)
		}
	}
}

func (tm *tmux) pid() int {
	b, err := exec.Command("tmux", "-L", tm.sock, "display", "-p", "-t", tm.target, "#{pane_pid}").Output()
	if err != nil {
		tm.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// childRSS is the resident memory (KiB) of the pane shell's child named name.
func childRSS(t *testing.T, shellPID int, name string) int {
	t.Helper()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", shellPID, shellPID))
	for _, f := range strings.Fields(string(b)) {
		comm, _ := os.ReadFile("/proc/" + f + "/comm")
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		st, _ := os.ReadFile("/proc/" + f + "/status")
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				return kb
			}
		}
	}
	t.Fatalf("no %s process under the tmux pane (pid %d)", name, shellPID)
	return 0
}

type services struct {
	state, run, auth, vmkSock, resolv, url string
	hc                                     *http.Client // reaches mgmtd at url
}

// startServices starts vmkernel and mgmtd from their binaries in temp dirs.
func startServices(t *testing.T, bin string) services { return startServicesIn(t, bin, "") }

// startServicesIn is startServices in the named network namespace when ns
// is not "": mgmtd then serves on all of the namespace's addresses (port
// 8443) and hc dials into the namespace.
func startServicesIn(t *testing.T, bin, ns string) services {
	t.Helper()
	base := t.TempDir()
	// QEMU runs as the VMs' own users: vmkernel wants its run root's
	// directories passable by them.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := services{state: filepath.Join(base, "state"), run: filepath.Join(base, "run"), resolv: filepath.Join(base, "resolv.conf")}
	s.auth = filepath.Join(s.state, "mgmtd")
	s.vmkSock = filepath.Join(s.run, "vmkernel.sock")
	for _, d := range []string{s.auth, s.run} {
		os.MkdirAll(d, 0o755)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	var addr string
	if ns == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	} else {
		addr = "127.0.0.1:8443"
		tr.DialContext = func(ctx context.Context, network, a string) (c net.Conn, err error) {
			err = vswitchtest.Do(ns, func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, a)
				return err
			})
			return c, err
		}
	}
	listen := addr
	if ns != "" {
		listen = ":8443"
	}
	cmd := func(name string, args ...string) *exec.Cmd {
		if ns == "" {
			return exec.Command(filepath.Join(bin, name), args...)
		}
		return exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(bin, name)}, args...)...)
	}
	vmk := cmd("vmkernel", "-socket", s.vmkSock, "-state", filepath.Join(s.state, "vmkernel"),
		"-run", filepath.Join(s.run, "vms"), "-accel", "tcg", "-socket-gid", strconv.Itoa(os.Getgid()),
		"-host-state", s.state, "-host-run", s.run, "-resolv-conf", s.resolv, "-set-hostname=false", "-set-clock=false")
	mg := cmd("mgmtd", "-listen", listen, "-state", s.auth, "-vmkernel", s.vmkSock)
	for _, c := range []*exec.Cmd{vmk, mg} {
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		// Killed with the test's process, which runs no cleanup when it
		// is killed or times out.
		if err := startTied(t, c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.Process.Kill()
			c.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", c.Path, out.String())
			}
		})
	}
	s.url = "https://" + addr
	s.hc = &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := s.hc.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mgmtd did not answer /healthz: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// call sends a JSON request with token to url and decodes the answer into
// out (when not nil), failing the test unless the status is want.
func call(t *testing.T, hc *http.Client, method, url, token string, in, out any, want int) {
	t.Helper()
	var body bytes.Buffer
	if in != nil {
		json.NewEncoder(&body).Encode(in)
	}
	req, err := http.NewRequest(method, url, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, url, resp.Status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// TestBinaryStartsSmall starts the real binary in tmux against a real
// vmkernel and mgmtd: it draws its home screen, with the facts of the first
// refresh, and stays under 32 MiB resident. How fast it starts is
// bench/dcui's to measure (median against a floor), not a test's to bound.
func TestBinaryStartsSmall(t *testing.T) {
	needTmux(t)
	bin := t.TempDir()
	dcuiBin := buildBin(t, bin, "./dcui/cmd/dcui")
	buildBin(t, bin, "./vmkernel/cmd/vmkernel")
	buildBin(t, bin, "./mgmtd/cmd/mgmtd")
	s := startServices(t, bin)
	tm := startTmux(t, []string{"TERM=xterm-256color"}, dcuiBin, "-vmkernel", s.vmkSock)
	scr := tm.wait("VMs:        0 running, 0 total", 30*time.Second)
	if !strings.Contains(scr, "FIRST BOOT") || !strings.Contains(scr, "TLS certificate") {
		t.Errorf("home screen:\n%s", scr)
	}
	time.Sleep(6 * time.Second) // through a refresh, for a fair memory figure
	rss := childRSS(t, tm.pid(), "dcui")
	t.Logf("dcui resident memory: %d KiB", rss)
	if rss > 32<<10 {
		t.Errorf("dcui uses %d KiB resident, want under 32 MiB", rss)
	}
}

// TestBinarySetsPasswordAndStaticAddress drives the real binary with the
// real vmkernel and mgmtd, all three in a network namespace whose NIC eth9
// is a veth to the host (198.51.100.1/24 on the host's end; the host's own
// network is untouched): the first-boot password is set (then accepted by
// mgmtd's login), a static 198.51.100.10/24 is applied on the console,
// confirmed through the API by a request from the host to the new address
// (refused on any other), and the API reports it saved and live; STATE and
// the home screen have it.
func TestBinarySetsPasswordAndStaticAddress(t *testing.T) {
	needTmux(t)
	if os.Geteuid() != 0 {
		testenv.Unmet(t, "needs root for a network namespace")
	}
	bin := t.TempDir()
	dcuiBin := buildBin(t, bin, "./dcui/cmd/dcui")
	buildBin(t, bin, "./vmkernel/cmd/vmkernel")
	buildBin(t, bin, "./mgmtd/cmd/mgmtd")

	id := os.Getpid()%100000*10 + int(time.Now().UnixNano()%10)
	ns, hostEnd := fmt.Sprintf("plinth-dcui-%d", id), fmt.Sprintf("pdcui%d", id)
	run := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth9", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostEnd).Run() })
	run("ip", "addr", "add", "198.51.100.1/24", "dev", hostEnd)
	run("ip", "link", "set", hostEnd, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")
	s := startServicesIn(t, bin, ns)

	// The DCUI is only a client of vmkernel's socket: it needs no namespace.
	tm := startTmux(t, []string{"TERM=xterm-256color"}, dcuiBin, "-vmkernel", s.vmkSock, "-confirm", "60s")
	tm.wait("FIRST BOOT", 5*time.Second)

	const pw = "Tmux-Console-7"
	tm.keys("F2")
	tm.wait("New password:", 5*time.Second)
	tm.keys(pw, "Enter", pw, "Enter")
	tm.wait("System Customization", 10*time.Second)

	// mgmtd takes the console's password.
	var sess api.Session
	call(t, s.hc, http.MethodPost, s.url+api.MgmtdSessionsPath, "", api.LoginRequest{User: api.RootUser, Password: pw}, &sess, http.StatusCreated)

	// Configure Management Network: eth9, static 198.51.100.10/24 via .1.
	tm.keys("Down", "Down")
	tm.wait("> Configure Management Network", 5*time.Second)
	tm.keys("Enter")
	scr := tm.wait("Uplink NIC:", 5*time.Second)
	if !strings.Contains(scr, "eth9") {
		t.Fatalf("the NIC list lacks eth9:\n%s", scr)
	}
	tm.keys("Right", "Down", "Down", "Right", "Down", "198.51.100.10", "Down", "255.255.255.0", "Down", "198.51.100.1",
		"Down", "Down", "198.51.100.53", "Down", "Down", "esx-tmux")
	tm.wait("< eth9 >", 5*time.Second)
	tm.keys("Enter")
	tm.wait("Keep this configuration?", 10*time.Second)
	tm.wait("POST https://198.51.100.10"+api.Mgmtd(api.HostNetConfirmPath), 10*time.Second)
	if out := run("ip", "-n", ns, "addr", "show", "eth9"); !strings.Contains(out, "198.51.100.10/24") {
		t.Fatalf("eth9 lacks the address:\n%s", out)
	}

	// The API shows the change waiting; a confirmation that does not come
	// by the new address is refused.
	var n api.HostNetwork
	call(t, s.hc, http.MethodGet, s.url+api.Mgmtd(api.HostNetworkPath), sess.Token, nil, &n, http.StatusOK)
	if n.Saved || n.Pending == nil || n.Pending.Address != "198.51.100.10/24" || n.Pending.Confirmed {
		t.Fatalf("GET %s while the change waits: %+v", api.Mgmtd(api.HostNetworkPath), n)
	}
	call(t, s.hc, http.MethodPost, s.url+api.Mgmtd(api.HostNetConfirmPath), sess.Token, nil, nil, http.StatusConflict)

	// From the host, over the veth, to the new address: kept.
	newURL := "https://198.51.100.10:8443"
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var ch api.NetworkChange
	call(t, hc, http.MethodPost, newURL+api.Mgmtd(api.HostNetConfirmPath), sess.Token, nil, &ch, http.StatusOK)
	if !ch.Confirmed || ch.Address != "198.51.100.10/24" {
		t.Errorf("confirm: %+v", ch)
	}
	tm.wait("Confirmed through the API from 198.51.100.10", 10*time.Second)

	n = api.HostNetwork{}
	call(t, hc, http.MethodGet, newURL+api.Mgmtd(api.HostNetworkPath), sess.Token, nil, &n, http.StatusOK)
	if !n.Saved || n.Pending != nil || n.Config.Mode != api.NetModeStatic || n.Config.Address != "198.51.100.10/24" ||
		n.Config.Gateway != "198.51.100.1" || n.Config.NIC != "eth9" || n.Config.Hostname != "esx-tmux" {
		t.Errorf("GET %s after the confirmation, saved part: %+v (pending %+v)", api.Mgmtd(api.HostNetworkPath), n.Config, n.Pending)
	}
	if !slices.Contains(n.Live.Addresses, "198.51.100.10/24") || n.Live.NIC != "eth9" || n.Live.Gateway != "198.51.100.1" ||
		!slices.Contains(n.Live.DNS, "198.51.100.53") || n.Live.DHCP != nil {
		t.Errorf("GET %s after the confirmation, live part: %+v", api.Mgmtd(api.HostNetworkPath), n.Live)
	}
	cfg, ok, err := netconf.Load(s.state)
	if err != nil || !ok || cfg.Address.String() != "198.51.100.10/24" || cfg.NIC != "eth9" || cfg.Hostname != "esx-tmux" {
		t.Fatalf("saved configuration %+v (%v, %v)", cfg, ok, err)
	}
	tm.keys("Enter", "Escape")
	tm.wait("https://198.51.100.10/", 10*time.Second)
}
