package mgmtd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/vmkernel/vmkerneltest"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/board/accel"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/vmkernel/hostinfo"
)

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// powerCalls receives the host power requests that reach the test vmkernels
// (whose Power would otherwise signal the appliance init).
var powerCalls = make(chan string, 16)

// startVMKernel serves a real vmkernel (datastore ds1) on a temp unix socket.
func startVMKernel(t *testing.T) string {
	t.Helper()
	r := vmkerneltest.Start(t, vmkerneltest.Options{
		Datastores: []string{"ds1"},
		Host:       hostinfo.Source{Accel: accel.Detect()}.Gather,
		Power: func(action, reason string) error {
			select {
			case powerCalls <- action + ": " + reason:
			default:
			}
			return nil
		},
	})
	return r.Socket
}

type running struct {
	url, fingerprint, state string
	stop                    func()
}

// startMgmtd serves a real mgmtd on 127.0.0.1:0 (or on l when given).
func startMgmtd(t *testing.T, state, vmkSock string, l net.Listener, opts ...func(*mgmtd.Config)) running {
	t.Helper()
	cfg := mgmtd.Config{StateDir: state, VMKernelSocket: vmkSock}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := mgmtd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l == nil {
		if l, err = mgmtd.Listen("127.0.0.1:0", -1); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	}
	t.Cleanup(stop)
	return running{url: "https://" + l.Addr().String(), fingerprint: srv.Fingerprint(), state: state, stop: stop}
}

