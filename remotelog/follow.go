package remotelog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
)

// Source is a log file whose lines are sent, and how a line becomes a
// message (ok false: not sent).
type Source struct {
	Path  string
	Parse func(line string) (m Message, ok bool)
}

// maxLine bounds a line read from a file; the rest of a longer one is cut.
const maxLine = 16 << 10

// Follow reads each source's new lines every interval, until ctx ends, and
// sends them while active says so (otherwise it only keeps up with the
// files' ends). It starts at each file's end: what was written before it
// started is not sent. A file moved away (rotated) is read to its end and
// the new one from its start; a file cut short is read from its start.
func Follow(ctx context.Context, sources []Source, interval time.Duration, active func() bool, send func(Message)) {
	fs := make([]*followed, len(sources))
	for i, s := range sources {
		fs[i] = &followed{src: s}
		fs[i].open(true)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		on := active()
		for _, f := range fs {
			f.poll(on, send)
		}
		select {
		case <-ctx.Done():
			for _, f := range fs {
				f.close()
			}
			return
		case <-t.C:
		}
	}
}

type followed struct {
	src     Source
	f       *os.File
	partial []byte // a line without its newline yet
}

// open opens the file, at its end when atEnd.
func (f *followed) open(atEnd bool) {
	fh, err := os.Open(f.src.Path)
	if err != nil {
		return
	}
	if atEnd {
		fh.Seek(0, io.SeekEnd)
	}
	f.f, f.partial = fh, nil
}

func (f *followed) close() {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}

func (f *followed) poll(on bool, send func(Message)) {
	if f.f == nil {
		// Not there when Follow started: from its start once it appears.
		if f.open(false); f.f == nil {
			return
		}
	}
	f.read(on, send)
	cur, err := os.Stat(f.src.Path)
	old, err2 := f.f.Stat()
	switch {
	case err != nil || err2 != nil || !os.SameFile(cur, old):
		// Rotated (or gone): the old file was read to its end above.
		f.close()
		if f.open(false); f.f != nil {
			f.read(on, send)
		}
	default:
		if pos, _ := f.f.Seek(0, io.SeekCurrent); cur.Size() < pos {
			f.f.Seek(0, io.SeekStart) // cut short
			f.partial = nil
			f.read(on, send)
		}
	}
}

// read reads what was added since the last read.
func (f *followed) read(on bool, send func(Message)) {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.f.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if len(f.partial) < maxLine {
					f.partial = append(f.partial, data[:min(len(data), maxLine-len(f.partial))]...)
				}
				break
			}
			line := data[:i]
			if len(f.partial) > 0 {
				line = append(f.partial, line[:min(len(line), max(maxLine-len(f.partial), 0))]...)
				f.partial = nil
			} else if len(line) > maxLine {
				line = line[:maxLine]
			}
			if on {
				if m, ok := f.src.Parse(string(line)); ok {
					send(m)
				}
			}
			data = data[i+1:]
		}
		if err != nil || n == 0 {
			return
		}
	}
}

// ServiceLine parses a line of a service's log (the init's supervisor
// writes "RFC3339-TIME TEXT"; vmkernel's and mgmtd's text is slog's, whose
// level=... gives the severity).
func ServiceLine(app string) func(string) (Message, bool) {
	return func(line string) (Message, bool) {
		m := Message{Time: time.Now(), Facility: FacilityDaemon, Severity: SevInfo, App: app, Text: line}
		if ts, rest, ok := strings.Cut(line, " "); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				m.Time, m.Text = t, rest
			}
		}
		m.Severity = slogSeverity(m.Text)
		return m, strings.TrimSpace(m.Text) != ""
	}
}

func slogSeverity(text string) int {
	switch {
	case strings.Contains(text, "level=ERROR"):
		return SevError
	case strings.Contains(text, "level=WARN"):
		return SevWarning
	case strings.Contains(text, "level=DEBUG"):
		return SevDebug
	}
	return SevInfo
}

// BootLine parses a line of the boot log: the init's own lines and the
// supervisor's; the lines of services that have their own log (skip, as
// "[vmkernel] ") are left to those.
func BootLine(skip ...string) func(string) (Message, bool) {
	return func(line string) (Message, bool) {
		for _, s := range skip {
			if strings.HasPrefix(line, "["+s+"] ") {
				return Message{}, false
			}
		}
		line = strings.TrimRight(line, "\r")
		sev := SevInfo
		if strings.Contains(line, "FAILED") || strings.Contains(line, "failed") {
			sev = SevError
		}
		return Message{Time: time.Now(), Facility: FacilityDaemon, Severity: sev, App: "plinth-init", Text: line},
			strings.TrimSpace(line) != ""
	}
}

// AuditLine parses a line of mgmtd's audit log (an api.AuditEntry as
// JSON): sent as it is, at its time, with MSGID "audit".
func AuditLine(line string) (Message, bool) {
	var e api.AuditEntry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return Message{}, false
	}
	sev := SevNotice
	if e.Status >= 400 {
		sev = SevWarning
	}
	return Message{Time: e.Time, Facility: FacilityAudit, Severity: sev, App: "audit", MsgID: "audit", Text: line}, true
}
