package qemutest

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// TailLines is how many console lines an Expect error shows.
const TailLines = 30

// console collects the serial output as lines (and copies it raw to an
// optional file), and lets callers wait for a line matching a pattern.
type console struct {
	mu       sync.Mutex
	lines    []string
	partial  []byte
	cursor   int           // lines before cursor were consumed by Expect
	changed  chan struct{} // closed and replaced on every new line or close
	closed   bool
	closeErr error // why no more lines will come (e.g. QEMU exited)
	raw      io.Writer
}

func newConsole(raw io.Writer) *console {
	return &console{changed: make(chan struct{}), raw: raw}
}

// Write implements io.Writer for QEMU's stdout.
func (c *console) Write(p []byte) (int, error) {
	if c.raw != nil {
		c.raw.Write(p) // a broken log file must not stop the console
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, strings.TrimRight(string(c.partial[:i]), "\r"))
		c.partial = c.partial[i+1:]
		added = true
	}
	if added {
		c.notifyLocked()
	}
	return len(p), nil
}

func (c *console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// close flushes a last unterminated line and records why the console ended.
func (c *console) close(why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.partial) > 0 {
		c.lines = append(c.lines, strings.TrimRight(string(c.partial), "\r"))
		c.partial = nil
	}
	c.closed, c.closeErr = true, why
	c.notifyLocked()
}

// Tail returns the last n lines.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked(n)
}

func (c *console) tailLocked(n int) []string {
	lines := c.lines
	if len(c.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(c.partial))
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append([]string(nil), lines...)
}

func (c *console) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// matcher turns a *regexp.Regexp or a string (a substring) into a predicate.
func matcher(pattern any) (func(string) bool, string, error) {
	switch p := pattern.(type) {
	case *regexp.Regexp:
		return p.MatchString, "/" + p.String() + "/", nil
	case string:
		return func(s string) bool { return strings.Contains(s, p) }, fmt.Sprintf("%q", p), nil
	default:
		return nil, "", fmt.Errorf("qemutest: Expect pattern must be a string or *regexp.Regexp, not %T", pattern)
	}
}

// expect waits up to timeout for a line, after those already consumed by an
// earlier expect, that matches pattern, and returns it.
func (c *console) expect(pattern any, timeout time.Duration) (string, error) {
	match, desc, err := matcher(pattern)
	if err != nil {
		return "", err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for ; c.cursor < len(c.lines); c.cursor++ {
			if line := c.lines[c.cursor]; match(line) {
				c.cursor++
				c.mu.Unlock()
				return line, nil
			}
		}
		if c.closed {
			err := fmt.Errorf("console ended before %s: %v%s", desc, c.closeErr, formatTail(c.tailLocked(TailLines)))
			c.mu.Unlock()
			return "", err
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return "", fmt.Errorf("no console line matched %s within %v%s", desc, timeout, formatTail(c.tail(TailLines)))
		}
	}
}

func formatTail(lines []string) string {
	if len(lines) == 0 {
		return " (the console printed nothing)"
	}
	return fmt.Sprintf("; last %d console lines:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
}

// tailBuffer keeps the last max bytes written to it (for QEMU's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
