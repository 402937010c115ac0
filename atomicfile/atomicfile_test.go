package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/plinth/plinth/internal/testenv"
)

func TestWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	st, _ := os.Stat(p)
	if err != nil || string(b) != "two" || st.Mode().Perm() != 0o640 {
		t.Fatalf("read %q %v, mode %v", b, err, st.Mode())
	}
	if err := Write(filepath.Join(t.TempDir(), "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// A crash after each step leaves the old or the new content, and at most a
// temp file that IsTemp recognises.
func TestCrashAtEveryStep(t *testing.T) {
	crash := errors.New("crash")
	steps := []string{StepCreateTemp, StepHalfWrite, StepWrite, StepFsync, StepClose, StepRename, StepDirFsync}
	for i, at := range steps {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		if err := Write(p, []byte("old content"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := WriteHooked(p, []byte("new content"), 0o600, func(s string) error {
			if s == at {
				return crash
			}
			return nil
		})
		if !errors.Is(err, crash) {
			t.Fatalf("%s: err = %v", at, err)
		}
		b, _ := os.ReadFile(p)
		want := "old content"
		if i >= 5 { // renamed
			want = "new content"
		}
		if string(b) != want {
			t.Errorf("crash after %s: content %q, want %q", at, b, want)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != "f" && !IsTemp(e.Name()) {
				t.Errorf("crash after %s left %q", at, e.Name())
			}
		}
	}
}

// TestWriteOwned: the file is the other user's before it appears under its
// name, so nothing changes an owner by name afterwards: a symbolic link put
// at the path meanwhile (the other user owns the directory) is replaced, and
// the file it points to keeps its owner.
func TestWriteOwned(t *testing.T) {
	testenv.Root(t, "chown to another user")
	const uid, gid = 4242, 4243
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "passwd.json")
	var atRename *syscall.Stat_t
	err := write(p, []byte("new"), 0o600, &owner{uid, gid}, func(step string) error {
		if step != StepRename {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		atRename = &st
		// The other user swaps in a link now, as they could between a
		// rename and a chown by name.
		os.Remove(p)
		return os.Symlink(victim, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if atRename == nil || atRename.Uid != uid || atRename.Gid != gid {
		t.Fatalf("the file appeared owned by %+v, want %d:%d", atRename, uid, gid)
	}
	var vs syscall.Stat_t
	if err := syscall.Stat(victim, &vs); err != nil || vs.Uid != 0 {
		t.Fatalf("the link's target changed owner: uid %d, %v", vs.Uid, err)
	}
	// Without hooks: in place, with its owner and mode.
	if err := WriteOwned(p, []byte("again"), 0o640, uid, gid); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil || st.Uid != uid || st.Gid != gid || st.Mode&0o777 != 0o640 || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Fatalf("WriteOwned: %+v, %v", st, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "again" {
		t.Fatalf("content %q", b)
	}
}
