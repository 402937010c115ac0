// Package testenv says what a test needs of the machine it runs on: root, a
// command, a network namespace. Where a need is not met the test is skipped,
// except under `make test` (which sets RequireEnv=1, as CI does): there it
// fails, so that CI cannot pass while tests quietly did not run.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv, set to 1, turns every unmet need into a failure. `make test`
// sets it (and qemu-test's PLINTH_REQUIRE_KERNEL, which counts the same).
const RequireEnv = "PLINTH_REQUIRE"

// Strict reports whether unmet needs fail the test.
func Strict() bool {
	return os.Getenv(RequireEnv) == "1" || os.Getenv("PLINTH_REQUIRE_KERNEL") == "1"
}

// Unmet skips the test for want of something, or fails it under Strict.
func Unmet(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s=1: `make test` runs every test; run it as root after `make deps`)", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Root needs the test to run as root; why says what for.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unmet(t, "needs root: %s", why)
	}
}

// Command needs name on PATH and returns its path.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unmet(t, "%s is not installed (make deps installs it)", name)
	}
	return p
}
