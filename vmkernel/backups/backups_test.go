package backups

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
)

func TestRecordsChainsRetention(t *testing.T) {
	ds := datastore.Datastore{Name: "ds", Root: t.TempDir()}
	vm := api.NewUUID()
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var all []api.Backup
	add := func(kind, parent string, at time.Duration) api.Backup {
		id := NewID(t0.Add(at))
		b := api.Backup{ID: id, VMID: vm, Kind: kind, Parent: parent, CreatedAt: t0.Add(at), Datastore: "ds", Path: Dir("backups", vm, id)}
		b.Disks = []api.BackupFile{{File: b.Path + "/disk0.qcow2"}}
		if err := os.MkdirAll(filepath.Join(ds.Root, b.Path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := Save(ds, b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
		return b
	}
	f1 := add(api.BackupFull, "", 0)
	i2 := add(api.BackupIncremental, f1.ID, time.Hour)
	i3 := add(api.BackupIncremental, i2.ID, 2*time.Hour)
	f4 := add(api.BackupFull, "", 3*time.Hour)
	i5 := add(api.BackupIncremental, f4.ID, 4*time.Hour)
	// A folder that never got its record, and one whose record lies.
	os.MkdirAll(filepath.Join(ds.Root, Dir("backups", vm, "half")), 0o700)
	liar := i5
	liar.ID, liar.Path = "liar", Dir("backups", vm, "other")
	os.MkdirAll(filepath.Join(ds.Root, Dir("backups", vm, "liar")), 0o700)
	liar.Path = Dir("backups", vm, "liar")
	liar.Disks = []api.BackupFile{{File: "elsewhere/disk0.qcow2"}}
	Save(ds, liar)

	list, err := List(ds, "backups", "")
	if err != nil || len(list) != 5 || list[0].ID != f1.ID || list[4].ID != i5.ID {
		t.Fatalf("list %d, %v", len(list), err)
	}
	chain, err := Chain(list, i3.ID)
	if err != nil || len(chain) != 3 || chain[0].ID != f1.ID || chain[2].ID != i3.ID {
		t.Fatalf("chain of i3: %v, %v", chain, err)
	}
	if got := Expired(list, 0); got != nil {
		t.Fatalf("keep all: %v", got)
	}
	// Keep 3: i5, f4, i3 and what i3 needs (i2, f1): nothing goes.
	if got := Expired(list, 3); len(got) != 0 {
		t.Fatalf("keep 3: %v", got)
	}
	// Keep 2: i5 and f4: the whole first chain goes, newest first.
	got := Expired(list, 2)
	if len(got) != 3 || got[0].ID != i3.ID || got[2].ID != f1.ID {
		t.Fatalf("keep 2: %v", got)
	}
	if err := Forget(ds, i2); err != nil {
		t.Fatal(err)
	}
	list, _ = List(ds, "backups", vm)
	if _, err := Chain(list, i3.ID); !errors.Is(err, ErrBroken) {
		t.Fatalf("chain with a gap: %v", err)
	}
	if _, err := Chain(list, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no such backup: %v", err)
	}
}

func TestDue(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		schedule, last, now string
		due                 bool
	}{
		{"every 6h", "", "2026-12-06T10:00:00Z", true},
		{"every 6h", "2026-12-06T05:00:00Z", "2026-12-06T10:00:00Z", false},
		{"every 6h", "2026-12-06T04:00:00Z", "2026-12-06T10:00:00Z", true},
		{"daily 02:30", "2026-12-05T02:31:00Z", "2026-12-06T02:29:00Z", false},
		{"daily 02:30", "2026-12-05T02:31:00Z", "2026-12-06T02:30:00Z", true},
		{"daily 02:30", "2026-12-06T02:30:05Z", "2026-12-06T23:00:00Z", false},
		{"nonsense", "", "2026-12-06T10:00:00Z", false},
	} {
		var last time.Time
		if c.last != "" {
			last = at(c.last)
		}
		if got := Due(c.schedule, last, at(c.now)); got != c.due {
			t.Errorf("Due(%q, %s, %s) = %v", c.schedule, c.last, c.now, got)
		}
	}
}
