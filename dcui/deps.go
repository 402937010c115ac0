// Package dcui is Plinth's Direct Console UI: the text screens an
// administrator sees on the server's monitor (tty1) and serial console, as
// on ESXi's DCUI. It is a bubbletea program (the Elm architecture: state
// changes only in Update, I/O only in commands) and a client of vmkernel's
// local API like any other: every host setting it shows or changes — the
// root password, lockdown, the management network, SSH, logs, power, reset —
// goes through Host (a *client.Client on vmkernel's socket). The home
// screen also says how the clock syncs, whether remote logging fails and
// whether SSH is on, as vmkernel reports them. It writes no
// file and signals no process of its own; the one thing it runs itself is
// the Troubleshooting shell on its own terminal.
package dcui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// Host is the API the DCUI speaks: vmkernel's, over its local socket
// (*client.Client from client.NewVMKernel).
type Host interface {
	Host(context.Context) (api.Host, error)
	ListVMs(context.Context) ([]api.VM, error)
	UpgradeStatus(context.Context) (api.UpgradeStatus, error)
	ShutdownVM(ctx context.Context, id string, timeout time.Duration) (api.VM, error)
	VMAction(ctx context.Context, id, action string) (api.VM, error)
	Hardware(context.Context) (api.Hardware, error)
	HostPower(ctx context.Context, action, reason, confirm string) error
	InstallTargets(context.Context) ([]api.InstallCandidate, error)
	Install(context.Context, api.InstallRequest) (api.Task, error)
	WaitTask(ctx context.Context, id string, interval time.Duration, progress func(api.Task)) (api.Task, error)

	HostSettings(context.Context) (api.HostSettings, error)
	HostNetwork(context.Context) (api.HostNetwork, error)
	ChangeNetwork(context.Context, api.NetworkChangeRequest) (api.NetworkChange, error)
	ConfirmNetwork(context.Context) (api.NetworkChange, error)
	RollbackNetwork(context.Context) (api.NetworkChange, error)
	RestartNetwork(context.Context) (api.NetworkChange, error)
	RestoreNetwork(ctx context.Context, confirmSeconds int) (api.NetworkChange, error)
	TestNetwork(context.Context) ([]api.NetworkCheck, error)
	SetPassword(ctx context.Context, password string) error
	VerifyPassword(ctx context.Context, password string) error
	Lockdown(context.Context) (api.LockdownStatus, error)
	SetLockdown(context.Context, api.LockdownRequest) (api.LockdownStatus, error)
	RestartServices(ctx context.Context, names ...string) error
	ResetConfig(ctx context.Context, confirm string) error
	Logs(context.Context) ([]api.LogInfo, error)
	LogTail(ctx context.Context, name string, tailBytes int64) ([]byte, error)

	// Time, Syslog and SSH are the clock's sync, remote logging and the
	// SSH service, which the home screen reports (and the support screen
	// in full).
	Time(context.Context) (api.TimeStatus, error)
	Syslog(context.Context) (api.SyslogStatus, error)
	SSH(context.Context) (api.SSHStatus, error)
	// SetSSH turns SSH on or off (Troubleshooting Options).
	SetSSH(context.Context, api.SSHConfig) (api.SSHStatus, error)
}

// Deps is what the DCUI needs: the API and its terminal's few things.
type Deps struct {
	// Version is Plinth's version (api.Version).
	Version string
	// API is the host (vmkernel's socket).
	API Host
	// Shell, when set, is a local shell for Troubleshooting; it ends itself
	// after its inactivity timeout, ShellIdle (default 5 min).
	Shell     func() tea.ExecCommand
	ShellIdle time.Duration

	Now func() time.Time
	// Tick schedules msg after d (tea.Tick); tests give nil and send ticks.
	Tick func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd

	IdleTimeout    time.Duration // console logout after no key (default 10 min)
	ConfirmTimeout time.Duration // network change rolled back unless kept (default 60 s)
	RefreshEvery   time.Duration // home screen refresh (default 5 s)
	// AskWithin bounds each of the home screen's API calls (default 3 s):
	// one that takes longer is shown as not answering, never waited on.
	AskWithin      time.Duration
	VMShutdownWait time.Duration // per VM, when shutting VMs down first (default 60 s)
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tick == nil {
		d.Tick = func(time.Duration, func(time.Time) tea.Msg) tea.Cmd { return nil }
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = 10 * time.Minute
	}
	if d.ConfirmTimeout == 0 {
		d.ConfirmTimeout = 60 * time.Second
	}
	if d.RefreshEvery == 0 {
		d.RefreshEvery = 5 * time.Second
	}
	if d.AskWithin == 0 {
		d.AskWithin = 3 * time.Second
	}
	if d.ShellIdle == 0 {
		d.ShellIdle = 5 * time.Minute
	}
	if d.VMShutdownWait == 0 {
		d.VMShutdownWait = 60 * time.Second
	}
}
