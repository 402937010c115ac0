package dcui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// installScreen is Install Plinth to Disk: the disks, the one chosen, the
// typed confirmation (scrInstall, scrInstallConfirm), then the install as
// an API task whose progress is the busy line.
type installScreen struct {
	cands   []api.InstallCandidate
	err     error
	loaded  bool
	sel     int
	confirm field
}

type (
	installTargetsMsg struct {
		cands []api.InstallCandidate
		err   error
	}
	// installProgressMsg is one report of a running install; next waits
	// for the one after it.
	installProgressMsg struct {
		p    api.InstallProgress
		next tea.Cmd
	}
	installDoneMsg struct {
		disk string
		err  error
	}
)

// installTimeout bounds an install from the console.
const installTimeout = time.Hour

func (f *installScreen) open(m *Model, _ screen) tea.Cmd {
	*f = installScreen{}
	targets := m.d.API.InstallTargets
	return within(30*time.Second, func(ctx context.Context) tea.Msg {
		c, err := targets(ctx)
		return installTargetsMsg{c, err}
	})
}

// eligible reports whether c can be installed to.
func eligible(c api.InstallCandidate) bool { return !c.BootMedium && c.Refused == "" }

func (f *installScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case installTargetsMsg, installProgressMsg, installDoneMsg:
		return f.onMsg(m, msg)
	case tea.KeyMsg:
		return f.onKey(m, msg)
	}
	return nil
}

func (f *installScreen) onKey(m *Model, k tea.KeyMsg) tea.Cmd {
	key := k.String()
	switch m.scr {
	case scrInstall:
		switch key {
		case "esc":
			return m.goTo(scrMenu)
		case "up", "k":
			if len(f.cands) > 0 {
				f.sel = (f.sel + len(f.cands) - 1) % len(f.cands)
			}
		case "down", "j", "tab":
			if len(f.cands) > 0 {
				f.sel = (f.sel + 1) % len(f.cands)
			}
		case "enter":
			if len(f.cands) == 0 {
				return nil
			}
			c := f.cands[f.sel]
			if !eligible(c) {
				m.problem = fmt.Sprintf("%s cannot be a target: %s", c.Disk.Name, verdict(c))
				return nil
			}
			m.problem = ""
			f.confirm.value = ""
			m.scr = scrInstallConfirm
		}
		return nil
	case scrInstallConfirm:
		switch key {
		case "esc":
			m.scr, m.problem = scrInstall, ""
			return nil
		case "enter":
			disk := f.cands[f.sel].Disk.Name
			if f.confirm.value != disk {
				m.problem = fmt.Sprintf("Type %s to confirm.", disk)
				return nil
			}
			overwrite := len(f.cands[f.sel].Warnings) > 0 // the typed name is the consent
			m.scr, m.busy, m.problem = scrBusy, "Installing Plinth to "+disk+"...", ""
			return startInstall(apiInstall(m.d.API), disk, overwrite)
		}
		f.confirm.key(k)
		return nil
	}
	return nil
}

// apiInstall installs through the API (vmkernel runs it as a task) and
// follows its progress.
func apiInstall(h Host) func(context.Context, string, bool, func(api.InstallProgress)) error {
	return func(ctx context.Context, disk string, overwrite bool, progress func(api.InstallProgress)) error {
		task, err := h.Install(ctx, api.InstallRequest{Disk: disk, Overwrite: overwrite})
		if err != nil {
			return err
		}
		t, err := h.WaitTask(ctx, task.ID, time.Second, func(t api.Task) {
			progress(api.InstallProgress{Step: "writing and checking " + disk, Done: t.Done, Total: t.Total})
		})
		if errors.Is(err, client.ErrTaskFailed) {
			return errors.New(t.Error)
		}
		return err
	}
}

