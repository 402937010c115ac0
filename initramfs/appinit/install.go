package appinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/plinth/plinth/installer"
)

// Markers of the unattended install on the console, for people and tests.
const (
	InstallDonePrefix   = "PLINTH-INSTALL-DONE"
	InstallFailedPrefix = "PLINTH-INSTALL-FAILED"
)

// installUnattended runs Plinth's unattended installer when an answer file
// is given (kernel command line plinth.answer=URL, QEMU fw_cfg
// opt/plinth/answer, an SMBIOS OEM string, or plinth/answer.cfg on the boot
// medium's ESP) and the host does not already run from an installed disk.
// done says the install finished and the host should now go down
// (reboot: restart rather than power off); after a failure (reported with
// its reason, nothing written when the answer file or the disk choice was
// wrong) the boot goes on, live, so the console shows what happened.
//
// Called from Run once STATE, the payload (mke2fs) and the network are up
// and before the services start:
//
//	if done, reboot := p.installUnattended(); done { return p.shutdown("unattended install finished", reboot) }
func (p *initProc) installUnattended() (done, reboot bool) {
	// Unattended installs never run from an installed disk (the ESP copied
	// from the stick would carry its answer file along).
	if _, err := os.Stat(p.cfg.Layout.InstalledMarker()); err == nil {
		return false, false // an installed host never installs itself again
	}
	env := installer.DefaultEnv()
	env.StateDir = p.cfg.Layout.State
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	found, err := installer.FindAnswer(ctx, installer.AnswerEnv{
		Sys:     "/sys",
		Cmdline: p.cfg.Cmdline,
		LoadModule: func(name string) error {
			if p.mods == nil {
				return errors.New("no module loader")
			}
			_, err := p.mods.Load(name)
			return err
		},
		Env:      env,
		MountDir: p.cfg.Layout.BootMediaMount(),
	})
	if errors.Is(err, installer.ErrNoAnswer) {
		return false, false
	}
	fail := func(err error) (bool, bool) {
		banner := strings.Repeat("!", 72)
		p.logf("%s", banner)
		p.logf("UNATTENDED INSTALL FAILED: %v", err)
		p.logf("%s", banner)
		fmt.Fprintf(p.cfg.Console, "%s %v\n", InstallFailedPrefix, err)
		return false, false
	}
	if err != nil {
		return fail(fmt.Errorf("reading the answer file: %w", err))
	}
	p.logf("unattended install: answer file from %s", found.Source)
	a, err := installer.ParseAnswer(strings.NewReader(string(found.Data)))
	if err != nil {
		return fail(fmt.Errorf("%w (nothing was written)", err))
	}
	var res installer.UnattendedResult
	err = p.step("install", func() error {
		var err error
		res, err = installer.Unattended(ctx, env, a, p.logf)
		return err
	})
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(p.cfg.Console, "%s disk=%s seconds=%.1f after=%s\n", InstallDonePrefix, res.Disk, res.Duration.Seconds(), res.After)
	return true, res.After == "reboot"
}
