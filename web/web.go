// Package web is the host client, the pages a browser gets at https://HOST/:
// the files that package bundle built from web/src (gzipped, in dist), built
// into mgmtd. The client is a client of the public API and nothing else: it
// logs in with POST /api/v1/sessions, keeps the token in memory only (no
// cookie, so no other page can make the browser use it), and speaks the same
// routes as the CLI.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// CSP keeps the page to its own origin: scripts and styles from mgmtd
// only (xterm.js and noVNC set inline styles), connections to the API and
// its websockets, nothing framed and nothing framing it.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"

// Built says whether this binary carries the client (false when mgmtd was
// compiled without running make web first).
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html.gz")
	return err == nil
}

// Handler serves the client: each built file by its name (content-hashed
// names are cached for a year), and index.html for every other path, so
// that a page's address (/vms/web1) can be reloaded or bookmarked.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		body, err := fs.ReadFile(dist, "dist/"+name+".gz")
		if name == "" || name == "index.html" || err != nil {
			name = "index.html"
			body, err = fs.ReadFile(dist, "dist/index.html.gz")
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		if err != nil {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "This mgmtd was built without its web client (make web builds it); the API is at /api/v1.\n")
			return
		}
		h.Set("Content-Type", contentType(name))
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodGet {
				w.Write(body)
			}
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, "corrupt embedded file", http.StatusInternalServerError)
			return
		}
		if r.Method == http.MethodGet {
			io.Copy(w, zr)
		}
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".woff2":
		return "font/woff2"
	}
	return "application/octet-stream"
}

// Files lists the embedded files with their gzipped sizes.
func Files() map[string]int {
	m := map[string]int{}
	fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".gz") {
			if b, err := fs.ReadFile(dist, p); err == nil {
				m[strings.TrimSuffix(strings.TrimPrefix(p, "dist/"), ".gz")] = len(b)
			}
		}
		return nil
	})
	return m
}
