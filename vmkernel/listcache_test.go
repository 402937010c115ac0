package vmkernel_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestVMListCache: the cached list follows every change of the inventory,
// answers gzip and 304 when asked, and says the same as the plain answer.
func TestVMListCache(t *testing.T) {
	rig := startVMs(t)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", rig.sock)
		}}}
	get := func(hdr map[string]string) (*http.Response, []api.VM) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://vmkernel"+api.VMKernelVMsPath, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		var vms []api.VM
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(body).Decode(&vms); err != nil {
				t.Fatal(err)
			}
		}
		return resp, vms
	}
	ctx := context.Background()
	resp, vms := get(nil)
	etag0 := resp.Header.Get("ETag")
	if len(vms) != 0 || etag0 == "" {
		t.Fatalf("empty list: %v %q", vms, etag0)
	}
	vm, err := rig.c.CreateVM(ctx, api.VMSpec{Name: "a", MemoryMiB: 128})
	if err != nil {
		t.Fatal(err)
	}
	resp, vms = get(map[string]string{"Accept-Encoding": "gzip"})
	etag1 := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Encoding") != "gzip" || len(vms) != 1 || vms[0].Spec.Name != "a" || etag1 == etag0 {
		t.Fatalf("after create: %q %v %q", resp.Header.Get("Content-Encoding"), vms, etag1)
	}
	if resp, _ := get(map[string]string{"If-None-Match": etag1}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match of the current list: %d", resp.StatusCode)
	}
	vm.Spec.MemoryMiB = 256
	if _, err := rig.c.UpdateVM(ctx, vm.Spec); err != nil {
		t.Fatal(err)
	}
	resp, vms = get(map[string]string{"If-None-Match": etag1})
	if resp.StatusCode != http.StatusOK || len(vms) != 1 || vms[0].Spec.MemoryMiB != 256 {
		t.Fatalf("after update: %d %v", resp.StatusCode, vms)
	}
	if err := rig.c.DeleteVM(ctx, vm.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, vms = get(nil); len(vms) != 0 {
		t.Fatalf("after delete: %v", vms)
	}
}
