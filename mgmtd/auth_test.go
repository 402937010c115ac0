package mgmtd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
)

// fillPath puts test values in a route's path variables.
func fillPath(p string) string {
	return strings.NewReplacer("{id}", "no-such-thing", "{name}", "ds1").Replace(p)
}

// doAuth sends a request with an optional bearer token and JSON body and
// decodes a problem answer.
func doAuth(t *testing.T, method, url, token string, body any) (*http.Response, api.Problem) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(deadline(t), method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, p // a stream: it answered, which is all that is asked
	}
	data, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), api.ProblemContentType) {
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("%s %s: problem does not decode: %v: %s", method, url, err, data)
		}
	}
	return resp, p
}

// TestEveryRouteNeedsAToken walks the router's own route table, so a new
// route cannot escape the check.
func TestEveryRouteNeedsAToken(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	srv, err := mgmtd.New(mgmtd.Config{StateDir: t.TempDir(), VMKernelSocket: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	public := 0
	for _, rt := range srv.Routes() {
		if rt.Access == mgmtd.Public {
			public++
			if rt.Path != api.MgmtdHealthPath && !(rt.Path == api.MgmtdSessionsPath && rt.Method == http.MethodPost) {
				t.Errorf("%s %s is public; only health and login may be", rt.Method, rt.Path)
			}
			continue
		}
		for _, token := range []string{"", "plinth_s_forged", "plinth_t_abc_forged"} {
			resp, p := doAuth(t, rt.Method, r.url+fillPath(rt.Path), token, nil)
			if resp.StatusCode != http.StatusUnauthorized || p.Status != 401 ||
				!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with token %q: %d %+v, want a 401 problem", rt.Method, rt.Path, token, resp.StatusCode, p)
			}
		}
	}
	if public != 2 {
		t.Errorf("%d public routes, want 2 (health, login)", public)
	}
}

func TestLoginBeforePasswordIsSet(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	_, err := pinned(t, r).Login(deadline(t), api.RootUser, "Plinth-test-1")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Problem.Detail, "DCUI") {
		t.Fatalf("Login before the password is set = %v, want 409 naming the DCUI", err)
	}
}

func TestLoginLogoutAndWhoAmI(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	who, err := c.WhoAmI(deadline(t))
	if err != nil || who.User != api.RootUser || who.Kind != "session" || who.ExpiresAt == nil || who.Lockdown {
		t.Fatalf("WhoAmI = %+v, %v", who, err)
	}
	if err := c.Logout(deadline(t)); err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := c.WhoAmI(deadline(t)); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Fatalf("WhoAmI after logout = %v, want 401", err)
	}
}

