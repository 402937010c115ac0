package snapshots

import (
	"errors"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestTree(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := api.NewUUID()
	tr, err := st.Load(id)
	if err != nil || len(tr.Entries) != 0 {
		t.Fatalf("empty tree: %+v, %v", tr, err)
	}
	a, err := tr.Add(api.Snapshot{Name: "a"})
	if err != nil || !IsTag(a.ID) || a.Parent != "" {
		t.Fatalf("add a: %+v, %v", a, err)
	}
	if got := tr.API(); len(got.Snapshots) != 0 {
		t.Fatalf("a pending snapshot is shown: %+v", got)
	}
	if _, err := tr.Find("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a pending snapshot is found: %v", err)
	}
	tr.Done(a.ID)
	b, _ := tr.Add(api.Snapshot{Name: "b"})
	tr.Done(b.ID)
	c, _ := tr.Add(api.Snapshot{Name: "c"})
	tr.Done(c.ID)
	if _, err := tr.Add(api.Snapshot{Name: "b"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if b.Parent != a.ID || tr.Depth(c.ID) != 3 || tr.Current != c.ID {
		t.Fatalf("chain: b.Parent %s, depth of c %d, current %s", b.Parent, tr.Depth(c.ID), tr.Current)
	}
	if err := st.Save(id, tr); err != nil {
		t.Fatal(err)
	}
	tr, err = st.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	// Delete the middle one: c now rests on a, the chain is one shorter.
	tr.MarkDeleting(b.ID)
	if got := tr.API(); len(got.Snapshots) != 2 || len(tr.Pending()) != 1 {
		t.Fatalf("while deleting b: %+v, pending %+v", got, tr.Pending())
	}
	tr.Remove(b.ID)
	got, err := tr.Find(c.ID)
	if err != nil || got.Parent != a.ID || tr.Depth(c.ID) != 2 {
		t.Fatalf("after deleting b: c %+v (%v), depth %d", got, err, tr.Depth(c.ID))
	}
	tr.Remove(c.ID)
	if tr.Current != a.ID {
		t.Fatalf("current after deleting it: %s, want its parent", tr.Current)
	}
	tr.Remove(a.ID)
	if err := st.Save(id, tr); err != nil {
		t.Fatal(err)
	}
	if tr, err := st.Load(id); err != nil || len(tr.Entries) != 0 || tr.Current != "" {
		t.Fatalf("emptied: %+v, %v", tr, err)
	}
	for i := range api.MaxSnapshots {
		s, err := tr.Add(api.Snapshot{Name: "s" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
		if err != nil {
			t.Fatal(err)
		}
		tr.Done(s.ID)
	}
	if _, err := tr.Add(api.Snapshot{Name: "one-more"}); !errors.Is(err, ErrFull) {
		t.Fatalf("past the limit: %v", err)
	}
	if _, err := st.Load("../x"); err == nil {
		t.Fatal("a VM ID that is not a UUID was read")
	}
}
