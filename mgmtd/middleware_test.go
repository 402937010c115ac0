package mgmtd

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestLimitBody(t *testing.T) {
	var readErr error
	h := limitBody(10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	}))
	// Declared too large: refused before the handler.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 11))))
	if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Content-Type") != api.ProblemContentType {
		t.Errorf("declared oversize: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Undeclared (chunked) too large: reading fails.
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 11))))
	req.ContentLength = -1
	h.ServeHTTP(httptest.NewRecorder(), req)
	if readErr == nil {
		t.Error("reading past the limit succeeded")
	}
	// Small enough: fine.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("ok")))
	if readErr != nil {
		t.Errorf("small body: %v", readErr)
	}
}

func TestRecoverPanics(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	h := logRequests(log, recoverPanics(log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	var p api.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 500 || p.Status != 500 {
		t.Errorf("panic answer: %d %q %v", w.Code, w.Body, err)
	}
	if !strings.Contains(logged.String(), "panic=boom") || !strings.Contains(logged.String(), "status=500") {
		t.Errorf("log: %s", logged.String())
	}
}
