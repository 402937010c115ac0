package mgmtd

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
)

// confirmNetwork keeps the management-network change awaiting
// confirmation, for a client that reached this host on the change's new
// address: the local address of the client's connection goes to vmkernel,
// which compares it with the change's. Whatever the request body says is
// not asked.
func (s *Server) confirmNetwork(w http.ResponseWriter, r *http.Request) {
	local := localAddr(r)
	if !local.IsValid() {
		writeProblem(w, api.Problem{Status: http.StatusConflict,
			Detail: "the address this request arrived on is unknown, so it cannot confirm a management network change"})
		return
	}
	ch, err := s.vmk.ConfirmNetworkFrom(r.Context(), local.String())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ch)
}

// localAddr is the address of this host the request's connection arrived on.
func localAddr(r *http.Request) netip.Addr {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// setLockdown switches lockdown mode. It is the one change let through
// while lockdown is on, and then only to turn it off with the root
// password (checked and throttled as a login is): a stolen token alone
// cannot lift it.
func (s *Server) setLockdown(w http.ResponseWriter, r *http.Request) {
	var req api.LockdownRequest
	if !decodeStrict(w, r, maxLoginBytes, &req) {
		return
	}
	on, err := auth.Lockdown(s.cfg.StateDir)
	if (on || err != nil) && !req.Enabled {
		if req.Password == "" {
			fieldProblem(w, api.FieldProblem{Field: "password", Message: "is empty: turning lockdown off takes the root password"})
			return
		}
		attempt, wait := s.throttle.Begin(remoteIP(r), api.RootUser)
		if attempt == nil {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeProblem(w, api.Problem{Status: http.StatusTooManyRequests, Detail: "too many wrong passwords: try again in " + retryAfter(wait) + "s"})
			return
		}
		switch err := auth.Verify(s.cfg.StateDir, api.RootUser, req.Password); {
		case errors.Is(err, auth.ErrBadCredentials):
			writeProblem(w, api.Problem{Status: http.StatusUnauthorized, Field: "password", Detail: "wrong root password"})
			return
		case err != nil:
			attempt.Undo()
			writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: "cannot check the password: " + err.Error()})
			return
		}
		attempt.Succeeded()
	} else if on && req.Enabled {
		writeJSON(w, http.StatusOK, api.LockdownStatus{Enabled: true})
		return
	}
	// vmkernel gets the switch alone: the password stays here.
	b, _ := json.Marshal(api.LockdownRequest{Enabled: req.Enabled})
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	s.forward(w, r)
}
