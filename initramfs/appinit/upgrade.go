package appinit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/upgrade"
)

// Console lines of upgrades, for people and tests.
const (
	UpgradeKeptPrefix       = "PLINTH-UPGRADE-KEPT"
	UpgradeRolledBackPrefix = "PLINTH-UPGRADE-ROLLED-BACK"
	UpgradeTrialFailed      = "PLINTH-UPGRADE-TRIAL-FAILED"
)

// rebootWhy starts a shutdown reason that restarts the host.
const rebootWhy = "reboot: "

// openBanks mounts the boot disk's ESP; ok is false (and nothing is
// mounted) when this boot did not come from a bank of a disk with STATE.
func (p *initProc) openBanks() (h upgrade.Host, release func(), ok bool) {
	bank := p.cfg.Cmdline["plinth.bank"]
	if !upgrade.ValidBank(bank) || p.live {
		return upgrade.Host{}, nil, false
	}
	env := installer.DefaultEnv()
	env.StateDir = p.cfg.Layout.State
	esp, release, err := upgrade.Mount(env, p.cfg.Layout.UpgradeMount(), true)
	if err != nil {
		p.logf("upgrade: the boot disk's ESP: %v", err)
		return upgrade.Host{}, nil, false
	}
	return upgrade.Host{ESP: esp, StateDir: p.cfg.Layout.State, Running: bank, Version: api.Version,
		Firmware: upgrade.Firmware("/sys")}, release, true
}

// reconcileUpgrade runs once STATE is mounted: it says whether this boot
// is an upgrade's trial (to be kept once the API answers and vmkernel has
// its VMs), and records a rollback when a trial failed and the firmware
// came back to this bank.
func (p *initProc) reconcileUpgrade() (trial bool) {
	h, release, ok := p.openBanks()
	if !ok {
		return false
	}
	defer release()
	trial, msg, err := h.Reconcile()
	switch {
	case err != nil:
		p.logf("upgrade: %v", err)
	case strings.Contains(msg, "ROLLED BACK"):
		p.logf("%s %s", UpgradeRolledBackPrefix, msg)
	case msg != "":
		p.logf("upgrade: %s", msg)
	}
	return trial
}

// keepTrial marks the running trial good: the API answers (the ready line
// is out) and vmkernel lists its VMs. It returns an error when it cannot,
// and the caller then fails the trial.
func (p *initProc) keepTrial() error {
	c, err := client.NewVMKernel(p.cfg.Layout.VMKernelSocket())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var vms []api.VM
	for {
		vms, err = c.ListVMs(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("vmkernel did not list its VMs: %w", err)
	}
	h, release, ok := p.openBanks()
	if !ok {
		return fmt.Errorf("the boot disk's ESP cannot be mounted")
	}
	defer release()
	msg, err := h.Bless(fmt.Sprintf("the API answered and vmkernel has its %d VMs", len(vms)))
	if err != nil {
		return err
	}
	p.logf("%s %s", UpgradeKeptPrefix, msg)
	return nil
}

// failTrial notes why the trial gives up and asks for a reboot, which
// spends one of its tries (or, with none left, boots the old bank).
func (p *initProc) failTrial(reason string, power chan<- string) {
	if h, release, ok := p.openBanks(); ok {
		if err := h.TrialFailed(reason); err != nil {
			p.logf("upgrade: %v", err)
		}
		release()
	}
	p.logf("%s %s; rebooting", UpgradeTrialFailed, reason)
	power <- rebootWhy + "upgrade trial failed: " + reason
}
