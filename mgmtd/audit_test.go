package mgmtd

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestAuditStrangersFromManyClients: failed logins from thousands of
// addresses over a day are counted, not written line by line: the audit
// log stays within its hourly bound, the change made before them stays,
// and every attempt is accounted for.
func TestAuditStrangersFromManyClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), auditFile)
	a, err := openAuditLog(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a.record(api.AuditEntry{Time: now, User: "root", Remote: "10.0.0.1", Action: "POST /api/v1/vms", Target: "/api/v1/vms", Status: 201})
	const attempts, hours = 50000, 24
	long := strings.Repeat("x", 5000)
	for i := 0; i < attempts; i++ {
		now = now.Add(hours * time.Hour / attempts)
		status := http.StatusUnauthorized
		if i%3 == 0 {
			status = http.StatusTooManyRequests
		}
		a.stranger(api.AuditEntry{Time: now, User: long[:i%5000], Remote: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Action: "POST " + api.MgmtdSessionsPath, Target: api.MgmtdSessionsPath + "?" + long, Status: status, Detail: long})
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(hours+1) * 2 * maxStrangerEntries * maxEntryBytes; fi.Size() > limit {
		t.Errorf("the audit log is %d bytes after %d hours, over the bound %d", fi.Size(), hours, limit)
	}
	entries, err := a.last(maxAuditRead)
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Status != 201 || entries[0].Action != "POST /api/v1/vms" {
		t.Errorf("the first entry is %+v, want the change", entries[0])
	}
	counted := 0
	for _, e := range entries[1:] {
		counted += max(e.Count, 1)
		if len(e.User) > maxUserField || len(e.Target) > maxTargetField || len(e.Detail) > maxDetailField {
			t.Fatalf("an unbounded field: %d %d %d bytes", len(e.User), len(e.Target), len(e.Detail))
		}
	}
	if counted != attempts {
		t.Errorf("the entries tell of %d attempts, want %d (%d entries)", counted, attempts, len(entries)-1)
	}
	a.close()
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n > (hours+1)*2*maxStrangerEntries+1 {
		t.Errorf("%d lines written, more than %d", n, (hours+1)*2*maxStrangerEntries+1)
	}
}
