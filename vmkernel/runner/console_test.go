package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleLogRotatesAndKeepsTail(t *testing.T) {
	dir := t.TempDir()
	c := newConsole(dir)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	total := 0
	for total <= ConsoleLogMax+10*len(line) {
		c.Write(line)
		total += len(line)
	}
	c.Write([]byte("last line\n"))
	if err := c.takeErr(); err != nil {
		t.Fatal(err)
	}
	old, err := os.Stat(filepath.Join(dir, ConsoleLogOldFile))
	if err != nil || old.Size() <= ConsoleLogMax || old.Size() > ConsoleLogMax+int64(len(line)) {
		t.Fatalf("rotated log: %v, %v", old, err)
	}
	cur, err := os.ReadFile(filepath.Join(dir, ConsoleLogFile))
	if err != nil || int64(len(cur)) != int64(total)+10-old.Size() || !bytes.HasSuffix(cur, []byte("last line\n")) {
		t.Fatalf("current log: %d bytes, %v", len(cur), err)
	}
	tail := c.tail(0)
	if len(tail) != ConsoleTailMax || !bytes.HasSuffix(tail, []byte("x\nlast line\n")) {
		t.Fatalf("tail: %d bytes, ends %q", len(tail), tail[max(0, len(tail)-20):])
	}
	if got := c.tail(5); string(got) != "line\n" {
		t.Fatalf("tail(5) = %q", got)
	}
	c.closeFile()

	// A new vmkernel's console starts with the end of the log on disk.
	c2 := newConsole(dir)
	if got := c2.tail(10); string(got) != "last line\n" {
		t.Fatalf("preloaded tail %q", got)
	}
	m := &Manager{cfg: Config{StateRoot: filepath.Dir(dir)}, vms: map[string]*vm{}}
	if got, err := m.ConsoleTail(filepath.Base(dir), 10); err != nil || string(got) != "last line\n" {
		t.Fatalf("ConsoleTail of a VM not started = %q, %v", got, err)
	}
	if got, err := m.ConsoleTail("no-such-vm", 10); err != nil || len(got) != 0 {
		t.Fatalf("ConsoleTail of an unknown VM = %q, %v", got, err)
	}
}
