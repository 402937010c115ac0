// Package guestagent speaks to the QEMU guest agent (qemu-ga) inside a VM,
// over the virtio-serial channel QEMU exposes as a unix socket: what the
// guest says of itself (OS, host name, addresses, as ESXi shows VMware
// Tools' facts), a shutdown the guest carries out where it ignores ACPI,
// and file systems frozen for consistent snapshots and backups.
//
// Everything the agent answers is the guest's word: data to show, never an
// instruction; answers are size-bounded and parsed strictly.
package guestagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Errors, for errors.Is.
var (
	// ErrNoAgent: nothing answered on the channel (no agent in the guest, or
	// not running yet).
	ErrNoAgent = errors.New("the guest agent does not answer")
	// ErrAgent: the agent answered with an error.
	ErrAgent = errors.New("the guest agent refused")
)

// maxReply bounds one answer from the guest.
const maxReply = 1 << 20

// Agent is a connection to one VM's guest agent; safe for concurrent use
// (commands take turns on the one channel).
type Agent struct {
	path string

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	id   uint64
}

// New makes an Agent for the channel's socket; it connects on first use.
func New(path string) *Agent { return &Agent{path: path, id: uint64(time.Now().UnixNano())} }

// Close drops the connection.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.drop()
}

func (a *Agent) drop() error {
	if a.conn == nil {
		return nil
	}
	err := a.conn.Close()
	a.conn, a.r = nil, nil
	return err
}

// Run runs cmd with args and decodes its return value into out (when not
// nil). A channel with nothing answering gives ErrNoAgent; the agent's own
// error, ErrAgent with its description.
func (a *Agent) Run(ctx context.Context, cmd string, args, out any) error {
	return a.run(ctx, cmd, args, out, true)
}

// Send sends cmd without waiting for an answer: guest-shutdown and the
// suspend commands give none when they work.
func (a *Agent) Send(ctx context.Context, cmd string, args any) error {
	return a.run(ctx, cmd, args, nil, false)
}

func (a *Agent) run(ctx context.Context, cmd string, args, out any, reply bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.connect(ctx); err != nil {
		return err
	}
	err := a.exchange(ctx, cmd, args, out, reply)
	if err != nil && !errors.Is(err, ErrAgent) {
		a.drop() // out of step: the next command syncs again
	}
	return err
}

// connect dials the channel and synchronises with the agent: a 0xFF byte
// (which makes the agent drop any half-read command) and
// guest-sync-delimited, whose answer follows a 0xFF of its own; anything
// before it is a stale answer.
func (a *Agent) connect(ctx context.Context) error {
	if a.conn != nil {
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", a.path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	a.conn, a.r = conn, bufio.NewReaderSize(conn, 64<<10)
	a.id++
	want := a.id
	if err := a.deadline(ctx); err != nil {
		a.drop()
		return err
	}
	req, _ := json.Marshal(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": want}})
	if _, err := conn.Write(append([]byte{0xff}, append(req, '\n')...)); err != nil {
		a.drop()
		return fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	for {
		if _, err := a.r.ReadBytes(0xff); err != nil {
			a.drop()
			return fmt.Errorf("%w: %v", ErrNoAgent, err)
		}
		line, err := a.line()
		if err != nil {
			a.drop()
			return fmt.Errorf("%w: %v", ErrNoAgent, err)
		}
		var r struct {
			Return uint64 `json:"return"`
		}
		if json.Unmarshal(line, &r) == nil && r.Return == want {
			return nil
		}
	}
}

// deadline applies ctx's deadline (or 10 s) to the connection.
func (a *Agent) deadline(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(10 * time.Second)
	}
	return a.conn.SetDeadline(d)
}

// line reads one line of at most maxReply bytes.
func (a *Agent) line() ([]byte, error) {
	var b []byte
	for {
		chunk, isPrefix, err := a.r.ReadLine()
		if err != nil {
			return nil, err
		}
		b = append(b, chunk...)
		if len(b) > maxReply {
			return nil, fmt.Errorf("an answer longer than %d bytes", maxReply)
		}
		if !isPrefix {
			return bytes.TrimLeft(b, "\xff"), nil
		}
	}
}

func (a *Agent) exchange(ctx context.Context, cmd string, args, out any, reply bool) error {
	if err := a.deadline(ctx); err != nil {
		return err
	}
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	req, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := a.conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoAgent, cmd, err)
	}
	if !reply {
		return nil
	}
	for {
		line, err := a.line()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNoAgent, cmd, err)
		}
		var r struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal(line, &r) != nil {
			continue // not an answer (noise on the channel)
		}
		if r.Error != nil {
			return fmt.Errorf("%w: %s: %s: %s", ErrAgent, cmd, r.Error.Class, r.Error.Desc)
		}
		if r.Return == nil {
			continue
		}
		if out != nil {
			if err := json.Unmarshal(r.Return, out); err != nil {
				return fmt.Errorf("guest agent: %s: answer: %w", cmd, err)
			}
		}
		return nil
	}
}
