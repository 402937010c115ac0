package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// skipsAllowed are the only files that may skip a test by themselves: this
// package, qemu-test's NoKernel (strict under make test too), the
// end-to-end gate (make test sets PLINTH_E2E=1) and -short.
var skipsAllowed = map[string]string{
	"internal/testenv/testenv.go":      "",
	"internal/testenv/testenv_test.go": "",
	"qemu-test/paths.go":               "",
	"qemu-test/boot_test.go":           "PLINTH_E2E",
	"upgrade/syslinux_test.go":         "testing.Short()",
}

// TestNoQuietSkips keeps the rule: a test that lacks root, a namespace, a
// tool or the kernel goes through Unmet (failing under make test), never a
// bare t.Skip.
func TestNoQuietSkips(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	skip := regexp.MustCompile(`\.Skip(f|Now)?\(`)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (rel == "build" || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if !skip.MatchString(line) || strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			why, ok := skipsAllowed[rel]
			if !ok {
				t.Errorf("%s:%d skips by itself: use testenv.Unmet (or Root, Command)", rel, i+1)
			} else if why != "" && !strings.Contains(strings.Join(strings.Split(string(b), "\n")[max(0, i-3):i+1], "\n"), why) {
				t.Errorf("%s:%d skips for another reason than %s", rel, i+1, why)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
