// Package vmkerneltest serves a real vmkernel for tests: an inventory, a
// runner that starts QEMU under TCG, datastores, an event broker, all on a
// real unix socket in a short temporary directory; every VM left running is
// killed when the test ends.
package vmkerneltest

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/tlscert"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/events"
	"github.com/plinth/plinth/vmkernel/hostconf"
	"github.com/plinth/plinth/vmkernel/hostinfo"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// Options change the rig.
type Options struct {
	// Datastores are the names of the datastores to make (default "ds").
	Datastores []string
	// Power is vmkernel's host power hook (nil: 501, as without -init-pid).
	Power func(action, reason string) error
	// Host gives the host facts (nil: this machine's, with TCG).
	Host func() (api.Host, error)
	// Hardware is the board inventory (nil: this machine's).
	Hardware func() (api.Hardware, error)
	// Installer offers installs to disk (nil: 501).
	Installer *installer.Env
	// Upgrades offers system upgrades (nil: 501).
	Upgrades *vmkernel.Upgrades
	// Net is the management network the host settings drive (nil: none,
	// the network routes answer 501); its RunDir is set to the rig's.
	Net *netconf.Host
	// SignalAgent is the host settings' hook that restarts an agent (nil:
	// through the run directory's pid files, which a rig has none of).
	SignalAgent func(name string) error
	// ApplyDelay is the host settings' delay before a network change is
	// applied (0: 50 ms).
	ApplyDelay time.Duration
	// Devices gives host devices to VMs (nil: none, as without root).
	Devices runner.Devices
	// SetClock is handed the offsets the NTP client would move the clock
	// by: a rig never sets the host's clock (nil: ignored).
	SetClock func(offset time.Duration) error
	// BackupTick is how often scheduled backups are looked for (0: a minute).
	BackupTick time.Duration
	// SSHAddr is where the host's SSH service listens when turned on
	// (empty: hostconf's default, :22).
	SSHAddr string
}

// Rig is a running vmkernel.
type Rig struct {
	// Socket is the API's unix socket; Client speaks to it.
	Socket string
	Client *client.Client
	// Base is the rig's directory; DS maps each datastore to its root.
	Base      string
	DS        map[string]string
	Inventory *inventory.Inventory
	Runner    *runner.Manager
	Server    *vmkernel.Server
	// Layout is the rig's STATE and run directories; HostConf its host
	// settings.
	Layout   layout.Host
	HostConf *hostconf.Host
}

// Start serves a vmkernel until the test ends.
func Start(t testing.TB, o Options) *Rig {
	t.Helper()
	base := runnertest.Dir(t, "vk") // short: unix socket paths are limited
	if len(o.Datastores) == 0 {
		o.Datastores = []string{"ds"}
	}
	ds := map[string]string{}
	for _, name := range o.Datastores {
		ds[name] = filepath.Join(base, name)
		if err := os.MkdirAll(ds[name], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := inventory.Open(filepath.Join(base, "state", "vms"))
	if err != nil {
		t.Fatal(err)
	}
	broker := events.New(0)
	m, err := runner.New(runner.Config{
		QEMU: "qemu-system-x86_64", Accel: api.AccelTCG, Datastores: ds,
		RunRoot: filepath.Join(base, "run"), StateRoot: filepath.Join(base, "state", "vm-state"),
		OnState: broker.StateHook, Devices: o.Devices,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, id := range m.IDs() {
			if pid := m.Status(id).PID; pid > 0 {
				defer syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		m.StopAll(ctx)
		m.Close()
	})
	sock := filepath.Join(base, "vmkernel.sock")
	l, err := vmkernel.Listen(sock, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	host := o.Host
	if host == nil {
		host = hostinfo.Source{Accel: api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test rig"}}.Gather
	}
	lay := layout.Under(base)
	for _, d := range []string{lay.State, lay.Run, lay.AuthDir(), lay.TLSDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tlscert.LoadOrCreate(lay.TLSDir()); err != nil {
		t.Fatal(err)
	}
	if o.Net != nil {
		o.Net.RunDir = lay.Run
	}
	if o.ApplyDelay == 0 {
		o.ApplyDelay = 50 * time.Millisecond
	}
	if o.SetClock == nil {
		o.SetClock = func(time.Duration) error { return nil }
	}
	hc := hostconf.New(hostconf.Config{Layout: lay, Net: o.Net, Power: o.Power, ApplyDelay: o.ApplyDelay, Hardware: o.Hardware, SetClock: o.SetClock,
		SignalAgent: o.SignalAgent, SSHAddr: o.SSHAddr, Hostname: func() string { h, _ := host(); return h.Hostname }})
	hctx, hcancel := context.WithCancel(context.Background())
	t.Cleanup(hcancel)
	hc.Run(hctx)
	srv := vmkernel.New(vmkernel.Config{HostConf: hc, Host: host, Inventory: inv, Runner: m, Datastores: ds, Events: broker, Power: o.Power,
		Hardware: o.Hardware, Installer: o.Installer, Upgrades: o.Upgrades, BackupTick: o.BackupTick})
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := client.NewVMKernel(sock, client.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return &Rig{Socket: sock, Client: c, Base: base, DS: ds, Inventory: inv, Runner: m, Server: srv, Layout: lay, HostConf: hc}
}
