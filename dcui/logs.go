package dcui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// logsScreen is View System Logs: the list of logs (from the API), then
// one log in the pager (logView).
type logsScreen struct {
	list  []api.LogInfo
	sel   int
	pager logView
}

type (
	logsMsg struct {
		logs []api.LogInfo
		err  error
	}
	logMsg struct {
		name  string // the log read
		lines []string
		size  int64
		err   error
	}
)

func (s *logsScreen) open(m *Model, _ screen) tea.Cmd {
	h := m.d.API
	return within(10*time.Second, func(ctx context.Context) tea.Msg {
		logs, err := h.Logs(ctx)
		return logsMsg{logs, err}
	})
}

func (s *logsScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case logsMsg:
		s.list = msg.logs
		if msg.err != nil {
			m.problem = msg.err.Error()
		}
	case logMsg:
		if m.scr == scrLogView && msg.name == s.pager.file.Name { // not a read of a log left meanwhile
			s.pager.load(msg, m.bodyHeight()-2)
		}
	case tea.KeyMsg:
		key := msg.String()
		if m.scr == scrLogView {
			if key == "esc" && !s.pager.searching {
				m.scr = scrLogsPick
				return nil
			}
			s.pager.key(msg, m.bodyHeight()-2)
			return nil
		}
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "up", "k":
			s.sel = (s.sel + len(s.list) - 1) % max(1, len(s.list))
		case "down", "j", "tab":
			s.sel = (s.sel + 1) % max(1, len(s.list))
		case "enter":
			if len(s.list) == 0 {
				return nil
			}
			m.scr = scrLogView
			s.pager = newLogView(s.list[s.sel%len(s.list)])
			return s.pager.read(m.d.API)
		}
	}
	return nil
}

func (s *logsScreen) view(m *Model) (string, []string, string) {
	if m.scr == scrLogView {
		return s.pagerView(m)
	}
	b := []string{"  Which log?", ""}
	for i, l := range s.list {
		b = append(b, menuLine(fmt.Sprintf("%-10s %s", l.Name, l.Description), i == s.sel, m.w))
	}
	return "View System Logs", b, "<Up/Down> Select  <Enter> View  <Esc> Back"
}

// logTail is how much of a log file the viewer reads (its end).
const logTail = 256 << 10

// logView is View System Logs' pager: scrollable, searchable with /, and
// following new lines while at the end (F or End turn following back on).
type logView struct {
	file      api.LogInfo
	lines     []string
	size      int64
	err       error
	top       int // first line shown
	follow    bool
	searching bool
	search    field
	last      string // the last search
	note      string
	// loaded: the log's lines have come from the API (at least once).
	// A search asked for before is pending, made once they come.
	loaded  bool
	pending bool
}

func newLogView(f api.LogInfo) logView { return logView{file: f, follow: true} }

// read loads the end of the log through the API (a command).
func (v logView) read(h Host) tea.Cmd {
	name, size := v.file.Name, v.size
	return within(5*time.Second, func(ctx context.Context) tea.Msg {
		logs, err := h.Logs(ctx)
		if err != nil {
			return logMsg{name: name, err: err}
		}
		for _, l := range logs {
			if l.Name == name && l.Size == size && size > 0 {
				return nil // nothing new
			}
			if l.Name == name {
				size = l.Size
			}
		}
		b, err := h.LogTail(ctx, name, logTail)
		if err != nil {
			return logMsg{name: name, err: err}
		}
		text := strings.TrimRight(string(b), "\n")
		if int64(len(b)) < size { // drop the cut first line
			if i := strings.IndexByte(text, '\n'); i >= 0 {
				text = text[i+1:]
			}
		}
		var lines []string
		if text != "" {
			lines = strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
		}
		return logMsg{name: name, lines: lines, size: size}
	})
}

