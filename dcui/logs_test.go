package dcui

import (
	"os"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestLogSearchBeforeTheLinesArrive: a search typed in View System Logs
// before the log's lines have come from the API (a real vmkernel; the
// read is held back as a slow answer would be) is not "not found": it is
// made once they come, and the match is shown.
func TestLogSearchBeforeTheLinesArrive(t *testing.T) {
	rig := plainRig(t)
	var lines []string
	for i := range 80 {
		lines = append(lines, "plinth-init: boot line "+itoa(i))
	}
	lines[10] = "plinth-init: management network: eth0 10.0.2.15/24 (dhcp)"
	if err := os.WriteFile(rig.Layout.BootLog(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := plainHarness(t, rig.Client, 0)
	const pw = "Plinth-Test-42"
	h.keys("enter", pw, "enter", pw, "enter") // first boot: the password first
	h.want(scrMenu)
	h.menu("View System Logs")
	h.want(scrLogsPick)
	if h.m.logs.list[h.m.logs.sel].Name != "boot" {
		t.Fatalf("the first log is %q, want boot", h.m.logs.list[h.m.logs.sel].Name)
	}

	// Enter opens the view; its read is held back.
	nm, read := h.m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	h.m = nm.(Model)
	h.want(scrLogView)
	if read == nil {
		t.Fatal("opening the log reads nothing")
	}
	if !strings.Contains(h.flat(), "(reading the log...)") {
		t.Errorf("the view before the lines come:\n%s", h.m.View())
	}
	h.keys("/", "management network", "enter")
	scr := h.flat()
	if strings.Contains(scr, "not found") || !strings.Contains(scr, "searching for management network once the log's lines arrive") {
		t.Fatalf("a search before the lines came:\n%s", h.m.View())
	}

	// The lines come: the search is made.
	h.run(read)
	scr = h.m.View()
	if !strings.Contains(scr, "*plinth-init: management network: eth0 10.0.2.15/24 (dhcp)") {
		t.Fatalf("the pending search did not find the line once the log came:\n%s", scr)
	}
	if strings.Contains(scr, "not found") || strings.Contains(scr, "searching once") || strings.Contains(scr, "FOLLOWING") {
		t.Errorf("after the pending search is made:\n%s", scr)
	}
	if h.m.logs.pager.top != 10 {
		t.Errorf("the view starts at line %d, want the match's (10)", h.m.logs.pager.top)
	}

	// A search for what the log lacks, before its lines come, says so
	// once they have.
	h.keys("esc")
	nm, read = h.m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	h.m = nm.(Model)
	h.keys("/", "no such words", "enter")
	h.run(read)
	if !strings.Contains(h.flat(), "not found: no such words") {
		t.Errorf("a pending search of words the log lacks:\n%s", h.m.View())
	}
}
