package qemutest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/peerstest"
	"github.com/plinth/plinth/internal/testenv"
)

// hostSettingsPassword is the root password TestApplianceHostSettings
// changes to through the API (scanned for in the logs after the suite).
const hostSettingsPassword = "Plinth-e2e-newpass-2"

// TestApplianceHostSettings boots the appliance once (with a STATE disk)
// and, after the first-boot password on the console, changes every host
// setting through mgmtd's API alone, on QEMU's user-mode network: a static
// address kept from the new address; another not confirmed, rolled back
// by its deadline, the old address answering again; remote logging over
// TCP to Debian's rsyslogd and the clock synced from Debian's chronyd
// (both on the host's loopback, which the guest reaches as 10.0.2.2); SSH
// on, Debian's ssh logging in with a key, SSH off; lockdown on (a change
// refused) and off; the password changed (every session ends); a support
// bundle that holds the expected files and no secret.
func TestApplianceHostSettings(t *testing.T) {
	o := e2eOptions(t)
	sshBin := testenv.Command(t, "ssh")
	keygen := testenv.Command(t, "ssh-keygen")
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "state.img")
	mkfs(t, "PLINTH-STATE", seed, img, "64M")
	o.CPUs, o.MemoryMiB = 2, 1024
	o.ExtraArgs = []string{"-drive", "file=" + img + ",if=virtio,format=raw"}

	// The test's network peers, on the host's loopback: QEMU's user
	// network takes the guest's packets to 10.0.2.2 there.
	ntpPort, syslogPort := peerstest.FreePort(t), peerstest.FreePort(t)
	peerstest.Chrony(t, "127.0.0.1", ntpPort)
	rsyslog := peerstest.Rsyslog(t, "127.0.0.1", peerstest.SyslogPorts{TCP: syslogPort})
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "admin@e2e", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t0 := time.Now()
	vm, ready, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	if ready["addr"] != "10.0.2.15/24" {
		t.Fatalf("ready line %v, want addr=10.0.2.15/24 (DHCP)", ready)
	}
	t.Logf("ready after %v", time.Since(t0).Round(time.Second))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"%s", append(args, formatTail(vm.Tail(TailLines)))...)
	}
	c := freshClient()
	firstLogin(ctx, t, vm, c)
	poll := freshClient() // c's session, with a short timeout for polling
	poll.token, poll.Timeout = c.token, 8*time.Second
	step := func(name string, t1 time.Time) { t.Logf("%s: %v", name, time.Since(t1).Round(100*time.Millisecond)) }

	// 1. A static address, kept from the new address.
	const static, other = "10.0.2.20", "10.0.2.21"
	t1 := time.Now()
	var n api.HostNetwork
	c.getJSON(t, vm.APIURL()+api.Mgmtd(api.HostNetworkPath), &n)
	cfg := n.Config
	cfg.Mode, cfg.Address, cfg.Gateway, cfg.DNS = api.NetModeStatic, static+"/24", "10.0.2.2", []string{"10.0.2.3"}
	cfg.Hostname = "esx-settings"
	base := "https://127.0.0.1:" + strconv.Itoa(hostfwdAdd(t, vm, static))
	c.sendJSON(t, http.MethodPut, vm.APIURL()+api.Mgmtd(api.HostNetworkPath), api.NetworkChangeRequest{Config: cfg, ConfirmSeconds: 120}, http.StatusAccepted)
	// The change is applied a second after the answer; until then the new
	// address does not answer (poll asks with a short timeout).
	var ch api.NetworkChange
	time.Sleep(2 * time.Second)
	if !waitFor(60*time.Second, func() bool {
		return poll.tryJSON(http.MethodGet, base+api.Mgmtd(api.HostNetworkPath), nil, http.StatusOK, &n) == nil &&
			n.Pending != nil && n.Pending.State == api.NetChangePending
	}) {
		fail("the static address %s does not answer with the change pending within 60 s (last: %+v)", static, n.Pending)
	}
	if err := c.tryJSON(http.MethodPost, base+api.Mgmtd(api.HostNetConfirmPath), nil, http.StatusOK, &ch); err != nil || !ch.Confirmed || ch.Address != static+"/24" {
		fail("confirm from %s: %+v, %v", static, ch, err)
	}
	c.getJSON(t, base+api.Mgmtd(api.HostNetworkPath), &n)
	if !n.Saved || n.Config.Address != static+"/24" || n.Pending != nil || !slices.Contains(n.Live.Addresses, static+"/24") ||
		n.LastChange == nil || n.LastChange.State != api.NetChangeKept {
		t.Errorf("after the confirmation: saved %v config %+v pending %+v live %v last %+v", n.Saved, n.Config, n.Pending, n.Live.Addresses, n.LastChange)
	}
	step("static address set and confirmed from it", t1)

	// 2. Another address, not confirmed: rolled back by itself at its
	// deadline, and the old address answers again.
	t1 = time.Now()
	otherURL := "https://127.0.0.1:" + strconv.Itoa(hostfwdAdd(t, vm, other))
	cfg2 := n.Config
	cfg2.Address = other + "/24"
	const confirmSeconds = 20
	c.sendJSON(t, http.MethodPut, base+api.Mgmtd(api.HostNetworkPath), api.NetworkChangeRequest{Config: cfg2, ConfirmSeconds: confirmSeconds}, http.StatusAccepted)
	asked := time.Now()
	time.Sleep(2 * time.Second)
	if !waitFor(confirmSeconds*time.Second-4*time.Second, func() bool {
		return poll.tryJSON(http.MethodGet, otherURL+api.Mgmtd(api.HostNetworkPath), nil, http.StatusOK, &n) == nil &&
			n.Pending != nil && n.Pending.State == api.NetChangePending
	}) {
		fail("the other address %s did not answer with the change pending before its deadline", other)
	}
	t.Logf("%s answers with the change pending; its deadline is %s", other, n.Pending.Deadline.Format(time.RFC3339))
	// The rollback is the appliance's alone: nothing is asked of it now.
	if !waitFor(confirmSeconds*time.Second+20*time.Second, func() bool {
		return poll.tryJSON(http.MethodGet, base+api.Mgmtd(api.HostNetworkPath), nil, http.StatusOK, &n) == nil &&
			n.Pending == nil && n.LastChange != nil && n.LastChange.State == api.NetChangeRolledBack
	}) {
		fail("the old address %s does not answer with the change rolled back within %d s of the request (last: %+v)", static, confirmSeconds+20, n.LastChange)
	}
	back := time.Since(asked)
	t.Logf("the unconfirmed change to %s was rolled back and %s answered again %v after the request (deadline %d s; outcome %q)",
		other, static, back.Round(100*time.Millisecond), confirmSeconds, n.LastChange.Outcome)
	if back < confirmSeconds*time.Second-time.Second {
		t.Errorf("rolled back after %v, before its deadline of %d s", back, confirmSeconds)
	}
	if n.Config.Address != static+"/24" || !slices.Contains(n.Live.Addresses, static+"/24") || slices.Contains(n.Live.Addresses, other+"/24") {
		t.Errorf("after the rollback: config %+v live %v, want %s only", n.Config, n.Live.Addresses, static)
	}
	short := freshClient()
	short.Timeout = 5 * time.Second
	if resp, err := short.Get(otherURL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after the rollback: %s", other, resp.Status)
	}
	step("unconfirmed change rolled back", t1)

	// 3. Remote logging over TCP to rsyslogd.
	t1 = time.Now()
	target := fmt.Sprintf("tcp://10.0.2.2:%d", syslogPort)
	var sl api.SyslogStatus
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostSyslogPath), api.SyslogConfig{Targets: []string{target}}, http.StatusOK, &sl); err != nil {
		fail("PUT syslog: %v", err)
	}
	// A bad target names its field.
	c.sendJSON(t, http.MethodPut, base+api.Mgmtd(api.HostSyslogPath), api.SyslogConfig{Targets: []string{"ftp://10.0.2.2"}}, http.StatusUnprocessableEntity)

	// 4. The clock, from chronyd.
	var ts api.TimeStatus
	server := fmt.Sprintf("10.0.2.2:%d", ntpPort)
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostTimePath), api.TimeConfig{Enabled: true, Servers: []string{server}}, http.StatusOK, &ts); err != nil {
		fail("PUT time: %v", err)
	}
	if !waitFor(60*time.Second, func() bool {
		if ts.Synced {
			return true
		}
		time.Sleep(2 * time.Second)
		return c.tryJSON(http.MethodPost, base+api.Mgmtd(api.HostTimeSyncPath), nil, http.StatusOK, &ts) == nil && ts.Synced
	}) {
		fail("the clock did not sync from chronyd at %s within 60 s: %+v", server, ts)
	}
	if !strings.HasPrefix(ts.Server, "10.0.2.2") || ts.LastSync == nil || ts.Stratum != 8 || ts.Problem != "" || time.Since(*ts.LastSync) > time.Minute {
		t.Errorf("time after the sync: %+v (want server %s at chronyd's local stratum 8)", ts, server)
	}
	if d := ts.Now.Sub(time.Now()); d > 5*time.Second || d < -5*time.Second {
		t.Errorf("the appliance's clock is %v off the host's after the sync", d)
	}
	t.Logf("clock synced from chronyd: offset %.3f s, stratum %d", ts.OffsetSeconds, ts.Stratum)
	step("syslog set, clock synced", t1)

	// 5. SSH: a key, on, a login with it (Debian's ssh), off.
	t1 = time.Now()
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var k api.SSHKey
	if err := c.tryJSON(http.MethodPost, base+api.Mgmtd(api.HostSSHKeysPath), api.SSHKeyRequest{Key: strings.TrimSpace(string(pub))}, http.StatusCreated, &k); err != nil || k.Comment != "admin@e2e" {
		fail("adding the SSH key: %+v, %v", k, err)
	}
	var ss api.SSHStatus
	c.getJSON(t, base+api.Mgmtd(api.HostSSHPath), &ss)
	if ss.Running || ss.Config.Enabled || ss.Warning != "" {
		t.Errorf("SSH before it is turned on: %+v (want off by default)", ss)
	}
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostSSHPath), api.SSHConfig{Enabled: true, Session: api.SSHSessionShell}, http.StatusOK, &ss); err != nil || !ss.Running || ss.Port == 0 || ss.Warning == "" {
		fail("SSH on: %+v, %v", ss, err)
	}
	sshPort := hostfwdAddPort(t, vm, static, ss.Port)
	known := filepath.Join(dir, "known_hosts")
	ssh := func(stdin string) (string, error) {
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		defer scancel()
		cmd := exec.CommandContext(sctx, sshBin, "-F", "/dev/null", "-p", strconv.Itoa(sshPort),
			"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+known, "-o", "ConnectTimeout=20",
			"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i", key, "-o", "IdentitiesOnly=yes",
			"-o", "PreferredAuthentications=publickey", "root@127.0.0.1")
		cmd.Stdin = strings.NewReader(stdin)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := ssh("echo hello-$((6*7))\nexit\n"); err != nil || !strings.Contains(out, "hello-42") {
		fail("a shell over SSH with the key: %v\n%s", err, out)
	}
	if fp, err := exec.Command(keygen, "-l", "-f", known).Output(); err != nil || !strings.Contains(string(fp), ss.HostKeyFingerprint) {
		t.Errorf("ssh saw host key %s, the API names %s (%v)", fp, ss.HostKeyFingerprint, err)
	}
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostSSHPath), api.SSHConfig{Enabled: false, Session: api.SSHSessionShell}, http.StatusOK, &ss); err != nil || ss.Running || ss.Warning != "" {
		fail("SSH off: %+v, %v", ss, err)
	}
	if out, err := ssh("echo hello-$((6*7))\nexit\n"); err == nil || strings.Contains(out, "hello-42") {
		t.Errorf("SSH is off, yet a login worked: %v\n%s", err, out)
	}
	step("SSH on, key login, off", t1)

	// 6. Lockdown on: a change is refused; off with the root password.
	t1 = time.Now()
	var ld api.LockdownStatus
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostLockdownPath), api.LockdownRequest{Enabled: true}, http.StatusOK, &ld); err != nil || !ld.Enabled {
		fail("lockdown on: %+v, %v", ld, err)
	}
	c.sendJSON(t, http.MethodPut, base+api.Mgmtd(api.HostSSHPath), api.SSHConfig{Enabled: true}, http.StatusForbidden)
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostLockdownPath), api.LockdownRequest{Enabled: false, Password: wrongE2EPassword}, http.StatusOK, &ld); err == nil {
		t.Errorf("lockdown turned off with a wrong password")
	}
	c.getJSON(t, base+api.Mgmtd(api.HostLockdownPath), &ld)
	if !ld.Enabled {
		t.Errorf("lockdown is off after a wrong password")
	}
	if err := c.tryJSON(http.MethodPut, base+api.Mgmtd(api.HostLockdownPath), api.LockdownRequest{Enabled: false, Password: e2ePassword}, http.StatusOK, &ld); err != nil || ld.Enabled {
		fail("lockdown off with the root password: %+v, %v", ld, err)
	}
	c.getJSON(t, base+api.Mgmtd(api.HostSSHPath), &ss)
	if ss.Running {
		t.Errorf("SSH runs after lockdown: %+v", ss)
	}
	step("lockdown on and off", t1)

	// 7. What arrived at rsyslogd: the services' lines and audit entries.
	t1 = time.Now()
	for _, want := range [][]string{
		// "VERSION APP-NAME PROCID MSGID HOSTNAME SEVERITY | MSG"
		{"1 vmkernel ", "hostconf: clock s"}, // synced, or stepped when far off
		{"1 vmkernel ", "sshd: root logged in"},
		{"1 mgmtd ", "mgmtd: request", "/api/v1/host/ssh"},
		{"1 audit - audit ", `"action":"PUT /api/v1/host/lockdown"`},
		{"1 audit - audit ", `"action":"POST /api/v1/host/ssh/keys"`},
	} {
		line, err := rsyslog.Wait(30*time.Second, want...)
		if err != nil {
			t.Errorf("rsyslogd: %v", err)
			continue
		}
		t.Logf("rsyslogd got: %.200s", line)
	}
	c.getJSON(t, base+api.Mgmtd(api.HostSyslogPath), &sl)
	if len(sl.Targets) != 1 || !sl.Targets[0].Connected || sl.Targets[0].Sent == 0 || sl.Targets[0].Problem != "" {
		t.Errorf("syslog status: %+v", sl.Targets)
	}
	for _, l := range rsyslog.Lines() {
		for _, s := range []string{e2ePassword, wrongE2EPassword, "plinth_s_", "plinth_t_", "plinth_k_"} {
			if strings.Contains(l, s) {
				t.Errorf("a secret went to the syslog server: %.200s", l)
			}
		}
	}
	step("syslog lines and audit entries at rsyslogd", t1)

	// 8. The root password changed: every session ends.
	t1 = time.Now()
	other2 := freshClient()
	other2.login(t, base, e2ePassword)
	c.sendJSON(t, http.MethodPut, base+api.Mgmtd(api.HostPasswordPath), api.PasswordRequest{Password: "short"}, http.StatusUnprocessableEntity)
	c.sendJSON(t, http.MethodPut, base+api.Mgmtd(api.HostPasswordPath), api.PasswordRequest{Password: hostSettingsPassword}, http.StatusNoContent)
	for name, cl := range map[string]*pinnedClient{"the session that changed it": c, "another session": other2} {
		if err := cl.tryJSON(http.MethodGet, base+api.MgmtdHostPath, nil, http.StatusUnauthorized, nil); err != nil {
			t.Errorf("%s after the password change: %v, want 401", name, err)
		}
	}
	old := freshClient()
	body, _ := json.Marshal(api.LoginRequest{User: api.RootUser, Password: e2ePassword})
	if resp, err := old.Post(base+api.MgmtdSessionsPath, "application/json", bytes.NewReader(body)); err != nil {
		t.Errorf("login with the old password: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login with the old password: %s, want 401", resp.Status)
		}
	}
	c = freshClient()
	c.login(t, base, hostSettingsPassword)
	var ps api.PasswordStatus
	c.getJSON(t, base+api.Mgmtd(api.HostPasswordPath), &ps)
	if !ps.Set || ps.ChangedAt == nil || time.Since(*ps.ChangedAt) > 2*time.Minute {
		t.Errorf("password status: %+v", ps)
	}
	step("password changed, sessions ended", t1)

	// 9. The support bundle: the expected files, no secret.
	t1 = time.Now()
	resp, err := c.Get(base + api.Mgmtd(api.HostSupportBundlePath))
	if err != nil {
		fail("GET support bundle: %v", err)
	}
	bundle, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		fail("GET support bundle: %s, %v: %.300s", resp.Status, err, bundle)
	}
	files := untarBundle(t, bundle)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("support bundle: %d bytes, %d files: %v", len(bundle), len(files), names)
	for _, want := range []string{"README.txt", "settings.json", "services.json", "hardware.json", "host.json", "events.json",
		"logs/vmkernel.log", "logs/mgmtd.log", "logs/audit.log", "logs/boot.log",
		"config/network.json", "config/time.json", "config/syslog.json", "config/ssh.json", "config/ssh_authorized_keys"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the support bundle lacks %s", want)
		}
	}
	var s api.HostSettings
	if err := json.Unmarshal(files["settings.json"], &s); err != nil || s.Network.Config.Address != static+"/24" || !s.Password.Set ||
		len(s.SSH.Keys) != 1 || s.Lockdown.Enabled || !slices.Contains(s.Time.Config.Servers, server) || !slices.Contains(s.Syslog.Config.Targets, target) {
		t.Errorf("the bundle's settings.json: %v\n%s", err, files["settings.json"])
	}
	if !strings.Contains(string(files["logs/audit.log"]), "/api/v1/host/password") {
		t.Errorf("the bundle's audit log lacks the password change")
	}
	for name, b := range files {
		for _, sec := range []string{e2ePassword, hostSettingsPassword, wrongE2EPassword, "PRIVATE KEY", "$2a$", "$2b$", "$2y$"} {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("the bundle's %s holds a secret (%.6q...)", name, sec)
			}
		}
		if m := tokenPattern.Find(b); m != nil {
			t.Errorf("the bundle's %s holds a token (%.12s...)", name, m)
		}
	}
	step("support bundle", t1)

	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(90 * time.Second); err != nil || code != 0 {
		t.Fatalf("power down: exit %d, %v%s", code, err, formatTail(vm.Tail(TailLines)))
	}
	vm.Close()
	keepState(t, img) // scanned for secrets after the suite
	t.Logf("whole test: %v", time.Since(t0).Round(time.Second))
}

