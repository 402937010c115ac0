// Package sshd is the host's SSH service (golang.org/x/crypto/ssh), off
// unless the administrator turns it on, as ESXi's: root logs in with an
// authorized key, or with the root password when that is allowed, and
// gets the console's screens (the DCUI) or a root shell, on a terminal of
// its own (a pseudo-terminal) or, for a shell, on plain pipes. Nothing
// else is offered: no port forwarding, no subsystems (sftp), no agent,
// no command but "dcui" and "shell". Closing the server ends every
// session and kills what each runs.
package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/atomicfile"
)

// Session kinds (what a login runs).
const (
	SessionDCUI  = "dcui"
	SessionShell = "shell"
)

// Limits.
const (
	maxConns         = 8
	handshakeTimeout = 30 * time.Second
)

// Config is what a Server needs.
type Config struct {
	// HostKey is the server's key (LoadHostKey).
	HostKey ssh.Signer
	// AuthorizedKeys are the keys root may log in with, read at each
	// login.
	AuthorizedKeys func() []ssh.PublicKey
	// Password checks root's password for a login from remote (an
	// address); nil: keys only.
	Password func(remote, password string) error
	// Commands are what each session kind runs (argv); Default says the
	// kind a login without a command gets.
	Commands map[string][]string
	Default  func() string
	// Env is added to each session's environment.
	Env []string
	Log *slog.Logger
}

// Server is a listening SSH service.
type Server struct {
	cfg  Config
	ssh  *ssh.ServerConfig
	ln   net.Listener
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	sessions int
}

// Listen serves SSH on addr (":22") until Close.
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HostKey == nil {
		return nil, errors.New("sshd: no host key")
	}
	if cfg.Default == nil {
		cfg.Default = func() string { return SessionShell }
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sshd: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, log: cfg.Log, ctx: ctx, stop: stop, conns: map[net.Conn]bool{}}
	s.ssh = &ssh.ServerConfig{
		MaxAuthTries:      6,
		ServerVersion:     "SSH-2.0-Plinth",
		PublicKeyCallback: s.publicKey,
	}
	if cfg.Password != nil {
		s.ssh.PasswordCallback = s.password
	}
	s.ssh.AddHostKey(cfg.HostKey)
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Sessions counts the open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Close stops listening, ends every connection and what its sessions run,
// and waits for them.
func (s *Server) Close() error {
	s.stop()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("sshd: accept", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		if len(s.conns) >= maxConns {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func remoteIP(addr net.Addr) string {
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

func (s *Server) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if meta.User() != "root" {
		return nil, fmt.Errorf("only root logs in")
	}
	if s.cfg.AuthorizedKeys != nil {
		want := key.Marshal()
		for _, k := range s.cfg.AuthorizedKeys() {
			if subtle.ConstantTimeCompare(k.Marshal(), want) == 1 {
				return &ssh.Permissions{Extensions: map[string]string{"key": ssh.FingerprintSHA256(key)}}, nil
			}
		}
	}
	return nil, fmt.Errorf("key not authorized")
}

func (s *Server) password(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	if meta.User() != "root" {
		return nil, fmt.Errorf("only root logs in")
	}
	if err := s.cfg.Password(remoteIP(meta.RemoteAddr()), string(pw)); err != nil {
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{"password": "yes"}}, nil
}

func (s *Server) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(c, s.ssh)
	if err != nil {
		s.log.Info("sshd: login refused", "remote", remoteIP(c.RemoteAddr()), "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	defer conn.Close()
	how := "password"
	if k := conn.Permissions.Extensions["key"]; k != "" {
		how = "key " + k
	}
	s.log.Warn("sshd: root logged in", "remote", remoteIP(conn.RemoteAddr()), "with", how)
	go ssh.DiscardRequests(reqs) // no global requests (forwarding) are granted
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "only sessions are offered")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ch, creqs)
		}()
	}
	wg.Wait()
	s.log.Info("sshd: logged out", "remote", remoteIP(conn.RemoteAddr()))
}

