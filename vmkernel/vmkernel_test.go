package vmkernel_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board/accel"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/hostinfo"
)

// start serves a real vmkernel Server on a unix socket in a temp dir.
func start(t *testing.T, host func() (api.Host, error)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "vmkernel.sock")
	l, err := vmkernel.Listen(sock, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	srv := vmkernel.New(vmkernel.Config{Host: host})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return sock
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestHostAndHealthOverSocket(t *testing.T) {
	src := hostinfo.Source{Accel: accel.Detect()}
	sock := start(t, src.Gather)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}

	c, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx(t))
	if err != nil || h.Status != api.HealthOK {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	host, err := c.Host(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if host.CPUCount < 1 || host.MemoryBytes == 0 || host.Version != api.Version || host.Acceleration.Mode == "" {
		t.Errorf("Host = %+v", host)
	}
}

func TestHostErrorIsProblem(t *testing.T) {
	sock := start(t, func() (api.Host, error) { return api.Host{}, errors.New("host facts: open /proc/meminfo: boom") })
	c, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Host(ctx(t))
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusInternalServerError || !strings.Contains(e.Problem.Detail, "/proc/meminfo") {
		t.Errorf("Host error = %v, want a 500 problem naming the file", err)
	}
}

func rawGet(t *testing.T, sock, method, path string) (*http.Response, api.Problem) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, _ := http.NewRequestWithContext(ctx(t), method, "http://vmkernel"+path, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp, p
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	sock := start(t, hostinfo.Source{}.Gather)
	resp, p := rawGet(t, sock, http.MethodGet, "/v1/nope")
	if resp.StatusCode != 404 || p.Status != 404 || resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Errorf("unknown path: %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
	resp, p = rawGet(t, sock, http.MethodPost, api.VMKernelHostPath)
	if resp.StatusCode != 405 || p.Status != 405 || resp.Header.Get("Allow") != "GET" ||
		resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Errorf("POST host: %d %v %+v", resp.StatusCode, resp.Header, p)
	}
}

func TestListenStaleAndBusy(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	// A stale socket: bound, then its listener closed without unlinking.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = vmkernel.Listen(sock, os.Getgid())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	// A live one is not taken over.
	if l2, err := vmkernel.Listen(sock, os.Getgid()); err == nil {
		l2.Close()
		t.Error("Listen over a live socket succeeded")
	}
	// A regular file is not removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := vmkernel.Listen(file, os.Getgid()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
}
