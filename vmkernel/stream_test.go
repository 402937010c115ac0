package vmkernel_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

// streamReader collects what a stream delivers, in the background.
type streamReader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	err  error
}

func readStream(rwc io.Reader) *streamReader {
	sr := &streamReader{done: make(chan struct{})}
	go func() {
		defer close(sr.done)
		b := make([]byte, 4096)
		for {
			n, err := rwc.Read(b)
			sr.mu.Lock()
			sr.buf.Write(b[:n])
			if err != nil {
				sr.err = err
			}
			sr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return sr
}

func (sr *streamReader) bytes() []byte {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return append([]byte(nil), sr.buf.Bytes()...)
}

// expect waits until the stream has shown s n times.
func (sr *streamReader) expect(t *testing.T, s string, n int, timeout time.Duration) {
	t.Helper()
	runnertest.WaitConsoleCount(t, func() ([]byte, error) { return sr.bytes(), nil }, s, n, timeout)
}

// ended waits for the stream to end.
func (sr *streamReader) ended(t *testing.T, what string) {
	t.Helper()
	select {
	case <-sr.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not end within 20 s", what)
	}
}

// rawUpgrade sends a stream request over the socket by hand and returns
// the status line's code (with or without the Upgrade headers).
func rawStatus(t *testing.T, c *client.Client, sock, path string, upgrade bool) int {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: vmkernel\r\n"
	if upgrade {
		req += "Connection: Upgrade\r\nUpgrade: " + api.StreamProtocol + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Errorf("%s: %d answer is not a problem", path, resp.StatusCode)
	}
	return resp.StatusCode
}

// TestConsoleAndVNCStreams boots a real guest with a serial console and VNC
// and proves: the stream starts with the retained tail and carries live
// output; input reaches the guest (its kernel's tty echoes what it gets, so
// the typed line comes back); two viewers share the console (each sees the
// echo of the other's input); the VNC stream is QEMU's RFB server; the
// streams end when the VM stops; and the refusals (400, 404, 409).
func TestConsoleAndVNCStreams(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	spec := guest("streamed")
	spec.VNC = true
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	apiErr(t, errOf(r.c.ConsoleStream(ctx, id)), http.StatusConflict)
	apiErr(t, errOf(r.c.VNCStream(ctx, id)), http.StatusConflict)
	apiErr(t, errOf(r.c.ConsoleStream(ctx, "nope")), http.StatusNotFound)
	apiErr(t, errOf(r.c.VNCStream(ctx, "nope")), http.StatusNotFound)
	if code := rawStatus(t, r.c, r.sock, api.VMKernelVMPath+id+"/"+api.ConsoleStream, false); code != http.StatusBadRequest {
		t.Errorf("console stream without Upgrade: %d, want 400", code)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	if code := rawStatus(t, r.c, r.sock, api.VMKernelVMPath+id+"/"+api.VNCStream, false); code != http.StatusBadRequest {
		t.Errorf("VNC stream without Upgrade: %d, want 400", code)
	}

	a, err := r.c.ConsoleStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ra := readStream(a)
	ra.expect(t, runnertest.Marker, 1, 150*time.Second)

	// A viewer that comes later gets the tail first: the marker again.
	b, err := r.c.ConsoleStream(ctx, "streamed") // by name, too
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb := readStream(b)
	rb.expect(t, runnertest.Marker, 1, 10*time.Second)

	// Input from either viewer reaches the guest; its echo reaches both.
	if _, err := io.WriteString(a, "plinth-typed-by-a\r"); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "plinth-typed-by-a", 1, 30*time.Second)
	rb.expect(t, "plinth-typed-by-a", 1, 30*time.Second)
	if _, err := io.WriteString(b, "plinth-typed-by-b\r"); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "plinth-typed-by-b", 1, 30*time.Second)
	rb.expect(t, "plinth-typed-by-b", 1, 30*time.Second)
	// The console route keeps what went through the streams too.
	runnertest.WaitConsole(t, func() ([]byte, error) { return r.c.VMConsole(ctx, id) }, "plinth-typed-by-b", 10*time.Second)

	// A viewer that leaves does not disturb the other.
	b.Close()
	rb.ended(t, "closed viewer")
	if _, err := io.WriteString(a, "plinth-after-b-left\r"); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "plinth-after-b-left", 1, 30*time.Second)

	vnc, err := r.c.VNCStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer vnc.Close()
	rv := readStream(vnc)
	rv.expect(t, "RFB ", 1, 20*time.Second)
	if got := rv.bytes(); len(got) < 12 || string(got[:12]) != "RFB 003.008\n" {
		t.Fatalf("VNC stream began %q, want the RFB 3.8 version", got)
	}

	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	ra.ended(t, "console stream of a stopped VM")
	rv.ended(t, "VNC stream of a stopped VM")
	apiErr(t, errOf(r.c.ConsoleStream(ctx, id)), http.StatusConflict)

	// A running VM without serial console or VNC: 409 for both.
	plain := guest("plain")
	plain.Serial = false
	pvm, err := r.c.CreateVM(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.VMAction(ctx, pvm.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	e := apiErr(t, errOf(r.c.ConsoleStream(ctx, pvm.Spec.ID)), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, "serial console") {
		t.Errorf("no console: %+v", e.Problem)
	}
	e = apiErr(t, errOf(r.c.VNCStream(ctx, pvm.Spec.ID)), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, "VNC") {
		t.Errorf("no VNC: %+v", e.Problem)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
