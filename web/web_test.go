package web

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, path string, gz bool) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if gz {
		r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w.Result()
}

// The client is built into this binary (make web, or the image build);
// every page path gets index.html, files their own bytes, with the headers
// that keep the page to its origin.
func TestServesTheBuiltClient(t *testing.T) {
	if !Built() {
		t.Fatal("the web client is not built into package web: run `make web` (go run ./web/cmd/plinth-webbuild) first")
	}
	files := Files()
	var js string
	total := 0
	for name, n := range files {
		total += n
		if strings.HasPrefix(name, "app-") && strings.HasSuffix(name, ".js") {
			js = name
		}
	}
	if js == "" {
		t.Fatalf("no app-*.js among %v", files)
	}
	if total > 500<<10 {
		t.Errorf("the client is %d bytes gzipped, over 500 KiB", total)
	}
	for _, p := range []string{"/", "/vms/web1", "/storage/ds1/iso"} {
		res := get(t, p, true)
		if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: %d %v", p, res.StatusCode, res.Header)
		}
		if !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: security headers %v", p, res.Header)
		}
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		if !strings.Contains(string(b), `src="/`+js+`"`) {
			t.Errorf("GET %s: index.html does not load %s:\n%s", p, js, b)
		}
	}
	// A client without gzip gets the plain bytes.
	res := get(t, "/"+js, false)
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "" || len(b) < files[js] ||
		!strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET /%s without gzip: %d, %d bytes, %v", js, res.StatusCode, len(b), res.Header)
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", w.Code)
	}
}