// TestPasswordChangeEndsSessions: a password changed on the console (the
// DCUI calls package auth) holds at once, and every session, API token and
// ticket made before it stops working; what is made after works.
func TestPasswordChangeEndsSessions(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	other := loggedIn(t, r)
	tok, err := c.CreateToken(deadline(t), api.TokenRequest{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Ticket(deadline(t), api.MgmtdVMsPath+"/x/"+api.MgmtdConsoleWS)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.SetPassword(r.state, api.RootUser, "Changed-pass-2"); err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	for name, cc := range map[string]*client.Client{"session": c, "other session": other, "API token": withToken(t, r, tok.Secret)} {
		if _, err := cc.WhoAmI(deadline(t)); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
			t.Errorf("%s made before the change: %v, want 401", name, err)
		}
	}
	resp, _ := doAuth(t, http.MethodGet, r.url+tk.Path+"?ticket="+tk.Ticket, "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a ticket made before the change: %d, want 401", resp.StatusCode)
	}
	if _, err := pinned(t, r).Login(deadline(t), api.RootUser, testPassword); err == nil {
		t.Error("the old password still logs in")
	}
	nc := pinned(t, r)
	if _, err := nc.Login(deadline(t), api.RootUser, "Changed-pass-2"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if toks, err := nc.ListTokens(deadline(t)); err != nil || len(toks) != 0 {
		t.Errorf("tokens after the change: %+v, %v; want none", toks, err)
	}
}

// withToken is a client of r that sends secret as its bearer token.
func withToken(t *testing.T, r running, secret string) *client.Client {
	c := pinned(t, r)
	c.SetToken(secret)
	return c
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestWrongPasswordThrottled(t *testing.T) {
	clk := &testClock{t: time.Now()}
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil, func(c *mgmtd.Config) { c.Now = clk.Now })
	loggedIn(t, r) // sets the password
	for i := 0; i < auth.FreeFailures; i++ {
		resp, p := doAuth(t, http.MethodPost, r.url+api.MgmtdSessionsPath, "", api.LoginRequest{User: "root", Password: "Wrong-pass-1"})
		if resp.StatusCode != http.StatusUnauthorized || p.Status != 401 {
			t.Fatalf("wrong password %d: %d %+v", i, resp.StatusCode, p)
		}
	}
	// Now even the right password waits.
	resp, p := doAuth(t, http.MethodPost, r.url+api.MgmtdSessionsPath, "", api.LoginRequest{User: "root", Password: testPassword})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || p.Status != 429 {
		t.Fatalf("login after %d failures: %d %+v, want 429 with Retry-After", auth.FreeFailures, resp.StatusCode, p)
	}
	clk.Add(2 * time.Second)
	if resp, _ := doAuth(t, http.MethodPost, r.url+api.MgmtdSessionsPath, "", api.LoginRequest{User: "root", Password: testPassword}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("login after the wait: %d", resp.StatusCode)
	}
	// Failed and throttled logins are in the audit log.
	entries, err := loggedIn(t, r).Audit(deadline(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	var failed, throttled int
	for _, e := range entries {
		switch e.Status {
		case http.StatusUnauthorized:
			failed += max(e.Count, 1)
		case http.StatusTooManyRequests:
			throttled += max(e.Count, 1)
		}
	}
	if failed != auth.FreeFailures || throttled != 1 {
		t.Errorf("audit: %d failed and %d throttled logins, want %d and 1: %+v", failed, throttled, auth.FreeFailures, entries)
	}
}

func TestTokenExpiryAndRevocation(t *testing.T) {
	clk := &testClock{t: time.Now()}
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil, func(c *mgmtd.Config) {
		c.Now, c.SessionTTL = clk.Now, time.Hour
	})
	c := loggedIn(t, r)
	forever, err := c.CreateToken(deadline(t), api.TokenRequest{Name: "ci"})
	if err != nil || !strings.HasPrefix(forever.Secret, "plinth_t_") {
		t.Fatalf("CreateToken = %+v, %v", forever, err)
	}
	short, err := c.CreateToken(deadline(t), api.TokenRequest{Name: "short", ExpiresInSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	use := func(secret string) error {
		cc := pinned(t, r)
		cc.SetToken(secret)
		_, err := cc.ListVMs(deadline(t))
		return err
	}
	for _, s := range []string{forever.Secret, short.Secret} {
		if err := use(s); err != nil {
			t.Fatalf("a fresh API token: %v", err)
		}
	}
	toks, err := c.ListTokens(deadline(t))
	if err != nil || len(toks) != 2 || toks[0].Secret != "" {
		t.Fatalf("ListTokens = %+v, %v", toks, err)
	}
	clk.Add(3 * time.Minute)
	if err := use(short.Secret); err == nil {
		t.Error("an expired API token still works")
	}
	if err := use(forever.Secret); err != nil {
		t.Errorf("a token without expiry stopped working: %v", err)
	}
	if err := c.RevokeToken(deadline(t), forever.ID); err != nil {
		t.Fatal(err)
	}
	if err := use(forever.Secret); err == nil {
		t.Error("a revoked API token still works")
	}
	var e *client.Error
	if err := c.RevokeToken(deadline(t), forever.ID); !errors.As(err, &e) || e.Status != 404 {
		t.Errorf("revoking twice = %v, want 404", err)
	}
	// The session itself expires after SessionTTL.
	clk.Add(time.Hour)
	if _, err := c.ListVMs(deadline(t)); !errors.As(err, &e) || e.Status != 401 {
		t.Errorf("an expired session = %v, want 401", err)
	}
}

func TestLockdownRefusesRemoteChanges(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	if err := auth.SetLockdown(r.state, true); err != nil {
		t.Fatal(err)
	}
	if who, _ := c.WhoAmI(deadline(t)); !who.Lockdown {
		t.Error("WhoAmI does not say lockdown")
	}
	var e *client.Error
	_, err := c.CreateVM(deadline(t), api.VMSpec{Name: "locked", MemoryMiB: 128})
	if !errors.As(err, &e) || e.Status != http.StatusForbidden || !strings.Contains(e.Problem.Detail, "lockdown") {
		t.Fatalf("CreateVM in lockdown = %v, want 403 naming lockdown", err)
	}
	if _, err := c.CreateToken(deadline(t), api.TokenRequest{Name: "x"}); err == nil {
		t.Error("a token was made in lockdown")
	}
	if _, err := c.ListVMs(deadline(t)); err != nil {
		t.Errorf("reading in lockdown: %v", err)
	}
	if err := auth.SetLockdown(r.state, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVM(deadline(t), api.VMSpec{Name: "unlocked", MemoryMiB: 128}); err != nil {
		t.Fatalf("CreateVM after lockdown: %v", err)
	}
	entries, _ := c.Audit(deadline(t), 10)
	var refused, created bool
	for _, en := range entries {
		refused = refused || en.Status == 403 && en.Action == "POST "+api.MgmtdVMsPath && strings.Contains(en.Detail, "lockdown")
		created = created || en.Status == 201 && en.Action == "POST "+api.MgmtdVMsPath && en.User == api.RootUser && en.Remote == "127.0.0.1"
	}
	if !refused || !created {
		t.Errorf("audit log lacks the refused or the made change: %+v", entries)
	}
}

// TestProblemsNameTheField sends bad requests to mgmtd's own decoders and
// to vmkernel's through it.
func TestProblemsNameTheField(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	token := loggedIn(t, r).Token()
	for _, c := range []struct {
		method, path string
		body         any
		token        string
		status       int
		field        string
	}{
		{"POST", api.MgmtdSessionsPath, []byte(`{"user":"root","password":"x","extra":1}`), "", 400, "extra"},
		{"POST", api.MgmtdSessionsPath, []byte(`{"user":5,"password":"x"}`), "", 400, "user"},
		{"POST", api.MgmtdSessionsPath, api.LoginRequest{Password: "x"}, "", 422, "user"},
		{"POST", api.MgmtdSessionsPath, []byte(`{"user":"root"} {}`), "", 400, ""},
		{"POST", api.MgmtdSessionsPath, []byte(``), "", 400, ""},
		{"POST", api.MgmtdTokensPath, api.TokenRequest{Name: " "}, token, 422, "name"},
		{"POST", api.MgmtdTokensPath, api.TokenRequest{Name: "x", ExpiresInSeconds: -1}, token, 422, "expires_in_seconds"},
		{"POST", api.MgmtdHostPowerPath, api.PowerRequest{Action: "explode", Reason: "r", Confirm: "x"}, token, 422, "action"},
		{"POST", api.MgmtdHostPowerPath, api.PowerRequest{Action: "reboot", Reason: "r", Confirm: "not-this-host"}, token, 422, "confirm"},
		{"POST", api.MgmtdHostPowerPath, api.PowerRequest{Action: "reboot", Confirm: "x"}, token, 422, "reason"},
		{"PUT", api.Mgmtd(api.HostCertificatePath), api.CertificateRequest{CertificatePEM: "nope"}, token, 422, "certificate_pem"},
		{"GET", api.MgmtdVMsPath + "?state=bogus", nil, token, 422, "state"},
		{"GET", api.MgmtdVMsPath + "?name=[", nil, token, 422, "name"},
		{"GET", api.MgmtdAuditPath + "?limit=abc", nil, token, 422, "limit"},
		{"POST", api.MgmtdVMsPath, api.VMSpec{Name: "bad name!", MemoryMiB: 1}, token, 422, "name"},
		{"POST", api.MgmtdVMsPath, []byte(`{"name":"x","bogus":true}`), token, 400, ""},
		{"PUT", api.MgmtdDatastoresPath + "/ds1/content", []byte("data"), token, 422, "path"},
		{"POST", api.MgmtdTokensPath, []byte(`{"name":"` + strings.Repeat("x", mgmtd.MaxBodyBytes) + `"}`), token, 413, ""},
	} {
		resp, p := doAuth(t, c.method, r.url+c.path, c.token, c.body)
		if resp.StatusCode != c.status || p.Status != c.status || p.Title == "" ||
			resp.Header.Get("Content-Type") != api.ProblemContentType {
			t.Errorf("%s %s %s: %d %+v, want a %d problem", c.method, c.path, c.body, resp.StatusCode, p, c.status)
			continue
		}
		if c.field != "" && p.Field != c.field {
			t.Errorf("%s %s: problem names field %q, want %q (%+v)", c.method, c.path, p.Field, c.field, p)
		}
	}
}

func TestHostPowerNeedsConfirmation(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	host, err := c.Host(deadline(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HostPower(deadline(t), api.PowerReboot, "kernel update", host.Hostname); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-powerCalls:
		if got != "reboot: kernel update" {
			t.Errorf("vmkernel got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the power request did not reach vmkernel")
	}
}
