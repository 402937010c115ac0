package qemutest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestApplianceCLI drives a booted appliance the way an administrator does
// from their workstation: the root password is set on the serial console's
// DCUI, then the plinth CLI (the real binary) logs in, uploads a small ISO,
// creates a VM with it as CD-ROM, starts it, reads its serial console
// through the websocket, stops it and deletes it.
func TestApplianceCLI(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cli := buildCLI(t, root, dir)
	iso := smallISO(t, dir)

	// The datastore holds the inner guest's kernel and initramfs.
	ds := filepath.Join(dir, "ds-seed")
	if err := os.MkdirAll(ds, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := InstallGuest(o.Kernel, ds, BuildFloor); err != nil {
		t.Fatal(err)
	}
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", ds, dsImg, "160M")
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{"-drive", "file=" + dsImg + ",if=virtio,format=raw"}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := SetPasswordViaDCUI(ctx, vm, e2ePassword); err != nil {
		t.Fatal(err)
	}

	env, _, run := cliRunner(t, ctx, cli, dir, vm)

	run(e2ePassword+"\n", "login", "--yes", "--password-stdin")
	if who := run("", "whoami", "--json"); !strings.Contains(who, `"user": "root"`) && !strings.Contains(who, `"user":"root"`) {
		t.Errorf("whoami: %s", who)
	}
	run("", "ds", "upload", iso, "ds1:iso/small.iso")
	if ls := run("", "ds", "ls", "ds1:iso"); !strings.Contains(ls, "small.iso") {
		t.Errorf("ds ls after the upload:\n%s", ls)
	}
	run("", "vm", "create", "--name", "inner", "--memory", "256M", "--machine", "pc",
		"--kernel", "ds1:vmlinux", "--initrd", "ds1:init.cpio",
		"--cmdline", "console=ttyS0 quiet panic=-1 "+NoSelfTests+" "+FloorHangCmdline, "--cdrom", "ds1:iso/small.iso")
	run("", "vm", "start", "inner")
	var started api.VM
	if err := json.Unmarshal([]byte(run("", "vm", "show", "inner", "--json")), &started); err != nil ||
		started.Runtime.User < api.VMUIDBase || !started.Runtime.Sandboxed {
		t.Errorf("the inner VM's QEMU: uid %d, sandboxed %v (%v); want its own user, sandboxed", started.Runtime.User, started.Runtime.Sandboxed, err)
	}

	// The serial console through mgmtd's websocket, until the guest's
	// marker; then Ctrl-] ends the session, as a user would.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
	defer ccancel()
	cmd := exec.CommandContext(cctx, cli, "vm", "console", "inner")
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &watchBuffer{want: FloorMarker, seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-out.seen:
		t.Logf("the inner guest's marker came through the console websocket %v after start", time.Since(t0).Round(time.Second))
	case <-cctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no %s on the console websocket; it gave:\n%s%s", FloorMarker, out.String(), formatTail(vm.Tail(TailLines)))
	}
	io.WriteString(stdin, "\x1d")
	if err := cmd.Wait(); err != nil {
		t.Errorf("plinth vm console after Ctrl-]: %v\n%s", err, out.String())
	}

	run("", "vm", "stop", "inner")
	var one api.VM
	if err := json.Unmarshal([]byte(run("", "vm", "show", "inner", "--json")), &one); err != nil || one.Runtime.State != api.VMStopped {
		t.Errorf("after stop: %+v %v", one.Runtime, err)
	}
	run("", "vm", "delete", "inner")
	var vms []api.VM
	if err := json.Unmarshal([]byte(run("", "vm", "list", "--json")), &vms); err != nil || len(vms) != 0 {
		t.Errorf("vm list after delete: %+v %v", vms, err)
	}
	// The audit log saw all of it.
	audit := run("", "audit", "--json")
	for _, want := range []string{"PUT /api/v1/datastores/{name}/content", "POST /api/v1/vms", "POST /api/v1/vms/{id}/start",
		"console/ws", "POST /api/v1/vms/{id}/stop", "DELETE /api/v1/vms/{id}"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
}

// buildCLI builds the plinth CLI into dir.
func buildCLI(t *testing.T, root, dir string) string {
	t.Helper()
	cli := filepath.Join(dir, "plinth")
	if out, err := exec.Command("go", "build", "-o", cli, filepath.Join(root, "mgmtd", "cmd", "plinth")).CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v\n%s", err, out)
	}
	return cli
}

// cliRunner runs the plinth CLI against vm's API with its configuration in
// dir: plinth returns its output and error, run fails the test on an error
// (showing the console's last lines) and returns stdout. Each run has a
// 5 minute deadline.
func cliRunner(t *testing.T, ctx context.Context, cli, dir string, vm *VM) (env []string, plinth func(stdin string, args ...string) (string, string, error), run func(stdin string, args ...string) string) {
	server := strings.TrimPrefix(vm.APIURL(), "https://")
	env = append(os.Environ(), "PLINTH_CONFIG_DIR="+filepath.Join(dir, "config"), "PLINTH_SERVER="+server)
	plinth = func(stdin string, args ...string) (string, string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
		defer ccancel()
		cmd := exec.CommandContext(cctx, cli, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	run = func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := plinth(stdin, args...)
		if err != nil {
			t.Fatalf("plinth %s: %v\nstdout:\n%s\nstderr:\n%s%s", strings.Join(args, " "), err, out, errOut, formatTail(vm.Tail(TailLines)))
		}
		return out
	}
	return env, plinth, run
}

// smallISO makes a small ISO 9660 image with xorriso, as a user would.
func smallISO(t *testing.T, dir string) string {
	t.Helper()
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatal("xorriso is missing: apt-get install xorriso (make deps does)")
	}
	src := filepath.Join(dir, "iso-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "README.TXT"), []byte("Plinth end-to-end test ISO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "small.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-V", "PLINTHTEST", "-o", iso, src).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

// watchBuffer keeps what is written and closes seen once want appears.
type watchBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
