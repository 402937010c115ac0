package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}`

// peer is a fake QEMU on the other end of a net.Pipe.
type peer struct {
	t    *testing.T
	conn net.Conn
	dec  *json.Decoder
	wmu  sync.Mutex
}

type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        string          `json:"id"`
}

func (p *peer) send(s string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.Write([]byte(s + "\r\n"))
}

func (p *peer) recv() request {
	var r request
	if err := p.dec.Decode(&r); err != nil {
		p.t.Errorf("peer: reading request: %v", err)
	}
	return r
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect returns a negotiated Monitor and its fake peer.
func connect(t *testing.T) (*Monitor, *peer) {
	t.Helper()
	client, server := net.Pipe()
	p := &peer{t: t, conn: server, dec: json.NewDecoder(bufio.NewReader(server))}
	go func() {
		p.send(greeting)
		r := p.recv()
		if r.Execute != "qmp_capabilities" {
			t.Errorf("first command %q, want qmp_capabilities", r.Execute)
		}
		p.send(fmt.Sprintf(`{"return": {}, "id": %q}`, r.ID))
	}()
	m, err := New(ctxT(t, 5*time.Second), client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); m.Close() })
	if v := m.Version(); v.String() != "7.2.19" || v.Package == "" {
		t.Errorf("Version = %+v", v)
	}
	return m, p
}

func TestRunMatchesByID(t *testing.T) {
	m, p := connect(t)
	go func() {
		a, b := p.recv(), p.recv()
		// Answer in reverse order, with an event and a stranger's answer between.
		p.send(fmt.Sprintf(`{"return": {"n": %q}, "id": %q}`, b.Execute, b.ID))
		p.send(`{"event": "RTC_CHANGE", "data": {"offset": 1}, "timestamp": {"seconds": 1700000000, "microseconds": 5}}`)
		p.send(`{"return": {}, "id": "not-ours"}`)
		p.send(fmt.Sprintf(`{"return": {"n": %q, "args": %s}, "id": %q}`, a.Execute, a.Arguments, a.ID))
	}()
	type res struct {
		N    string          `json:"n"`
		Args json.RawMessage `json:"args"`
	}
	var wg sync.WaitGroup
	results := make([]res, 2)
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = m.Run(ctxT(t, 5*time.Second), "first", map[string]int{"x": 1}, &results[0])
	}()
	time.Sleep(10 * time.Millisecond) // order the two sends; correctness does not depend on it
	go func() {
		defer wg.Done()
		errs[1] = m.Run(ctxT(t, 5*time.Second), "second", nil, &results[1])
	}()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if results[0].N != "first" || string(results[0].Args) != `{"x":1}` || results[1].N != "second" {
		t.Errorf("results = %+v", results)
	}
	select {
	case ev := <-m.Events():
		if ev.Name != "RTC_CHANGE" || string(ev.Data) != `{"offset": 1}` || !ev.Timestamp.Equal(time.Unix(1700000000, 5000)) {
			t.Errorf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

func TestQMPError(t *testing.T) {
	m, p := connect(t)
	go func() {
		r := p.recv()
		p.send(fmt.Sprintf(`{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": %q}`, r.ID))
	}()
	err := m.Run(ctxT(t, 5*time.Second), "nope", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || qe.Desc == "" {
		t.Errorf("Run = %v, want *Error CommandNotFound", err)
	}
}

func TestEventsInOrderWithSlowConsumer(t *testing.T) {
	m, p := connect(t)
	const n = 500
	go func() {
		r := p.recv()
		for i := range n {
			p.send(fmt.Sprintf(`{"event": "E%d", "timestamp": {"seconds": %d, "microseconds": 0}}`, i, i))
		}
		p.send(fmt.Sprintf(`{"return": {}, "id": %q}`, r.ID))
	}()
	// Nobody reads Events yet: the answer must still come.
	if err := m.Run(ctxT(t, 5*time.Second), "query-status", nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		select {
		case ev := <-m.Events():
			if ev.Name != fmt.Sprintf("E%d", i) {
				t.Fatalf("event %d is %s", i, ev.Name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d missing", i)
		}
	}
}

func TestEOFClosesEventsAndFailsRun(t *testing.T) {
	m, p := connect(t)
	got := make(chan error, 1)
	go func() { got <- m.Run(ctxT(t, 5*time.Second), "quit", nil, nil) }()
	p.recv()
	p.send(`{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}, "timestamp": {"seconds": 1, "microseconds": 2}}`)
	p.conn.Close()
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
			t.Errorf("pending Run = %v, want ErrClosed wrapping EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending Run did not fail")
	}
	var names []string
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				done = true
				break
			}
			names = append(names, ev.Name)
		case <-timeout:
			t.Fatal("Events not closed after EOF")
		}
	}
	if len(names) != 1 || names[0] != "SHUTDOWN" {
		t.Errorf("events before EOF = %v", names)
	}
	select {
	case <-m.Done():
	default:
		t.Error("Done not closed")
	}
	if err := m.Run(ctxT(t, time.Second), "query-status", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after EOF = %v", err)
	}
}

func TestRunContextCancel(t *testing.T) {
	m, p := connect(t)
	go p.recv() // read, never answer
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx, "query-status", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want deadline exceeded", err)
	}
}

func TestHandshakeDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	start := time.Now()
	_, err := New(ctxT(t, 100*time.Millisecond), client) // the peer never greets
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("New = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 20*time.Second { // no deadline would hang for ever
		t.Errorf("handshake took %v", time.Since(start))
	}
}

func TestHandshakeRefused(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		server.Write([]byte(greeting + "\n"))
		bufio.NewReader(server).ReadString('\n')
		server.Write([]byte(`{"error": {"class": "GenericError", "desc": "no"}, "id": "caps"}` + "\n"))
	}()
	var qe *Error
	if _, err := New(ctxT(t, 5*time.Second), client); !errors.As(err, &qe) {
		t.Errorf("New = %v, want *Error", err)
	}
}

func TestCloseClosesEvents(t *testing.T) {
	m, _ := connect(t)
	m.Close()
	select {
	case _, ok := <-m.Events():
		if ok {
			t.Error("event after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events not closed by Close")
	}
	if err := m.Run(ctxT(t, time.Second), "x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v", err)
	}
}
