package vmkernel

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
)

// Bounds of uploads; variables so tests could change them.
var (
	// uploadMargin is the free space an upload must leave on its datastore.
	uploadMargin int64 = 16 << 20
	// uploadIdleTimeout: an upload whose body sends nothing for this long
	// is aborted (the server's overall read timeout does not apply).
	uploadIdleTimeout = time.Minute
)

// errNoSpace: the datastore has not room for the upload (507).
var errNoSpace = errors.New("not enough free space on the datastore")

// errLengthRequired: an upload without Content-Length (411).
var errLengthRequired = errors.New("the Content-Length header is required")

// uploadFile serves PUT /v1/datastores/{name}/content?path=REL[&overwrite=true]:
// the body, streamed, becomes the file (see datastore.WriteFile).
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	q := r.URL.Query()
	rel := q.Get("path")
	overwrite := false
	if v := q.Get("overwrite"); v != "" {
		if overwrite, err = strconv.ParseBool(v); err != nil {
			s.problem(w, fmt.Errorf("%w: overwrite=%q is not a boolean", errBadRequest, v))
			return
		}
	}
	if r.ContentLength < 0 {
		s.problem(w, fmt.Errorf("%w: an upload must say its size", errLengthRequired))
		return
	}
	if _, err := ds.Resolve(rel); err != nil {
		s.problem(w, err)
		return
	}
	res, err := s.space.reserve(ds, r.ContentLength, uploadMargin)
	if err != nil {
		s.problem(w, err)
		return
	}
	defer res.release()
	rc := http.NewResponseController(w)
	body := &uploadBody{r: r.Body, extend: func() { rc.SetReadDeadline(time.Now().Add(uploadIdleTimeout)) }, wrote: res.wrote}
	entry, err := ds.WriteFile(rel, body, r.ContentLength, overwrite, s.fileUsers(ds, true))
	switch {
	case err == nil:
	case body.err != nil && !errors.Is(body.err, io.EOF):
		s.cfg.Log.Warn("vmkernel: upload aborted", "datastore", ds.Name, "path", rel, "err", err)
		s.problem(w, fmt.Errorf("%w: reading the upload: %w", errBadRequest, err))
		return
	case errors.Is(err, datastore.ErrShortBody):
		s.problem(w, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	case errors.Is(err, syscall.ENOSPC):
		s.problem(w, fmt.Errorf("%w: %w", errNoSpace, err))
		return
	default:
		s.problem(w, pathProblem(err))
		return
	}
	s.cfg.Log.Info("vmkernel: file uploaded", "datastore", ds.Name, "path", entry.Path, "size", entry.SizeBytes, "overwrite", overwrite)
	w.Header().Set("Location", r.URL.Path+"?"+url.Values{"path": {entry.Path}}.Encode())
	writeJSON(w, http.StatusCreated, entry)
}

// uploadBody reads an upload, extending the read deadline before each read
// and remembering the read error (the client's, not the disk's).
type uploadBody struct {
	r      io.Reader
	extend func()
	wrote  func(n int64) // bytes read, about to be written
	err    error
}

func (b *uploadBody) Read(p []byte) (int, error) {
	b.extend()
	n, err := b.r.Read(p)
	b.wrote(int64(n))
	if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

// pathProblem makes a datastore.ErrInvalid (a directory where a file is
// wanted) a 422 naming the path.
func pathProblem(err error) error {
	if errors.Is(err, datastore.ErrInvalid) {
		return &api.ValidationError{Problems: []api.FieldProblem{{Field: "path", Message: err.Error()}}}
	}
	return refusedProblem("path", err)
}

// refusedProblem makes a refused image (datastore.ErrRefused) a 422 naming
// field, with the reason (which says which file the image names).
func refusedProblem(field string, err error) error {
	if errors.Is(err, datastore.ErrRefused) {
		return &api.ValidationError{Subject: "image", Problems: []api.FieldProblem{{Field: field, Message: err.Error()}}}
	}
	return err
}

// downloadFile serves GET /v1/datastores/{name}/content?path=REL: the file,
// with Range support.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	rel := r.URL.Query().Get("path")
	f, fi, err := ds.Open(rel)
	if err != nil {
		s.problem(w, pathProblem(err))
		return
	}
	defer f.Close()
	// A large file takes longer than the server's timeouts allow.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// ServeContent sets Content-Length (of the whole file or the range).
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}
