package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A QEMU slow to answer its first --version (the appliance pages it in
// under TCG) is asked again, not written off; one that fails is not.
func TestQEMUVersionAsksAgainWhenSlow(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := filepath.Join(dir, "asked")
	// Slow the first two times (exec: the sleep is the process killed).
	slow := fake("slow-qemu", `n=$(cat `+first+` 2>/dev/null || echo 0); echo $((n+1)) > `+first+`
[ "$n" -lt 2 ] && exec sleep 10
echo "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
`)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	v, err := qemuVersion(slow, log, 300*time.Millisecond)
	if err != nil || v != "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" {
		t.Fatalf("qemuVersion = %q, %v; want the version on the third try", v, err)
	}
	if n := strings.Count(logged.String(), "asking again"); n != 2 {
		t.Errorf("%d tries said slow, want 2:\n%s", n, logged.String())
	}

	// Never answering: five tries, then the deadline's error.
	t0 := time.Now()
	if _, err := qemuVersion(fake("hung-qemu", "exec sleep 10\n"), log, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a QEMU that never answers: %v, want a deadline error", err)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("five tries of 200 ms took %v", d)
	}
	// Failing: at once, with what it said.
	logged.Reset()
	_, err = qemuVersion(fake("broken-qemu", "echo 'error while loading shared libraries: libfoo.so' >&2; exit 127\n"), log, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "libfoo.so") || strings.Contains(logged.String(), "asking again") {
		t.Errorf("a QEMU that fails: %v (log %q), want its error at once", err, logged.String())
	}
}
