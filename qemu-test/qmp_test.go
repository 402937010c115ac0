package qemutest

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQMP plays QEMU's side of a QMP session over a pipe: it sends the
// greeting, then answers each command with the next canned reply lines, and
// records the commands it got.
func fakeQMP(t *testing.T, conn net.Conn, replies map[string][]string) <-chan []string {
	got := make(chan []string, 1)
	go func() {
		defer conn.Close()
		var cmds []string
		defer func() { got <- cmds }()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(`{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": ["oob"]}}` + "\n")); err != nil {
			return
		}
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct{ Execute string }
			if err := json.Unmarshal(line, &req); err != nil {
				t.Errorf("fake QMP: bad request %q", line)
				return
			}
			cmds = append(cmds, req.Execute)
			for _, reply := range replies[req.Execute] {
				if _, err := conn.Write([]byte(reply + "\n")); err != nil {
					return
				}
			}
		}
	}()
	return got
}

func TestQMPPowerdown(t *testing.T) {
	client, server := net.Pipe()
	got := fakeQMP(t, server, map[string][]string{
		"qmp_capabilities": {`{"return": {}}`},
		"system_powerdown": {
			`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}`,
			`{"return": {}}`,
		},
	})
	q, err := qmpHandshake(client, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.run("system_powerdown", time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	q.close()
	if cmds := <-got; strings.Join(cmds, ",") != "qmp_capabilities,system_powerdown" {
		t.Errorf("commands sent = %v, want qmp_capabilities then system_powerdown", cmds)
	}
}

func TestQMPError(t *testing.T) {
	client, server := net.Pipe()
	fakeQMP(t, server, map[string][]string{
		"qmp_capabilities": {`{"return": {}}`},
		"system_powerdown": {`{"error": {"class": "GenericError", "desc": "nope"}}`},
	})
	q, err := qmpHandshake(client, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	_, err = q.run("system_powerdown", time.Now().Add(5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "GenericError: nope") {
		t.Errorf("err = %v, want the QMP error", err)
	}
}

func TestQMPDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close() // a peer that never greets
	start := time.Now()
	_, err := qmpHandshake(client, time.Now().Add(100*time.Millisecond))
	if err == nil {
		t.Fatal("handshake with a silent peer succeeded")
	}
	if d := time.Since(start); d > 20*time.Second { // no deadline would hang for ever
		t.Errorf("handshake took %v despite a 100ms deadline", d)
	}
}
