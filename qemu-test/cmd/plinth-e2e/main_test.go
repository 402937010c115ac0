package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	qemutest "github.com/plinth/plinth/qemu-test"
)

// fakePackage writes a module of its own with one test package: TestLost
// fails with the harness's triple-fault line on its first lostRuns runs
// (counted in a file), TestOther fails plainly when other is set, and
// TestFine passes.
func fakePackage(t *testing.T, lostRuns int, other bool) (dir, count string) {
	t.Helper()
	dir = t.TempDir()
	count = filepath.Join(dir, "runs")
	src := fmt.Sprintf(`package fake

import (
	"os"
	"strings"
	"testing"
)

func TestLost(t *testing.T) {
	b, _ := os.ReadFile(%q)
	n := strings.Count(string(b), "x")
	os.WriteFile(%q, append(b, 'x'), 0o644)
	if n < %d {
		t.Logf("%%s the appliance's CPU triple-faulted", %q)
		t.Fatal("connection refused")
	}
}

func TestOther(t *testing.T) {
	if %v {
		t.Fatal("a failure of its own")
	}
}

func TestFine(t *testing.T) {}
`, count, count, lostRuns, qemutest.RigLostGuest, other)
	for name, text := range map[string]string{"go.mod": "module fake\n\ngo 1.22\n", "fake_test.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, count
}

func runIn(t *testing.T, dir string) (string, error) {
	t.Helper()
	t.Chdir(dir)
	var out strings.Builder
	err := run([]string{"-timeout", "2m", "-reruns", "2", "-rerun-timeout", "1m", "-run", "^Test", "."}, &out)
	return out.String(), err
}

func runs(t *testing.T, count string) int {
	b, _ := os.ReadFile(count)
	return len(b)
}

func TestRerunsOnlyTheRigsTripleFault(t *testing.T) {
	// Lost twice: run again, alone, twice, and passed.
	dir, count := fakePackage(t, 2, false)
	out, err := runIn(t, dir)
	if err != nil {
		t.Fatalf("lost twice to the rig: %v\n%s", err, out)
	}
	if n := runs(t, count); n != 3 {
		t.Errorf("TestLost ran %d times, want 3", n)
	}
	for _, want := range []string{"=== RUN   TestFine", "--- FAIL: TestLost", "running it again (run 2)", "running it again (run 3)", "passed; the rig lost the appliance 2 times on the way: TestLost, TestLost"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "=== RUN   TestFine") != 1 {
		t.Errorf("the runs again were not of TestLost alone:\n%s", out)
	}

	// Lost three times: fails.
	dir, count = fakePackage(t, 3, false)
	if out, err := runIn(t, dir); err == nil || !strings.Contains(err.Error(), "the rig lost the appliance 3 times in a row in TestLost") {
		t.Errorf("lost three times: %v\n%s", err, out)
	}
	if n := runs(t, count); n != 3 {
		t.Errorf("TestLost ran %d times, want 3", n)
	}

	// A failure of another kind beside it: no run again.
	dir, count = fakePackage(t, 1, true)
	if out, err := runIn(t, dir); err == nil || !strings.Contains(err.Error(), "failed: TestLost, TestOther") {
		t.Errorf("with another failure: %v\n%s", err, out)
	}
	if n := runs(t, count); n != 1 {
		t.Errorf("TestLost ran %d times, want 1", n)
	}

	// Nothing lost: one run.
	dir, count = fakePackage(t, 0, false)
	if out, err := runIn(t, dir); err != nil || strings.Contains(out, "again") {
		t.Errorf("all passing: %v\n%s", err, out)
	}
	if n := runs(t, count); n != 1 {
		t.Errorf("TestLost ran %d times, want 1", n)
	}
}

// A package that does not build fails, with go's message shown.
func TestBuildFailureFails(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module fake\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "fake_test.go"), []byte("package fake\n\nfunc TestX(t *testing.T) { undefined() }\n"), 0o644)
	out, err := runIn(t, dir)
	if err == nil {
		t.Fatalf("a package that does not build passed:\n%s", out)
	}
	if !strings.Contains(out, "undefined") {
		t.Errorf("go's build error not shown: %v\n%s", err, out)
	}
}
