package mgmtd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
)

// from is an HTTPS client whose connections come from the loopback
// address ip (127.0.0.2, ...): another client, as mgmtd sees it.
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// login posts a login from hc and returns the status and the answer.
func login(t *testing.T, hc *http.Client, r running, user, password string) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(api.LoginRequest{User: user, Password: password})
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodPost, r.url+api.MgmtdSessionsPath, bytes.NewReader(b))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestConcurrentWrongPasswordsAfterWait: once a client has used up its
// free failures and waited out the delay, 20 wrong passwords sent at once
// get one 401 and nineteen 429s: each attempt is counted before its
// password is checked, so they cannot all pass the wait together.
func TestConcurrentWrongPasswordsAfterWait(t *testing.T) {
	clk := &testClock{t: time.Now()}
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil, func(c *mgmtd.Config) { c.Now = clk.Now })
	loggedIn(t, r)
	hc := from(t, "127.0.0.2")
	for i := 0; i < auth.FreeFailures; i++ {
		if code, body := login(t, hc, r, api.RootUser, "Wrong-pass-1"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %s", i, code, body)
		}
	}
	if code, _ := login(t, hc, r, api.RootUser, "Wrong-pass-1"); code != http.StatusTooManyRequests {
		t.Fatalf("attempt %d: %d, want 429", auth.FreeFailures+1, code)
	}
	clk.Add(auth.MaxDelay) // the wait is over
	codes := make(chan int, 20)
	var start sync.WaitGroup
	start.Add(1)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			b, _ := json.Marshal(api.LoginRequest{User: api.RootUser, Password: "Wrong-pass-1"})
			req, _ := http.NewRequest(http.MethodPost, r.url+api.MgmtdSessionsPath, bytes.NewReader(b))
			resp, err := hc.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	start.Done()
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[http.StatusUnauthorized] != 1 || got[http.StatusTooManyRequests] != 19 {
		t.Fatalf("20 wrong passwords at once after the wait: %v, want one 401 and nineteen 429", got)
	}
}

// TestStrangerCannotLockOutKnownClientOrConsole: a stranger guessing
// root's password throttles itself and other strangers, but not a client
// that logged in before, and never the console (the DCUI checks the
// password through package auth, with no throttle: lockout is remote
// only). So nobody can keep root throttled for everyone.
func TestStrangerCannotLockOutKnownClientOrConsole(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	loggedIn(t, r)
	admin, stranger, other := from(t, "127.0.0.2"), from(t, "127.0.0.3"), from(t, "127.0.0.4")
	if code, body := login(t, admin, r, api.RootUser, testPassword); code != http.StatusCreated {
		t.Fatalf("admin's first login: %d %s", code, body)
	}
	throttled := false
	for i := 0; i < 3*auth.FreeFailures && !throttled; i++ {
		code, _ := login(t, stranger, r, api.RootUser, fmt.Sprintf("Guess-%d-x", i))
		throttled = code == http.StatusTooManyRequests
	}
	if !throttled {
		t.Fatal("the stranger is never throttled")
	}
	if code, _ := login(t, other, r, api.RootUser, testPassword); code != http.StatusTooManyRequests {
		t.Errorf("another stranger during the attack: %d, want 429 (root is throttled for strangers)", code)
	}
	if code, body := login(t, admin, r, api.RootUser, testPassword); code != http.StatusCreated {
		t.Errorf("the known client during the attack: %d %s, want 201", code, body)
	}
	// The console's check (what the DCUI's login and password screens call).
	if err := auth.Verify(r.state, api.RootUser, testPassword); err != nil {
		t.Errorf("the console's password check during the attack: %v", err)
	}
}

