package mgmtd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/plinth/plinth/api"
)

// The audit log: one JSON api.AuditEntry per line in STATE, synced as it
// is written; at maxAuditBytes it is moved to audit.log.1 (one generation
// kept) and started afresh.
const (
	auditFile     = "audit.log"
	maxAuditBytes = 8 << 20
	maxAuditRead  = 10000
)

type auditLog struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openAuditLog(path string, log *slog.Logger) (*auditLog, error) {
	a := &auditLog{path: path, log: log}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *auditLog) open() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	a.f, a.size = f, fi.Size()
	return nil
}

// record appends e. A failure to write is logged loudly but does not
// undo the change that was made.
func (a *auditLog) record(e api.AuditEntry) {
	a.log.Info("mgmtd: audit", "user", e.User, "remote", e.Remote, "action", e.Action, "target", e.Target, "status", e.Status)
	b, _ := json.Marshal(e)
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return
	}
	if a.size+int64(len(b)) > maxAuditBytes {
		a.f.Close()
		a.f = nil
		if err := os.Rename(a.path, a.path+".1"); err != nil {
			a.log.Error("mgmtd: audit log rotation", "err", err)
		}
		if err := a.open(); err != nil {
			a.log.Error("mgmtd: audit log lost", "err", err)
			return
		}
	}
	n, err := a.f.Write(b)
	a.size += int64(n)
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil {
		a.log.Error("mgmtd: writing the audit log", "err", err)
	}
}

func (a *auditLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
}

// last returns up to n entries, newest last.
func (a *auditLog) last(n int) ([]api.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []api.AuditEntry
	for _, p := range []string{a.path + ".1", a.path} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e api.AuditEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				out = append(out, e)
			}
			if len(out) > 2*n { // keep memory bounded while reading
				out = append(out[:0], out[len(out)-n:]...)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	n := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditRead {
			fieldProblem(w, api.FieldProblem{Field: "limit", Message: fmt.Sprintf("%q is not a number from 1 to %d", v, maxAuditRead)})
			return
		}
	}
	out, err := s.audit.last(n)
	if err != nil {
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: "reading the audit log: " + err.Error()})
		return
	}
	if out == nil {
		out = []api.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, out)
}
