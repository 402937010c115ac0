package qemutest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/hostinfo"
)

// The end-to-end tests boot the built appliance image. They are slow, so
// they run only with PLINTH_E2E=1 (make test sets it).

func e2eOptions(t *testing.T) Options {
	t.Helper()
	if os.Getenv("PLINTH_E2E") != "1" {
		t.Skip("end-to-end test: set PLINTH_E2E=1 to boot the appliance image (after `make image`)")
	}
	kernel, initrd, err := ImagePaths()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("PLINTH_E2E=1 but the image is missing (%v): run `make image` first", err)
		}
	}
	// The console is kept in build/ for a look after the run (make e2e).
	console := filepath.Join(filepath.Dir(kernel), "e2e-"+t.Name()+".console.log")
	t.Logf("console log: %s", console)
	return Options{Kernel: kernel, Initrd: initrd, Logf: t.Logf, ConsoleLog: console}
}

// pinnedClient trusts whatever certificate the appliance shows first (it is
// self-signed) and then insists on that same certificate.
// Once logged in (login), every request carries the session's token.
type pinnedClient struct {
	*http.Client
	mu    sync.Mutex
	pin   []byte
	token string
}

// bearer adds the client's token, when it has one, to each request.
type bearer struct {
	c     *pinnedClient
	inner http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	b.c.mu.Lock()
	tok := b.c.token
	b.c.mu.Unlock()
	if tok != "" && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.inner.RoundTrip(r)
}

func newPinnedClient() *pinnedClient {
	c := &pinnedClient{}
	tlsConf := &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.pin == nil {
				c.pin = sum[:]
			} else if !bytes.Equal(c.pin, sum[:]) {
				return fmt.Errorf("server certificate %x is not the pinned %x", sum, c.pin)
			}
			return nil
		},
	}
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: bearer{c, &http.Transport{TLSClientConfig: tlsConf}}}
	return c
}

func (c *pinnedClient) getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %s", url, resp.Status, err, b)
	}
	return string(b)
}

func (c *pinnedClient) getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	// v starts from zero: a field this answer leaves out (omitempty) must
	// not keep what an earlier answer put there.
	if p := reflect.ValueOf(v); p.Kind() == reflect.Pointer && !p.IsNil() {
		p.Elem().SetZero()
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decoding: %v", url, err)
	}
}

func TestApplianceBoot(t *testing.T) {
	o := e2eOptions(t)
	o.CPUs, o.MemoryMiB = 2, 1024
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	vm, ready, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	t.Logf("ready after %v: %v", time.Since(vm.Started).Round(time.Millisecond), ready)

	c := newPinnedClient()
	var health api.Health
	c.getJSON(t, vm.APIURL()+"/healthz", &health)
	if health.Status != "ok" {
		t.Errorf("healthz status = %q (services %v), want ok", health.Status, health.Services)
	}
	// Nothing but health answers before the password is set and used.
	if resp, err := c.Get(vm.APIURL() + "/api/v1/host"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/host without a token: %v %v, want 401", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	firstLogin(ctx, t, vm, c)

	var host api.Host
	c.getJSON(t, vm.APIURL()+"/api/v1/host", &host)
	t.Logf("host: %+v", host)
	if host.CPUCount != o.CPUs {
		t.Errorf("cpu_count = %d, want %d", host.CPUCount, o.CPUs)
	}
	const mem = 1024 << 20
	if host.MemoryBytes < mem*8/10 || host.MemoryBytes > mem {
		t.Errorf("memory_bytes = %d, want 80-100%% of %d", host.MemoryBytes, mem)
	}
	if m := host.Acceleration.Mode; m != api.AccelKVM && m != api.AccelTCG {
		t.Errorf("acceleration.mode = %q, want kvm or tcg", m)
	}
	if host.Acceleration.Reason == "" {
		t.Error("acceleration.reason is empty")
	}
	if host.Kernel == "" || host.Version == "" {
		t.Errorf("kernel = %q, version = %q; want both set", host.Kernel, host.Version)
	}
	// The facts must be the image's own: the kernel release and version the
	// build wrote down, and the QEMU of the pinned packages the payload came
	// from (which also proves QEMU loads from the payload image).
	root, _ := RepoRoot()
	for file, got := range map[string]string{"kernel-release": host.Kernel, "version": host.Version} {
		if b, err := os.ReadFile(filepath.Join(root, "build", file)); err == nil && strings.TrimSpace(string(b)) != got {
			t.Errorf("host reports %s %q, the image was built with %q", file, got, strings.TrimSpace(string(b)))
		}
	}
	// vmkernel learns QEMU's version in the background (it pages QEMU in from
	// the payload image, seconds under TCG): poll for it, with a deadline.
	for deadline := time.Now().Add(90 * time.Second); host.QEMU == "" && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		c.getJSON(t, vm.APIURL()+"/api/v1/host", &host)
	}
	if want, err := hostinfo.QEMUVersion(context.Background(), "qemu-system-x86_64"); err == nil && host.QEMU != want {
		t.Errorf("qemu = %q, want %q (the build host's pinned QEMU)%s", host.QEMU, want, formatTail(vm.Tail(TailLines)))
	}
	if host.Hostname != ready["hostname"] {
		t.Errorf("hostname = %q, the ready line said %q", host.Hostname, ready["hostname"])
	}

	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	code, err := vm.Wait(60 * time.Second)
	if err != nil {
		t.Fatalf("after the power button: %v", err)
	}
	if code != 0 {
		t.Fatalf("QEMU exit status %d after power down, want 0%s", code, formatTail(vm.Tail(TailLines)))
	}
	// A clean shutdown: the init saw the button, stopped the services and
	// powered off (QEMU exiting 0 alone would also follow a crash with -no-reboot).
	con := strings.Join(vm.Console(), "\n")
	for _, want := range []string{"shutting down (ACPI power button)", "[mgmtd] supervisor: stopped", "[vmkernel] supervisor: stopped", "plinth-init: powering off"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q after power down%s", want, formatTail(vm.Tail(TailLines)))
		}
	}
}

