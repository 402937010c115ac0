package mgmtd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
)

type principalKey struct{}

// principalOf is who the request comes from (zero for public routes).
func principalOf(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// remoteIP is the client's address without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// bearer is the request's bearer token, from its Authorization header
// only: a token is never taken from a URL, where logs, browser histories
// and proxies keep it (websockets take a ticket instead).
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return ""
}

// authenticate says who the request comes from: its bearer token or, on a
// route that takes tickets, its single-use ticket.
func (s *Server) authenticate(r *http.Request, rt Route) (auth.Principal, error) {
	if tok := bearer(r); tok != "" || !rt.Ticket {
		return s.tokens.Check(tok)
	}
	return s.tokens.UseTicket(r.URL.Query().Get(api.TicketQuery), r.URL.Path)
}

// wrap gives a route its access check, body limit, timeouts and audit.
func (s *Server) wrap(rt Route) http.Handler {
	limit := int64(MaxBodyBytes)
	if rt.MaxBody != 0 {
		limit = rt.MaxBody
	}
	h := s.guard(rt)
	if limit > 0 {
		h = limitBody(limit, h)
	}
	return h
}

// refuseStranger answers an unauthenticated request and ends its
// connection at once: the server's deadlines still hold, and a body it
// announced and never sends is not waited for.
func refuseStranger(w http.ResponseWriter, p api.Problem) {
	w.Header().Set("Connection", "close")
	http.NewResponseController(w).SetReadDeadline(time.Now())
	writeProblem(w, p)
}

// liftDeadlines frees a streaming route (uploads, downloads, event
// streams, consoles) from the server's read and write timeouts, which
// are for the rest. Only ever after authentication and the lockdown
// check: a stranger's connection keeps its deadlines.
func liftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
}

