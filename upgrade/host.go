package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/installer"
)

// RecordFile is where STATE keeps the pending and the last upgrade.
const RecordFile = "config/upgrade.json"

// DefaultTries is how many times a trial is booted before the firmware
// path falls back to the old bank (UEFI; BIOS boots a trial once).
const DefaultTries = 3

// Record is STATE's memory of upgrades.
type Record struct {
	// Pending is an upgrade written to a bank whose trial has not ended;
	// its Reason collects what went wrong in trial boots that reached the
	// init.
	Pending *api.UpgradeResult `json:"pending,omitempty"`
	Last    *api.UpgradeResult `json:"last,omitempty"`
}

// ReadRecord reads STATE's upgrade record; a missing one is empty.
func ReadRecord(stateDir string) (Record, error) {
	var r Record
	b, err := os.ReadFile(filepath.Join(stateDir, RecordFile))
	if os.IsNotExist(err) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", RecordFile, err)
	}
	return r, nil
}

func (r Record) write(stateDir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(stateDir, RecordFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, append(b, '\n'), 0o644)
}

// Host is the running system as upgrades see it.
type Host struct {
	ESP      ESP
	StateDir string
	// Running is the bank this boot came from (plinth.bank= on the kernel
	// command line).
	Running string
	Version string // the running version (api.Version)
	// Release is the running release number (api.Release): images of
	// older ones are downgrades.
	Release uint64
	// Firmware is "uefi" or "bios".
	Firmware string
	// Tries is the number of trial boots on UEFI (DefaultTries when 0).
	Tries int
	Now   func() time.Time
}

func (h Host) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

func (h Host) tries() int {
	if h.Tries > 0 {
		return h.Tries
	}
	return DefaultTries
}

// RunningBank reads plinth.bank= from a kernel command line.
func RunningBank(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "plinth.bank="); ok && ValidBank(v) {
			return v
		}
	}
	return ""
}

// Firmware says how this machine booted: "uefi" or "bios".
func Firmware(sys string) string {
	if _, err := os.Stat(filepath.Join(sys, "firmware", "efi")); err == nil {
		return "uefi"
	}
	return "bios"
}

// ErrBusy: an upgrade cannot start now (the running system is itself on
// trial).
var ErrBusy = errors.New("upgrade not possible now")

// Apply writes a verified bundle to the bank not running and makes it the
// next boot, on trial; STATE records it as pending.
func (h Host) Apply(st *Staged, progress func(step string)) (api.UpgradeResult, error) {
	if !ValidBank(h.Running) {
		return api.UpgradeResult{}, fmt.Errorf("%w: this boot did not come from a bank (no plinth.bank= on the kernel command line)", ErrBusy)
	}
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		return api.UpgradeResult{}, err
	}
	if rec.Pending != nil && rec.Pending.Bank == h.Running {
		return api.UpgradeResult{}, fmt.Errorf("%w: this system (%s, bank %s) is itself on trial and not yet marked good", ErrBusy, h.Version, h.Running)
	}
	target := Other(h.Running)
	if progress == nil {
		progress = func(string) {}
	}
	progress(fmt.Sprintf("writing %s to bank %s", st.Manifest.Version, target))
	if err := h.ESP.WriteBank(target, st); err != nil {
		return api.UpgradeResult{}, err
	}
	progress(fmt.Sprintf("bank %s: boot on trial next (%d tries on UEFI, 1 on BIOS)", target, h.tries()))
	if err := h.ESP.AddTrial(target, h.Running, h.tries()); err != nil {
		return api.UpgradeResult{}, err
	}
	p := api.UpgradeResult{Result: api.UpgradePending, FromVersion: h.Version, ToVersion: st.Manifest.Version, Bank: target, Time: h.now()}
	rec.Pending = &p
	if err := rec.write(h.StateDir); err != nil {
		return api.UpgradeResult{}, err
	}
	return p, nil
}