// TestApplianceStateAndStaticNetwork boots twice from a disk holding an ext4
// file system labelled PLINTH-STATE, with a static address on the kernel
// command line: the appliance must run installed (not live), take its host
// name from STATE over the command line, keep its TLS certificate across the
// reboot, and leave its logs in STATE.
func TestApplianceStateAndStaticNetwork(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(filepath.Join(seed, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, "config", "hostname"), []byte("esx-state\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "state.img")
	mkfs(t, "PLINTH-STATE", seed, img, "64M")
	o.CPUs, o.MemoryMiB = 2, 1024
	// QEMU's user network forwards to 10.0.2.15, so the static address is that one.
	o.Cmdline = "plinth.ip=10.0.2.15/24 plinth.gw=10.0.2.2 plinth.dns=10.0.2.3 plinth.hostname=from-cmdline"
	o.ExtraArgs = []string{"-drive", "file=" + img + ",if=virtio,format=raw"}
	c := newPinnedClient() // the second boot must show the first boot's certificate

	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		vm, ready, err := StartReady(ctx, o, 240*time.Second)
		if err != nil {
			cancel()
			t.Fatalf("boot %d: %v", boot, err)
		}
		if ready["mode"] != "installed" || ready["addr"] != "10.0.2.15/24" || ready["hostname"] != "esx-state" {
			t.Errorf("boot %d: ready line %v, want mode=installed addr=10.0.2.15/24 hostname=esx-state", boot, ready)
		}
		if con := strings.Join(vm.Console(), "\n"); !strings.Contains(con, "management network: eth0 10.0.2.15/24 (static)") {
			t.Errorf("boot %d: the console does not report the static address%s", boot, formatTail(vm.Tail(TailLines)))
		}
		if boot == 1 {
			firstLogin(ctx, t, vm, c) // the password goes to STATE
			secretsThroughMgmtd(t, vm, c)
		} else {
			c.login(t, vm.APIURL(), e2ePassword) // and is there after the reboot
		}
		var host api.Host
		c.getJSON(t, vm.APIURL()+"/api/v1/host", &host) // fails on a changed certificate
		if host.Hostname != "esx-state" {
			t.Errorf("boot %d: hostname %q, want esx-state from STATE", boot, host.Hostname)
		}
		if err := vm.PowerDown(); err != nil {
			t.Fatal(err)
		}
		if code, err := vm.Wait(60 * time.Second); err != nil || code != 0 {
			t.Fatalf("boot %d: power down: exit %d, %v%s", boot, code, err, formatTail(vm.Tail(TailLines)))
		}
		vm.Close()
		cancel()
	}
	keepState(t, img) // scanned for secrets after the suite
	// What the appliance left in STATE, read with e2fsprogs' debugfs.
	out, err := exec.Command("debugfs", "-R", "ls -l /mgmtd/tls", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cert.pem") || !strings.Contains(string(out), "key.pem") {
		t.Errorf("STATE lacks mgmtd's certificate: %v\n%s", err, out)
	}
	out, err = exec.Command("debugfs", "-R", "cat /log/vmkernel.log", img).CombinedOutput()
	if err != nil || strings.Count(string(out), "vmkernel: serving") < 2 {
		t.Errorf("STATE's vmkernel.log does not show two boots: %v\n%s", err, out)
	}
}

// secretsThroughMgmtd sends what carries secrets through the appliance's
// mgmtd, so that the logs scanned after the suite have had the chance to
// keep them: a wrong password, an API token made and used, a websocket
// ticket in a URL, a token in ?access_token= as old clients sent it.
func secretsThroughMgmtd(t *testing.T, vm *VM, c *pinnedClient) {
	t.Helper()
	stranger := newPinnedClient()
	body, _ := json.Marshal(api.LoginRequest{User: api.RootUser, Password: wrongE2EPassword})
	resp, err := stranger.Post(vm.APIURL()+api.MgmtdSessionsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password: %s, want 401", resp.Status)
	}
	var tok api.APIToken
	json.Unmarshal(c.sendJSON(t, http.MethodPost, vm.APIURL()+api.MgmtdTokensPath, api.TokenRequest{Name: "e2e"}, http.StatusCreated), &tok)
	withToken := newPinnedClient()
	withToken.token = tok.Secret
	var vms []api.VM
	withToken.getJSON(t, vm.APIURL()+api.MgmtdVMsPath, &vms)
	path := api.MgmtdVMsPath + "/no-such-vm/" + api.MgmtdConsoleWS
	var tk api.Ticket
	json.Unmarshal(c.sendJSON(t, http.MethodPost, vm.APIURL()+api.MgmtdTicketsPath, api.TicketRequest{Path: path}, http.StatusCreated), &tk)
	for q, want := range map[string]int{"ticket=" + tk.Ticket: http.StatusNotFound, "access_token=" + tok.Secret: http.StatusUnauthorized} {
		resp, err := stranger.Get(vm.APIURL() + path + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s?%.8s...: %s, want %d", path, q, resp.Status, want)
		}
	}
}