// pinned is a client of r that trusts its certificate, without a token.
func pinned(t *testing.T, r running) *client.Client {
	t.Helper()
	c, err := client.New(r.url, client.WithPinnedFingerprint(r.fingerprint), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testPassword is the root password the tests set, as the DCUI would.
const testPassword = "Plinth-test-1"

// loggedIn sets the root password (when not yet set) and returns a client
// of r logged in with it.
func loggedIn(t *testing.T, r running) *client.Client {
	t.Helper()
	if set, _ := auth.PasswordSet(r.state); !set {
		if err := auth.SetPassword(r.state, api.RootUser, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	c := pinned(t, r)
	sess, err := c.Login(deadline(t), api.RootUser, testPassword)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	c.SetToken(sess.Token)
	return c
}

func TestEndToEnd(t *testing.T) {
	state := t.TempDir()
	r := startMgmtd(t, state, startVMKernel(t), nil)
	c := loggedIn(t, r)

	h, err := c.Health(deadline(t))
	if err != nil || h.Status != api.HealthOK || h.Services["vmkernel"] != api.HealthOK {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	host, err := c.Host(deadline(t))
	if err != nil {
		t.Fatal(err)
	}
	if host.CPUCount < 1 || host.MemoryBytes == 0 || host.Hostname == "" ||
		(host.Acceleration.Mode != api.AccelKVM && host.Acceleration.Mode != api.AccelTCG) {
		t.Errorf("Host = %+v", host)
	}

	// The fingerprint file, the key's mode, and the certificate's lifetime.
	fp, err := os.ReadFile(filepath.Join(state, "tls", "fingerprint"))
	if err != nil || strings.TrimSpace(string(fp)) != r.fingerprint || len(r.fingerprint) != 95 {
		t.Errorf("fingerprint file %q (%v), server says %q", fp, err, r.fingerprint)
	}
	if fi, err := os.Stat(filepath.Join(state, "tls", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, %v; want mode 0600", fi.Mode(), err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(state, "tls", "cert.pem"), filepath.Join(state, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("certificate lifetime %v, want about 10 years", life)
	}
	if !containsStr(leaf.DNSNames, "localhost") || len(leaf.IPAddresses) < 2 {
		t.Errorf("SANs %q %v", leaf.DNSNames, leaf.IPAddresses)
	}
	// The certificate is valid for 127.0.0.1 by name too, without the pin.
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestCertReusedAcrossRestarts(t *testing.T) {
	state, vmk := t.TempDir(), startVMKernel(t)
	r1 := startMgmtd(t, state, vmk, nil)
	before, _ := os.ReadFile(filepath.Join(state, "tls", "cert.pem"))
	r1.stop()
	r2 := startMgmtd(t, state, vmk, nil)
	after, _ := os.ReadFile(filepath.Join(state, "tls", "cert.pem"))
	if r1.fingerprint != r2.fingerprint || !bytes.Equal(before, after) || len(before) == 0 {
		t.Errorf("certificate changed across restart: %s -> %s", r1.fingerprint, r2.fingerprint)
	}
	// The old pin still works against the new process.
	if _, err := pinned(t, running{url: r2.url, fingerprint: r1.fingerprint}).Health(deadline(t)); err != nil {
		t.Error(err)
	}
}

func TestCertWithoutKeyRefused(t *testing.T) {
	state := t.TempDir()
	r := startMgmtd(t, state, startVMKernel(t), nil)
	r.stop()
	os.Remove(filepath.Join(state, "tls", "key.pem"))
	if _, err := mgmtd.New(mgmtd.Config{StateDir: state, VMKernelSocket: "/nonexistent"}); err == nil ||
		!strings.Contains(err.Error(), "key.pem") {
		t.Errorf("New with a certificate but no key: %v; want an error naming key.pem", err)
	}
}

func TestHealthDegradedWithoutVMKernel(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.sock")
	c := loggedIn(t, startMgmtd(t, t.TempDir(), missing, nil))

	h, err := c.Health(deadline(t))
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("Health error = %v, want a 503 *client.Error", err)
	}
	if h.Status != api.HealthDegraded || !strings.Contains(h.Services["vmkernel"], "absent.sock") {
		t.Errorf("Health = %+v, want degraded naming vmkernel's socket", h)
	}
	_, err = c.Host(deadline(t))
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || !strings.HasPrefix(e.Problem.Detail, "vmkernel:") {
		t.Errorf("Host error = %v, want a 502 problem", err)
	}
}

func TestWrongFingerprintRefused(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	wrong := strings.Repeat("AB:", 31) + "AB"
	c, err := client.New(r.url, client.WithPinnedFingerprint(wrong))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Health(deadline(t)); !errors.Is(err, client.ErrFingerprintMismatch) {
		t.Errorf("Health with a wrong pin: %v, want ErrFingerprintMismatch", err)
	}
	// Nor is the self-signed certificate trusted without a pin.
	c, _ = client.New(r.url)
	if _, err := c.Health(deadline(t)); err == nil {
		t.Error("Health without a pin succeeded against a self-signed certificate")
	}
	// Lower case without colons is the same pin.
	plain := strings.ToLower(strings.ReplaceAll(r.fingerprint, ":", ""))
	c, _ = client.New(r.url, client.WithPinnedFingerprint(plain))
	if _, err := c.Health(deadline(t)); err != nil {
		t.Errorf("Health with a plain-hex pin: %v", err)
	}
	if _, err := client.New(r.url, client.WithPinnedFingerprint("zz")); err == nil {
		t.Error("New accepted a malformed fingerprint")
	}
}

// rawClient is one HTTPS client for raw requests, shared so that its
// connections are reused: mgmtd bounds the connections one client holds.
func rawClient() *http.Client { return sharedRaw }

var sharedRaw = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

func do(t *testing.T, method, url string) (*http.Response, api.Problem) {
	t.Helper()
	req, _ := http.NewRequestWithContext(deadline(t), method, url, nil)
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	json.NewDecoder(resp.Body).Decode(&p)
	return resp, p
}

func TestUnknownRoutesAreProblems(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	resp, p := do(t, http.MethodGet, r.url+"/api/v1/nope")
	if resp.StatusCode != 404 || p.Status != 404 || p.Title != "Not Found" ||
		resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Errorf("GET unknown: %d %q %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
	resp, p = do(t, http.MethodDelete, r.url+api.MgmtdHostPath)
	if resp.StatusCode != 405 || p.Status != 405 || resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Errorf("DELETE host: %d %q %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
}

// TestRouteTableAnswers reaches every route of the table with one API
// token: an API token, so that DELETE of the current session (which would
// log a session out halfway, and every later route answer 401 unnoticed)
// answers 409 instead. Every route must be reached and pass the token.
func TestRouteTableAnswers(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	srv, err := mgmtd.New(mgmtd.Config{StateDir: t.TempDir(), VMKernelSocket: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := loggedIn(t, r).CreateToken(deadline(t), api.TokenRequest{Name: "route walk"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range srv.Routes() {
		resp, p := doAuth(t, rt.Method, r.url+fillPath(rt.Path), tok.Secret, nil)
		// A 404 from vmkernel (no such VM; no switches in this rig)
		// means the route was reached; mgmtd's own 404 says "no route"
		// and names mgmtd's path.
		if resp.StatusCode == 405 || resp.StatusCode == 404 && strings.HasPrefix(p.Detail, "no route "+api.MgmtdPrefix) {
			t.Errorf("%s %s: %d, route not reachable", rt.Method, rt.Path, resp.StatusCode)
		}
		if resp.StatusCode == http.StatusUnauthorized && !(rt.Access == mgmtd.Public && rt.Method == http.MethodPost) {
			t.Errorf("%s %s: 401 with a valid token: %+v", rt.Method, rt.Path, p)
		}
	}
	if _, err := withToken(t, r, tok.Secret).WhoAmI(deadline(t)); err != nil {
		t.Errorf("the token stopped working during the walk: %v", err)
	}
}

func TestListenFD(t *testing.T) {
	// As the appliance init does: bind first, hand over the descriptor.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := tl.(*net.TCPListener).File()
	tl.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Listen takes the descriptor over and closes it, so it gets its own
	// duplicate: closing f's descriptor under it would let f's finalizer
	// later close whatever file reused that number.
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := mgmtd.Listen(":443", fd)
	if err != nil {
		t.Fatal(err)
	}
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), l)
	if _, err := pinned(t, r).Health(deadline(t)); err != nil {
		t.Error(err)
	}
	if _, err := mgmtd.Listen("", 9999); err == nil {
		t.Error("Listen on a closed descriptor succeeded")
	}
}

func TestTLSMinimumVersion(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodGet, r.url+"/healthz", nil)
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
}

// TestVMsForwarded reads VMs through mgmtd that were defined in vmkernel.
func TestVMsForwarded(t *testing.T) {
	sock := startVMKernel(t)
	r := startMgmtd(t, t.TempDir(), sock, nil)
	vmk, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}
	spec := api.VMSpec{Name: "web-1", MemoryMiB: 256}
	if _, err := vmk.CreateVM(deadline(t), spec); err != nil {
		t.Fatal(err)
	}
	c := loggedIn(t, r)
	vms, err := c.ListVMs(deadline(t))
	if err != nil || len(vms) != 1 || vms[0].Spec.Name != "web-1" || vms[0].Runtime.State != api.VMStopped {
		t.Fatalf("ListVMs through mgmtd = %+v, %v", vms, err)
	}
	vm, err := c.GetVM(deadline(t), "web-1")
	if err != nil || vm.Spec.ID != vms[0].Spec.ID {
		t.Fatalf("GetVM through mgmtd = %+v, %v", vm, err)
	}
	if con, err := c.VMConsole(deadline(t), vm.Spec.ID); err != nil || len(con) != 0 {
		t.Fatalf("VMConsole of a VM that never ran = %q, %v", con, err)
	}
	_, err = c.GetVM(deadline(t), "nope")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Fatalf("GetVM(nope) = %v, want vmkernel's 404 passed on", err)
	}
}
