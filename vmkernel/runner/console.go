package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plinth/plinth/vmkernel/qemu"
)

// The serial console log: vmkernel itself holds the VM's serial socket
// (QEMU's socket chardev takes one client at a time and keeps nothing for a
// client that connects late) and copies everything the guest prints into
// StateRoot/ID/console.log, written through as it arrives, rotated once to
// console.log.1 past ConsoleLogMax, with the last ConsoleTailMax bytes kept
// in memory for viewers.
const (
	ConsoleLogFile    = "console.log"
	ConsoleLogOldFile = "console.log.1"
	// ConsoleLogMax is the size past which console.log is rotated.
	ConsoleLogMax = 1 << 20
	// ConsoleTailMax is how much of the console is kept in memory.
	ConsoleTailMax = 64 << 10
)

var (
	// serialDialTimeout bounds the wait for QEMU's serial socket.
	serialDialTimeout = 10 * time.Second
	// consoleSyncDelay: console.log is fsynced at most this long after a write.
	consoleSyncDelay = 200 * time.Millisecond
)

// console is one VM's console log and in-memory tail; it outlives the QEMU
// processes of the VM (a restart keeps appending).
type console struct {
	dir string

	mu      sync.Mutex
	ring    []byte // the last ConsoleTailMax bytes (up to twice that before compaction)
	f       *os.File
	size    int64
	syncing bool
	err     error // the last write error, logged once
}

// newConsole makes the console of the VM whose state directory is dir; its
// tail starts with the end of an existing console.log (from an earlier
// vmkernel).
func newConsole(dir string) *console {
	c := &console{dir: dir}
	if b := tailBytes(filepath.Join(dir, ConsoleLogFile), ConsoleTailMax); len(b) > 0 {
		c.ring = b
	}
	return c
}

// Write appends b to the log (written through: the file is not buffered,
// and fsynced shortly after) and to the tail. It never fails: a console
// that cannot be logged must not stop the reader.
func (c *console) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = append(c.ring, b...)
	if len(c.ring) > 2*ConsoleTailMax {
		c.ring = append([]byte(nil), c.ring[len(c.ring)-ConsoleTailMax:]...)
	}
	if err := c.writeFile(b); err != nil && c.err == nil {
		c.err = err
	}
	return len(b), nil
}

func (c *console) writeFile(b []byte) error {
	path := filepath.Join(c.dir, ConsoleLogFile)
	if c.f == nil {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		c.f, c.size = f, fi.Size()
	}
	n, err := c.f.Write(b)
	c.size += int64(n)
	if err != nil {
		return err
	}
	if c.size > ConsoleLogMax {
		c.f.Sync()
		c.f.Close()
		c.f = nil
		if err := os.Rename(path, filepath.Join(c.dir, ConsoleLogOldFile)); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		c.f, c.size = f, 0
	}
	if !c.syncing {
		c.syncing = true
		time.AfterFunc(consoleSyncDelay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.syncing = false
			if c.f != nil {
				c.f.Sync()
			}
		})
	}
	return nil
}

// takeErr returns and clears the last write error.
func (c *console) takeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.err
	c.err = nil
	return err
}

// tail returns a copy of the last n bytes kept (all of them when n <= 0).
func (c *console) tail(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.ring
	if len(r) > ConsoleTailMax {
		r = r[len(r)-ConsoleTailMax:]
	}
	if n > 0 && len(r) > n {
		r = r[len(r)-n:]
	}
	return append([]byte{}, r...)
}

// closeFile syncs and closes the log file (a later write reopens it).
func (c *console) closeFile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f != nil {
		c.f.Sync()
		c.f.Close()
		c.f = nil
	}
}

// serialConn is the connection of one QEMU instance's console reader, closed
// by stop (detach: the next vmkernel must be able to connect).
type serialConn struct {
	mu      sync.Mutex
	conn    net.Conn
	stopped bool
	done    chan struct{}
}

func newSerialConn() *serialConn { return &serialConn{done: make(chan struct{})} }

func (s *serialConn) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.done)
	}
	if s.conn != nil {
		s.conn.Close()
	}
}

// set makes conn the current connection; false (and conn closed) once stopped.
func (s *serialConn) set(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		conn.Close()
		return false
	}
	s.conn = conn
	return true
}

// dialSerial connects to a serial socket, retrying until it answers, ctx
// ends, QEMU exits or stop is closed.
func dialSerial(ctx context.Context, path string, exited, stop <-chan struct{}) (net.Conn, error) {
	delay := 2 * time.Millisecond
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		select {
		case <-exited:
			return nil, errors.New("QEMU exited")
		case <-stop:
			return nil, errors.New("detached")
		case <-ctx.Done():
			return nil, fmt.Errorf("serial socket did not answer: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// readConsole copies inst's serial console into v's console until QEMU
// exits or the Manager detaches; conn, when not nil, is already connected.
// A connection that ends while QEMU still runs is made again.
func (m *Manager) readConsole(v *vm, inst *instance, conn net.Conn) {
	defer m.wg.Done()
	path := filepath.Join(m.cfg.RunRoot, v.id, qemu.SerialSocket)
	sc := inst.serial
	for {
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), serialDialTimeout)
			var err error
			conn, err = dialSerial(ctx, path, inst.exited, sc.done)
			cancel()
			if err != nil {
				select {
				case <-inst.exited:
				case <-sc.done:
				default:
					m.cfg.Log.Warn("runner: console not logged", "id", v.id, "err", err)
				}
				return
			}
		}
		if !sc.set(conn) {
			return
		}
		_, err := io.Copy(v.con, conn)
		conn.Close()
		conn = nil
		if werr := v.con.takeErr(); werr != nil {
			m.cfg.Log.Warn("runner: console log write failed", "id", v.id, "err", werr)
		}
		// EOF comes with QEMU's exit, reaped just after: wait for it a little.
		select {
		case <-inst.exited:
			v.con.closeFile()
			return
		case <-sc.done:
			return
		case <-time.After(time.Second):
		}
		m.cfg.Log.Info("runner: serial console connection ended; reconnecting", "id", v.id, "err", err)
	}
}

// ConsoleTail returns the last n bytes (at most ConsoleTailMax; n <= 0 means
// all kept) the VM's guest printed on its serial console, kept in memory
// since vmkernel started and preloaded from the VM's console.log.
func (m *Manager) ConsoleTail(id string, n int) ([]byte, error) {
	if n <= 0 || n > ConsoleTailMax {
		n = ConsoleTailMax
	}
	m.mu.Lock()
	v := m.vms[id]
	m.mu.Unlock()
	if v != nil && v.con != nil {
		return v.con.tail(n), nil
	}
	if !validID(id) {
		return nil, fmt.Errorf("VM %q: bad ID", id)
	}
	b, err := readTail(filepath.Join(m.cfg.StateRoot, id, ConsoleLogFile), n)
	if errors.Is(err, os.ErrNotExist) {
		return []byte{}, nil
	}
	return b, err
}

// ConsoleLogPath is the VM's console log file.
func (m *Manager) ConsoleLogPath(id string) string {
	return filepath.Join(m.cfg.StateRoot, id, ConsoleLogFile)
}

func validID(id string) bool {
	return id != "" && id != "." && id != ".." && filepath.Base(id) == id
}

// readTail reads the last n bytes of a file.
func readTail(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-int64(n), 0)
	b := make([]byte, fi.Size()-off)
	k, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

func tailBytes(path string, n int) []byte {
	b, _ := readTail(path, n)
	return b
}