// startInstall runs the install in the background and turns its progress
// into messages, one at a time.
func startInstall(install func(context.Context, string, bool, func(api.InstallProgress)) error, disk string, overwrite bool) tea.Cmd {
	ch := make(chan tea.Msg, 64)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
		defer cancel()
		err := install(ctx, disk, overwrite, func(p api.InstallProgress) {
			select {
			case ch <- p:
			default: // the screen is behind: this report is skipped, a later one shows
			}
		})
		ch <- installDoneMsg{disk, err}
		close(ch)
	}()
	var next tea.Cmd
	next = func() tea.Msg {
		msg, ok := <-ch
		if !ok {
			return nil
		}
		if p, ok := msg.(api.InstallProgress); ok {
			return installProgressMsg{p, next}
		}
		return msg
	}
	return next
}

func (f *installScreen) onMsg(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case installTargetsMsg:
		var e *client.Error
		if errors.As(msg.err, &e) && e.Status == http.StatusNotImplemented {
			return m.message("Install Plinth to Disk", "The installer is not present on this host.", scrMenu)
		}
		f.cands, f.err, f.loaded = msg.cands, msg.err, true
		f.sel = 0
		for i, c := range msg.cands { // start on the first disk that can be a target
			if eligible(c) {
				f.sel = i
				break
			}
		}
		return nil
	case installProgressMsg:
		p := msg.p
		line := "Installing: " + p.Step
		if p.Total > 0 {
			line += fmt.Sprintf(" %d%%", p.Done*100/p.Total)
		}
		if p.Message != "" {
			line += " (" + p.Message + ")"
		}
		m.busy = line
		return msg.next
	case installDoneMsg:
		m.busy = ""
		if msg.err != nil {
			return m.message("Install Plinth to Disk", "FAILED: "+msg.err.Error()+". Nothing on the other disks was changed.", scrMenu)
		}
		return m.message("Install Plinth to Disk", "Plinth is installed on "+msg.disk+", with this host's configuration. Remove the stick and restart the host (F12) to boot from "+msg.disk+".", scrMenu)
	}
	return nil
}

func verdict(c api.InstallCandidate) string {
	switch {
	case c.BootMedium:
		return "the boot medium"
	case c.Refused != "":
		return c.Refused
	case len(c.Warnings) > 0:
		return "erases: " + strings.Join(c.Warnings, "; ")
	}
	return "blank"
}

func (f *installScreen) view(m *Model) (string, []string, string) {
	title := "Install Plinth to Disk"
	if m.scr == scrInstallConfirm {
		c := f.cands[f.sel]
		about := []string{humanBytes(c.Disk.SizeBytes)}
		for _, v := range []string{c.Disk.Model, c.Disk.Serial} {
			if v != "" {
				about = append(about, v)
			}
		}
		b := indent("  ", wrap(fmt.Sprintf("Installing Plinth ERASES every partition of %s (%s) and writes a boot partition with two boot banks, STATE with this host's configuration, and a datastore on the rest.",
			c.Disk.Name, strings.Join(about, ", ")), m.w-4))
		for _, w := range c.Warnings {
			b = append(b, "  WARNING: "+w)
		}
		b = append(b, "", fmt.Sprintf("  Type %s to confirm: %s", c.Disk.Name, f.confirm.view(12, true)))
		b = append(b, m.problemLines()...)
		return title, b, "<Enter> Install  <Esc> Back"
	}
	switch {
	case !f.loaded:
		return title, []string{"  Reading the disks..."}, "<Esc> Back"
	case f.err != nil:
		return title, indent("  ", wrap("Cannot read the disks: "+f.err.Error(), m.w-4)), "<Esc> Back"
	case len(f.cands) == 0:
		return title, []string{"  This host has no disk to install to."}, "<Esc> Back"
	}
	b := []string{"  Choose the disk (the rest of it becomes datastore ds1):", ""}
	for i, c := range f.cands {
		mark := " "
		if !eligible(c) {
			mark = "x"
		}
		line := fmt.Sprintf("%s %-8s %9s  %-16s %s", mark, c.Disk.Name, humanBytes(c.Disk.SizeBytes), truncate(c.Disk.Model, 16), verdict(c))
		b = append(b, menuLine(line, i == f.sel, m.w))
	}
	b = append(b, "", "  x: cannot be a target")
	b = append(b, m.problemLines()...)
	return title, b, "<Up/Down> Select  <Enter> Choose  <Esc> Back"
}
