// Package qmp is a small client for the QEMU Machine Protocol: it negotiates
// capabilities, runs commands matched to their answers by id, and delivers
// asynchronous events in order. The end of the connection (QEMU died or quit)
// closes the Events channel.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Run once the connection is gone; it wraps the
// reason (io.EOF when QEMU closed the socket).
var ErrClosed = errors.New("qmp: connection closed")

// Error is an error answered by QEMU.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// Event is an asynchronous QMP event.
type Event struct {
	Name      string
	Data      json.RawMessage
	Timestamp time.Time
}

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// message is any QMP server message.
type message struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
	} `json:"QMP,omitempty"`
	Return    json.RawMessage `json:"return,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	ID        json.RawMessage `json:"id,omitempty"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp,omitempty"`
}

type response struct {
	ret json.RawMessage
	err error
}

// Monitor is a QMP connection. It is safe for concurrent use.
type Monitor struct {
	conn    net.Conn
	dec     *json.Decoder
	version Version

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan response
	err     error // set once the reader stops
	queue   []Event
	wake    chan struct{} // a token when queue grew or the reader stopped

	events    chan Event
	done      chan struct{} // closed when the reader stops
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
}

// Dial connects to a QMP unix socket and negotiates capabilities, all
// within ctx.
func Dial(ctx context.Context, socketPath string) (*Monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	m, err := New(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return m, nil
}

// New negotiates QMP over an established connection (reading the greeting
// and sending qmp_capabilities) within ctx, then starts reading.
func New(ctx context.Context, conn net.Conn) (*Monitor, error) {
	m := &Monitor{
		conn:    conn,
		dec:     json.NewDecoder(bufio.NewReader(conn)),
		pending: map[string]chan response{},
		wake:    make(chan struct{}, 1),
		events:  make(chan Event),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err := m.handshake()
	stopped := stop()
	if err == nil && !stopped {
		err = ctx.Err()
	}
	if err != nil {
		cerr := ctx.Err()
		if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			cerr = context.DeadlineExceeded // ctx's deadline, a moment before ctx notices
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, fmt.Errorf("qmp: handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	go m.read()
	go m.pump()
	return m, nil
}

func (m *Monitor) handshake() error {
	var g message
	if err := m.dec.Decode(&g); err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if g.QMP == nil {
		return errors.New("no QMP greeting")
	}
	v := g.QMP.Version
	m.version = Version{v.QEMU.Major, v.QEMU.Minor, v.QEMU.Micro, v.Package}
	if _, err := m.conn.Write([]byte(`{"execute":"qmp_capabilities","id":"caps"}` + "\n")); err != nil {
		return fmt.Errorf("sending qmp_capabilities: %w", err)
	}
	for {
		var r message
		if err := m.dec.Decode(&r); err != nil {
			return fmt.Errorf("reading qmp_capabilities answer: %w", err)
		}
		if r.Error != nil {
			return r.Error
		}
		if string(r.ID) == `"caps"` {
			return nil
		}
	}
}

// Version is QEMU's version, from the greeting.
func (m *Monitor) Version() Version { return m.version }

// Run executes cmd with args (nil for none) and decodes the answer into
// result (nil to ignore it). QEMU's errors are *Error; a connection that
// ends first gives an error wrapping ErrClosed.
func (m *Monitor) Run(ctx context.Context, cmd string, args, result any) error {
	return m.run(ctx, cmd, args, result, nil)
}

// RunWithFile is Run with f's descriptor sent along with the command
// (SCM_RIGHTS over the unix socket), for the commands that take one:
// add-fd (into an fd set, which -blockdev and usb-host then name as
// /dev/fdset/N) and getfd (a named descriptor, e.g. a tap for netdev_add).
// QEMU keeps its own duplicate; the caller still owns f.
func (m *Monitor) RunWithFile(ctx context.Context, cmd string, args, result any, f *os.File) error {
	if f == nil {
		return fmt.Errorf("qmp: %s: no file to send", cmd)
	}
	if _, ok := m.conn.(*net.UnixConn); !ok {
		return fmt.Errorf("qmp: %s: descriptors need a unix socket connection", cmd)
	}
	return m.run(ctx, cmd, args, result, f)
}

func (m *Monitor) run(ctx context.Context, cmd string, args, result any, f *os.File) error {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	m.nextID++
	id := strconv.FormatUint(m.nextID, 10)
	ch := make(chan response, 1)
	m.pending[id] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}()

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("qmp: %s: encoding arguments: %w", cmd, err)
	}
	if err := m.write(ctx, append(b, '\n'), f); err != nil {
		return fmt.Errorf("qmp: %s: %w", cmd, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if result != nil {
			if err := json.Unmarshal(r.ret, result); err != nil {
				return fmt.Errorf("qmp: %s: decoding answer: %w", cmd, err)
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("qmp: %s: %w", cmd, ctx.Err())
	case <-m.done:
		select { // the answer may have come just before the end
		case r := <-ch:
			if r.err == nil && result != nil {
				return json.Unmarshal(r.ret, result)
			}
			return r.err
		default:
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return fmt.Errorf("qmp: %s: %w", cmd, m.err)
	}
}

func (m *Monitor) write(ctx context.Context, b []byte, f *os.File) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if d, ok := ctx.Deadline(); ok {
		m.conn.SetWriteDeadline(d)
		defer m.conn.SetWriteDeadline(time.Time{})
	}
	if f == nil {
		_, err := m.conn.Write(b)
		return err
	}
	// The descriptor travels with the command's first byte: QEMU's monitor
	// takes it from that read and gives it to this command alone.
	uc := m.conn.(*net.UnixConn)
	n, _, err := uc.WriteMsgUnix(b, unix.UnixRights(int(f.Fd())), nil)
	runtime.KeepAlive(f)
	if err == nil && n < len(b) {
		_, err = uc.Write(b[n:])
	}
	return err
}

// Events delivers events in the order QEMU sent them. It is closed when the
// connection ends (after the events read before the end) or on Close.
func (m *Monitor) Events() <-chan Event { return m.events }

// Done is closed when the connection has ended; Err then says why.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is why the connection ended (wrapping ErrClosed), nil while it is up.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the connection and stops event delivery.
func (m *Monitor) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closing)
		err = m.conn.Close()
	})
	<-m.done
	return err
}

// read is the single reader: it routes answers to Run calls and queues events.
func (m *Monitor) read() {
	var err error
	for {
		var msg message
		if err = m.dec.Decode(&msg); err != nil {
			break
		}
		switch {
		case msg.Event != "":
			ev := Event{Name: msg.Event, Data: msg.Data}
			if ts := msg.Timestamp; ts != nil {
				ev.Timestamp = time.Unix(ts.Seconds, ts.Microseconds*1000)
			}
			m.mu.Lock()
			m.queue = append(m.queue, ev)
			m.mu.Unlock()
			m.poke()
		case msg.ID != nil:
			var id string
			if json.Unmarshal(msg.ID, &id) != nil {
				continue // not one of ours
			}
			r := response{ret: msg.Return}
			if msg.Error != nil {
				r.err = msg.Error
			}
			m.mu.Lock()
			ch := m.pending[id]
			m.mu.Unlock()
			if ch != nil {
				select {
				case ch <- r:
				default: // a duplicate answer; the first one counts
				}
			}
		}
	}
	select {
	case <-m.closing:
		err = fmt.Errorf("%w: closed by client", ErrClosed)
	default:
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", ErrClosed, io.EOF)
		} else {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
	}
	m.conn.Close()
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	close(m.done)
	m.poke()
}

func (m *Monitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// pump hands queued events to the Events channel, so that a slow consumer
// never stalls the reader (and with it the answers to Run).
func (m *Monitor) pump() {
	defer close(m.events)
	for {
		m.mu.Lock()
		var ev Event
		have := len(m.queue) > 0
		if have {
			ev = m.queue[0]
			m.queue[0] = Event{}
			m.queue = m.queue[1:]
		}
		ended := m.err != nil
		m.mu.Unlock()
		if !have {
			if ended {
				return
			}
			select {
			case <-m.wake:
			case <-m.closing:
				return
			}
			continue
		}
		select {
		case m.events <- ev:
		case <-m.closing:
			return
		}
	}
}
