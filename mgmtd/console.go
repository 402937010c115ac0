package mgmtd

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
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
