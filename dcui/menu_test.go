package dcui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestMenuHelpForEveryItem walks System Customization with the keys, both
// ways round: each item, the last included (Up from the first), shows its
// own help line. Install Plinth to Disk had none, and selecting it ended
// the console with an index out of range.
func TestMenuHelpForEveryItem(t *testing.T) {
	if len(menuHelp) != len(menuItems) {
		t.Fatalf("%d help lines for %d menu items", len(menuHelp), len(menuItems))
	}
	m := New(Deps{Version: "1.0.0-test"})
	m.scr = scrMenu
	for _, key := range []tea.KeyType{tea.KeyDown, tea.KeyUp} {
		for range menuItems {
			nm, _ := m.Update(tea.KeyMsg{Type: key})
			m = nm.(Model)
			scr := m.View()
			if !strings.Contains(scr, menuHelp[m.menu.sel]) || !strings.Contains(scr, menuItems[m.menu.sel]) {
				t.Fatalf("item %d (%s) without its help line:\n%s", m.menu.sel, menuItems[m.menu.sel], scr)
			}
		}
	}
}