// freshClient is a pinned client that opens a connection for each
// request: the appliance's address moves under it, and a connection kept
// from before a move would hang rather than fail.
func freshClient() *pinnedClient {
	c := newPinnedClient()
	c.Transport.(bearer).inner.(*http.Transport).DisableKeepAlives = true
	return c
}

// tryJSON sends in (nil: no body) and, on the status wanted, decodes the
// answer into out (when not nil); otherwise it returns the error.
func (c *pinnedClient) tryJSON(method, url string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s, want %d: %.300s", method, url, resp.Status, want, b)
	}
	if out == nil {
		return nil
	}
	// out starts from zero: a field this answer leaves out (omitempty)
	// must not keep what an earlier answer put there.
	if p := reflect.ValueOf(out); p.Kind() == reflect.Pointer && !p.IsNil() {
		p.Elem().SetZero()
	}
	return json.Unmarshal(b, out)
}

// waitFor calls cond until it is true (then true) or d has passed
// (then false), pausing half a second between calls.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// untarBundle reads a support bundle: its files by name below the
// bundle's top directory.
func untarBundle(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the support bundle is no gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the support bundle's tar: %v", err)
		}
		top, name, ok := strings.Cut(h.Name, "/")
		if !ok || !strings.HasPrefix(top, "plinth-support-") {
			t.Errorf("%s is not below the bundle's directory", h.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = data
	}
}
