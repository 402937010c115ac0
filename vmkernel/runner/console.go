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

	"github.com/plinth/plinth/api"
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
	// viewers get every write as it comes (see ConsoleViewer).
	viewers map[*ConsoleViewer]struct{}
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
	for v := range c.viewers {
		if len(v.pending)+len(b) > viewerMaxPending {
			// Fallen behind: dropped, never waited for.
			v.dropped = true
			c.dropLocked(v)
			continue
		}
		v.pending = append(v.pending, b...)
		v.wakeUp()
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

// viewerMaxPending is how many bytes of console output a viewer may have
// waiting before it is dropped. The guest's serial port arrives a few
// bytes at a time (QEMU sends what the UART got), so the bound is on bytes,
// not writes: a burst of boot messages is a few KiB in a thousand writes.
const viewerMaxPending = 1 << 20

// ConsoleViewer is one live viewer of a VM's serial console: it gets the
// console's tail at attach time, then every byte the guest prints, and its
// writes go to the guest's serial port. A viewer that lets more than
// viewerMaxPending bytes wait is dropped rather than ever slowing the
// console reader, and every viewer ends when the VM's QEMU does.
type ConsoleViewer struct {
	// Tail is what the console kept when the viewer attached; Next
	// continues exactly where it ends.
	Tail []byte

	con    *console
	serial *serialConn
	wake   chan struct{} // one token: pending grew or the viewer ended

	// Under con.mu:
	pending []byte
	ended   bool
	dropped bool
}

// Next waits for the guest's output and answers all of it that has come
// since the last call, or false once the viewer has ended and everything
// before its end has been taken.
func (v *ConsoleViewer) Next() ([]byte, bool) {
	for {
		v.con.mu.Lock()
		b, ended := v.pending, v.ended
		v.pending = nil
		v.con.mu.Unlock()
		if len(b) > 0 {
			return b, true
		}
		if ended {
			return nil, false
		}
		<-v.wake
	}
}

// wakeUp lets a waiting Next look again (con.mu held).
func (v *ConsoleViewer) wakeUp() {
	select {
	case v.wake <- struct{}{}:
	default: // a token is already there
	}
}

// Write sends p to the guest's serial port.
func (v *ConsoleViewer) Write(p []byte) (int, error) { return v.serial.write(p) }

// Close detaches the viewer (Next answers what was pending, then false); it
// may be called more than once.
func (v *ConsoleViewer) Close() {
	v.con.mu.Lock()
	defer v.con.mu.Unlock()
	v.con.dropLocked(v)
}

// Dropped reports whether the viewer was dropped for falling behind.
func (v *ConsoleViewer) Dropped() bool {
	v.con.mu.Lock()
	defer v.con.mu.Unlock()
	return v.dropped
}

// attach adds a viewer: the tail and the subscription are taken together,
// so nothing is missed or seen twice.
func (c *console) attach(serial *serialConn) *ConsoleViewer {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.ring
	if len(r) > ConsoleTailMax {
		r = r[len(r)-ConsoleTailMax:]
	}
	v := &ConsoleViewer{Tail: append([]byte{}, r...), con: c, serial: serial, wake: make(chan struct{}, 1)}
	if c.viewers == nil {
		c.viewers = map[*ConsoleViewer]struct{}{}
	}
	c.viewers[v] = struct{}{}
	return v
}

// dropLocked removes v and ends it (c.mu held).
func (c *console) dropLocked(v *ConsoleViewer) {
	if _, ok := c.viewers[v]; ok {
		delete(c.viewers, v)
		v.ended = true
		v.wakeUp()
	}
}

// endViewers ends every viewer (the QEMU they watched is gone).
func (c *console) endViewers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for v := range c.viewers {
		c.dropLocked(v)
	}
}

// serialConn is the connection of one QEMU instance's console reader, closed
// by stop (detach: the next vmkernel must be able to connect).
type serialConn struct {
	mu      sync.Mutex
	conn    net.Conn
	stopped bool
	done    chan struct{}
	// wmu keeps one viewer's write whole against another's.
	wmu sync.Mutex
}

// serialWriteTimeout bounds one write of viewer input to QEMU's serial
// socket (QEMU stops reading when the guest does not take input).
var serialWriteTimeout = 5 * time.Second

// write sends p to the guest's serial port over the current connection.
func (s *serialConn) write(p []byte) (int, error) {
	s.mu.Lock()
	conn, stopped := s.conn, s.stopped
	s.mu.Unlock()
	if stopped || conn == nil {
		return 0, ErrNoConsole
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	conn.SetWriteDeadline(time.Now().Add(serialWriteTimeout))
	n, err := conn.Write(p)
	if err != nil {
		return n, fmt.Errorf("console input: %w", err)
	}
	return n, nil
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

// ErrNoConsole: the VM has no serial console to attach to (not in its spec,
// or not connected).
var ErrNoConsole = errors.New("the VM has no serial console")

// AttachConsole adds a live viewer of the console of the VM with this ID,
// whose QEMU must run (else a *StateError); a VM without a serial console
// gives ErrNoConsole. The caller must Close the viewer.
func (m *Manager) AttachConsole(id string) (*ConsoleViewer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	v := m.vms[id]
	if v == nil || v.inst == nil {
		state := api.VMStopped
		if v != nil {
			state = v.state
		}
		return nil, &StateError{id, "attach to the console", state}
	}
	if v.inst.serial == nil {
		return nil, fmt.Errorf("VM %s: %w", id, ErrNoConsole)
	}
	// Under m.mu: an instance that ends clears v.inst and ends the viewers
	// under it too, so a viewer never outlives its QEMU.
	return v.con.attach(v.inst.serial), nil
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
