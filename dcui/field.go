package dcui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// field is a one-line text entry; the cursor is always at its end.
type field struct {
	value  string
	masked bool
}

func (f *field) key(k tea.KeyMsg) {
	switch k.Type {
	case tea.KeyBackspace, tea.KeyDelete:
		if r := []rune(f.value); len(r) > 0 {
			f.value = string(r[:len(r)-1])
		}
	case tea.KeyCtrlU:
		f.value = ""
	case tea.KeyRunes, tea.KeySpace:
		if len(f.value) < 200 {
			f.value += string(k.Runes)
		}
	}
}

func (f field) view(width int, focused bool) string {
	v := f.value
	if f.masked {
		v = strings.Repeat("*", len([]rune(v)))
	}
	if focused {
		v += "_"
	}
	r := []rune(v)
	if len(r) > width {
		r = r[len(r)-width:]
	}
	return "[" + string(r) + strings.Repeat(" ", width-len(r)) + "]"
}
