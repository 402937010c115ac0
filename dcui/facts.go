package dcui

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// facts is what the home screen shows, gathered by refresh; other
// screens read it too (the host name, the running VMs, SSH's state).
type facts struct {
	host        api.Host
	hostErr     error
	vmsRunning  int
	vmsTotal    int
	vmsErr      error
	upgrade     *api.UpgradeStatus // nil: unknown
	running     []string           // names of running VMs
	runningIDs  []string
	settings    api.HostSettings
	settingsErr error
	// The clock's sync, remote logging and SSH, each from its own call.
	time      api.TimeStatus
	timeErr   error
	syslog    api.SyslogStatus
	syslogErr error
	ssh       api.SSHStatus
	sshErr    error
	// got: gathered at least once (before, the screen says it is asking).
	got bool
	at  time.Time
}

// passwordSet: the root password is set (or the host does not say).
func (f facts) passwordSet() bool { return f.settings.Password.Set || f.settingsErr != nil }

// addrs are the management addresses (without their prefix length).
func (f facts) addrs() []string {
	var out []string
	for _, a := range f.settings.Network.Live.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().IsGlobalUnicast() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

// refresh gathers the home screen's facts. Every call runs at the same
// time, each within AskWithin, so a slow or failing one is said on its own
// line (apiProblem) while the others are shown; the screen keeps the last
// facts until the new ones are all in, and takes keys meanwhile (the calls
// run in the command, never in Update).
func (m Model) refresh() tea.Cmd {
	d := m.d
	return func() tea.Msg {
		var f facts
		f.at, f.got = d.Now(), true
		h := d.API
		var wg sync.WaitGroup
		// Each call writes its own fields of f.
		ask := func(call func(context.Context)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), d.AskWithin)
				defer cancel()
				call(ctx)
			}()
		}
		ask(func(ctx context.Context) { f.host, f.hostErr = h.Host(ctx) })
		ask(func(ctx context.Context) {
			vms, err := h.ListVMs(ctx)
			f.vmsErr = err
			f.vmsTotal = len(vms)
			for _, v := range vms {
				if st := v.Runtime.State; st == api.VMRunning || st == api.VMPaused || st == api.VMStarting {
					f.vmsRunning++
					f.running = append(f.running, v.Spec.Name)
					f.runningIDs = append(f.runningIDs, v.Spec.ID)
				}
			}
		})
		ask(func(ctx context.Context) {
			if u, err := h.UpgradeStatus(ctx); err == nil {
				f.upgrade = &u
			}
		})
		ask(func(ctx context.Context) { f.settings, f.settingsErr = h.HostSettings(ctx) })
		ask(func(ctx context.Context) { f.time, f.timeErr = h.Time(ctx) })
		ask(func(ctx context.Context) { f.syslog, f.syslogErr = h.Syslog(ctx) })
		ask(func(ctx context.Context) { f.ssh, f.sshErr = h.SSH(ctx) })
		wg.Wait()
		return factsMsg(f)
	}
}

// apiProblem says why a call failed, shortly: no answer in time, the
// API's own words, or the error.
func apiProblem(err error, within time.Duration) string {
	var e *client.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer from vmkernel within " + within.String()
	case errors.As(err, &e) && e.Problem.Detail != "":
		return e.Problem.Detail
	}
	return err.Error()
}
