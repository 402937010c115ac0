package mgmtd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// bearer is the request's bearer token. Websocket routes also take it as
// the access_token query parameter, since browsers cannot set headers on
// a websocket.
func bearer(r *http.Request, rt Route) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if rt.Stream && rt.Method == http.MethodGet && strings.HasSuffix(rt.Path, "/ws") {
		return r.URL.Query().Get("access_token")
	}
	return ""
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

func (s *Server) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.Stream {
			// Uploads, downloads, event streams and consoles last as long
			// as they last; the server-wide timeouts are for the rest.
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Time{})
			rc.SetWriteDeadline(time.Time{})
		}
		if rt.Access == Public {
			rt.Handler(w, r)
			return
		}
		p, err := s.tokens.Check(bearer(r, rt))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="plinth"`)
			writeProblem(w, api.Problem{Status: http.StatusUnauthorized,
				Detail: "log in first (POST " + api.MgmtdSessionsPath + ") and send the token as \"Authorization: Bearer TOKEN\": " + err.Error()})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if rt.Access != Change {
			rt.Handler(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, keepProblem: true}
		if on, err := auth.Lockdown(s.cfg.StateDir); on || err != nil {
			detail := "the host is in lockdown mode: only its console (DCUI) can change it"
			if err != nil {
				detail = "cannot tell whether the host is in lockdown mode, so no change is allowed: " + err.Error()
			}
			writeProblem(sw, api.Problem{Status: http.StatusForbidden, Detail: detail})
		} else {
			rt.Handler(sw, r)
		}
		s.audit.record(api.AuditEntry{Time: s.now().UTC(), User: p.User, Remote: remoteIP(r),
			Action: rt.Method + " " + rt.Path, Target: r.URL.RequestURI(), Status: sw.status, Detail: sw.problemDetail()})
	})
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
	keys := []string{"client:" + ip, "user:" + req.User}
	entry := api.AuditEntry{Time: s.now().UTC(), User: req.User, Remote: ip,
		Action: http.MethodPost + " " + api.MgmtdSessionsPath, Target: r.URL.RequestURI()}
	if wait := s.throttle.Wait(keys...); wait > 0 {
		w.Header().Set("Retry-After", retryAfter(wait))
		entry.Status, entry.Detail = http.StatusTooManyRequests, "throttled after failed logins"
		s.audit.record(entry)
		writeProblem(w, api.Problem{Status: http.StatusTooManyRequests,
			Detail: fmt.Sprintf("too many failed logins from this client or for this user: try again in %s", retryAfter(wait)+"s")})
		return
	}
	err := auth.Verify(s.cfg.StateDir, req.User, req.Password)
	switch {
	case err == nil:
		s.throttle.Succeed(keys...)
		sess := s.tokens.NewSession(req.User)
		entry.Status = http.StatusCreated
		s.audit.record(entry)
		writeJSON(w, http.StatusCreated, sess)
	case errors.Is(err, auth.ErrNoPassword):
		entry.Status, entry.Detail = http.StatusConflict, err.Error()
		s.audit.record(entry)
		writeProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
	case errors.Is(err, auth.ErrBadCredentials):
		s.throttle.Fail(keys...)
		entry.Status, entry.Detail = http.StatusUnauthorized, err.Error()
		s.audit.record(entry)
		s.log.Warn("mgmtd: failed login", "user", req.User, "remote", ip)
		writeProblem(w, api.Problem{Status: http.StatusUnauthorized, Detail: err.Error()})
	default:
		s.log.Error("mgmtd: login", "err", err)
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: "cannot check the password: " + err.Error()})
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.Kind != "session" {
		writeProblem(w, api.Problem{Status: http.StatusConflict,
			Detail: "this is an API token, not a login session: revoke it with DELETE " + api.MgmtdTokensPath + "/" + p.TokenID})
		return
	}
	s.tokens.EndSession(bearer(r, Route{}))
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
	tok, err := s.tokens.Create(principalOf(r).User, req)
	switch {
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