// TestTicketsOpenWebsockets: a websocket takes a single-use ticket for its
// own path (or the Authorization header), never a token in the URL.
func TestTicketsOpenWebsockets(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: "stopped", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	path := api.MgmtdVMsPath + "/" + vm.Spec.ID + "/" + api.MgmtdConsoleWS
	get := func(rawQuery string) int {
		t.Helper()
		resp, _ := doAuth(t, http.MethodGet, r.url+path+"?"+rawQuery, "", nil)
		return resp.StatusCode
	}
	// The VM is stopped: a request that gets past authentication is
	// answered 409 (not running), one that does not 401.
	if code := get("access_token=" + url.QueryEscape(c.Token())); code != http.StatusUnauthorized {
		t.Errorf("?access_token= with a valid session token: %d, want 401", code)
	}
	if code := get("ticket=" + url.QueryEscape(c.Token())); code != http.StatusUnauthorized {
		t.Errorf("a session token as a ticket: %d, want 401", code)
	}
	tk, err := c.Ticket(deadline(t), path)
	if err != nil || tk.Path != path || time.Until(tk.ExpiresAt) > auth.TicketTTL {
		t.Fatalf("Ticket = %+v, %v", tk, err)
	}
	if code := get("ticket=" + url.QueryEscape(tk.Ticket)); code != http.StatusConflict {
		t.Errorf("a fresh ticket: %d, want 409 (authenticated, VM not running)", code)
	}
	if code := get("ticket=" + url.QueryEscape(tk.Ticket)); code != http.StatusUnauthorized {
		t.Errorf("the same ticket again: %d, want 401", code)
	}
	other, _ := c.Ticket(deadline(t), api.MgmtdVMsPath+"/other/"+api.MgmtdVNCWS)
	if code := get("ticket=" + url.QueryEscape(other.Ticket)); code != http.StatusUnauthorized {
		t.Errorf("a ticket for another path: %d, want 401", code)
	}
	// Tickets are for websockets only, and only with a token.
	var e *client.Error
	for _, p := range []string{api.MgmtdVMsPath, api.MgmtdVMsPath + "/x/console", "https://elsewhere/api/v1/vms/x/console/ws", path + "?x=1"} {
		if _, err := c.Ticket(deadline(t), p); !errors.As(err, &e) || e.Status != 422 || e.Problem.Field != "path" {
			t.Errorf("Ticket(%q) = %v, want 422 naming path", p, err)
		}
	}
	if _, err := pinned(t, r).Ticket(deadline(t), path); !errors.As(err, &e) || e.Status != 401 {
		t.Errorf("Ticket without a token = %v, want 401", err)
	}
	// The ticket's use is audited, with the ticket's value kept out.
	entries, _ := c.Audit(deadline(t), 100)
	found := false
	for _, en := range entries {
		if strings.HasSuffix(en.Action, api.MgmtdConsoleWS) && en.Status == http.StatusConflict {
			found = true
			if en.Target != path+"?ticket=REDACTED" {
				t.Errorf("audit target %q, want the ticket redacted", en.Target)
			}
		}
	}
	if !found {
		t.Errorf("the console attach is not in the audit log: %+v", entries)
	}
}

// syncBuffer is a log sink tests can read while the server writes.
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

// TestNoSecretInLogs drives every path that carries a secret (logins,
// right and wrong; API tokens; tickets in URLs; a token in ?access_token=
// as old clients sent it) and then reads mgmtd's log and the audit log:
// neither holds a password, a token or a ticket.
func TestNoSecretInLogs(t *testing.T) {
	var logged syncBuffer
	state := t.TempDir()
	r := startMgmtd(t, state, startVMKernel(t), nil, func(c *mgmtd.Config) {
		c.Log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := loggedIn(t, r)
	secrets := []string{testPassword, "Wrong-secret-77", c.Token()}
	login(t, from(t, "127.0.0.2"), r, api.RootUser, "Wrong-secret-77")
	login(t, from(t, "127.0.0.2"), r, "Wrong-secret-77", testPassword) // a password typed as the user name is not kept either
	tok, err := c.CreateToken(deadline(t), api.TokenRequest{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.Secret)
	vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: "v", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{api.MgmtdConsoleWS, api.MgmtdVNCWS} {
		path := api.MgmtdVMsPath + "/" + vm.Spec.ID + "/" + sub
		tk, err := c.Ticket(deadline(t), path)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tk.Ticket)
		doAuth(t, http.MethodGet, r.url+path+"?ticket="+url.QueryEscape(tk.Ticket), "", nil)
		doAuth(t, http.MethodGet, r.url+path+"?access_token="+url.QueryEscape(tok.Secret), "", nil)
		doAuth(t, http.MethodGet, r.url+path+"?token="+url.QueryEscape(c.Token()), c.Token(), nil)
	}
	if _, err := withToken(t, r, tok.Secret).ConsoleWebsocket(deadline(t), vm.Spec.ID); err == nil {
		t.Error("a console websocket of a stopped VM opened")
	}
	r.stop() // the audit log is complete
	files, _ := filepath.Glob(filepath.Join(state, "audit.log*"))
	texts := map[string]string{"mgmtd's log": logged.String()}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		texts[f] = string(b)
	}
	if !strings.Contains(texts[filepath.Join(state, "audit.log")], "REDACTED") {
		t.Error("the audit log has no redacted ticket: did the requests reach it?")
	}
	for name, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %.14s...", name, s)
			}
		}
		for _, prefix := range []string{"plinth_s_", "plinth_t_", "plinth_k_"} {
			if strings.Contains(text, prefix) {
				t.Errorf("%s holds something that looks like a token (%s...)", name, prefix)
			}
		}
	}
}