// Reconcile runs at boot, once STATE is mounted. It says whether this boot
// is a trial (the init must Bless it once up, or fail it). When the pending
// upgrade's bank is not the one that booted, the trial failed and the
// firmware path came back here: that is recorded as a rollback, with the
// reason, and the failed entry is removed. msg is for the console.
func (h Host) Reconcile() (trial bool, msg string, err error) {
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		return false, "", err
	}
	en, hasEntry, err := h.ESP.Entry(h.Running)
	if err != nil {
		return false, "", err
	}
	if rec.Pending == nil {
		// A counted entry with no record (STATE replaced): still a trial.
		return hasEntry && en.Trial(), "", nil
	}
	p := *rec.Pending
	if p.Bank == h.Running {
		left := "1 try (BIOS)"
		if hasEntry && en.Trial() {
			left = fmt.Sprintf("%d tries left after this one", en.TriesLeft)
		}
		return true, fmt.Sprintf("upgrade from %s: trial boot of %s in bank %s (%s)", p.FromVersion, p.ToVersion, p.Bank, left), nil
	}
	reason := strings.TrimSpace(p.Reason)
	if failed, ok, _ := h.ESP.Entry(p.Bank); ok && failed.Trial() {
		tries := fmt.Sprintf("it was booted %d times", failed.TriesDone)
		if failed.TriesDone == 1 {
			tries = "it was booted once"
		}
		if reason == "" {
			reason = tries + " and never came up far enough to mark itself good (kernel or init failure)"
		} else {
			reason = tries + ": " + reason
		}
	} else if reason == "" {
		reason = "it was booted and never came up far enough to mark itself good (kernel or init failure)"
	}
	if err := h.ESP.DropTrial(p.Bank); err != nil {
		return false, "", fmt.Errorf("remove the failed trial of bank %s: %w", p.Bank, err)
	}
	p.Result, p.Reason, p.Time = api.UpgradeRolledBack, reason, h.now()
	rec.Pending, rec.Last = nil, &p
	if err := rec.write(h.StateDir); err != nil {
		return false, "", err
	}
	return false, fmt.Sprintf("upgrade to %s ROLLED BACK: bank %s: %s; running %s from bank %s", p.ToVersion, p.Bank, reason, h.Version, h.Running), nil
}

// Bless keeps the running trial for good; detail says why it is good.
func (h Host) Bless(detail string) (string, error) {
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		return "", err
	}
	if err := h.ESP.Bless(h.Running); err != nil {
		return "", err
	}
	p := api.UpgradeResult{ToVersion: h.Version, Bank: h.Running}
	if rec.Pending != nil {
		p = *rec.Pending
	}
	p.Result, p.Reason, p.Time = api.UpgradeSucceeded, detail, h.now()
	rec.Pending, rec.Last = nil, &p
	if err := rec.write(h.StateDir); err != nil {
		return "", err
	}
	return fmt.Sprintf("upgrade from %s to %s succeeded: bank %s marked good (%s)", p.FromVersion, p.ToVersion, h.Running, detail), nil
}

// TrialFailed notes why a trial boot that reached the init is giving up
// (the init then reboots, spending a try).
func (h Host) TrialFailed(reason string) error {
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		return err
	}
	if rec.Pending == nil {
		return nil
	}
	if !strings.Contains(rec.Pending.Reason, reason) {
		rec.Pending.Reason = strings.TrimSpace(rec.Pending.Reason + " " + reason)
	}
	return rec.write(h.StateDir)
}

