package mgmtd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// requestTypes are the bodies mgmtd's own routes decode.
var requestTypes = []func() any{
	func() any { return new(api.LoginRequest) },
	func() any { return new(api.TokenRequest) },
	func() any { return new(api.PowerRequest) },
	func() any { return new(api.CertificateRequest) },
	func() any { return new(api.ShutdownRequest) },
	func() any { return new(api.TicketRequest) },
}

// FuzzDecodeJSON: the decoder never panics, and what it accepts encodes
// and decodes back to the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"user":"root","password":"x"}`, `{"name":"ci","expires_in_seconds":60}`,
		`{"action":"reboot","reason":"r","confirm":"h"}`, `{"certificate_pem":"","key_pem":""}`, `{}`, `[]`, `{"a":1}`, `{"user":1}`, `{} {}`, ``} {
		for i := range requestTypes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		mk := requestTypes[int(kind)%len(requestTypes)]
		v := mk()
		if err := decodeJSON(bytes.NewReader(data), v); err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w := mk()
		if err := decodeJSON(bytes.NewReader(again), w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %s: %v %+v != %+v", again, err, v, w)
		}
	})
}

// FuzzRoutes sends arbitrary bodies and queries to every route that takes
// input, mgmtd's own and those it forwards, with a real vmkernel behind it:
// no input gives a 500 or a panic, and every error is a problem document.
func FuzzRoutes(f *testing.F) {
	dir := f.TempDir()
	if err := auth.SetPassword(dir, api.RootUser, "Plinth-test-1"); err != nil {
		f.Fatal(err)
	}
	vmk := vmkerneltest.Start(f, vmkerneltest.Options{Datastores: []string{"ds1"}})
	s, err := New(Config{StateDir: dir, VMKernelSocket: vmk.Socket})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.audit.close)
	h := s.Handler()
	epoch, err := auth.Login(dir, api.RootUser, "Plinth-test-1")
	if err != nil {
		f.Fatal(err)
	}
	token := s.tokens.NewSession(api.RootUser, epoch).Token
	vm, err := vmk.Client.CreateVM(context.Background(), api.VMSpec{Name: "vm1", MemoryMiB: 128})
	if err != nil {
		f.Fatal(err)
	}
	var routes []Route
	for _, rt := range s.Routes() {
		// Not the power route: a valid request would reach the host's
		// power hook, which the rig does not have (501) but a fuzzer
		// should not lean on.
		if (rt.Request != nil || rt.Query != nil) && rt.Handler != nil && !rt.RawBody && rt.Path != api.MgmtdHostPowerPath {
			routes = append(routes, rt)
		}
	}
	f.Add(uint8(0), []byte(`{"user":"root","password":"wrong"}`), "")
	f.Add(uint8(1), []byte(`{"name":"x"}`), "limit=5")
	f.Add(uint8(2), []byte(`{"certificate_pem":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----","key_pem":"x"}`), "state=running&name=a*")
	f.Add(uint8(3), []byte(`{"path":"/api/v1/vms/vm1/console/ws"}`), "ticket=plinth_k_x")
	f.Add(uint8(4), []byte(`{"name":"web","memory_mib":128}`), "path=a/b.iso&disks=true")
	f.Fuzz(func(t *testing.T, which uint8, body []byte, query string) {
		rt := routes[int(which)%len(routes)]
		target := strings.NewReplacer("{id}", vm.Spec.ID, "{name}", "ds1").Replace(rt.Path)
		if q, err := url.ParseQuery(query); err == nil {
			target += "?" + q.Encode()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, rt.Method, target, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusInternalServerError || w.Code == http.StatusBadGateway {
			t.Fatalf("%s %s with %q: %d: %s", rt.Method, target, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var p api.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code ||
				w.Header().Get("Content-Type") != api.ProblemContentType {
				t.Fatalf("%s %s: %d answer is not a problem: %s", rt.Method, target, w.Code, w.Body)
			}
		}
	})
}