// TestStrangerUploadDoesNotHoldConnection: an unauthenticated upload that
// announces a body and never sends it is answered 401 and its connection
// ended at once; the server's deadlines are lifted only for an
// authenticated request that passed the lockdown check.
func TestStrangerUploadDoesNotHoldConnection(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	dial := func() *tls.Conn {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(r.url, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	put := func(conn *tls.Conn, token string) {
		t.Helper()
		auth := ""
		if token != "" {
			auth = "Authorization: Bearer " + token + "\r\n"
		}
		fmt.Fprintf(conn, "PUT %s/ds1/content?path=held.iso HTTP/1.1\r\nHost: plinth\r\n%sContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
			api.MgmtdDatastoresPath, auth)
	}
	conn := dial()
	put(conn, "")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated upload: %d, want 401", resp.StatusCode)
	}
	start := time.Now()
	if n, err := br.ReadByte(); err == nil {
		t.Fatalf("the connection still answers: %q", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server held the stranger's connection open for %s", time.Since(start))
	}
	// With a token the same request is admitted (100 Continue) and may
	// take its time: the connection is kept while the body comes.
	conn = dial()
	put(conn, c.Token())
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br = bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("authenticated upload: %q, %v; want 100 Continue", line, err)
	}
}

// TestConnectionsBounded: connections over the limit per client, or in
// total, are closed (after a short wait for a place); freeing one lets the
// next in.
func TestConnectionsBounded(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil, func(c *mgmtd.Config) {
		c.MaxConns, c.MaxConnsPerClient = 5, 3
	})
	addr := strings.TrimPrefix(r.url, "https://")
	open := func(ip string) (*tls.Conn, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { conn.Close() })
		return conn, nil
	}
	var held []*tls.Conn
	for i := 0; i < 3; i++ {
		conn, err := open("127.0.0.2")
		if err != nil {
			t.Fatalf("connection %d of a client: %v", i+1, err)
		}
		held = append(held, conn)
	}
	if _, err := open("127.0.0.2"); err == nil {
		t.Error("a client's fourth connection was accepted (limit 3)")
	}
	for i := 0; i < 2; i++ {
		if _, err := open("127.0.0.3"); err != nil {
			t.Fatalf("another client's connection %d: %v", i+1, err)
		}
	}
	if _, err := open("127.0.0.4"); err == nil {
		t.Error("a sixth connection in all was accepted (limit 5)")
	}
	held[0].Close()
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var conn *tls.Conn
		if conn, err = open("127.0.0.2"); err == nil {
			conn.Close()
			break
		}
	}
	if err != nil {
		t.Errorf("after one closed, a new connection is still refused: %v", err)
	}
}

// TestHealthzSaysLittleToStrangers: without a token /healthz says ok or
// degraded and nothing of why; a logged-in client sees the services.
func TestHealthzSaysLittleToStrangers(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.sock")
	r := startMgmtd(t, t.TempDir(), missing, nil)
	resp, err := rawClient().Get(r.url + api.MgmtdHealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var h map[string]any
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != 503 || len(h) != 1 || h["status"] != api.HealthDegraded {
		t.Errorf("stranger's /healthz: %d %s, want 503 {\"status\":\"degraded\"} alone", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "absent.sock") || strings.Contains(string(body), "vmkernel") {
		t.Errorf("a stranger learns internals: %s", body)
	}
}

// TestLoginFloodKeepsAuditEntries: 4,400 failed logins with long user names
// (what once rotated the audit log in 9 s) leave the audit log small, the
// change made before them in it, and their count told.
func TestLoginFloodKeepsAuditEntries(t *testing.T) {
	state := t.TempDir()
	r := startMgmtd(t, state, startVMKernel(t), nil)
	c := loggedIn(t, r)
	if _, err := c.CreateVM(deadline(t), api.VMSpec{Name: "before-the-flood", MemoryMiB: 64}); err != nil {
		t.Fatal(err)
	}
	hc := from(t, "127.0.0.9")
	user := strings.Repeat("u", 3900)
	body, _ := json.Marshal(api.LoginRequest{User: user, Password: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const flood = 4400
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url+api.MgmtdSessionsPath, bytes.NewReader(body))
				resp, err := hc.Do(req)
				code := 0
				if err != nil {
					t.Log(err)
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				statuses[code]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < flood; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != flood {
		t.Fatalf("flood answers: %v", statuses)
	}
	fi, err := os.Stat(filepath.Join(state, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 32<<10 {
		t.Errorf("the audit log grew to %d bytes from a login flood", fi.Size())
	}
	entries, err := c.Audit(deadline(t), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var change bool
	counted := 0
	for _, e := range entries {
		change = change || e.Action == "POST "+api.MgmtdVMsPath && e.Status == http.StatusCreated
		if e.Remote == "127.0.0.9" {
			counted += max(e.Count, 1)
			if len(e.User) > 64 {
				t.Errorf("an audit entry holds a %d-byte user name", len(e.User))
			}
		}
	}
	if !change {
		t.Error("the change made before the flood is gone from the audit log")
	}
	if counted != flood {
		t.Errorf("the audit log tells of %d failed logins, want %d: %d entries", counted, flood, len(entries))
	}
}
