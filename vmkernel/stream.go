package vmkernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// Timings of the byte streams; variables so tests could shorten them.
var (
	// streamWriteTimeout: a viewer that takes no bytes for this long is
	// disconnected.
	streamWriteTimeout = 30 * time.Second
	// vncDialTimeout bounds the connection to QEMU's VNC socket.
	vncDialTimeout = 5 * time.Second
)

// streams are the hijacked connections of the byte streams, which
// http.Server.Shutdown does not know about: Shutdown closes them.
type streams struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (st *streams) add(c net.Conn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	if st.conns == nil {
		st.conns = map[net.Conn]struct{}{}
	}
	st.conns[c] = struct{}{}
	return true
}

func (st *streams) remove(c net.Conn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.conns, c)
}

func (st *streams) closeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for c := range st.conns {
		c.Close()
	}
}

// wantsStream reports whether r asks for the plinth-stream upgrade.
func wantsStream(r *http.Request) bool {
	hasToken := func(h, token string) bool {
		for _, v := range r.Header.Values(h) {
			for f := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(f), token) {
					return true
				}
			}
		}
		return false
	}
	return hasToken("Connection", "upgrade") && hasToken("Upgrade", api.StreamProtocol)
}

// upgrade takes the connection over and answers 101. The returned reader
// holds what the client sent after its request (it may already have sent
// input); the caller must call done when finished.
func (s *Server) upgrade(w http.ResponseWriter) (net.Conn, *bufio.Reader, func(), error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("taking the connection over: %w", err)
	}
	// The server's read timeout was set on the connection: a stream has none.
	conn.SetDeadline(time.Time{})
	if !s.streams.add(conn) {
		conn.Close()
		return nil, nil, nil, errors.New("shutting down")
	}
	done := func() {
		conn.Close()
		s.streams.remove(conn)
	}
	brw.Writer.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + api.StreamProtocol + "\r\n\r\n")
	if err := brw.Writer.Flush(); err != nil {
		done()
		return nil, nil, nil, err
	}
	return conn, brw.Reader, done, nil
}

// streamVM checks a stream request for the VM in the path: known (404),
// asking for the upgrade (400). It returns the VM's ID.
func (s *Server) streamVM(w http.ResponseWriter, r *http.Request) (string, bool) {
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return "", false
	}
	if !wantsStream(r) {
		s.problem(w, fmt.Errorf(`%w: a stream needs the headers "Connection: Upgrade" and "Upgrade: %s"`, errBadRequest, api.StreamProtocol))
		return "", false
	}
	return spec.ID, true
}

// consoleStream serves GET /v1/vms/{id}/console/stream: the serial console,
// live, both ways (see api.ConsoleStream).
func (s *Server) consoleStream(w http.ResponseWriter, r *http.Request) {
	id, ok := s.streamVM(w, r)
	if !ok {
		return
	}
	view, err := s.cfg.Runner.AttachConsole(id)
	if err != nil {
		s.problem(w, err)
		return
	}
	defer view.Close()
	conn, in, done, err := s.upgrade(w)
	if err != nil {
		s.cfg.Log.Warn("vmkernel: console stream", "id", id, "err", err)
		return
	}
	defer done()
	s.cfg.Log.Info("vmkernel: console viewer attached", "id", id, "remote", r.RemoteAddr)
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		defer conn.Close() // ends the input loop below
		write := func(b []byte) bool {
			conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			_, err := conn.Write(b)
			return err == nil
		}
		if len(view.Tail) > 0 && !write(view.Tail) {
			return
		}
		for {
			b, ok := view.Next()
			if !ok || !write(b) {
				return
			}
		}
	}()
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := view.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	view.Close() // ends the output loop
	conn.Close()
	<-outDone
	s.cfg.Log.Info("vmkernel: console viewer detached", "id", id, "dropped", view.Dropped())
}

// vncStream serves GET /v1/vms/{id}/vnc/stream: the VM's VNC server as is.
func (s *Server) vncStream(w http.ResponseWriter, r *http.Request) {
	id, ok := s.streamVM(w, r)
	if !ok {
		return
	}
	path, err := s.cfg.Runner.VNCSocket(id)
	if err != nil {
		s.problem(w, err)
		return
	}
	vnc, err := net.DialTimeout("unix", path, vncDialTimeout)
	if err != nil {
		s.problem(w, fmt.Errorf("VM %s: VNC server: %w", id, err))
		return
	}
	defer vnc.Close()
	conn, in, done, err := s.upgrade(w)
	if err != nil {
		s.cfg.Log.Warn("vmkernel: VNC stream", "id", id, "err", err)
		return
	}
	defer done()
	s.cfg.Log.Info("vmkernel: VNC viewer attached", "id", id, "remote", r.RemoteAddr)
	// Each direction ends both: whichever side closes, the other learns.
	go func() {
		io.Copy(conn, vnc)
		conn.Close()
		vnc.Close()
	}()
	io.Copy(vnc, in)
	vnc.Close()
	conn.Close()
}