func (s *Server) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.Access == Public {
			rt.Handler(w, r)
			return
		}
		p, err := s.authenticate(r, rt)
		if err != nil {
			how := "log in first (POST " + api.MgmtdSessionsPath + ") and send the token as \"Authorization: Bearer TOKEN\""
			if rt.Ticket {
				how += ", or a ticket (POST " + api.MgmtdTicketsPath + ") as ?" + api.TicketQuery + "="
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="plinth"`)
			refuseStranger(w, api.Problem{Status: http.StatusUnauthorized, Detail: how + ": " + err.Error()})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if rt.Access != Change {
			if rt.Stream {
				liftDeadlines(w)
			}
			rt.Handler(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, keepProblem: true}
		if on, err := auth.Lockdown(s.cfg.StateDir); (on || err != nil) && !rt.LockdownExempt {
			detail := "the host is in lockdown mode: only its console (DCUI) can change it"
			if err != nil {
				s.log.Error("mgmtd: reading lockdown", "err", err)
				detail = "cannot tell whether the host is in lockdown mode, so no change is allowed (the host's log says why)"
			}
			writeProblem(sw, api.Problem{Status: http.StatusForbidden, Detail: detail})
		} else {
			if rt.Stream {
				liftDeadlines(w)
			}
			rt.Handler(sw, r)
		}
		s.audit.record(api.AuditEntry{Time: s.now().UTC(), User: p.User, Remote: remoteIP(r),
			Action: rt.Method + " " + rt.Path, Target: redactedURI(r.URL), Status: sw.status, Detail: sw.problemDetail()})
	})
}

// secretQuery are query parameters whose values are secrets: never
// written to a log.
var secretQuery = []string{api.TicketQuery, "access_token", "token", "password", "secret"}

// redactedURI is u's path and query as requested, with the values of
// secret parameters replaced by REDACTED, for logs.
func redactedURI(u *url.URL) string {
	out := u.EscapedPath()
	if u.RawQuery == "" {
		return out
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return out + "?(a query that does not parse)"
	}
	for k := range q {
		for _, secret := range secretQuery {
			if strings.EqualFold(k, secret) {
				q[k] = []string{"REDACTED"}
			}
		}
	}
	return out + "?" + q.Encode()
}

// maxLoginBytes bounds a login request.
const maxLoginBytes = 4 << 10

// sessionTokenWait is how long a throttled client is told to wait at least.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	if !decodeStrict(w, r, maxLoginBytes, &req) {
		return
	}
	switch {
	case req.User == "":
		fieldProblem(w, api.FieldProblem{Field: "user", Message: "is empty"})
		return
	case req.Password == "":
		fieldProblem(w, api.FieldProblem{Field: "password", Message: "is empty"})
		return
	}
	ip := remoteIP(r)
	entry := api.AuditEntry{Time: s.now().UTC(), User: req.User, Remote: ip,
		Action: http.MethodPost + " " + api.MgmtdSessionsPath, Target: api.MgmtdSessionsPath}
	// The attempt is counted as failed before the password is checked, in
	// the step that checks the wait: attempts sent at once cannot all get
	// past the wait before the first failure is counted.
	attempt, wait := s.throttle.Begin(ip, req.User)
	if attempt == nil {
		w.Header().Set("Retry-After", retryAfter(wait))
		entry.Status, entry.Detail = http.StatusTooManyRequests, "throttled after failed logins"
		s.audit.stranger(entry)
		writeProblem(w, api.Problem{Status: http.StatusTooManyRequests,
			Detail: fmt.Sprintf("too many failed logins from this client or for this user: try again in %s", retryAfter(wait)+"s")})
		return
	}
	epoch, err := auth.Login(s.cfg.StateDir, req.User, req.Password)
	switch {
	case err == nil:
		attempt.Succeeded()
		sess := s.tokens.NewSession(req.User, epoch)
		entry.Status = http.StatusCreated
		s.audit.record(entry)
		writeJSON(w, http.StatusCreated, sess)
	case errors.Is(err, auth.ErrNoPassword):
		attempt.Undo()
		entry.Status, entry.Detail = http.StatusConflict, err.Error()
		s.audit.stranger(entry)
		writeProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
	case errors.Is(err, auth.ErrBadCredentials):
		entry.Status, entry.Detail = http.StatusUnauthorized, err.Error()
		s.audit.stranger(entry)
		writeProblem(w, api.Problem{Status: http.StatusUnauthorized, Detail: err.Error()})
	default:
		attempt.Undo()
		s.log.Error("mgmtd: login: cannot check the password", "err", err)
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: "cannot check the password (the host's log says why)"})
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.Kind != "session" {
		writeProblem(w, api.Problem{Status: http.StatusConflict,
			Detail: "this is an API token, not a login session: revoke it with DELETE " + api.MgmtdTokensPath + "/" + p.TokenID})
		return
	}
	s.tokens.EndSession(bearer(r))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	out := api.WhoAmI{User: p.User, Kind: p.Kind, TokenID: p.TokenID}
	if !p.ExpiresAt.IsZero() {
		exp := p.ExpiresAt.UTC()
		out.ExpiresAt = &exp
	}
	on, err := auth.Lockdown(s.cfg.StateDir)
	out.Lockdown = on || err != nil
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.tokens.List())
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.TokenRequest
	if !decodeStrict(w, r, 0, &req) {
		return
	}
	if probs := auth.ValidateTokenRequest(req); len(probs) > 0 {
		fieldProblem(w, probs...)
		return
	}
	tok, err := s.tokens.Create(principalOf(r), req)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		writeProblem(w, api.Problem{Status: http.StatusUnauthorized, Detail: err.Error()})
	case errors.Is(err, auth.ErrTooManyTokens):
		writeProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
	case err != nil:
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
	default:
		writeJSON(w, http.StatusCreated, tok)
	}
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	err := s.tokens.Revoke(pathVar(r, "id"))
	switch {
	case errors.Is(err, auth.ErrNoToken):
		writeProblem(w, api.Problem{Status: http.StatusNotFound, Detail: err.Error()})
	case err != nil:
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
