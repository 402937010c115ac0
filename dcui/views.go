package dcui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
)

// Styles: bold and reverse video only, and every state is also said in
// words, so nothing depends on colour (a serial terminal has none).
var (
	titleStyle = lipgloss.NewStyle().Reverse(true).Bold(true)
	selStyle   = lipgloss.NewStyle().Reverse(true)
	boldStyle  = lipgloss.NewStyle().Bold(true)
)

// View draws the current screen (its component's view) in the frame every
// screen shares: a title bar, the body and a key-hint line at the bottom,
// exactly the terminal's size.
func (m Model) View() string {
	title, body, hints := m.current().view(&m)
	w, h := m.w, m.h
	var out []string
	out = append(out, titleStyle.Render(pad(" "+title, w)))
	out = append(out, "")
	if m.busy != "" {
		body = append(body, "", "  "+m.busy)
	}
	room := h - 3
	if len(body) > room {
		body = body[:room]
	}
	out = append(out, body...)
	for len(out) < h-1 {
		out = append(out, "")
	}
	out = append(out, selStyle.Render(pad(" "+hints, w)))
	for i, l := range out {
		if lipgloss.Width(l) > w {
			out[i] = truncate(l, w)
		}
	}
	return strings.Join(out, "\n")
}

func pad(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return truncate(s, w)
}

func truncate(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		return string(r[:w])
	}
	return s
}

// wrap breaks s into lines of at most w columns at spaces.
func wrap(s string, w int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > w {
			out = append(out, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
		for len(line) > w {
			out = append(out, line[:w])
			line = line[w:]
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

func indent(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}

func (m Model) problemLines() []string {
	var out []string
	if m.problem != "" {
		out = append(out, "")
		out = append(out, indent("  ", wrap("ERROR: "+m.problem, m.w-4))...)
	}
	if m.info != "" {
		out = append(out, "")
		out = append(out, indent("  ", wrap(m.info, m.w-4))...)
	}
	return out
}

func (m Model) bodyHeight() int { return m.h - 3 }

func cursor(on bool) string {
	if on {
		return ">"
	}
	return " "
}

func menuLine(s string, sel bool, w int) string {
	if sel {
		return "> " + selStyle.Render(pad(s, min(w-4, 60)))
	}
	return "  " + s
}

// spelled says d in words: "5 minutes", "1 minute", "2s".
func spelled(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "1 minute"
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(b uint64) string {
	const gib = 1 << 30
	if b >= gib {
		return fmt.Sprintf("%.1f GiB", float64(b)/gib)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// fingerprintLines splits the 95-character fingerprint in two.
func fingerprintLines(fp string) []string {
	if len(fp) > 60 {
		return []string{fp[:48], fp[48:]}
	}
	return []string{orDash(fp)}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