// session serves one session channel: a terminal asked for, then a shell
// or one of the commands.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var term string
	var win *unix.Winsize
	var running *proc
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			t, ws, ok := parsePtyReq(req.Payload)
			if !ok || running != nil {
				req.Reply(false, nil)
				continue
			}
			term, win = t, ws
			req.Reply(true, nil)
		case "window-change":
			if ws, ok := parseWinsize(req.Payload); ok && running != nil && running.pty != nil {
				unix.IoctlSetWinsize(int(running.pty.Fd()), unix.TIOCSWINSZ, ws)
			}
			if req.WantReply {
				req.Reply(true, nil)
			}
		case "env":
			req.Reply(true, nil) // accepted, ignored: the environment is the host's
		case "shell", "exec":
			kind := s.cfg.Default()
			if req.Type == "exec" {
				kind = parseString(req.Payload)
			}
			argv, ok := s.cfg.Commands[kind]
			if running != nil {
				req.Reply(false, nil)
				continue
			}
			// Refusals are said on the session (a refused request only
			// shows as "exec request failed").
			switch {
			case !ok || len(argv) == 0:
				req.Reply(true, nil)
				fmt.Fprintf(ch.Stderr(), "plinth: %q is not offered; run \"dcui\" or \"shell\"\r\n", kind)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 127))
				return
			case kind == SessionDCUI && win == nil:
				req.Reply(true, nil)
				fmt.Fprintf(ch.Stderr(), "plinth: the DCUI needs a terminal: ssh -t HOST dcui\r\n")
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 1))
				return
			}
			p, err := s.start(ch, argv, term, win)
			if err != nil {
				req.Reply(true, nil)
				fmt.Fprintf(ch.Stderr(), "plinth: %v\r\n", err)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 1))
				return
			}
			req.Reply(true, nil)
			running = p
			s.mu.Lock()
			s.sessions++
			s.mu.Unlock()
			go func() {
				code := p.wait()
				s.mu.Lock()
				s.sessions--
				s.mu.Unlock()
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
				ch.Close() // ends the request loop
			}()
		default:
			req.Reply(false, nil)
		}
	}
	// The client went away (or the server closes): end what runs.
	if running != nil {
		running.kill()
		running.wait()
	}
}

// proc is what a session runs.
type proc struct {
	cmd  *exec.Cmd
	pty  *os.File // the terminal's controlling side; nil with pipes
	done chan struct{}
	code int
	io   sync.WaitGroup
}

func (s *Server) start(ch ssh.Channel, argv []string, term string, win *unix.Winsize) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), s.cfg.Env...), "PS1=plinth# ")
	if term != "" {
		cmd.Env = append(cmd.Env, "TERM="+term)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	if win != nil {
		ptm, pts, err := openPTY()
		if err != nil {
			return nil, err
		}
		unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, win)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		// A session of its own with the terminal as its controlling one:
		// Ctrl-C reaches what runs, a hang-up ends it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			ptm.Close()
			pts.Close()
			return nil, fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
		}
		pts.Close()
		p.pty = ptm
		p.io.Add(1)
		go func() { defer p.io.Done(); io.Copy(ch, ptm) }() // ends with EIO once every holder of the terminal is gone
		go io.Copy(ptm, ch)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
		}
		go func() { io.Copy(stdin, ch); stdin.Close() }()
	}
	go func() {
		err := cmd.Wait()
		if p.pty != nil {
			// Output still in the terminal goes out first, for a moment.
			waitIO(&p.io, 2*time.Second)
			p.pty.Close()
		}
		p.code = exitCode(err)
		close(p.done)
	}()
	return p, nil
}

func waitIO(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	return 255
}

// kill hangs the session's process group up, then kills it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGHUP)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (p *proc) wait() int {
	<-p.done
	return p.code
}

// openPTY opens a new pseudo-terminal: its controlling side and its
// terminal.
func openPTY() (ptm, pts *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	ptm = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("terminal number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return ptm, os.NewFile(uintptr(sfd), name), nil
}

// SSH request payloads (RFC 4254 6.2, 6.7).

func parseString(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	n := binary.BigEndian.Uint32(b)
	if uint32(len(b)-4) < n {
		return ""
	}
	return string(b[4 : 4+n])
}

func parsePtyReq(b []byte) (term string, ws *unix.Winsize, ok bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if n > 64 || uint32(len(b)-4) < n+16 {
		return "", nil, false
	}
	term = string(b[4 : 4+n])
	for _, r := range term {
		if r <= ' ' || r > '~' {
			return "", nil, false
		}
	}
	ws, ok = parseWinsize(b[4+n:])
	return term, ws, ok
}

func parseWinsize(b []byte) (*unix.Winsize, bool) {
	if len(b) < 8 {
		return nil, false
	}
	cols, rows := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if cols == 0 || rows == 0 {
		cols, rows = 80, 24
	}
	return &unix.Winsize{Col: uint16(min(cols, 1000)), Row: uint16(min(rows, 1000))}, true
}

// LoadHostKey reads the host key at path, making an Ed25519 one there
// (mode 0600) the first time.
func LoadHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ssh.ParsePrivateKey(b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(key, "plinth host key")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(key)
}

// ParseKeys reads authorized_keys lines (options and comments kept out;
// a broken line is skipped).
func ParseKeys(b []byte) []Key {
	var out []Key
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			continue
		}
		out = append(out, Key{Key: k, Comment: comment, Line: line})
	}
	return out
}

// Key is one authorized key.
type Key struct {
	Key     ssh.PublicKey
	Comment string
	// Line is its authorized_keys line.
	Line string
}
