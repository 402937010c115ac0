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
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
)

// The audit log: one JSON api.AuditEntry per line in STATE, synced as it
// is written; at maxAuditBytes it is moved to audit.log.1 (one generation
// kept) and started afresh.
//
// What strangers send (failed and throttled logins) must not be able to
// rotate real changes away, so it is not written line by line: the first
// outcome of a kind from a client is written, the ones alike that follow
// within aggregateWindow are counted and written as one entry with their
// count when the window has passed (or mgmtd stops); and at most
// maxStrangerEntries such lines are written an hour, the rest folded into
// one entry for all clients ("*"). Every field is bounded. So a flood
// writes at most about 2 * maxStrangerEntries lines an hour (the first
// lines and their counts) of at most maxEntryBytes: a change stays in the
// two generations for at least maxAuditBytes / (2 * maxStrangerEntries *
// maxEntryBytes) = 43 hours of the worst flood, and for weeks of a flood
// of logins (whose lines are a third of that size).
const (
	auditFile          = "audit.log"
	maxAuditBytes      = 8 << 20
	maxAuditRead       = 10000
	aggregateWindow    = 10 * time.Minute
	maxStrangerEntries = 60
	maxEntryBytes      = 1600
)

// Bounds of an entry's fields, in bytes.
const (
	maxUserField   = 64
	maxRemoteField = 64
	maxActionField = 160
	maxTargetField = 512
	maxDetailField = 512
)

type auditLog struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
	// pending counts strangers' outcomes alike since their last line, by
	// client and status.
	pending map[string]*aggregate
	// hour and hourLines limit the strangers' lines written an hour.
	hour      time.Time
	hourLines int
}

type aggregate struct {
	entry       api.AuditEntry // as first written; Time is when
	count       int            // alike since, not yet written
	first, last time.Time
}

func openAuditLog(path string, log *slog.Logger) (*auditLog, error) {
	a := &auditLog{path: path, log: log, pending: map[string]*aggregate{}}
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

// clip bounds s to n bytes, cut at a character's start, marked with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func bounded(e api.AuditEntry) api.AuditEntry {
	e.User = clip(e.User, maxUserField)
	e.Remote = clip(e.Remote, maxRemoteField)
	e.Action = clip(e.Action, maxActionField)
	e.Target = clip(e.Target, maxTargetField)
	e.Detail = clip(e.Detail, maxDetailField)
	return e
}

// record appends e: a change, or a login that succeeded. A failure to
// write is logged loudly but does not undo the change that was made.
func (a *auditLog) record(e api.AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked(e.Time, false)
	a.writeLocked(bounded(e))
}

// stranger records what an unauthenticated client's request came to
// (a failed, throttled or premature login): written when it is the first
// alike from its client in aggregateWindow, else counted.
func (a *auditLog) stranger(e api.AuditEntry) {
	e = bounded(e)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := e.Time
	a.flushLocked(now, false)
	key := fmt.Sprintf("%s %d", auth.ClientKey(e.Remote), e.Status)
	if g, ok := a.pending[key]; ok {
		g.add(e, now)
		return
	}
	if !now.Before(a.hour.Add(time.Hour)) {
		a.hour, a.hourLines = now, 0
	}
	if a.hourLines >= maxStrangerEntries {
		// Too many clients failing this hour: one entry for them all.
		key = fmt.Sprintf("* %d", e.Status)
		if g, ok := a.pending[key]; ok {
			g.add(e, now)
			return
		}
		e.Remote, e.User = "*", "*"
		e.Detail = clip("from many clients: "+e.Detail, maxDetailField)
		g := &aggregate{entry: e}
		g.add(e, now)
		a.pending[key] = g
		return
	}
	a.hourLines++
	a.pending[key] = &aggregate{entry: e}
	a.writeLocked(e)
}

func (g *aggregate) add(e api.AuditEntry, now time.Time) {
	if g.count == 0 {
		g.first = now
	}
	g.count++
	g.last = now
	if e.User != g.entry.User && g.entry.User != "*" {
		g.entry.User = "*" // several user names
	}
}

// summary is the entry that stands for the outcomes counted.
func (g *aggregate) summary() api.AuditEntry {
	e := g.entry
	first := g.first.UTC()
	e.Time, e.First, e.Count = g.last.UTC(), &first, g.count
	return e
}

// flushLocked writes the counts of the windows that have passed (all of
// them when all).
func (a *auditLog) flushLocked(now time.Time, all bool) {
	for key, g := range a.pending {
		if !all && now.Sub(g.entry.Time) < aggregateWindow {
			continue
		}
		if g.count > 0 {
			a.writeLocked(g.summary())
			a.hourLines++
		}
		delete(a.pending, key)
	}
}

func (a *auditLog) writeLocked(e api.AuditEntry) {
	args := []any{"user", e.User, "remote", e.Remote, "action", e.Action, "target", e.Target, "status", e.Status}
	if e.Count > 1 {
		args = append(args, "count", e.Count)
	}
	a.log.Info("mgmtd: audit", args...)
	b, _ := json.Marshal(e)
	b = append(b, '\n')
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
	a.flushLocked(time.Time{}, true)
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
	// Counts not yet written are shown as they stand.
	for _, g := range a.pending {
		if g.count > 0 {
			out = append(out, g.summary())
		}
	}
	slices.SortStableFunc(out, func(x, y api.AuditEntry) int { return x.Time.Compare(y.Time) })
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