// Rollback makes the standby bank the one every boot takes from now on
// (manual rollback). A pending upgrade not yet booted is cancelled instead.
func (h Host) Rollback() (api.UpgradeResult, error) {
	if !ValidBank(h.Running) {
		return api.UpgradeResult{}, fmt.Errorf("%w: this boot did not come from a bank", ErrBusy)
	}
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		return api.UpgradeResult{}, err
	}
	other := Other(h.Running)
	if rec.Pending != nil && rec.Pending.Bank == other {
		if err := h.ESP.DropTrial(other); err != nil {
			return api.UpgradeResult{}, err
		}
		p := *rec.Pending
		p.Result, p.Reason, p.Time = api.UpgradeManual, "the pending upgrade was cancelled before its trial boot", h.now()
		rec.Pending, rec.Last = nil, &p
		return p, rec.write(h.StateDir)
	}
	if rec.Pending != nil {
		return api.UpgradeResult{}, fmt.Errorf("%w: this system is on trial; reboot without marking it good to go back", ErrBusy)
	}
	v := h.ESP.BankVersion(other)
	banks, err := h.ESP.Banks(h.Running)
	if err != nil {
		return api.UpgradeResult{}, err
	}
	for _, b := range banks {
		if b.Name == other && b.State != api.BankStandby {
			return api.UpgradeResult{}, fmt.Errorf("%w: bank %s is %s, there is nothing to roll back to", ErrBusy, other, b.State)
		}
	}
	if err := h.ESP.MakeDefault(other); err != nil {
		return api.UpgradeResult{}, err
	}
	p := api.UpgradeResult{Result: api.UpgradeManual, FromVersion: h.Version, ToVersion: v, Bank: other, Time: h.now(),
		Reason: fmt.Sprintf("rollback asked for: bank %s (%s) boots from now on", other, v)}
	rec.Last = &p
	return p, rec.write(h.StateDir)
}

// Status is the upgrade state for the API, the CLI and the DCUI.
func (h Host) Status() api.UpgradeStatus {
	s := api.UpgradeStatus{Supported: true, Version: h.Version, Active: h.Running, Firmware: h.Firmware}
	rec, err := ReadRecord(h.StateDir)
	if err != nil {
		s.Supported, s.Reason = false, err.Error()
		return s
	}
	s.Pending, s.Last = rec.Pending, rec.Last
	banks, err := h.ESP.Banks(h.Running)
	if err != nil {
		s.Supported, s.Reason = false, err.Error()
		return s
	}
	s.Banks = banks
	if !ValidBank(h.Running) {
		s.Supported, s.Reason = false, "this boot did not come from a bank of the boot disk"
	}
	return s
}

// lockWait bounds the wait for the ESP's lock.
const lockWait = 30 * time.Second

// Mount mounts the boot disk's ESP (env locates it) on a new directory
// under runDir; release unmounts it. Writers (write: upgrades, rollback,
// the init's keep and reconcile) hold the lock alone and get a
// read-write mount, flushed at release; readers (the status the API and
// the DCUI ask for every few seconds) share the lock and mount read-only,
// so they never flush the host's disks. The lock is waited for at most
// lockWait (then ErrBusy).
func Mount(env installer.Env, runDir string, write bool) (esp ESP, release func(), err error) {
	dev, err := env.BootESP()
	if err != nil {
		return ESP{}, nil, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return ESP{}, nil, err
	}
	lock, err := os.OpenFile(filepath.Join(runDir, "esp.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return ESP{}, nil, err
	}
	how, flags := unix.LOCK_SH, uintptr(unix.MS_RDONLY)
	if write {
		how, flags = unix.LOCK_EX, 0
	}
	for deadline := time.Now().Add(lockWait); ; {
		err := unix.Flock(int(lock.Fd()), how|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			lock.Close()
			if err == unix.EWOULDBLOCK {
				return ESP{}, nil, fmt.Errorf("%w: the boot disk's ESP is being changed (an upgrade is being written); try again", ErrBusy)
			}
			return ESP{}, nil, fmt.Errorf("lock the ESP: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	dir, err := os.MkdirTemp(runDir, "esp-")
	if err != nil {
		lock.Close()
		return ESP{}, nil, err
	}
	if err := unix.Mount(dev, dir, "vfat", flags|unix.MS_NOEXEC|unix.MS_NODEV|unix.MS_NOSUID, "flush"); err != nil {
		os.Remove(dir)
		lock.Close()
		return ESP{}, nil, fmt.Errorf("mount %s (the boot disk's ESP): %w", dev, err)
	}
	release = sync.OnceFunc(func() {
		if write {
			unix.Sync()
		}
		unix.Unmount(dir, 0)
		os.Remove(dir)
		lock.Close()
	})
	esp = ESP{Dir: dir}
	if err := esp.Check(); err != nil {
		release()
		return ESP{}, nil, err
	}
	return esp, release, nil
}
