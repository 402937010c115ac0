package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTokenAndTLSConfig(t *testing.T) {
	var auth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != api.MgmtdHostPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"hostname":"h1","cpu_count":2}`))
	}))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, err := client.New(srv.URL+"/", client.WithTLSConfig(&tls.Config{RootCAs: pool}), client.WithToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Host(deadline(t))
	if err != nil || h.Hostname != "h1" || h.CPUCount != 2 {
		t.Fatalf("Host = %+v, %v", h, err)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", auth)
	}
	// Pinning the test server's own certificate works too.
	fp := client.Fingerprint(srv.Certificate().Raw)
	c, _ = client.New(srv.URL, client.WithPinnedFingerprint(fp))
	if _, err := c.Host(deadline(t)); err != nil {
		t.Errorf("pinned: %v", err)
	}
	c, _ = client.New(srv.URL, client.WithInsecureSkipVerify())
	if _, err := c.Host(deadline(t)); err != nil {
		t.Errorf("insecure: %v", err)
	}
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.MgmtdHostPath:
			w.Header().Set("Content-Type", api.ProblemContentType)
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"title":"Bad Request","status":400,"detail":"bad name","field":"name"}`))
		default:
			http.Error(w, "plain failure", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Host(deadline(t))
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Problem.Field != "name" ||
		err.Error() != "400 Bad Request: bad name (field name)" {
		t.Errorf("problem error = %v", err)
	}
	_, err = c.Health(deadline(t))
	if !errors.As(err, &e) || e.Status != 500 || !strings.Contains(e.Problem.Detail, "plain failure") {
		t.Errorf("plain error = %#v", err)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "host:443"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	if _, err := client.New("https://x", client.WithPinnedFingerprint("AB:CD")); err == nil {
		t.Error("short fingerprint accepted")
	}
}

func TestFingerprintFormat(t *testing.T) {
	fp := client.Fingerprint([]byte("x"))
	if len(fp) != 95 || strings.Count(fp, ":") != 31 || fp != strings.ToUpper(fp) {
		t.Errorf("Fingerprint = %q", fp)
	}
}
