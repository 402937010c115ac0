package supervisor

import (
	"os"
	"sync"
)

// Ring keeps the last lines written to it.
type Ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewRing returns a ring that keeps n lines.
func NewRing(n int) *Ring {
	if n < 1 {
		n = 1
	}
	return &Ring{lines: make([]string, n)}
}

// Add appends a line, dropping the oldest when full.
func (r *Ring) Add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// Last returns the last n lines, oldest first (all kept lines if n <= 0).
func (r *Ring) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(append(all, r.lines[r.next:]...), r.lines[:r.next]...)
	} else {
		all = append(all, r.lines[:r.next]...)
	}
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// rotatingFile appends lines to a file, moving it to PATH.1 when it passes max
// bytes. Errors are dropped: logging must never stop a service.
type rotatingFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

func (w *rotatingFile) WriteLine(l string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return
		}
		st, _ := f.Stat()
		w.f, w.size = f, 0
		if st != nil {
			w.size = st.Size()
		}
	}
	n, _ := w.f.WriteString(l + "\n")
	w.size += int64(n)
	if w.size > w.max {
		w.f.Close()
		w.f = nil
		_ = os.Rename(w.path, w.path+".1")
	}
}
