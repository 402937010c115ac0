package drivers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
)

// Loader loads kernel modules by name, many at a time and each at most once,
// with the modules they depend on (modules.dep, through u-root's kmodule),
// and cold-plugs: it loads what the devices in sysfs ask for (ColdPlug), and
// then what devices that appear later ask for (HotPlug). It is Plinth's one
// module loader: the appliance init and the kernel's modprobe helper
// (initramfs/cmd/modprobe) both use it.
type Loader struct {
	prober  *kmodule.Prober
	aliases []Alias
	paths   map[string]string // module name -> path in the modules tree
	sysRoot string
	logf    func(string, ...any)
	mu      sync.Mutex
	cond    *sync.Cond // signalled when a module finishes loading
	tried   map[string]bool
	// inflight holds the modules being loaded; started is set once the
	// cold-plug has scheduled its first modules.
	inflight map[string]bool
	started  bool
	// hold, while set, keeps the cold-plug from loading the modules it
	// accepts (by path); held collects them for LoadHeld.
	hold func(path string) bool
	held map[string]bool
	// matched holds the modaliases ColdPlug has matched: each of their
	// modules was tried or held then, so a look again matches only the
	// devices that are new.
	matched map[string]bool
}

// Hold makes ColdPlug and HotPlug leave the modules whose path hold
// accepts for later: the boot loads only what it needs on the way to the
// ready line, and the rest with LoadHeld.
func (l *Loader) Hold(hold func(path string) bool) {
	l.mu.Lock()
	l.hold = hold
	l.mu.Unlock()
}

// LoadHeld stops holding modules back and loads those held so far; it
// returns what it loaded.
func (l *Loader) LoadHeld() []string {
	l.mu.Lock()
	l.hold = nil
	var names []string
	for m := range l.held {
		names = append(names, m)
	}
	l.held = nil
	l.mu.Unlock()
	loaded, _ := l.Load(names...)
	return loaded
}

// NewLoader reads modulesDir (a /lib/modules/RELEASE tree with modules.dep
// and modules.alias made by depmod) and returns a Loader for the devices
// under sysRoot (normally /sys) that reports failures and slow loads
// through logf (nil: silent).
func NewLoader(modulesDir, sysRoot string, logf func(string, ...any)) (*Loader, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	f, err := os.Open(filepath.Join(modulesDir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("module loader: %w", err)
	}
	aliases, err := ParseAliases(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	dep, err := os.Open(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("module loader: %w", err)
	}
	paths, err := ModulePaths(dep)
	dep.Close()
	if err != nil {
		return nil, err
	}
	// kmodule finds the tree as ROOT/lib/modules/RELEASE.
	release := filepath.Base(modulesDir)
	root, ok := strings.CutSuffix(filepath.Clean(modulesDir), filepath.Join("/lib/modules", release))
	if !ok {
		return nil, fmt.Errorf("module loader: %s is not a lib/modules/RELEASE directory", modulesDir)
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{RootDir: root, KVer: release})
	if err != nil {
		return nil, fmt.Errorf("module loader: read modules.dep: %w", err)
	}
	l := &Loader{prober: prober, aliases: aliases, paths: paths, sysRoot: sysRoot, logf: logf,
		tried: map[string]bool{}, inflight: map[string]bool{}, matched: map[string]bool{}}
	l.cond = sync.NewCond(&l.mu)
	return l, nil
}

// Path is the module's path in the modules tree ("" when it is not there),
// e.g. "kernel/drivers/ata/ahci.ko".
func (l *Loader) Path(module string) string {
	return l.paths[strings.ReplaceAll(module, "-", "_")]
}

// Resolve maps a module name or an alias (what the kernel asks its modprobe
// helper for, or a device modalias) to module names.
func (l *Loader) Resolve(name string) []string { return Resolve(l.aliases, l.paths, name) }

// Match returns the modules that the modaliases ask for.
func (l *Loader) Match(modaliases ...string) []string {
	mods, _ := Match(l.aliases, modaliases)
	return mods
}

// Module classes the boot waits on selectively: the network needs its NIC
// drivers but not the storage controllers (ahci probing its ports takes a
// second under TCG) nor KVM; STATE needs storage but not KVM.

// IsKVM says whether the module at path (see Path) is a KVM module.
func IsKVM(path string) bool { return strings.Contains(path, "/arch/x86/kvm/") }

// IsStorage says whether the module at path drives storage.
func IsStorage(path string) bool {
	for _, d := range []string{"/drivers/ata/", "/drivers/scsi/", "/drivers/nvme/", "/drivers/block/", "/drivers/usb/", "/drivers/cdrom/"} {
		if strings.Contains(path, d) {
			return true
		}
	}
	return false
}

// WaitQuiet blocks until the cold-plug has started and every module still
// loading is one that skip accepts (by its path), or until ctx ends.
func (l *Loader) WaitQuiet(ctx context.Context, skip func(path string) bool) {
	stop := context.AfterFunc(ctx, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for ctx.Err() == nil {
		busy := !l.started
		for m := range l.inflight {
			if skip == nil || !skip(l.paths[strings.ReplaceAll(m, "-", "_")]) {
				busy = true
			}
		}
		if !busy {
			return
		}
		l.cond.Wait()
	}
}

// Load loads the named modules not tried before, in parallel, and returns
// those it loaded and the failures. Named modules that another call is
// loading at the time are waited for (and not reported).
func (l *Loader) Load(names ...string) (loaded []string, err error) {
	var todo, others []string
	l.mu.Lock()
	for _, n := range names {
		switch {
		case !l.tried[n]:
			l.tried[n] = true
			l.inflight[n] = true
			todo = append(todo, n)
		case l.inflight[n]:
			others = append(others, n)
		}
	}
	l.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.probe(n)
			mu.Lock()
			if err == nil {
				loaded = append(loaded, n)
			} else {
				errs = append(errs, err)
			}
			mu.Unlock()
			l.done(n)
		}()
	}
	wg.Wait()
	l.mu.Lock()
	for _, n := range others {
		for l.inflight[n] {
			l.cond.Wait()
		}
	}
	l.mu.Unlock()
	sort.Strings(loaded)
	return loaded, errors.Join(errs...)
}

func (l *Loader) done(m string) {
	l.mu.Lock()
	delete(l.inflight, m)
	l.cond.Broadcast()
	l.mu.Unlock()
}

// ColdPlug loads, in parallel, the modules that the devices' modaliases ask
// for plus extra, and every time a module has loaded it looks again: a bus
// driver such as virtio_pci makes the devices it serves (virtio-net, ...)
// visible, and their drivers start at once rather than after the slowest
// module of a "pass" (ahci probing its ports, kvm_amd setting up SVM). It
// returns what it loaded.
func (l *Loader) ColdPlug(extra []string) []string {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		loaded []string
	)
	var schedule func(more []string)
	schedule = func(more []string) {
		devs, err := Devices(l.sysRoot)
		if err != nil {
			l.logf("modules: %v", err)
		}
		var mas []string
		l.mu.Lock()
		for _, d := range devs {
			if !l.matched[d.Modalias] {
				l.matched[d.Modalias] = true
				mas = append(mas, d.Modalias)
			}
		}
		l.mu.Unlock()
		mods, _ := Match(l.aliases, mas)
		mods = append(mods, more...)
		l.mu.Lock()
		var todo []string
		for _, m := range mods {
			if l.hold != nil && !l.tried[m] && l.hold(l.paths[strings.ReplaceAll(m, "-", "_")]) {
				if l.held == nil {
					l.held = map[string]bool{}
				}
				l.held[m] = true
				continue
			}
			if !l.tried[m] {
				l.tried[m] = true
				l.inflight[m] = true
				todo = append(todo, m)
			}
		}
		l.started = true
		l.mu.Unlock()
		for _, m := range todo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if l.probe(m) == nil {
					mu.Lock()
					loaded = append(loaded, m)
					mu.Unlock()
				}
				// Look for new devices before saying this one is done, so
				// that waiters never see a gap between a bus driver and the
				// drivers of the devices it revealed.
				schedule(nil)
				l.done(m)
			}()
		}
	}
	// A last look after everything settled catches devices that a driver
	// registered asynchronously, after its module had returned.
	for round := 0; round < 3; round++ {
		l.mu.Lock()
		before := len(l.tried)
		l.mu.Unlock()
		schedule(extra)
		extra = nil
		wg.Wait()
		l.mu.Lock()
		after := len(l.tried)
		l.mu.Unlock()
		if after == before {
			break
		}
	}
	sort.Strings(loaded)
	return loaded
}

