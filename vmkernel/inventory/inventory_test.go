package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/plinth/plinth/api"
)

func spec(name string) api.VMSpec {
	return api.VMSpec{
		Name:  name,
		Disks: []api.Disk{{Datastore: "ds1", Path: name + "/root.qcow2"}},
		NICs:  []api.NIC{{NAT: true}},
	}
}

func open(t *testing.T, dir string) *Inventory {
	t.Helper()
	inv, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestCRUD(t *testing.T) {
	dir := t.TempDir()
	inv := open(t, dir)
	b, a := spec("bravo"), spec("alpha")
	if err := inv.Create(&b); err != nil {
		t.Fatal(err)
	}
	if !api.IsUUID(b.ID) || b.MemoryMiB != api.DefaultMemMiB || b.NICs[0].MAC == "" {
		t.Errorf("Create did not fill the spec: %+v", b)
	}
	if err := inv.Create(&a); err != nil {
		t.Fatal(err)
	}
	dupName := spec("bravo")
	if err := inv.Create(&dupName); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v", err)
	}
	dupID := spec("charlie")
	dupID.ID = a.ID
	if err := inv.Create(&dupID); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate ID: %v", err)
	}
	bad := spec("bad/name")
	var ve *api.ValidationError
	if err := inv.Create(&bad); !errors.As(err, &ve) {
		t.Errorf("invalid spec: %v", err)
	}
	list := inv.List()
	if len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "bravo" {
		t.Errorf("List = %+v", list)
	}
	if got, err := inv.Get("alpha"); err != nil || got.ID != a.ID {
		t.Errorf("Get by name = %v, %v", got.ID, err)
	}
	if got, err := inv.Get(b.ID); err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("Get by ID = %+v, %v", got, err)
	}
	if _, err := inv.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	// Returned specs are copies.
	got, _ := inv.Get(b.ID)
	got.Disks[0].Path = "changed"
	if again, _ := inv.Get(b.ID); again.Disks[0].Path == "changed" {
		t.Error("Get returned shared state")
	}

	b.MemoryMiB = 2048
	if err := inv.Update(b); err != nil {
		t.Fatal(err)
	}
	rename := b
	rename.Name = "alpha"
	if err := inv.Update(rename); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto existing name: %v", err)
	}
	ghost := spec("ghost")
	ghost.ID = api.NewUUID()
	if err := inv.Update(ghost); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update missing: %v", err)
	}

	re := open(t, dir)
	if got, err := re.Get("bravo"); err != nil || got.MemoryMiB != 2048 || !reflect.DeepEqual(got, b) {
		t.Errorf("after reopen: %+v, %v", got, err)
	}
	if err := re.Delete(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := re.Delete(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if l := open(t, dir).List(); len(l) != 1 || l[0].Name != "bravo" {
		t.Errorf("after delete and reopen: %+v", l)
	}
}

func TestCorruptFilesSkipped(t *testing.T) {
	dir := t.TempDir()
	inv := open(t, dir)
	good := spec("good")
	if err := inv.Create(&good); err != nil {
		t.Fatal(err)
	}
	id := api.NewUUID()
	files := map[string]string{
		"broken.json":                 `{"schema_version":1,"spec":{"na`,
		id + ".json":                  `{"schema_version":99,"spec":{"id":"` + id + `"}}`,
		"wrongname.json":              strings.Replace(read(t, filepath.Join(dir, good.ID+".json")), `"good"`, `"other"`, 1),
		"notes.txt":                   "not a VM",
		".tmp-" + good.ID + "-123456": `{"schema_version":1,"spec":{"id":"` + good.ID + `","name":"hal`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	re := open(t, dir)
	if l := re.List(); len(l) != 1 || !reflect.DeepEqual(l[0], good) {
		t.Errorf("List = %+v", l)
	}
	skipped := map[string]bool{}
	for _, err := range re.Skipped() {
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Fatalf("skipped error %v is not a *FileError", err)
		}
		skipped[fe.Name] = true
	}
	for _, name := range []string{"broken.json", id + ".json", "wrongname.json"} {
		if !skipped[name] {
			t.Errorf("%s not reported in Skipped(): %v", name, re.Skipped())
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("corrupt file %s was removed: %v", name, err)
		}
	}
	if len(skipped) != 3 {
		t.Errorf("Skipped() = %v", re.Skipped())
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-"+good.ID+"-123456")); !os.IsNotExist(err) {
		t.Errorf("stale temp file kept: %v", err)
	}
}

func read(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var errCrash = errors.New("simulated crash")

// crashAt makes inv's next write stop at step, as a dying process would.
func crashAt(inv *Inventory, step string) *bool {
	hit := new(bool)
	inv.step = func(s string) error {
		if s == step {
			*hit = true
			return errCrash
		}
		return nil
	}
	return hit
}

// reopen checks the directory as a restarted vmkernel would see it.
func reopen(t *testing.T, dir string) *Inventory {
	t.Helper()
	inv := open(t, dir)
	if s := inv.Skipped(); len(s) != 0 {
		t.Errorf("after crash, skipped files: %v", s)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") && e.Name() != historyDir {
			t.Errorf("after reopen, stray file %s", e.Name())
		}
	}
	return inv
}

func TestCrashAtEveryStep(t *testing.T) {
	writeSteps := []string{StepCreateTemp, StepHalfWrite, StepWrite, StepFsync, StepClose, StepRename, StepDirFsync}
	renamed := func(step string) bool { return step == StepRename || step == StepDirFsync }
	for _, step := range writeSteps {
		t.Run("update/"+step, func(t *testing.T) {
			dir := t.TempDir()
			inv := open(t, dir)
			old := spec("vm")
			if err := inv.Create(&old); err != nil {
				t.Fatal(err)
			}
			hit := crashAt(inv, step)
			next := old.Clone()
			next.MemoryMiB = 4096
			next.Name = "vm-renamed"
			if err := inv.Update(next); !errors.Is(err, errCrash) || !*hit {
				t.Fatalf("Update = %v, hook hit %v", err, *hit)
			}
			want := old
			if renamed(step) {
				want = next
			}
			list := reopen(t, dir).List()
			if len(list) != 1 || !reflect.DeepEqual(list[0], want) {
				t.Errorf("after crash at %s: %+v, want %+v", step, list, want)
			}
		})
		t.Run("create/"+step, func(t *testing.T) {
			dir := t.TempDir()
			inv := open(t, dir)
			hit := crashAt(inv, step)
			s := spec("new")
			if err := inv.Create(&s); !errors.Is(err, errCrash) || !*hit {
				t.Fatalf("Create = %v, hook hit %v", err, *hit)
			}
			list := reopen(t, dir).List()
			if renamed(step) {
				if len(list) != 1 || list[0].Name != "new" || list[0].Validate() != nil {
					t.Errorf("after crash at %s: %+v", step, list)
				}
			} else if len(list) != 0 {
				t.Errorf("after crash at %s: %+v, want nothing", step, list)
			}
		})
	}
	for _, step := range []string{StepRemove, StepDirFsync} {
		t.Run("delete/"+step, func(t *testing.T) {
			dir := t.TempDir()
			inv := open(t, dir)
			s := spec("doomed")
			if err := inv.Create(&s); err != nil {
				t.Fatal(err)
			}
			crashAt(inv, step)
			if err := inv.Delete(s.ID); !errors.Is(err, errCrash) {
				t.Fatalf("Delete = %v", err)
			}
			if l := reopen(t, dir).List(); len(l) != 0 {
				t.Errorf("after crash at %s: %+v", step, l)
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	inv := open(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := spec(fmt.Sprintf("vm-%02d", i%10)) // half of them collide
			if err := inv.Create(&s); err != nil && !errors.Is(err, ErrExists) {
				errs <- err
				return
			}
			inv.List()
			if _, err := inv.Get(s.Name); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(open(t, dir).List()); n != 10 {
		t.Errorf("%d VMs on disk, want 10", n)
	}
}

// TestHistory keeps every version of a definition with who, when and why;
// an update that changes nothing keeps none; a VM defined before histories
// were kept gets its old definition as version 1; deleting the VM drops it.
func TestHistory(t *testing.T) {
	dir := t.TempDir()
	inv := open(t, dir)
	s := spec("vm")
	if err := inv.CreateBy(&s, Change{User: "root", Reason: "new"}); err != nil {
		t.Fatal(err)
	}
	next := s.Clone()
	next.MemoryMiB = 2048
	if err := inv.UpdateBy(next, Change{User: "root", Reason: "more memory"}); err != nil {
		t.Fatal(err)
	}
	if err := inv.UpdateBy(next, Change{User: "root", Reason: "again"}); err != nil {
		t.Fatal(err)
	}
	h, err := inv.History("vm")
	if err != nil || len(h) != 2 {
		t.Fatalf("history %+v, %v: want 2 versions", h, err)
	}
	if h[0].Version != 1 || h[0].Reason != "new" || h[1].Version != 2 || h[1].Spec.MemoryMiB != 2048 || h[1].User != "root" || h[1].Time.IsZero() {
		t.Fatalf("history %+v", h)
	}
	// A VM whose history was never kept (removed here as if from before).
	os.RemoveAll(inv.historyOf(s.ID))
	last := next.Clone()
	last.MemoryMiB = 1024
	if err := inv.Update(last); err != nil {
		t.Fatal(err)
	}
	h, _ = inv.History(s.ID)
	if len(h) != 2 || h[0].Spec.MemoryMiB != 2048 || h[1].Spec.MemoryMiB != 1024 || h[1].User != "local" {
		t.Fatalf("history of an old VM %+v", h)
	}
	if err := inv.Delete(s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inv.historyOf(s.ID)); !os.IsNotExist(err) {
		t.Fatalf("history left after delete: %v", err)
	}
}
