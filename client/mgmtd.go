package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/plinth/plinth/api"
)

// This file holds the calls only mgmtd answers: sessions, API tokens, the
// audit log, tasks and the serial console's websocket.

// SetToken makes the client send token as its bearer token from now on
// ("" sends none). Do not call it while requests are in flight.
func (c *Client) SetToken(token string) { c.token = token }

// Token is the bearer token the client sends ("" when none).
func (c *Client) Token() string { return c.token }

// Login opens a session for user with password and, on success, makes the
// client use the session's token (see SetToken). A wrong password gives an
// *Error with status 401, too many failures one with status 429, a host
// whose root password is not set yet one with status 409 or 503 (mgmtd).
func (c *Client) Login(ctx context.Context, user, password string) (api.Session, error) {
	var s api.Session
	err := c.do(ctx, http.MethodPost, api.MgmtdSessionsPath, api.LoginRequest{User: user, Password: password}, &s)
	if err != nil {
		return api.Session{}, err
	}
	c.token = s.Token
	return s, nil
}

// Logout ends the session whose token the client sends, and forgets the
// token (mgmtd).
func (c *Client) Logout(ctx context.Context) error {
	if err := c.do(ctx, http.MethodDelete, api.MgmtdSessionPath, nil, nil); err != nil {
		return err
	}
	c.token = ""
	return nil
}

// WhoAmI says who the client's token belongs to (mgmtd).
func (c *Client) WhoAmI(ctx context.Context) (api.WhoAmI, error) {
	var w api.WhoAmI
	err := c.get(ctx, api.MgmtdSessionPath, &w)
	return w, err
}

// ListTokens lists the API tokens, without their secrets (mgmtd).
func (c *Client) ListTokens(ctx context.Context) ([]api.APIToken, error) {
	var out []api.APIToken
	err := c.get(ctx, api.MgmtdTokensPath, &out)
	return out, err
}

// CreateToken makes a long-lived API token; its Secret is in this answer
// only (mgmtd).
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.APIToken, error) {
	var out api.APIToken
	err := c.do(ctx, http.MethodPost, api.MgmtdTokensPath, req, &out)
	return out, err
}

// RevokeToken deletes the API token with this ID (mgmtd).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, api.MgmtdTokensPath+"/"+url.PathEscape(id), nil, nil)
}

// Audit returns the last limit entries of the audit log, newest last
// (limit 0: the server's default) (mgmtd).
func (c *Client) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	p := api.MgmtdAuditPath
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out []api.AuditEntry
	err := c.get(ctx, p, &out)
	return out, err
}

// ListTasks lists the tasks the host remembers: through mgmtd its uploads
// and vmkernel's disk work, from vmkernel its own.
func (c *Client) ListTasks(ctx context.Context) ([]api.Task, error) {
	var out []api.Task
	err := c.get(ctx, c.prefix+"/tasks", &out)
	return out, err
}

// GetTask returns one task.
func (c *Client) GetTask(ctx context.Context, id string) (api.Task, error) {
	var out api.Task
	err := c.get(ctx, c.prefix+"/tasks/"+url.PathEscape(id), &out)
	return out, err
}

// ErrTaskFailed is returned (wrapped) by WaitTask for a task that ended in
// api.TaskFailed.
var ErrTaskFailed = errors.New("task failed")

// WaitTask polls the task every interval (default 500 ms) until it is no
// longer running, calling progress (when not nil) with each state seen, and
// returns the last one. A task that failed gives an error wrapping
// ErrTaskFailed with the task's error; ctx bounds the wait.
func (c *Client) WaitTask(ctx context.Context, id string, interval time.Duration, progress func(api.Task)) (api.Task, error) {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		t, err := c.GetTask(ctx, id)
		if err != nil {
			return t, err
		}
		if progress != nil {
			progress(t)
		}
		switch t.State {
		case api.TaskSucceeded:
			return t, nil
		case api.TaskFailed:
			return t, fmt.Errorf("client: task %s (%s %s): %w: %s", t.ID, t.Kind, t.Target, ErrTaskFailed, t.Error)
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("client: waiting for task %s: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

// Ticket asks mgmtd for a single-use ticket that opens the websocket at
// path (e.g. /api/v1/vms/web1/console/ws) within 30 s, as ?ticket= (see
// api.Ticket): what a browser does, since it cannot send headers there.
func (c *Client) Ticket(ctx context.Context, path string) (api.Ticket, error) {
	var t api.Ticket
	err := c.do(ctx, http.MethodPost, api.MgmtdTicketsPath, api.TicketRequest{Path: path}, &t)
	return t, err
}

// ConsoleWebsocket opens the VM's serial console through mgmtd's websocket
// (the last 64 KiB of output first, then live): reads are what the guest
// prints, writes are what it receives, as raw bytes. It uses the client's
// TLS configuration (and so its pinned fingerprint) and, as a browser
// does, a single-use ticket got with its token (never the token itself in
// the URL). The
// connection lives until Close or until ctx ends; the client's WithTimeout
// bounds only the handshake. A refused handshake gives an *Error carrying
// the server's problem details (mgmtd).
func (c *Client) ConsoleWebsocket(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.websocket(ctx, id, api.MgmtdConsoleWS, nil)
}

// VNCWebsocket opens the VM's VNC (RFB) stream through mgmtd's websocket,
// as noVNC does (subprotocol "binary"), as ConsoleWebsocket does the
// console (mgmtd).
func (c *Client) VNCWebsocket(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.websocket(ctx, id, api.MgmtdVNCWS, []string{"binary"})
}

func (c *Client) websocket(ctx context.Context, id, sub string, subprotocols []string) (io.ReadWriteCloser, error) {
	p := c.vmPath(id) + "/" + sub
	u := c.base + p
	if c.token != "" {
		t, err := c.Ticket(ctx, p)
		if err != nil {
			return nil, err
		}
		u += "?" + url.Values{api.TicketQuery: {t.Ticket}}.Encode()
	}
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("client: %s of %s: transport %T cannot carry a websocket", sub, id, c.http.Transport)
	}
	tr = tr.Clone()
	// A websocket upgrade is HTTP/1.1 only: never let ALPN pick h2.
	tr.ForceAttemptHTTP2 = false
	if tr.TLSClientConfig != nil {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr, Timeout: c.http.Timeout},
		Subprotocols: subprotocols,
	})
	if err != nil {
		// The URL holds the ticket: keep it out of the message.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			ue.URL, _, _ = strings.Cut(ue.URL, "?")
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, errorFromAnswer(resp, err)
		}
		return nil, fmt.Errorf("client: %s of %s: %w", sub, id, err)
	}
	return websocket.NetConn(ctx, conn, websocket.MessageBinary), nil
}

// errorFromAnswer makes an *Error of a refused websocket handshake, whose
// body coder/websocket keeps the first KiB of.
func errorFromAnswer(resp *http.Response, cause error) error {
	e := &Error{Status: resp.StatusCode}
	var data []byte
	if resp.Body != nil {
		data, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), api.ProblemContentType) ||
		json.Unmarshal(data, &e.Problem) != nil {
		detail := strings.TrimSpace(string(data[:min(len(data), 512)]))
		if detail == "" {
			detail = cause.Error()
		}
		e.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Detail: detail}
	}
	if e.Problem.Status == 0 {
		e.Problem.Status = resp.StatusCode
	}
	return e
}