// HotPlug loads the drivers of devices added after the cold-plug, as ue
// announces them, until ctx ends or the socket fails; after a socket
// overrun (events lost) it cold-plugs again. Each load is reported through
// logf.
func (l *Loader) HotPlug(ctx context.Context, ue *Uevents) error {
	for {
		err := ue.Run(ctx, func(ev Uevent) {
			if ev.Action != "add" || ev.Modalias == "" {
				return
			}
			if loaded, _ := l.Load(l.holdBack(l.Match(ev.Modalias))...); len(loaded) > 0 {
				l.logf("modules: hot-plug %s: loaded %s", ev.Modalias, strings.Join(loaded, " "))
			}
		})
		if !errors.Is(err, ErrUeventOverrun) {
			return err
		}
		if loaded := l.ColdPlug(nil); len(loaded) > 0 {
			l.logf("modules: hot-plug rescan: loaded %s", strings.Join(loaded, " "))
		}
	}
}

// holdBack returns mods without those Hold keeps back (recording them).
func (l *Loader) holdBack(mods []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold == nil {
		return mods
	}
	var out []string
	for _, m := range mods {
		if l.hold(l.paths[strings.ReplaceAll(m, "-", "_")]) {
			if l.held == nil {
				l.held = map[string]bool{}
			}
			l.held[m] = true
			continue
		}
		out = append(out, m)
	}
	return out
}

// Unclaimed lists the PCI devices that no driver is bound to and no shipped
// module matches: a missing NIC or storage driver is the usual reason a
// server "has no network".
func (l *Loader) Unclaimed() []Device {
	devs, _ := Devices(l.sysRoot)
	var out []Device
	for _, d := range devs {
		if strings.HasPrefix(d.Path, "bus/pci/devices/") && d.Driver == "" && len(l.Match(d.Modalias)) == 0 {
			out = append(out, d)
		}
	}
	return out
}

// probe loads one module with its dependencies, logging a failure or a
// slow load.
func (l *Loader) probe(m string) error {
	t0 := time.Now()
	if err := l.prober.Probe(m, ""); err != nil {
		err = fmt.Errorf("load module %s: %w", m, err)
		l.logf("modules: %v", err)
		return err
	}
	if d := time.Since(t0); d > 250*time.Millisecond {
		l.logf("modules: %s took %s", m, d.Round(time.Millisecond))
	}
	return nil
}
