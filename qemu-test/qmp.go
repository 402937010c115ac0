package qemutest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// qmpConn is a minimal QMP client: enough to negotiate capabilities and run
// one command at a time. Every read and write has a deadline.
type qmpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmpHandshake reads QEMU's greeting and leaves the capabilities-negotiation
// mode, all before deadline.
func qmpHandshake(conn net.Conn, deadline time.Time) (*qmpConn, error) {
	c := &qmpConn{conn: conn, r: bufio.NewReader(conn)}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	m, err := c.read()
	if err != nil {
		return nil, fmt.Errorf("qmp: reading greeting: %w", err)
	}
	if m.QMP == nil {
		return nil, errors.New("qmp: first message is not a QMP greeting")
	}
	if _, err := c.run("qmp_capabilities", deadline); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *qmpConn) read() (qmpMessage, error) {
	var m qmpMessage
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: bad message %q: %w", line, err)
	}
	return m, nil
}

// run sends one command and returns its "return" value, skipping the
// asynchronous events QEMU may send in between.
func (c *qmpConn) run(command string, deadline time.Time) (json.RawMessage, error) {
	return c.runArgs(command, nil, deadline)
}

// runArgs is run with the command's arguments (nil for none).
func (c *qmpConn) runArgs(command string, args any, deadline time.Time) (json.RawMessage, error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	msg := map[string]any{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	req, _ := json.Marshal(msg)
	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("qmp: sending %s: %w", command, err)
	}
	for {
		m, err := c.read()
		if err != nil {
			return nil, fmt.Errorf("qmp: waiting for the answer to %s: %w", command, err)
		}
		switch {
		case m.Error != nil:
			return nil, fmt.Errorf("qmp: %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		case m.Return != nil:
			return m.Return, nil
		}
		// An event (or anything else): keep reading.
	}
}

func (c *qmpConn) close() error { return c.conn.Close() }

// unreadEvents returns the events QEMU sent that no command's answer has
// read yet (a QEMU that has ended leaves them in the socket: its SHUTDOWN
// event says why it ended), each as "NAME DATA", reading until deadline or
// the connection's end.
func (c *qmpConn) unreadEvents(deadline time.Time) []string {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil
	}
	var evs []string
	for {
		m, err := c.read()
		if err != nil {
			return evs
		}
		if m.Event != "" {
			evs = append(evs, strings.TrimSpace(m.Event+" "+string(m.Data)))
		}
	}
}
