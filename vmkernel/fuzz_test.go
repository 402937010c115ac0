package vmkernel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// FuzzRoutes sends arbitrary bodies to every vmkernel route that decodes
// one (the VM spec, disks, power, shutdown): no input gives a 500 or a
// panic, and every error is a problem document. QEMU is never started:
// the fuzzed VM is defined but stopped.
func FuzzRoutes(f *testing.F) {
	base := runnertest.Dir(f, "fz")
	ds := filepath.Join(base, "ds")
	os.MkdirAll(ds, 0o700)
	inv, err := inventory.Open(filepath.Join(base, "vms"))
	if err != nil {
		f.Fatal(err)
	}
	m, err := runner.New(runner.Config{QEMU: "qemu-system-x86_64", Accel: api.AccelTCG,
		Datastores: map[string]string{"ds": ds},
		RunRoot:    filepath.Join(base, "run"), StateRoot: filepath.Join(base, "vm-state")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	srv := vmkernel.New(vmkernel.Config{Host: func() (api.Host, error) { return api.Host{Hostname: "fuzz"}, nil },
		Inventory: inv, Runner: m, Datastores: map[string]string{"ds": ds},
		Power: func(string, string) error { return nil }})
	h := srv.Handler()
	const id = "00000000-0000-4000-8000-000000000001"
	seed := api.VMSpec{ID: id, Name: "vm1", MemoryMiB: 128}
	if err := inv.Create(&seed); err != nil {
		f.Fatal(err)
	}
	var routes []vmkernel.Route
	for _, rt := range srv.Routes() {
		// Uploads are bytes, not JSON; the actions are fuzzed as shutdown,
		// the one that takes a body.
		if (rt.Method == http.MethodPost || rt.Method == http.MethodPut) && !strings.HasSuffix(rt.Path, "/content") {
			routes = append(routes, rt)
		}
	}
	spec, _ := json.Marshal(api.VMSpec{Name: "x", MemoryMiB: 128, Disks: []api.Disk{{Datastore: "ds", Path: "a.qcow2"}}})
	for _, s := range []string{string(spec), `{"name":"y","vcpus":{"sockets":-1}}`, `{"path":"d.qcow2","size_bytes":1048576,"format":"qcow2"}`,
		`{"path":"d.qcow2","size_bytes":1}`, `{"action":"reboot","reason":"r"}`, `{"timeout_seconds":5}`, `{}`, `null`, `[]`, `{"a":`} {
		for i := range routes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		target := strings.NewReplacer("{id}", id, "{name}", "ds", "{action}", api.ActionShutdown).Replace(rt.Path)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, rt.Method, target, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s with %q: 500: %s", rt.Method, target, body, w.Body)
		}
		if w.Code >= 400 {
			var p api.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code {
				t.Fatalf("%s %s: %d answer is not a problem: %s", rt.Method, target, w.Code, w.Body)
			}
		}
	})
}
