package hostconf

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/layout"
)

// sshClient runs Debian's OpenSSH client against the host's service.
type sshClient struct {
	t          *testing.T
	bin, dir   string
	key, known string
	port       int
}

func newSSHClient(t *testing.T) *sshClient {
	bin := testenv.Command(t, "ssh")
	keygen := testenv.Command(t, "ssh-keygen")
	dir := t.TempDir()
	c := &sshClient{t: t, bin: bin, dir: dir, key: filepath.Join(dir, "id_ed25519"), known: filepath.Join(dir, "known_hosts")}
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "admin@test", "-f", c.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	askpass := filepath.Join(dir, "askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\ncat \""+filepath.Join(dir, "password")+"\"\n"), 0o755)
	return c
}

func (c *sshClient) pub() string {
	b, err := os.ReadFile(c.key + ".pub")
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// cmd is ssh with the test's options; password "" logs in with the key
// only, else with that password only.
func (c *sshClient) cmd(ctx context.Context, user, password string, args ...string) *exec.Cmd {
	opts := []string{"-F", "/dev/null", "-p", strconv.Itoa(c.port), "-o", "StrictHostKeyChecking=accept-new",
		"-o", "UserKnownHostsFile=" + c.known, "-o", "ConnectTimeout=10", "-o", "BatchMode=" + map[bool]string{true: "yes", false: "no"}[password == ""],
		"-o", "LogLevel=ERROR"}
	if password == "" {
		opts = append(opts, "-i", c.key, "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey")
	} else {
		os.WriteFile(filepath.Join(c.dir, "password"), []byte(password+"\n"), 0o600)
		opts = append(opts, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1")
	}
	cmd := exec.CommandContext(ctx, c.bin, append(append(opts, user+"@127.0.0.1"), args...)...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(c.dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *sshClient) run(user, password, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.cmd(ctx, user, password, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSSHService: off by default; keys through the API (bad ones refused
// naming the field); on, Debian's ssh logs in with the key and gets a
// shell (pipes) or the session kind asked for on a terminal of its own;
// the root password only when allowed; lockdown turns it off and keeps it
// off; turning it off ends a session and what it runs.
func TestSSHService(t *testing.T) {
	c := newSSHClient(t)
	lay := layout.Under(t.TempDir())
	os.MkdirAll(lay.AuthDir(), 0o700)
	h := New(Config{Layout: lay, NoTimeKeeper: true, SSHAddr: "127.0.0.1:0", SSHCommands: map[string][]string{
		api.SSHSessionShell: {"/bin/sh"},
		// The console's screens on the session's terminal; here a
		// program that says which terminal it has and its size.
		api.SSHSessionDCUI: {"/bin/sh", "-c", "echo terminal $(tty) $(stty size) $TERM"},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.Run(ctx)
	t.Cleanup(h.stopSSH)

	if st := h.SSH(); st.Running || st.Config.Enabled || st.Warning != "" || st.Config.Session != api.SSHSessionDCUI {
		t.Fatalf("default: %+v", st)
	}
	var verr *api.ValidationError
	for _, bad := range []string{"ssh-ed25519 AAAA broken", `command="/bin/sh" ` + c.pub(), c.pub() + "\n" + c.pub()} {
		if _, err := h.AddSSHKey(bad); !errors.As(err, &verr) || verr.Problems[0].Field != "key" {
			t.Errorf("key %.40q: %v", bad, err)
		}
	}
	k, err := h.AddSSHKey(c.pub())
	if err != nil || k.Comment != "admin@test" || !strings.HasPrefix(k.Fingerprint, "SHA256:") || k.Type != "ssh-ed25519" {
		t.Fatalf("add: %+v, %v", k, err)
	}
	if _, err := h.AddSSHKey(c.pub()); !errors.Is(err, ErrConflict) {
		t.Errorf("the same key again: %v", err)
	}
	if _, err := h.SetSSH(api.SSHConfig{Enabled: true, Session: "bash"}); !errors.As(err, &verr) || verr.Problems[0].Field != "session" {
		t.Errorf("session bash: %v", err)
	}

	st, err := h.SetSSH(api.SSHConfig{Enabled: true, Session: api.SSHSessionShell})
	if err != nil || !st.Running || st.Port == 0 || st.Warning == "" || len(st.Keys) != 1 || !strings.HasPrefix(st.HostKeyFingerprint, "SHA256:") {
		t.Fatalf("on: %+v, %v", st, err)
	}
	c.port = st.Port
	out, err := c.run("root", "", "echo hello-$((6*7))\n")
	if err != nil || !strings.Contains(out, "hello-42") {
		t.Fatalf("shell over SSH: %v\n%s", err, out)
	}
	// The host key ssh saw is the one the API names.
	if fp, err := exec.Command("ssh-keygen", "-l", "-f", c.known).Output(); err != nil || !strings.Contains(string(fp), st.HostKeyFingerprint) {
		t.Errorf("known host %s, API %s (%v)", fp, st.HostKeyFingerprint, err)
	}
	// A terminal of its own for the session kind asked for.
	out, err = c.run("root", "", "", "-tt", "dcui")
	if err != nil || !strings.Contains(out, "terminal /dev/pts/") || !strings.Contains(out, "24 80") {
		t.Errorf("dcui session: %v\n%s", err, out)
	}
	if out, err := c.run("root", "", "", "cat", "/etc/passwd"); err == nil || !strings.Contains(out, "not offered") {
		t.Errorf("another command: %v\n%s", err, out)
	}
	if out, err := c.run("admin", "", "exit\n"); err == nil {
		t.Errorf("user admin logged in:\n%s", out)
	}
	// The root password: refused until allowed.
	if err := h.SetPassword("Plinth-test-1"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run("root", "Plinth-test-1", "exit\n"); err == nil {
		t.Errorf("password login while off:\n%s", out)
	}
	if _, err := h.SetSSH(api.SSHConfig{Enabled: true, PasswordLogin: true, Session: api.SSHSessionShell}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run("root", "Plinth-test-1", "echo pw-$((1+1))\n"); err != nil || !strings.Contains(out, "pw-2") {
		t.Errorf("password login: %v\n%s", err, out)
	}
	if out, err := c.run("root", "Wrong-pass-2", "exit\n"); err == nil {
		t.Errorf("a wrong password logged in:\n%s", out)
	}

	// Off ends a session and what it runs.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	sess := c.cmd(sctx, "root", "")
	sess.Stdin = strings.NewReader("echo $$ > " + filepath.Join(c.dir, "pid") + "; exec sleep 60\n")
	var sout bytes.Buffer
	sess.Stdout, sess.Stderr = &sout, &sout
	if err := sess.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return h.SSH().Sessions == 1 })
	waitFor(t, 10*time.Second, func() bool { _, err := os.Stat(filepath.Join(c.dir, "pid")); return err == nil })
	if _, err := h.SetSSH(api.SSHConfig{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the session outlived SSH off:\n%s", sout.String())
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, "pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, 5*time.Second, func() bool { return pid > 0 && !alive(pid) })

	// Lockdown turns it off and keeps it off.
	if _, err := h.SetSSH(api.SSHConfig{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.SetLockdown(true); err != nil {
		t.Fatal(err)
	}
	if st := h.SSH(); st.Running || st.Config.Enabled || st.Warning != "" {
		t.Errorf("after lockdown: %+v", st)
	}
	if _, err := h.SetSSH(api.SSHConfig{Enabled: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("on under lockdown: %v", err)
	}
	if out, err := c.run("root", "", "exit\n"); err == nil {
		t.Errorf("logged in under lockdown:\n%s", out)
	}
	// Keys go through the API alone.
	if err := h.DeleteSSHKey(k.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteSSHKey(k.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}
