package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// fakeMgmtd answers the mgmtd-only routes the way mgmtd does, checking the
// bearer token.
func fakeMgmtd(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var polls atomic.Int32
	problem := func(w http.ResponseWriter, status int, detail string) {
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(api.Problem{Title: http.StatusText(status), Status: status, Detail: detail})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.MgmtdSessionsPath, func(w http.ResponseWriter, r *http.Request) {
		var req api.LoginRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "right" {
			problem(w, http.StatusUnauthorized, "wrong user name or password")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.Session{Token: "tok", User: req.User})
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				problem(w, http.StatusUnauthorized, "missing or unknown token")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+api.MgmtdSessionPath, authed(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.WhoAmI{User: "root", Kind: "session"})
	}))
	mux.HandleFunc("DELETE "+api.MgmtdSessionPath, authed(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET "+api.MgmtdAuditPath, authed(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "7" {
			problem(w, http.StatusBadRequest, "limit")
			return
		}
		json.NewEncoder(w).Encode([]api.AuditEntry{{User: "root"}})
	}))
	mux.HandleFunc("GET "+api.MgmtdTasksPath+"/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		n := polls.Add(1)
		t := api.Task{ID: r.PathValue("id"), Kind: "upload", State: api.TaskRunning, Done: int64(n), Total: 3}
		if n >= 3 {
			t.State = api.TaskSucceeded
			if t.ID == "bad" {
				t.State, t.Error = api.TaskFailed, "disk full"
			}
		}
		json.NewEncoder(w).Encode(t)
	}))
	var ticketMu sync.Mutex
	tickets := map[string]string{} // ticket → path
	mux.HandleFunc("POST "+api.MgmtdTicketsPath, authed(func(w http.ResponseWriter, r *http.Request) {
		var req api.TicketRequest
		json.NewDecoder(r.Body).Decode(&req)
		ticketMu.Lock()
		tk := fmt.Sprintf("plinth_k_%d", len(tickets))
		tickets[tk] = req.Path
		ticketMu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.Ticket{Ticket: tk, Path: req.Path})
	}))
	// The websocket takes its ticket, once, and refuses a header.
	mux.HandleFunc("GET "+api.MgmtdVMsPath+"/{id}/"+api.MgmtdConsoleWS, func(w http.ResponseWriter, r *http.Request) {
		ticketMu.Lock()
		tk := r.URL.Query().Get(api.TicketQuery)
		path, ok := tickets[tk]
		delete(tickets, tk)
		ticketMu.Unlock()
		if !ok || path != r.URL.EscapedPath() || r.Header.Get("Authorization") != "" {
			problem(w, http.StatusUnauthorized, "no ticket")
			return
		}
		if r.PathValue("id") != "web1" {
			problem(w, http.StatusNotFound, `VM "`+r.PathValue("id")+`": not found`)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageBinary, []byte("login: "))
		for { // echo, upper-cased, as a guest might
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, []byte(strings.ToUpper(string(b))))
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, &polls
}

func TestMgmtdCalls(t *testing.T) {
	srv, polls := fakeMgmtd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(srv.URL, client.WithPinnedFingerprint(client.Fingerprint(srv.Certificate().Raw)))
	if err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := c.Login(ctx, "root", "wrong"); !errors.As(err, &e) || e.Status != 401 || c.Token() != "" {
		t.Fatalf("wrong password: %v", err)
	}
	s, err := c.Login(ctx, "root", "right")
	if err != nil || s.Token != "tok" || c.Token() != "tok" {
		t.Fatalf("Login = %+v, %v; token %q", s, err, c.Token())
	}
	if w, err := c.WhoAmI(ctx); err != nil || w.Kind != "session" {
		t.Errorf("WhoAmI = %+v, %v", w, err)
	}
	if a, err := c.Audit(ctx, 7); err != nil || len(a) != 1 {
		t.Errorf("Audit = %+v, %v", a, err)
	}

	var seen []int64
	task, err := c.WaitTask(ctx, "t1", time.Millisecond, func(t api.Task) { seen = append(seen, t.Done) })
	if err != nil || task.State != api.TaskSucceeded || len(seen) != 3 || seen[2] != 3 {
		t.Errorf("WaitTask = %+v, %v; progress %v", task, err, seen)
	}
	polls.Store(0)
	if task, err := c.WaitTask(ctx, "bad", time.Millisecond, nil); !errors.Is(err, client.ErrTaskFailed) ||
		!strings.Contains(err.Error(), "disk full") || task.State != api.TaskFailed {
		t.Errorf("WaitTask of a failing task = %+v, %v", task, err)
	}

	// The console: raw bytes both ways over the pinned TLS, opened with a
	// ticket got with the token.
	conn, err := c.ConsoleWebsocket(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "login: " {
		t.Fatalf("console read %q, %v", buf, err)
	}
	conn.Write([]byte("root\r"))
	buf = make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ROOT\r" {
		t.Errorf("console echo %q, %v", buf, err)
	}
	conn.Close()

	// A refused handshake is an *Error with the server's problem.
	if _, err := c.ConsoleWebsocket(ctx, "nope"); !errors.As(err, &e) || e.Status != 404 || !strings.Contains(e.Problem.Detail, "nope") {
		t.Errorf("console of an unknown VM: %v", err)
	}
	if err := c.Logout(ctx); err != nil || c.Token() != "" {
		t.Errorf("Logout: %v, token %q", err, c.Token())
	}
	if _, err := c.ConsoleWebsocket(ctx, "web1"); !errors.As(err, &e) || e.Status != 401 {
		t.Errorf("console without a token: %v", err)
	}

	// Another pin: the websocket refuses the server like every call does.
	other, _ := client.New(srv.URL, client.WithToken("tok"),
		client.WithPinnedFingerprint(strings.Repeat("AB", 32)))
	if _, err := other.ConsoleWebsocket(ctx, "web1"); !errors.Is(err, client.ErrFingerprintMismatch) {
		t.Errorf("console with a wrong pin: %v", err)
	}
}
