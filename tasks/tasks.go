// Package tasks keeps long work (uploads, disk conversions) with its
// progress, for the API to list and clients to follow: the running tasks
// and, for an hour, the last hundred finished ones. vmkernel keeps the work
// it does itself, mgmtd the uploads it streams; mgmtd lists both.
package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plinth/plinth/api"
)

// Finished tasks are kept this long, and at most this many.
const (
	Keep    = time.Hour
	MaxDone = 100
)

// Task is one piece of long work; its progress is updated without a lock.
type Task struct {
	t    api.Task
	done atomic.Int64
}

// ID is the task's ID.
func (t *Task) ID() string { return t.t.ID }

// Add counts n more bytes done.
func (t *Task) Add(n int64) { t.done.Add(n) }

// SetDone sets the bytes done.
func (t *Task) SetDone(n int64) { t.done.Store(n) }

// Done is the bytes done so far.
func (t *Task) Done() int64 { return t.done.Load() }

// Registry holds the tasks.
type Registry struct {
	now func() time.Time
	mu  sync.Mutex
	all []*Task // oldest first
}

// New makes a Registry; now is the clock (time.Now when nil).
func New(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{now: now}
}

// Start records a running task of kind on target for user, total bytes
// long (0: unknown).
func (r *Registry) Start(kind, target, user string, total int64) *Task {
	b := make([]byte, 8)
	rand.Read(b)
	t := &Task{t: api.Task{ID: hex.EncodeToString(b), Kind: kind, Target: target, User: user,
		State: api.TaskRunning, Total: total, StartedAt: r.now().UTC()}}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked()
	r.all = append(r.all, t)
	return t
}

// SetTotal changes t's total (work whose size is learnt as it goes).
func (r *Registry) SetTotal(t *Task, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.t.Total = total
}

// AddResult records something t made (a new VM's ID...).
func (r *Registry) AddResult(t *Task, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.t.Results = append(t.t.Results, result)
}

// Finish ends t: succeeded when err is nil, else failed with err's message.
func (r *Registry) Finish(t *Task, err error) { r.FinishWith(t, nil, err) }

// FinishWith is Finish with what the task made (kept when it succeeded).
func (r *Registry) FinishWith(t *Task, res *api.TaskResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC()
	t.t.FinishedAt = &now
	t.t.State = api.TaskSucceeded
	if err != nil {
		t.t.State, t.t.Error = api.TaskFailed, err.Error()
	} else if res != nil {
		c := *res
		c.Notes = append([]string(nil), res.Notes...)
		t.t.Result = &c
	}
}

func (r *Registry) sweepLocked() {
	now := r.now()
	done := 0
	for i := len(r.all) - 1; i >= 0; i-- {
		t := r.all[i]
		if t.t.FinishedAt == nil {
			continue
		}
		done++
		if done > MaxDone || now.Sub(*t.t.FinishedAt) > Keep {
			r.all = slices.Delete(r.all, i, i+1)
		}
	}
}

func snapshot(t *Task) api.Task {
	out := t.t
	out.Results = append([]string(nil), t.t.Results...)
	out.Done = t.done.Load()
	return out
}

// List is every task kept, oldest first.
func (r *Registry) List() []api.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked()
	out := make([]api.Task, 0, len(r.all))
	for _, t := range r.all {
		out = append(out, snapshot(t))
	}
	return out
}

// Get is the task with this ID.
func (r *Registry) Get(id string) (api.Task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.all {
		if t.t.ID == id {
			return snapshot(t), true
		}
	}
	return api.Task{}, false
}
