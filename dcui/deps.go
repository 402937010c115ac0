// Package dcui is Plinth's Direct Console UI: the text screens an
// administrator sees on the server's monitor (tty1) and serial console, as
// on ESXi's DCUI. It is a bubbletea program (the Elm architecture: state
// changes only in Update, I/O only in commands). Everything it touches on the
// host — host facts and VMs from vmkernel, the root password in the auth
// directory, the management network, power, log files, the clock — is a
// field of Deps, so the model runs in tests without root; System (in
// cmd/dcui) fills Deps with the real things.
package dcui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
)

// LogFile is one log View System Logs offers.
type LogFile struct {
	Name string // "Boot log", "vmkernel", "mgmtd"
	Path string
}

// Deps is what the DCUI needs from the host. Nil funcs are features the host
// lacks: their screens say so.
type Deps struct {
	// Version is Plinth's version (api.Version).
	Version string
	// AuthDir holds the root password and lockdown switch (package auth).
	AuthDir string
	// BootMode is where the host's configuration comes from, as the init
	// decided at boot (layout.Host.BootModeFile); the home screen says so when the
	// host is not installed.
	BootMode api.BootMode

	Host func(context.Context) (api.Host, error)
	VMs  func(context.Context) ([]api.VM, error)
	// Upgrades reads the system banks and the last upgrade (nil: not shown).
	Upgrades    func(context.Context) (api.UpgradeStatus, error)
	ShutdownVM  func(ctx context.Context, id string, timeout time.Duration) error
	StopVM      func(ctx context.Context, id string) error
	Hardware    func() (api.Hardware, error)
	Fingerprint func() string
	// Addresses are the host's management addresses (IPs) now.
	Addresses func() []string
	// NetProblem says what is wrong with the management network now (no
	// DHCP answer, a lease run out), "" when nothing is.
	NetProblem func() string

	// Network: the saved configuration, apply (netlink), save (STATE), test.
	LoadNet  func() (netconf.Config, error)
	ApplyNet func(context.Context, netconf.Config) (netconf.Result, error)
	SaveNet  func(netconf.Config) error
	TestNet  func(context.Context, netconf.Config) []netconf.Check
	// A change awaiting confirmation is published so that the API can keep
	// it from its new address (netconf.MarkPending in the run directory);
	// SettlePending ends it when the console keeps it or rolls it back,
	// reporting whether the API kept it first; PendingConfirmed checks, on
	// each tick, whether the API has kept it. Nil: only the console can.
	MarkPending      func(netconf.Change) error
	SettlePending    func() (byAPI bool, err error)
	PendingConfirmed func() bool

	// Power shuts the host down (reboot false) or restarts it.
	Power         func(reboot bool) error
	RestartAgents func() error
	// ResetConfig removes the host's configuration from STATE (network,
	// host name, password, lockdown, tokens), keeping VMs and datastores.
	ResetConfig func() error
	Logs        []LogFile
	// InstallTargets and Install, when set, offer Install Plinth to Disk
	// (package installer: the disks as targets, and the install itself
	// with its progress).
	InstallTargets func(context.Context) ([]api.InstallCandidate, error)
	Install        func(ctx context.Context, disk string, overwrite bool, progress func(api.InstallProgress)) error
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
	if d.ShellIdle == 0 {
		d.ShellIdle = 5 * time.Minute
	}
	if d.VMShutdownWait == 0 {
		d.VMShutdownWait = 60 * time.Second
	}
}
