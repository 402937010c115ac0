package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress shows how far long work got on stderr: a bar redrawn in place
// when stderr is a terminal, else a plain line at every 10%.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	label    string
	total    int64
	done     int64
	start    time.Time
	lastDraw time.Time
	lastPct  int // last percentage printed as a line
	drawn    bool
}

func (a *app) newProgress(label string, total int64) *progress {
	_, tty := terminal(a.env.Stderr)
	return &progress{w: a.errw, tty: tty, label: label, total: total, start: time.Now(), lastPct: -1}
}

// set records done bytes and redraws when it is time.
func (p *progress) set(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	if p.tty {
		if now := time.Now(); now.Sub(p.lastDraw) >= 100*time.Millisecond || done == total {
			p.lastDraw = now
			p.draw()
		}
		return
	}
	if total <= 0 {
		return
	}
	pct := int(done * 100 / total)
	if step := pct / 10 * 10; step > p.lastPct {
		p.lastPct = step
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.label, step, humanBytes(done), humanBytes(total))
	}
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	done, total := p.done+int64(n), p.total
	p.mu.Unlock()
	p.set(done, total)
}

// bar is the terminal line, e.g.
// "upload ds1:a.iso [=========>          ]  45%  12 MiB/27 MiB  3.1 MiB/s".
func (p *progress) bar(width int) string {
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteByte(' ')
	rate := ""
	if el := time.Since(p.start).Seconds(); el > 0.5 {
		rate = "  " + humanBytes(int64(float64(p.done)/el)) + "/s"
	}
	if p.total <= 0 {
		fmt.Fprintf(&b, "%s%s", humanBytes(p.done), rate)
		return b.String()
	}
	frac := min(float64(p.done)/float64(p.total), 1)
	fill := int(frac * float64(width))
	b.WriteByte('[')
	b.WriteString(strings.Repeat("=", fill))
	if fill < width {
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", width-fill-1))
	}
	fmt.Fprintf(&b, "] %3.0f%%  %s/%s%s", frac*100, humanBytes(p.done), humanBytes(p.total), rate)
	return b.String()
}

func (p *progress) draw() {
	// \r and clear to the end of the line: redraw in place.
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.bar(30))
	p.drawn = true
}

// finish ends the display: the final bar and a newline at a terminal; the
// 100% line otherwise when ok.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		if p.drawn || ok {
			p.draw()
			fmt.Fprintln(p.w)
		}
		return
	}
	if ok && p.lastPct < 100 && p.total > 0 && p.done >= p.total {
		p.lastPct = 100
		fmt.Fprintf(p.w, "%s: 100%% (%s)\n", p.label, humanBytes(p.total))
	}
}

// countingReader reports bytes read to a progress.
type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.add(int64(n))
	}
	return n, err
}
