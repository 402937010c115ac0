package cli_test

// Integration tests: the CLI's Run against a real mgmtd (HTTPS, auth,
// tasks, the console websocket) in front of a real vmkernel on a unix
// socket, as an administrator's terminal would see them.

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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/vmkernel/vmkerneltest"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/mgmtd/cli"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

// testPassword is the root password set as the DCUI would.
const testPassword = "Plinth-test-1"

type rig struct {
	addr, fingerprint string
	state             string // mgmtd's StateDir
	ds                string // datastore ds1's root
	cfgDir            string // the CLI's $PLINTH_CONFIG_DIR
}

// startRig serves a real vmkernel (datastore ds1, QEMU under TCG) and a
// real mgmtd on 127.0.0.1:0 with the root password set.
func startRig(t *testing.T) *rig {
	t.Helper()
	vr := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}})
	sock, ds := vr.Socket, vr.DS["ds1"]
	state := vr.Layout.AuthDir() // the host settings' (vmkernel's) account files
	srv, err := mgmtd.New(mgmtd.Config{StateDir: state, VMKernelSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	ml, err := mgmtd.Listen("127.0.0.1:0", -1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ml) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	r := &rig{addr: ml.Addr().String(), fingerprint: srv.Fingerprint(), state: state, ds: ds, cfgDir: t.TempDir()}
	if err := auth.SetPassword(state, api.RootUser, testPassword); err != nil {
		t.Fatal(err)
	}
	return r
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until s's text contains want, failing with what it holds.
func waitFor(t *testing.T, s *syncBuffer, want string, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(end) {
			t.Fatalf("no %q after %v; got:\n%s", want, d, tail(s.String()))
		}
		time.Sleep(20 * time.Millisecond) // polling a buffer, not waiting for an event
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

type result struct {
	code           int
	stdout, stderr string
}

// plinth runs the CLI against the rig with extra environment variables
// (key=value).
func (r *rig) plinth(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	return r.plinthCtx(t, context.Background(), strings.NewReader(stdin), nil, env, args...)
}

func (r *rig) plinthCtx(t *testing.T, ctx context.Context, stdin io.Reader, stdout io.Writer, env []string, args ...string) result {
	t.Helper()
	vars := map[string]string{"PLINTH_CONFIG_DIR": r.cfgDir, "PLINTH_SERVER": r.addr}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out, errb bytes.Buffer
	if stdout == nil {
		stdout = &out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	code := cli.Run(ctx, cli.Env{Stdin: stdin, Stdout: stdout, Stderr: &errb,
		Getenv: func(k string) string { return vars[k] }}, args)
	return result{code, out.String(), errb.String()}
}

// must runs the CLI and fails unless it exits with code.
func (r *rig) must(t *testing.T, code int, args ...string) result {
	t.Helper()
	res := r.plinth(t, "", nil, args...)
	if res.code != code {
		t.Fatalf("plinth %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, code, res.stdout, res.stderr)
	}
	return res
}

func (r *rig) login(t *testing.T) {
	t.Helper()
	res := r.plinth(t, testPassword+"\n", nil, "login", "--yes", "--password-stdin")
	if res.code != 0 {
		t.Fatalf("login: exit %d\n%s", res.code, res.stderr)
	}
}

func decode[T any](t *testing.T, res result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil {
		t.Fatalf("decoding %T from %q: %v", v, res.stdout, err)
	}
	return v
}

// TestCLILogin: the first login pins the server's certificate and stores
// the token privately; later commands use both; logout ends the session.
func TestCLILogin(t *testing.T) {
	r := startRig(t)

	// Before login: exit 6 (host unknown), with the way out in the message.
	if res := r.plinth(t, "", nil, "host", "info"); res.code != cli.ExitFingerprint || !strings.Contains(res.stderr, "plinth login") {
		t.Errorf("host info before login: %+v", res)
	}
	// Wrong password: exit 3, and the certificate was pinned (as ssh does
	// once the user accepted it).
	res := r.plinth(t, "Wrong-pass-9\n", nil, "login", "--fingerprint", strings.ToLower(r.fingerprint))
	if res.code != cli.ExitAuth || !strings.Contains(res.stderr, "401") {
		t.Errorf("login with a wrong password: %+v", res)
	}
	// Pinned now: no --yes needed.
	if res := r.plinth(t, testPassword+"\n", nil, "login", "--password-stdin"); res.code != 0 || !strings.Contains(res.stderr, "Logged in to "+r.addr) {
		t.Fatalf("login: %+v", res)
	}
	kh, err := os.ReadFile(filepath.Join(r.cfgDir, cli.KnownHostsFile))
	if err != nil || string(kh) != r.addr+" "+r.fingerprint+"\n" {
		t.Errorf("known_hosts %q, %v; want %q", kh, err, r.addr+" "+r.fingerprint)
	}
	fi, err := os.Stat(filepath.Join(r.cfgDir, cli.ConfigFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config.json: %v, %v; want mode 0600", fi, err)
	}
	var cfg cli.Config
	b, _ := os.ReadFile(filepath.Join(r.cfgDir, cli.ConfigFile))
	if json.Unmarshal(b, &cfg) != nil || cfg.Server != r.addr || cfg.Servers[r.addr].Token == "" {
		t.Errorf("config.json: %s", b)
	}

	// The server comes from the configuration now.
	res = r.plinth(t, "", []string{"PLINTH_SERVER="}, "whoami", "--json")
	if w := decode[api.WhoAmI](t, res); res.code != 0 || w.User != api.RootUser || w.Kind != "session" {
		t.Errorf("whoami: %+v", res)
	}
	res = r.must(t, 0, "host", "info")
	if !strings.Contains(res.stdout, "hostname") || !strings.Contains(res.stdout, "acceleration") {
		t.Errorf("host info:\n%s", res.stdout)
	}
	if h := decode[api.Host](t, r.must(t, 0, "host", "info", "--json")); h.CPUCount < 1 {
		t.Errorf("host info --json: %+v", h)
	}

	if hw := decode[api.Hardware](t, r.must(t, 0, "host", "hardware", "--json")); hw.CPU.Threads < 1 {
		t.Errorf("host hardware --json: %+v", hw.CPU)
	}
	if res := r.must(t, 0, "host", "hardware"); !strings.Contains(res.stdout, "virtualization") {
		t.Errorf("host hardware:\n%s", res.stdout)
	}

	r.must(t, 0, "logout")
	b, _ = os.ReadFile(filepath.Join(r.cfgDir, cli.ConfigFile))
	if strings.Contains(string(b), cfg.Servers[r.addr].Token) {
		t.Error("logout left the token in config.json")
	}
	// The old token no longer works on the server either.
	c, _ := client.New("https://"+r.addr, client.WithPinnedFingerprint(r.fingerprint), client.WithToken(cfg.Servers[r.addr].Token))
	if _, err := c.WhoAmI(context.Background()); cli.ExitCode(err) != cli.ExitAuth {
		t.Errorf("the logged-out token: %v", err)
	}
	if res := r.plinth(t, "", nil, "vm", "list"); res.code != cli.ExitAuth || !strings.Contains(res.stderr, "not logged in") {
		t.Errorf("vm list after logout: %+v", res)
	}
}

// TestCLIChangedCertificate: a pinned server presenting another
// certificate is refused loudly with exit 6, for commands and login alike.
func TestCLIChangedCertificate(t *testing.T) {
	r := startRig(t)
	r.login(t)
	const other = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"
	khPath := filepath.Join(r.cfgDir, cli.KnownHostsFile)
	os.WriteFile(khPath, []byte("# pins\n"+r.addr+" "+other+"\n"), 0o600)
	for _, args := range [][]string{{"vm", "list"}, {"login", "--yes", "--password-stdin"}} {
		res := r.plinth(t, testPassword+"\n", nil, args...)
		if res.code != cli.ExitFingerprint {
			t.Errorf("plinth %s: exit %d, want 6\n%s", args, res.code, res.stderr)
		}
		for _, want := range []string{"HAS CHANGED", other, r.fingerprint, "line 2 of " + khPath, "sed -i '2d'"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("plinth %s: stderr lacks %q:\n%s", args, want, res.stderr)
			}
		}
	}
	// Removing the stale line as told, then logging in, works again.
	os.WriteFile(khPath, []byte("# pins\n"), 0o600)
	r.login(t)
	r.must(t, 0, "vm", "list")
}

// TestCLIVMs creates, lists, shows, changes the power of and deletes VMs,
// with the exit codes scripts rely on.
func TestCLIVMs(t *testing.T) {
	r := startRig(t)
	r.login(t)

	vm := decode[api.VM](t, r.must(t, 0, "vm", "create", "--name", "web1", "--cpus", "2", "--memory", "256M",
		"--disk", "ds1:web1/disk0.qcow2,size=1G", "--nic", "nat", "--firmware", "bios", "--autostart", "--json"))
	if vm.Spec.ID == "" || vm.Spec.MemoryMiB != 256 || vm.Spec.CPU.VCPUs() != 2 || !vm.Spec.Autostart.Enabled ||
		len(vm.Spec.Disks) != 1 || len(vm.Spec.NICs) != 1 || !vm.Spec.NICs[0].NAT {
		t.Errorf("created %+v", vm.Spec)
	}
	if _, err := os.Stat(filepath.Join(r.ds, "web1", "disk0.qcow2")); err != nil {
		t.Errorf("the disk was not made: %v", err)
	}
	spec := filepath.Join(t.TempDir(), "db.json")
	os.WriteFile(spec, []byte(`{"name": "db", "memory_mib": 128, "cpu": {"sockets": 1, "cores": 1, "threads": 1}}`), 0o644)
	r.must(t, 0, "vm", "create", "--file", spec)

	res := r.must(t, 0, "vm", "list")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "db ") ||
		!strings.Contains(lines[2], vm.Spec.ID) || !strings.Contains(lines[2], "256 MiB") {
		t.Errorf("vm list:\n%s", res.stdout)
	}
	if vms := decode[[]api.VM](t, r.must(t, 0, "vm", "list", "--json")); len(vms) != 2 {
		t.Errorf("vm list --json: %d VMs", len(vms))
	}
	if vms := decode[[]api.VM](t, r.must(t, 0, "vm", "list", "--json", "--state", "running")); len(vms) != 0 {
		t.Errorf("vm list --state running: %d VMs", len(vms))
	}
	res = r.must(t, 0, "vm", "show", "web1")
	for _, want := range []string{vm.Spec.ID, "ds1:web1/disk0.qcow2", "stopped", "nat"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("vm show lacks %q:\n%s", want, res.stdout)
		}
	}

	// Exit codes: 4 not found, 5 conflict, 1 for a spec that does not
	// validate, with the server's field problems.
	if res := r.plinth(t, "", nil, "vm", "show", "nope"); res.code != cli.ExitNotFound || !strings.Contains(res.stderr, "404") {
		t.Errorf("vm show nope: %+v", res)
	}
	if res := r.plinth(t, "", nil, "vm", "create", "--name", "web1"); res.code != cli.ExitConflict {
		t.Errorf("vm create of an existing name: %+v", res)
	}
	res = r.plinth(t, "", nil, "vm", "create", "--name", "bad", "--memory", "8M")
	if res.code != cli.ExitError || !strings.Contains(res.stderr, "memory_mib") {
		t.Errorf("vm create --memory 8M: %+v", res)
	}
	if res := r.plinth(t, "", nil, "vm", "create", "--name", "x", "--cdrom", "nods:a.iso"); res.code != cli.ExitError ||
		!strings.Contains(res.stderr, "cdrom.datastore") {
		t.Errorf("vm create on an unknown datastore: %+v", res)
	}

	// Lockdown (set on the DCUI): changes are refused with exit 3, reads work.
	if err := auth.SetLockdown(r.state, true); err != nil {
		t.Fatal(err)
	}
	if res := r.plinth(t, "", nil, "vm", "delete", "db"); res.code != cli.ExitAuth || !strings.Contains(res.stderr, "403") {
		t.Errorf("vm delete in lockdown: %+v", res)
	}
	r.must(t, 0, "vm", "list")
	auth.SetLockdown(r.state, false)

	r.must(t, 0, "vm", "delete", "db")
	res = r.must(t, 0, "vm", "delete", "--disks", "web1")
	if !strings.Contains(res.stdout, "removed ds1:web1/disk0.qcow2") {
		t.Errorf("vm delete --disks:\n%s", res.stdout)
	}
	if res := r.plinth(t, "", nil, "vm", "start", "web1"); res.code != cli.ExitNotFound {
		t.Errorf("vm start of a deleted VM: %+v", res)
	}
	if res := r.must(t, 0, "vm", "list"); strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("vm list after deleting all:\n%s", res.stdout)
	}
}

// TestCLIDatastores uploads a file (with progress lines on a non-terminal
// stderr), lists, refuses an overwrite, and deletes; the upload is a task.
func TestCLIDatastores(t *testing.T) {
	r := startRig(t)
	r.login(t)
	iso := filepath.Join(t.TempDir(), "tiny.iso")
	data := bytes.Repeat([]byte("plinth-iso "), 300_000) // ~3.3 MB
	os.WriteFile(iso, data, 0o644)

	res := r.must(t, 0, "ds", "upload", iso, "ds1:iso/")
	if !strings.Contains(res.stderr, "upload ds1:iso/tiny.iso: 100%") || !strings.Contains(res.stdout, "ds1:iso/tiny.iso") {
		t.Errorf("ds upload: stdout %q\nstderr:\n%s", res.stdout, res.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(r.ds, "iso", "tiny.iso")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("uploaded file: %d bytes, %v; want %d", len(got), err, len(data))
	}
	if res := r.plinth(t, "", nil, "ds", "upload", iso, "ds1:iso/tiny.iso"); res.code != cli.ExitConflict {
		t.Errorf("second upload without --overwrite: %+v", res)
	}
	r.must(t, 0, "ds", "upload", "--overwrite", iso, "ds1:iso/tiny.iso")

	res = r.must(t, 0, "ds", "ls")
	if !strings.Contains(res.stdout, "ds1") || !strings.Contains(res.stdout, "CAPACITY") {
		t.Errorf("ds ls:\n%s", res.stdout)
	}
	res = r.must(t, 0, "ds", "ls", "ds1:iso")
	if !strings.Contains(res.stdout, "tiny.iso") || !strings.Contains(res.stdout, "3.1 MiB") {
		t.Errorf("ds ls ds1:iso:\n%s", res.stdout)
	}
	if es := decode[[]api.DatastoreEntry](t, r.must(t, 0, "ds", "ls", "ds1", "--json")); len(es) != 1 || es[0].Kind != api.EntryDir {
		t.Errorf("ds ls ds1 --json: %+v", es)
	}

	tasks := decode[[]api.Task](t, r.must(t, 0, "task", "ls", "--json"))
	if len(tasks) == 0 || tasks[0].Target != "ds1:iso/tiny.iso" || tasks[0].State != api.TaskSucceeded {
		t.Fatalf("task ls: %+v", tasks)
	}
	res = r.must(t, 0, "task", "wait", tasks[0].ID)
	if !strings.Contains(res.stdout, tasks[0].ID+": succeeded") || !strings.Contains(res.stderr, "100%") {
		t.Errorf("task wait: %+v", res)
	}
	if res := r.plinth(t, "", nil, "task", "wait", "nonexistent"); res.code != cli.ExitNotFound {
		t.Errorf("task wait of an unknown task: %+v", res)
	}
	if res := r.must(t, 0, "task", "ls"); !strings.Contains(res.stdout, "upload") {
		t.Errorf("task ls:\n%s", res.stdout)
	}

	r.must(t, 0, "ds", "rm", "ds1:iso/tiny.iso")
	if res := r.plinth(t, "", nil, "ds", "rm", "ds1:iso/tiny.iso"); res.code != cli.ExitNotFound {
		t.Errorf("rm of a missing file: %+v", res)
	}
}

// TestCLITokens makes an API token, uses it through $PLINTH_TOKEN,
// revokes it, and reads the audit log.
func TestCLITokens(t *testing.T) {
	r := startRig(t)
	r.login(t)
	res := r.must(t, 0, "token", "create", "ci", "--expires", "1d")
	secret := strings.TrimSpace(res.stdout)
	if secret == "" || strings.Contains(secret, "\n") || !strings.Contains(res.stderr, "shown only now") {
		t.Fatalf("token create: %+v", res)
	}
	toks := decode[[]api.APIToken](t, r.must(t, 0, "token", "ls", "--json"))
	if len(toks) != 1 || toks[0].Name != "ci" || toks[0].Secret != "" || toks[0].ExpiresAt == nil {
		t.Fatalf("token ls: %+v", toks)
	}
	if res := r.must(t, 0, "token", "ls"); !strings.Contains(res.stdout, toks[0].ID) {
		t.Errorf("token ls:\n%s", res.stdout)
	}
	tokenEnv := []string{"PLINTH_TOKEN=" + secret}
	res = r.plinth(t, "", tokenEnv, "whoami", "--json")
	if w := decode[api.WhoAmI](t, res); w.Kind != "token" || w.TokenID != toks[0].ID {
		t.Errorf("whoami with the token: %+v", w)
	}
	r.must(t, 0, "token", "revoke", toks[0].ID)
	if res := r.plinth(t, "", tokenEnv, "vm", "list"); res.code != cli.ExitAuth {
		t.Errorf("vm list with a revoked token: %+v", res)
	}
	if res := r.plinth(t, "", nil, "token", "revoke", toks[0].ID); res.code != cli.ExitNotFound {
		t.Errorf("revoking twice: %+v", res)
	}
	entries := decode[[]api.AuditEntry](t, r.must(t, 0, "audit", "--json"))
	var made, revoked bool
	for _, e := range entries {
		made = made || strings.HasPrefix(e.Action, "POST "+api.MgmtdTokensPath) && e.Status/100 == 2
		revoked = revoked || strings.HasPrefix(e.Action, "DELETE "+api.MgmtdTokensPath) && e.Status/100 == 2
	}
	if !made || !revoked {
		t.Errorf("audit log lacks the token changes: %+v", entries)
	}
	if res := r.must(t, 0, "audit", "--limit", "1"); strings.Count(res.stdout, "\n") != 2 {
		t.Errorf("audit --limit 1:\n%s", res.stdout)
	}
}

// TestCLIEvents follows the event stream while a VM is made and deleted,
// and ends cleanly (exit 0) when interrupted.
func TestCLIEvents(t *testing.T) {
	r := startRig(t)
	r.login(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan result, 1)
	go func() { done <- r.plinthCtx(t, ctx, strings.NewReader(""), &out, nil, "events", "--json") }()

	// The stream may subscribe after the first create: make VMs until one
	// shows up.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !strings.Contains(out.String(), `"type":"created"`); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no created event:\n%s", out.String())
		}
		r.must(t, 0, "vm", "create", "--name", "ev"+string(rune('a'+i)))
		time.Sleep(100 * time.Millisecond) // pacing the retries, not waiting for the result
	}
	r.must(t, 0, "vm", "delete", "eva")
	waitFor(t, &out, `"type":"deleted"`, 10*time.Second)
	var ev api.Event
	if line, _, _ := strings.Cut(out.String(), "\n"); json.Unmarshal([]byte(line), &ev) != nil || ev.Name == "" {
		t.Errorf("first event line %q", line)
	}
	cancel()
	if res := <-done; res.code != 0 {
		t.Errorf("events after interrupt: exit %d\n%s", res.code, res.stderr)
	}
}

// TestCLIConsole boots a tiny guest and reads its serial console through
// mgmtd's websocket, as "plinth vm console" shows it, then quits with
// Ctrl-].
// TestCLIVNC: plinth vm vnc serves a running VM's screen on a local port:
// a viewer connecting there is greeted by QEMU's VNC server (the RFB
// version), through mgmtd's websocket.
func TestCLIVNC(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../../build/vmlinuz")
	r := startRig(t)
	runnertest.Install(t, kernel, r.ds)
	r.login(t)
	r.must(t, 0, "vm", "create", "--name", "screen", "--memory", "128M", "--machine", "pc", "--vnc",
		"--kernel", "ds1:vmlinux", "--initrd", "ds1:init.cpio", "--cmdline", runnertest.Cmdline)
	if res := r.plinth(t, "", nil, "vm", "vnc", "screen", "--listen", "127.0.0.1:0"); res.code != cli.ExitConflict {
		t.Errorf("vnc of a stopped VM: %+v", res)
	}
	r.must(t, 0, "vm", "start", "screen")
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	done := make(chan result, 1)
	go func() {
		done <- r.plinthCtx(t, ctx, nil, &errOut, nil, "vm", "vnc", "screen", "--listen", "127.0.0.1:0")
	}()
	waitFor(t, &errOut, "Ctrl-C ends", 60*time.Second)
	m := regexp.MustCompile(`is on (127\.0\.0\.1:\d+)`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no address in %q", errOut.String())
	}
	for i := 0; i < 2; i++ { // each viewer connection gets its own stream
		conn, err := net.DialTimeout("tcp", m[1], 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		hello := make([]byte, 12)
		if _, err := io.ReadFull(conn, hello); err != nil || !strings.HasPrefix(string(hello), "RFB 003.") {
			t.Fatalf("viewer %d: greeting %q, %v", i, hello, err)
		}
		conn.Close()
	}
	cancel()
	select {
	case res := <-done:
		if res.code != 0 {
			t.Errorf("vm vnc ended with %+v", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vm vnc did not end when interrupted")
	}
}

func TestCLIConsole(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../../build/vmlinuz")
	r := startRig(t)
	runnertest.Install(t, kernel, r.ds)
	r.login(t)

	// Not running yet: the websocket is refused with the server's reason.
	r.must(t, 0, "vm", "create", "--name", "guest", "--memory", "128M", "--machine", "pc",
		"--kernel", "ds1:vmlinux", "--initrd", "ds1:init.cpio", "--cmdline", runnertest.Cmdline)
	if res := r.plinth(t, "", nil, "vm", "console", "guest"); res.code != cli.ExitConflict {
		t.Errorf("console of a stopped VM: %+v", res)
	}
	if res := r.must(t, 0, "vm", "start", "guest"); !strings.Contains(res.stdout, "guest: running") {
		t.Errorf("vm start: %q", res.stdout)
	}

	inR, inW := io.Pipe()
	var out syncBuffer
	done := make(chan result, 1)
	go func() { done <- r.plinthCtx(t, context.Background(), inR, &out, nil, "vm", "console", "guest") }()
	waitFor(t, &out, runnertest.Marker, 120*time.Second)
	inW.Write([]byte("\r\x1d")) // a keystroke for the guest, then Ctrl-]
	select {
	case res := <-done:
		if res.code != 0 || !strings.Contains(res.stderr, "Escape character is '^]'") || !strings.Contains(res.stderr, "Connection closed.") {
			t.Errorf("console: %+v", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the console did not end on Ctrl-]")
	}
	inW.Close()

	// At a terminal: raw mode while attached (the guest gets Ctrl-C),
	// the terminal's mode restored after Ctrl-].
	master, tty := openPTY(t)
	go io.Copy(io.Discard, master)
	canonical := func() bool {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ICANON != 0
	}
	if !canonical() {
		t.Fatal("a fresh pseudo-terminal is not in canonical mode")
	}
	var ttyOut syncBuffer
	go func() { done <- r.plinthCtx(t, context.Background(), tty, &ttyOut, nil, "vm", "console", "guest") }()
	waitFor(t, &ttyOut, runnertest.Marker, 30*time.Second) // the retained tail comes first
	if canonical() {
		t.Error("the terminal is not in raw mode during the console session")
	}
	master.Write([]byte{0x1d})
	select {
	case res := <-done:
		if res.code != 0 || !strings.Contains(res.stderr, "Connection closed.\r\n") {
			t.Errorf("console at a terminal: %+v", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the console at a terminal did not end on Ctrl-]")
	}
	if !canonical() {
		t.Error("the terminal's mode was not restored after the console")
	}

	res := r.must(t, 0, "vm", "stop", "guest")
	if !strings.Contains(res.stdout, "guest: stopped") {
		t.Errorf("vm stop: %q", res.stdout)
	}
	r.must(t, 0, "vm", "delete", "guest")
}

// openPTY opens a pseudo-terminal: the test types on master, the CLI reads
// the terminal tty.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Unmet(t, "no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// TestCLILoginAtTerminal: at a terminal, login asks to trust the
// fingerprint it shows, then reads the password without echoing it.
func TestCLILoginAtTerminal(t *testing.T) {
	r := startRig(t)
	master, tty := openPTY(t)
	var echoed syncBuffer // what the terminal shows of the typing
	go io.Copy(&echoed, master)

	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		vars := map[string]string{"PLINTH_CONFIG_DIR": r.cfgDir, "PLINTH_SERVER": r.addr}
		done <- cli.Run(context.Background(), cli.Env{Stdin: tty, Stdout: io.Discard, Stderr: &stderr,
			Getenv: func(k string) string { return vars[k] }}, []string{"login"})
	}()
	waitFor(t, &stderr, "(yes/no)? ", 10*time.Second)
	if !strings.Contains(stderr.String(), r.fingerprint) {
		t.Errorf("the trust prompt does not show the fingerprint:\n%s", stderr.String())
	}
	master.Write([]byte("yes\n"))
	waitFor(t, &stderr, "Password for root@"+r.addr+": ", 10*time.Second)
	master.Write([]byte(testPassword + "\n"))
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("login at a terminal: exit %d\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("login at a terminal did not end:\n%s", stderr.String())
	}
	if !strings.Contains(echoed.String(), "yes") || strings.Contains(echoed.String(), testPassword) {
		t.Errorf("terminal echo %q: want the answer echoed, the password not", echoed.String())
	}
	r.must(t, 0, "whoami")
}

// The host's settings from the command line, through mgmtd to vmkernel:
// lockdown on refuses changes and off takes the password; the
// certificate, network and logs read; bad input names the field; a
// password change ends the CLI's own session.
func TestHostSettingsCommands(t *testing.T) {
	r := startRig(t)
	r.login(t)
	if res := r.must(t, 0, "host", "lockdown"); !strings.Contains(res.stdout, "lockdown is off") {
		t.Errorf("host lockdown: %q", res.stdout)
	}
	r.must(t, 0, "host", "lockdown", "on")
	if res := r.must(t, cli.ExitAuth, "host", "services", "restart"); !strings.Contains(res.stderr, "lockdown") {
		t.Errorf("a change in lockdown: %q", res.stderr)
	}
	if res := r.plinth(t, "Wrong-pass-9\n", nil, "host", "lockdown", "off", "--password-stdin"); res.code != cli.ExitAuth {
		t.Errorf("lockdown off with a wrong password: exit %d, %s", res.code, res.stderr)
	}
	if res := r.plinth(t, testPassword+"\n", nil, "host", "lockdown", "off", "--password-stdin"); res.code != 0 || !strings.Contains(res.stdout, "lockdown is off") {
		t.Fatalf("lockdown off: exit %d, %s %s", res.code, res.stdout, res.stderr)
	}
	if c := decode[api.CertificateInfo](t, r.must(t, 0, "host", "certificate", "--json")); c.Fingerprint != r.fingerprint {
		t.Errorf("host certificate: %s, want %s", c.Fingerprint, r.fingerprint)
	}
	if n := decode[api.HostNetwork](t, r.must(t, 0, "host", "network", "--json")); n.Config.Mode != api.NetModeDHCP {
		t.Errorf("host network: %+v", n)
	}
	if res := r.must(t, 1, "host", "network", "set", "--address", "192.0.2.300/24"); !strings.Contains(res.stderr, "config.address") {
		t.Errorf("a bad address: %q", res.stderr)
	}
	if res := r.must(t, 1, "host", "network", "set", "--dhcp", "--vlan", "4095"); !strings.Contains(res.stderr, "config.vlan") {
		t.Errorf("VLAN 4095: %q", res.stderr)
	}
	if res := r.plinth(t, "", nil, "host", "network", "set", "--dhcp", "--vlan", "twenty"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "-vlan") {
		t.Errorf("a VLAN that is no number: exit %d, %q", res.code, res.stderr)
	}
	if res := r.must(t, 1, "host", "reset", "--confirm", "not-this-host"); !strings.Contains(res.stderr, "confirm") {
		t.Errorf("a reset confirmed with another name: %q", res.stderr)
	}
	if res := r.must(t, 0, "host", "logs"); !strings.Contains(res.stdout, "boot") || !strings.Contains(res.stdout, "audit") {
		t.Errorf("host logs: %q", res.stdout)
	}
	if res := r.plinth(t, "short\n", nil, "host", "password", "--password-stdin"); res.code != cli.ExitUsage {
		t.Errorf("a weak password: exit %d, %s", res.code, res.stderr)
	}
	if res := r.plinth(t, "Another-pass-3\n", nil, "host", "password", "--password-stdin"); res.code != 0 {
		t.Fatalf("host password: exit %d, %s", res.code, res.stderr)
	}
	r.must(t, cli.ExitAuth, "whoami")
}

// TestCLIBackup: a stopped VM backed up through mgmtd (full, the reason
// said), listed per VM and per folder, restored as a new VM with the
// same disk content, then over the VM after its disk changed; a second
// backup says why it is full; a restore of a backup that is not there
// exits with not found.
func TestCLIBackup(t *testing.T) {
	r := startRig(t)
	r.login(t)
	r.must(t, 0, "vm", "create", "--name", "bk1", "--memory", "128M", "--disk", "ds1:bk1/disk0.qcow2,size=8M", "--firmware", "bios")
	// Data the restore must bring back, in the VM's disk.
	disk := filepath.Join(r.ds, "bk1", "disk0.qcow2")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 1M", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}

	res := r.must(t, 0, "vm", "backup", "bk1", "--ds", "ds1:nightly")
	if !strings.Contains(res.stdout, "full backup ") || !strings.Contains(res.stdout, "ds1:nightly/") || !strings.Contains(res.stdout, "no earlier backup") {
		t.Errorf("vm backup:\n%s", res.stdout)
	}
	res = r.must(t, 0, "vm", "backup", "bk1", "--ds", "ds1:nightly")
	if !strings.Contains(res.stdout, "full backup ") || !strings.Contains(res.stdout, "stopped") {
		t.Errorf("second vm backup of a stopped VM:\n%s", res.stdout)
	}
	list := decode[[]api.Backup](t, r.must(t, 0, "vm", "backups", "bk1", "--ds", "ds1:nightly", "--json"))
	if len(list) != 2 || list[0].VMName != "bk1" || list[0].Kind != api.BackupFull || list[1].SizeBytes == 0 {
		t.Fatalf("vm backups --json: %+v", list)
	}
	if res := r.must(t, 0, "vm", "backups", "--ds", "ds1:nightly"); !strings.Contains(res.stdout, list[1].ID) || !strings.HasPrefix(res.stdout, "ID") {
		t.Errorf("vm backups --ds:\n%s", res.stdout)
	}
	if res := r.plinth(t, "", nil, "vm", "backups"); res.code != cli.ExitUsage {
		t.Errorf("vm backups with neither VM nor --ds: %+v", res)
	}

	res = r.must(t, 0, "vm", "restore", list[1].ID, "--ds", "ds1:nightly", "--name", "bk1-copy")
	if !strings.Contains(res.stdout, "restored as VM bk1-copy") {
		t.Errorf("vm restore:\n%s", res.stdout)
	}
	vm := decode[api.VM](t, r.must(t, 0, "vm", "show", "bk1-copy", "--json"))
	if len(vm.Spec.Disks) != 1 || vm.Spec.Disks[0].Path != "bk1-copy/disk0.qcow2" {
		t.Fatalf("restored VM: %+v", vm.Spec)
	}
	if out, err := exec.Command("qemu-img", "compare", "-U", disk, filepath.Join(r.ds, "bk1-copy", "disk0.qcow2")).CombinedOutput(); err != nil {
		t.Errorf("the restored disk differs from the source: %v: %s", err, out)
	}
	// Over the VM: its disk, written since, is the backup's again.
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 0 2M", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	if res := r.plinth(t, "", nil, "vm", "restore", list[1].ID, "--ds", "ds1:nightly", "--replace", "--name", "x"); res.code != cli.ExitUsage {
		t.Errorf("restore over the VM with a new name: %+v", res)
	}
	res = r.must(t, 0, "vm", "restore", list[1].ID, "--ds", "ds1:nightly", "--replace")
	if !strings.Contains(res.stdout, "restored as VM bk1 ") {
		t.Errorf("vm restore --replace:\n%s", res.stdout)
	}
	if out, err := exec.Command("qemu-img", "compare", "-U", disk, filepath.Join(r.ds, "bk1-copy", "disk0.qcow2")).CombinedOutput(); err != nil {
		t.Errorf("the disk restored in place differs from the backup: %v: %s", err, out)
	}
	if res := r.plinth(t, "", nil, "vm", "restore", "20261206T000000Z-00000000", "--ds", "ds1:nightly"); res.code != cli.ExitNotFound {
		t.Errorf("restore of a backup that is not there: %+v", res)
	}
}

// TestSnapshotsClonesHistoryThroughMgmtd: mgmtd forwards the snapshot,
// clone, template, deploy and history routes to vmkernel (the client
// against mgmtd's address, as the CLI and the web client reach them).
func TestSnapshotsClonesHistoryThroughMgmtd(t *testing.T) {
	r := startRig(t)
	r.login(t)
	r.must(t, 0, "vm", "create", "--name", "sn1", "--memory", "128M", "--disk", "ds1:sn1/disk0.qcow2,size=8M", "--firmware", "bios")
	var cfg cli.Config
	b, _ := os.ReadFile(filepath.Join(r.cfgDir, cli.ConfigFile))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	c, err := client.New("https://"+r.addr, client.WithPinnedFingerprint(r.fingerprint), client.WithToken(cfg.Servers[r.addr].Token))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wait := func(task api.Task, err error) api.Task {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		done, err := c.WaitTask(ctx, task.ID, 100*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	wait(c.CreateSnapshot(ctx, "sn1", api.SnapshotRequest{Name: "first"}))
	tree, err := c.Snapshots(ctx, "sn1")
	if err != nil || len(tree.Snapshots) != 1 || tree.Snapshots[0].Name != "first" {
		t.Fatalf("snapshots through mgmtd: %+v, %v", tree, err)
	}
	wait(c.RevertSnapshot(ctx, "sn1", "first", api.RevertRequest{}))
	wait(c.CloneVM(ctx, "sn1", api.CloneRequest{Name: "sn1-copy", Linked: true}))
	if _, err := c.GetVM(ctx, "sn1-copy"); err != nil {
		t.Fatalf("the clone made through mgmtd: %v", err)
	}
	if vm, err := c.SetTemplate(ctx, "sn1-copy", true); err != nil || !vm.Spec.Template {
		t.Fatalf("template through mgmtd: %+v, %v", vm.Spec, err)
	}
	wait(c.Deploy(ctx, "sn1-copy", api.DeployRequest{Count: 2, NamePattern: "dep-{n}"}))
	for _, n := range []string{"dep-1", "dep-2"} {
		if _, err := c.GetVM(ctx, n); err != nil {
			t.Errorf("deployed %s: %v", n, err)
		}
	}
	vs, err := c.History(ctx, "sn1")
	if err != nil || len(vs) == 0 {
		t.Fatalf("history through mgmtd: %+v, %v", vs, err)
	}
	if vs[0].User != api.RootUser || vs[len(vs)-1].User != api.RootUser {
		t.Errorf("history's versions were made by %q and %q, want %q (mgmtd's user)", vs[0].User, vs[len(vs)-1].User, api.RootUser)
	}
	// A client cannot name another user: mgmtd replaces the header.
	vm, err := c.GetVM(ctx, "sn1")
	if err != nil {
		t.Fatal(err)
	}
	vm.Spec.MemoryMiB = 192
	body, _ := json.Marshal(vm.Spec)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+r.addr+api.MgmtdVMsPath+"/sn1?reason=spoof", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.Servers[r.addr].Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.UserHeader, "mallory")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT the VM with a user header: %s", resp.Status)
	}
	if vs, err := c.History(ctx, "sn1"); err != nil || vs[len(vs)-1].Reason != "spoof" || vs[len(vs)-1].User != api.RootUser {
		t.Errorf("a change sent with %s: mallory is recorded as %+v, %v", api.UserHeader, vs[len(vs)-1], err)
	}

	wait(c.DeleteSnapshot(ctx, "sn1", "first"))
	if tree, err := c.Snapshots(ctx, "sn1"); err != nil || len(tree.Snapshots) != 0 {
		t.Errorf("snapshots after the delete: %+v, %v", tree, err)
	}
}

// TestCLISnapshotsClones: through mgmtd, a stopped VM's snapshots taken
// (with a description), listed as a tree with the current one marked,
// reverted (the disk's data back as it was), removed; a linked clone of
// a snapshot; a template deployed twice; the definition's history and a
// diff; an unknown snapshot or VM, and missing arguments, are clear errors.
func TestCLISnapshotsClones(t *testing.T) {
	r := startRig(t)
	r.login(t)
	r.must(t, 0, "vm", "create", "--name", "sn1", "--memory", "128M", "--disk", "ds1:sn1/disk0.qcow2,size=8M", "--firmware", "bios")
	disk := filepath.Join(r.ds, "sn1", "disk0.qcow2")
	qemuIO := func(path, cmd string) string {
		t.Helper()
		out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, path).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-io %s: %v: %s", cmd, err, out)
		}
		return string(out)
	}
	qemuIO(disk, "write -P 0x5a 1M 1M")

	res := r.must(t, 0, "vm", "snapshot", "take", "sn1", "first", "--description", "before the upgrade")
	if !strings.Contains(res.stdout, "snapshot first of sn1 taken (disks)") {
		t.Errorf("vm snapshot take:\n%s", res.stdout)
	}
	qemuIO(disk, "write -P 0xa5 1M 1M")
	r.must(t, 0, "vm", "snapshot", "take", "sn1", "second")
	tree := decode[api.SnapshotTree](t, r.must(t, 0, "vm", "snapshot", "ls", "sn1", "--json"))
	if len(tree.Snapshots) != 2 || tree.Snapshots[0].Name != "first" || tree.Snapshots[0].Description != "before the upgrade" ||
		tree.Snapshots[1].Parent != tree.Snapshots[0].ID || tree.Current != tree.Snapshots[1].ID {
		t.Fatalf("vm snapshot ls --json: %+v", tree)
	}
	res = r.must(t, 0, "vm", "snapshot", "ls", "sn1")
	if !regexp.MustCompile(`(?m)^first\s+\S+\s+.*\bno\s+stopped\s+before the upgrade$`).MatchString(res.stdout) ||
		!regexp.MustCompile(`(?m)^  second \(current\)\s`).MatchString(res.stdout) {
		t.Errorf("vm snapshot ls (second under first, current):\n%s", res.stdout)
	}

	res = r.must(t, 0, "vm", "snapshot", "revert", "sn1", "first")
	if !strings.Contains(res.stdout, "sn1 reverted to snapshot first: stopped") {
		t.Errorf("vm snapshot revert:\n%s", res.stdout)
	}
	if out := qemuIO(disk, "read -P 0x5a 1M 1M"); strings.Contains(out, "verification failed") {
		t.Errorf("the disk after the revert is not the snapshot's: %s", out)
	}
	if tree := decode[api.SnapshotTree](t, r.must(t, 0, "vm", "snapshot", "ls", "sn1", "--json")); tree.Current != tree.Snapshots[0].ID {
		t.Errorf("current after the revert: %+v", tree)
	}
	for _, args := range [][]string{
		{"vm", "snapshot", "revert", "sn1", "nosuch"},
		{"vm", "snapshot", "rm", "sn1", "nosuch"},
		{"vm", "clone", "sn1", "x1", "--snapshot", "nosuch"},
	} {
		if res := r.plinth(t, "", nil, args...); res.code != cli.ExitNotFound || !strings.Contains(res.stderr, "nosuch") {
			t.Errorf("plinth %s: exit %d, want %d naming the snapshot: %s", strings.Join(args, " "), res.code, cli.ExitNotFound, res.stderr)
		}
	}
	if res := r.plinth(t, "", nil, "vm", "snapshot", "take", "nosuchvm", "x"); res.code != cli.ExitNotFound || !strings.Contains(res.stderr, "nosuchvm") {
		t.Errorf("a snapshot of an unknown VM: exit %d: %s", res.code, res.stderr)
	}
	for _, args := range [][]string{
		{"vm", "snapshot", "take", "sn1"},
		{"vm", "snapshot", "rm", "sn1"},
		{"vm", "clone", "sn1"},
		{"vm", "deploy", "sn1", "--count", "2"},
		{"vm", "history", "revert", "sn1", "latest"},
	} {
		if res := r.plinth(t, "", nil, args...); res.code != cli.ExitUsage {
			t.Errorf("plinth %s: exit %d, want %d: %s", strings.Join(args, " "), res.code, cli.ExitUsage, res.stderr)
		}
	}

	// A linked clone of the second snapshot: an overlay holding its data.
	res = r.must(t, 0, "vm", "clone", "sn1", "sn1-linked", "--linked", "--snapshot", "second")
	if !strings.HasPrefix(res.stdout, "sn1-linked ") || !strings.HasSuffix(res.stdout, " stopped\n") {
		t.Errorf("vm clone:\n%s", res.stdout)
	}
	clone := decode[api.VM](t, r.must(t, 0, "vm", "show", "sn1-linked", "--json"))
	if len(clone.Spec.Disks) != 1 {
		t.Fatalf("the clone's spec: %+v", clone.Spec)
	}
	cdisk := filepath.Join(r.ds, clone.Spec.Disks[0].Path)
	if out, err := exec.Command("qemu-img", "info", "-U", "--output=json", cdisk).CombinedOutput(); err != nil || !strings.Contains(string(out), `"backing-filename"`) {
		t.Errorf("the linked clone's disk has no backing file: %v: %s", err, out)
	}
	if out := qemuIO(cdisk, "read -P 0xa5 1M 1M"); strings.Contains(out, "verification failed") {
		t.Errorf("the clone's disk is not the snapshot's: %s", out)
	}

	res = r.must(t, 0, "vm", "snapshot", "rm", "sn1", "second")
	if !strings.Contains(res.stdout, "snapshot second of sn1 deleted") {
		t.Errorf("vm snapshot rm:\n%s", res.stdout)
	}
	if tree := decode[api.SnapshotTree](t, r.must(t, 0, "vm", "snapshot", "ls", "sn1", "--json")); len(tree.Snapshots) != 1 || tree.Snapshots[0].Name != "first" {
		t.Errorf("snapshots after rm: %+v", tree)
	}

	// The clone as a template, deployed twice.
	if res := r.must(t, 0, "vm", "template", "sn1-linked"); !strings.Contains(res.stdout, "sn1-linked: a template") {
		t.Errorf("vm template:\n%s", res.stdout)
	}
	res = r.must(t, 0, "vm", "deploy", "sn1-linked", "--count", "2", "--name-pattern", "dep-{n}")
	if !regexp.MustCompile(`(?m)^dep-1 \S+ stopped\ndep-2 \S+ stopped$`).MatchString(res.stdout) {
		t.Errorf("vm deploy:\n%s", res.stdout)
	}
	if res := r.plinth(t, "", nil, "vm", "start", "sn1-linked"); res.code == 0 {
		t.Errorf("a template started: %+v", res)
	}

	// History: the revert to "first" was a change of the definition.
	vs := decode[[]api.SpecVersion](t, r.must(t, 0, "vm", "history", "sn1", "--json"))
	if len(vs) == 0 || vs[0].Version != 1 || vs[0].User != api.RootUser {
		t.Fatalf("vm history --json: %+v", vs)
	}
	res = r.must(t, 0, "vm", "history", "sn1")
	if !regexp.MustCompile(`(?m)^VERSION\s+TIME\s+USER\s+REASON\n1\s+.*\broot\b`).MatchString(res.stdout) {
		t.Errorf("vm history:\n%s", res.stdout)
	}
	// A change (a NIC added), its diff, and the definition taken back.
	r.must(t, 0, "vm", "nic", "add", "sn1", "nat")
	if vs := decode[[]api.SpecVersion](t, r.must(t, 0, "vm", "history", "sn1", "--json")); vs[len(vs)-1].User != api.RootUser {
		t.Errorf("the NIC added through mgmtd is recorded as made by %q, want %q", vs[len(vs)-1].User, api.RootUser)
	}
	res = r.must(t, 0, "vm", "history", "diff", "sn1")
	if !regexp.MustCompile(`(?m)^nics\S*\s+.*\s+(yes|no)$`).MatchString(res.stdout) {
		t.Errorf("vm history diff (the NIC added):\n%s", res.stdout)
	}
	n := len(decode[[]api.SpecVersion](t, r.must(t, 0, "vm", "history", "sn1", "--json")))
	res = r.must(t, 0, "vm", "history", "revert", "sn1", strconv.Itoa(n-1), "--dry-run")
	if !strings.Contains(res.stdout, "nics") {
		t.Errorf("vm history revert --dry-run:\n%s", res.stdout)
	}
	if len(decode[[]api.SpecVersion](t, r.must(t, 0, "vm", "history", "sn1", "--json"))) != n {
		t.Errorf("a dry run made a version")
	}
	res = r.must(t, 0, "vm", "history", "revert", "sn1", strconv.Itoa(n-1), "--reason", "no second NIC")
	if !strings.Contains(res.stdout, fmt.Sprintf("sn1: the definition of version %d again", n-1)) {
		t.Errorf("vm history revert:\n%s", res.stdout)
	}
	vs = decode[[]api.SpecVersion](t, r.must(t, 0, "vm", "history", "sn1", "--json"))
	if len(vs) != n+1 || vs[n].Reason != "no second NIC" || len(vs[n].Spec.NICs) != len(vs[n-2].Spec.NICs) {
		t.Errorf("history after the revert: %+v", vs)
	}
	if res := r.plinth(t, "", nil, "vm", "history", "diff", "sn1", "99"); res.code != cli.ExitNotFound || !strings.Contains(res.stderr, "99") {
		t.Errorf("a diff from a version that is not there: exit %d: %s", res.code, res.stderr)
	}
	if res := r.plinth(t, "", nil, "vm", "history", "nosuchvm"); res.code != cli.ExitNotFound {
		t.Errorf("the history of an unknown VM: exit %d: %s", res.code, res.stderr)
	}
}
