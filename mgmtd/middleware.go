package mgmtd

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/plinth/plinth/api"
)

// MaxBodyBytes bounds request bodies (routes that take uploads will get their
// own, larger limit).
const MaxBodyBytes = 1 << 20

// limitBody caps every request body at n bytes; reading past it fails.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			writeProblem(w, api.Problem{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("request body is %d bytes, the limit is %d", r.ContentLength, n)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a logged 500 problem, so one bad
// request cannot take the API down.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("mgmtd: handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: "internal error"})
		}()
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	// keepProblem keeps the start of an error answer, for problemDetail.
	keepProblem bool
	problem     []byte
}

// problemDetail is the detail of the problem answered, if any.
func (s *statusWriter) problemDetail() string {
	if s.status < 400 || len(s.problem) == 0 {
		return ""
	}
	var p api.Problem
	if json.Unmarshal(s.problem, &p) != nil {
		return ""
	}
	return p.Detail
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 { // 1xx answers (100 Continue) come before the real one
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.keepProblem && s.status >= 400 && len(s.problem) < 4096 {
		s.problem = append(s.problem, b[:min(len(b), 4096-len(s.problem))]...)
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per request.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		log.Info("mgmtd: request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