// load takes the log's lines as read; a search asked for before the
// first lines came is made now (height is the view's).
func (v *logView) load(m logMsg, height int) {
	v.err = m.err
	if m.err != nil {
		return
	}
	v.lines, v.size = m.lines, m.size
	for i, l := range v.lines {
		v.lines[i] = sanitize(l)
	}
	if v.follow {
		v.top = len(v.lines) // clamped by the view
	}
	v.loaded = true
	if v.pending {
		v.pending = false
		v.clamp(height)
		v.find(v.top, height)
	}
}

// sanitize drops control characters (a log line must not drive the terminal).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

func (v *logView) clamp(height int) {
	maxTop := max(len(v.lines)-height, 0)
	v.top = min(max(v.top, 0), maxTop)
}

func (v *logView) key(k tea.KeyMsg, height int) {
	if v.searching {
		switch k.String() {
		case "esc":
			v.searching = false
		case "enter":
			v.searching = false
			v.last = v.search.value
			v.find(v.top, height)
		default:
			v.search.key(k)
		}
		return
	}
	switch k.String() {
	case "up", "k":
		v.top--
		v.follow = false
	case "down", "j":
		v.top++
	case "pgup", "b":
		v.top -= height
		v.follow = false
	case "pgdown", " ":
		v.top += height
	case "home", "g":
		v.top, v.follow = 0, false
	case "end", "G", "f", "F":
		v.top, v.follow = len(v.lines), true
	case "/":
		v.searching, v.search.value, v.note = true, "", ""
	case "n":
		v.find(v.top+1, height)
	}
	v.clamp(height)
	if v.top >= len(v.lines)-height && k.String() != "up" && k.String() != "pgup" && k.String() != "home" {
		v.follow = true
	}
}

// find moves to the first line at or after from containing the search (case
// insensitive), wrapping around.
func (v *logView) find(from, height int) {
	if v.last == "" {
		return
	}
	if !v.loaded {
		v.pending, v.note = true, "searching for "+v.last+" once the log's lines arrive"
		return
	}
	q := strings.ToLower(v.last)
	n := len(v.lines)
	for i := 0; i < n; i++ {
		j := (from + i) % n
		if strings.Contains(strings.ToLower(v.lines[j]), q) {
			v.top, v.follow, v.note = j, false, ""
			v.clamp(height)
			return
		}
	}
	v.note = "not found: " + v.last
}

// pagerView is the log itself, a line of status under it.
func (s *logsScreen) pagerView(m *Model) (string, []string, string) {
	v := s.pager
	height := m.bodyHeight() - 2
	v.clamp(height)
	var b []string
	switch {
	case v.err != nil:
		b = append(b, "  Cannot read the "+v.file.Name+" log: "+v.err.Error())
	case !v.loaded:
		b = append(b, "  (reading the log...)")
	case len(v.lines) == 0:
		b = append(b, "  (the log is empty)")
	}
	end := min(v.top+height, len(v.lines))
	for i := v.top; i < end; i++ {
		l := v.lines[i]
		if v.last != "" && strings.Contains(strings.ToLower(l), strings.ToLower(v.last)) {
			b = append(b, truncate("*"+l, m.w))
		} else {
			b = append(b, truncate(" "+l, m.w))
		}
	}
	for len(b) < height {
		b = append(b, "")
	}
	status := fmt.Sprintf(" lines %d-%d of %d", min(v.top+1, len(v.lines)), end, len(v.lines))
	if v.follow {
		status += "  FOLLOWING new lines"
	}
	if !v.loaded {
		status = ""
	}
	if v.last != "" && !v.pending {
		status += "  search: " + v.last + " (* marks matches)"
	}
	if v.note != "" { // first: the line is cut at the screen's width
		status = " " + v.note + " " + status
	}
	if v.searching {
		status = " Search for: " + v.search.view(30, true)
	}
	b = append(b, "", truncate(status, m.w))
	return "Log: " + v.file.Name + " (" + v.file.Description + ")", b, "<Up/Down/PgUp/PgDn> Scroll  </> Search  <n> Next  <F> Follow  <Esc> Back"
}
