package mgmtd

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/tasks"
)

const (
	uploadIdle     = 2 * time.Minute
	uploadHeader   = "X-Plinth-Task"
	taskKindUpload = "upload"
)

// listTasks lists mgmtd's own tasks (uploads) and vmkernel's (disk work).
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	out := s.tasks.List()
	vt, err := s.vmk.ListTasks(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	out = append(out, vt...)
	slices.SortStableFunc(out, func(a, b api.Task) int { return a.StartedAt.Compare(b.StartedAt) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.tasks.Get(pathVar(r, "id")); ok {
		writeJSON(w, http.StatusOK, t)
		return
	}
	s.forward(w, r) // vmkernel's, or its 404
}

// progressReader counts what is read into a task and keeps the
// connection's read deadline moving while bytes arrive, so a stalled
// upload ends but a slow, steady one does not.
type progressReader struct {
	r    io.Reader
	t    *tasks.Task
	rc   *http.ResponseController
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if now := time.Now(); now.Sub(p.last) > time.Second {
		p.last = now
		p.rc.SetReadDeadline(now.Add(uploadIdle))
	}
	n, err := p.r.Read(b)
	p.t.Add(int64(n))
	return n, err
}

// upload streams a file to a datastore through vmkernel as a task.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	rel := r.URL.Query().Get("path")
	if rel == "" {
		fieldProblem(w, api.FieldProblem{Field: "path", Message: "is empty: say where in the datastore the file goes"})
		return
	}
	if r.ContentLength < 0 {
		writeProblem(w, api.Problem{Status: http.StatusLengthRequired, Detail: "an upload needs a Content-Length header, so space can be checked before it starts"})
		return
	}
	t := s.tasks.Start(taskKindUpload, pathVar(r, "name")+":"+rel, principalOf(r).User, r.ContentLength)
	w.Header().Set(uploadHeader, t.ID())
	r.Body = io.NopCloser(&progressReader{r: r.Body, t: t, rc: http.NewResponseController(w)})
	// The answer (a small JSON body) is held until the task is finished, so
	// a client that lists the tasks after it sees the upload's outcome (the
	// proxy flushes each write at once, for the event streams).
	sw := &statusWriter{ResponseWriter: heldFlush{w}, keepProblem: true}
	s.proxy.ServeHTTP(sw, r)
	var err error
	switch {
	case sw.status == 0:
		err = fmt.Errorf("the upload was cut off after %d of %d bytes", t.Done(), r.ContentLength)
	case sw.status/100 != 2:
		err = fmt.Errorf("%d %s: %s", sw.status, http.StatusText(sw.status), sw.problemDetail())
	}
	s.tasks.Finish(t, err)
}

// heldFlush is a ResponseWriter whose flushes do nothing: what is written
// stays in the server's buffer until the handler returns (or the buffer
// fills). Deadlines and the rest still reach w through Unwrap.
type heldFlush struct{ http.ResponseWriter }

func (heldFlush) FlushError() error             { return nil }
func (h heldFlush) Unwrap() http.ResponseWriter { return h.ResponseWriter }
