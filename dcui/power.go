package dcui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// powerScreen is Shut Down/Restart: the running VMs (from the facts),
// whether to shut them down gracefully first, and the host's power
// through the API.
type powerScreen struct {
	sel        int // 0 checkbox, 1 shut down, 2 restart
	gracefully bool
}

func (s *powerScreen) open(m *Model, _ screen) tea.Cmd {
	s.sel = 1
	return m.refresh()
}

func (s *powerScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch k.String() {
	case "esc":
		if m.authed {
			return m.goTo(scrMenu)
		}
		m.scr = scrHome
		return nil
	case "up", "k":
		s.sel = (s.sel + 2) % 3
	case "down", "j", "tab":
		s.sel = (s.sel + 1) % 3
	case " ", "x":
		s.gracefully = !s.gracefully
	case "enter":
		if s.sel == 0 {
			s.gracefully = !s.gracefully
			return nil
		}
		reboot := s.sel == 2
		d, ids, graceful, name := m.d, m.facts.runningIDs, s.gracefully, m.facts.host.Hostname
		m.scr = scrBusy
		if reboot {
			m.busy = "Restarting the host..."
		} else {
			m.busy = "Shutting the host down..."
		}
		if len(ids) > 0 {
			m.busy = fmt.Sprintf("%s first %s %d running VM(s)...", m.busy,
				map[bool]string{true: "shutting down", false: "stopping"}[graceful], len(ids))
		}
		return within(d.VMShutdownWait+30*time.Second, func(ctx context.Context) tea.Msg {
			var errs []error
			for _, id := range ids {
				var err error
				if graceful {
					_, err = d.API.ShutdownVM(ctx, id, d.VMShutdownWait)
				} else {
					_, err = d.API.VMAction(ctx, id, api.ActionStop)
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			action := api.PowerShutdown
			if reboot {
				action = api.PowerReboot
			}
			err := d.API.HostPower(ctx, action, "asked on the console (DCUI)", name)
			what := map[bool]string{true: "restarting", false: "shutting down"}[reboot]
			return doneMsg{"Shut Down/Restart", errors.Join(append(errs, err)...), "The host is " + what + "."}
		})
	}
	return nil
}

func (s *powerScreen) view(m *Model) (string, []string, string) {
	f := m.facts
	var b []string
	if len(f.running) == 0 {
		b = append(b, "  No VM is running.")
	} else {
		b = append(b, fmt.Sprintf("  WARNING: %d VM(s) running on this host:", len(f.running)))
		for i, n := range f.running {
			if i == 5 {
				b = append(b, fmt.Sprintf("    ... and %d more", len(f.running)-5))
				break
			}
			b = append(b, "    - "+n)
		}
	}
	b = append(b, "")
	box := "[ ]"
	if s.gracefully {
		box = "[x]"
	}
	grace := fmt.Sprintf("%s Shut running VMs down gracefully first (ACPI, up to %s each);", box, m.d.VMShutdownWait)
	b = append(b, menuLine(grace, s.sel == 0, m.w))
	b = append(b, "      "+map[bool]string{true: "then they are stopped hard if still running.", false: "unticked: running VMs are STOPPED HARD (like pulling the plug)."}[s.gracefully])
	b = append(b, "")
	b = append(b, menuLine("Shut Down the host", s.sel == 1, m.w))
	b = append(b, menuLine("Restart the host", s.sel == 2, m.w))
	b = append(b, m.problemLines()...)
	return "Shut Down/Restart " + orDash(f.host.Hostname), b, "<Up/Down> Select  <Space> Tick  <Enter> Do it  <Esc> Cancel"
}
