package mgmtd

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plinth/plinth/api"
)

// Finished tasks are kept this long, and at most this many.
const (
	keepTasks      = time.Hour
	maxDoneTasks   = 100
	uploadIdle     = 2 * time.Minute
	uploadHeader   = "X-Plinth-Task"
	taskKindUpload = "upload"
)

// task is one piece of long work; done is updated without the lock.
type task struct {
	api.Task
	done atomic.Int64
}

type tasks struct {
	now func() time.Time
	mu  sync.Mutex
	all []*task // oldest first
}

func newTasks(now func() time.Time) *tasks { return &tasks{now: now} }

func (ts *tasks) start(kind, target, user string, total int64) *task {
	b := make([]byte, 8)
	rand.Read(b)
	t := &task{Task: api.Task{ID: hex.EncodeToString(b), Kind: kind, Target: target, User: user,
		State: api.TaskRunning, Total: total, StartedAt: ts.now().UTC()}}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.sweepLocked()
	ts.all = append(ts.all, t)
	return t
}

func (ts *tasks) finish(t *task, err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now().UTC()
	t.FinishedAt = &now
	t.State = api.TaskSucceeded
	if err != nil {
		t.State, t.Error = api.TaskFailed, err.Error()
	}
}

func (ts *tasks) sweepLocked() {
	now := ts.now()
	done := 0
	for i := len(ts.all) - 1; i >= 0; i-- {
		t := ts.all[i]
		if t.FinishedAt == nil {
			continue
		}
		done++
		if done > maxDoneTasks || now.Sub(*t.FinishedAt) > keepTasks {
			ts.all = slices.Delete(ts.all, i, i+1)
		}
	}
}

func (ts *tasks) snapshot(t *task) api.Task {
	out := t.Task
	out.Done = t.done.Load()
	return out
}

func (ts *tasks) list() []api.Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.sweepLocked()
	out := make([]api.Task, 0, len(ts.all))
	for _, t := range ts.all {
		out = append(out, ts.snapshot(t))
	}
	return out
}

func (ts *tasks) get(id string) (api.Task, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.all {
		if t.ID == id {
			return ts.snapshot(t), true
		}
	}
	return api.Task{}, false
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.tasks.list())
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tasks.get(pathVar(r, "id"))
	if !ok {
		writeProblem(w, api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("no task %q (finished tasks are kept for %s)", pathVar(r, "id"), keepTasks)})
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// progressReader counts what is read into a task and keeps the
// connection's read deadline moving while bytes arrive, so a stalled
// upload ends but a slow, steady one does not.
type progressReader struct {
	r    io.Reader
	t    *task
	rc   *http.ResponseController
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if now := time.Now(); now.Sub(p.last) > time.Second {
		p.last = now
		p.rc.SetReadDeadline(now.Add(uploadIdle))
	}
	n, err := p.r.Read(b)
	p.t.done.Add(int64(n))
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
	t := s.tasks.start(taskKindUpload, pathVar(r, "name")+":"+rel, principalOf(r).User, r.ContentLength)
	w.Header().Set(uploadHeader, t.ID)
	r.Body = io.NopCloser(&progressReader{r: r.Body, t: t, rc: http.NewResponseController(w)})
	sw := &statusWriter{ResponseWriter: w, keepProblem: true}
	s.proxy.ServeHTTP(sw, r)
	var err error
	switch {
	case sw.status == 0:
		err = fmt.Errorf("the upload was cut off after %d of %d bytes", t.done.Load(), t.Total)
	case sw.status/100 != 2:
		err = fmt.Errorf("%d %s: %s", sw.status, http.StatusText(sw.status), sw.problemDetail())
	}
	s.tasks.finish(t, err)
}
