package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
