package mgmtd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gorilla/mux"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
)

// dialTimeout bounds reaching a VM's console or VNC through vmkernel;
// websocket clients are pinged every pingEvery and dropped when one goes
// unanswered for pingTimeout.
const (
	dialTimeout = 10 * time.Second
	pingEvery   = 30 * time.Second
	pingTimeout = 15 * time.Second
)

// consoleWS bridges a websocket to the VM's serial console.
func (s *Server) consoleWS(w http.ResponseWriter, r *http.Request) {
	s.bridge(w, r, s.vmk.ConsoleStream, nil)
}

// vncWS bridges a websocket to the VM's VNC server. noVNC asks for the
// "binary" subprotocol.
func (s *Server) vncWS(w http.ResponseWriter, r *http.Request) {
	s.bridge(w, r, s.vmk.VNCStream, []string{"binary"})
}

// bridge reaches the VM's stream first, so that a refusal (no such VM, not
// running) is an ordinary problem answer, then upgrades to a websocket and
// copies both ways until either side ends.
func (s *Server) bridge(w http.ResponseWriter, r *http.Request,
	dial func(context.Context, string) (io.ReadWriteCloser, error), subprotocols []string) {
	id := pathVar(r, "id")
	dctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	up, err := dial(dctx, id)
	cancel()
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	defer up.Close()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: subprotocols})
	if err != nil {
		s.log.Info("mgmtd: websocket refused", "path", r.URL.Path, "err", err)
		return
	}
	s.log.Info("mgmtd: console attached", "vm", id, "path", r.URL.Path, "user", principalOf(r).User, "remote", remoteIP(r))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ws := websocket.NetConn(ctx, c, websocket.MessageBinary)
	defer ws.Close()
	var once sync.Once
	done := make(chan struct{})
	end := func() { once.Do(func() { close(done) }) }
	go func() { io.Copy(up, ws); end() }()
	go func() { io.Copy(ws, up); end() }()
	// A client that vanished without closing (a laptop lid) is found by
	// pings, so its console session does not stay open for ever.
	go func() {
		tick := time.NewTicker(pingEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				pctx, cancel := context.WithTimeout(ctx, pingTimeout)
				err := c.Ping(pctx)
				cancel()
				if err != nil {
					end()
					return
				}
			}
		}
	}()
	<-done
	s.log.Info("mgmtd: console detached", "vm", id, "path", r.URL.Path)
}

// createTicket makes a single-use ticket for one websocket path of the
// route table, for the caller.
func (s *Server) createTicket(w http.ResponseWriter, r *http.Request) {
	var req api.TicketRequest
	if !decodeStrict(w, r, 0, &req) {
		return
	}
	u, err := url.Parse(req.Path)
	if err != nil || u.Scheme != "" || u.Host != "" || u.RawQuery != "" || u.Fragment != "" || !s.ticketPath(u) {
		fieldProblem(w, api.FieldProblem{Field: "path", Message: fmt.Sprintf("%.200q is not the path of a websocket (e.g. %s/ID/%s)", req.Path, api.MgmtdVMsPath, api.MgmtdConsoleWS)})
		return
	}
	t, err := s.tokens.NewTicket(principalOf(r), u.Path)
	switch {
	case errors.Is(err, auth.ErrTooManyTickets):
		w.Header().Set("Retry-After", strconv.Itoa(int(auth.TicketTTL/time.Second)))
		writeProblem(w, api.Problem{Status: http.StatusTooManyRequests, Detail: err.Error()})
	case errors.Is(err, auth.ErrUnauthenticated):
		writeProblem(w, api.Problem{Status: http.StatusUnauthorized, Detail: err.Error()})
	case err != nil:
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
	default:
		writeJSON(w, http.StatusCreated, t)
	}
}

// ticketPath reports whether u is the path of a route that takes tickets.
func (s *Server) ticketPath(u *url.URL) bool {
	req := &http.Request{Method: http.MethodGet, URL: u}
	var m mux.RouteMatch
	return s.ticketRoutes.Match(req, &m)
}
