package appinit

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

	"github.com/plinth/plinth/board/drivers"
	"github.com/u-root/u-root/pkg/kmodule"
)

// bootModules are loaded at boot whatever the hardware says: the power
// button's input events, and loop and squashfs for the VM payload image. Everything a device's modalias names is loaded too,
// and the CPU's KVM module, before vmkernel starts and decides KVM or TCG.
var bootModules = []string{"evdev", "button", "loop", "squashfs"}

// laterModules are what the appliance's own features need (virtual switches,
// VLANs, bonds, taps, vhost, file systems for datastores and media). Nothing
// before the ready line needs them, so they load in the background after the
// services have started; ext4 loads early only when a STATE file system is
// found.
var laterModules = []string{
	"tun", "vhost_net", "bridge", "8021q", "bonding",
	"ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "isofs",
}

// kvmModule picks the KVM module the CPU's flags call for.
func kvmModule(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			switch f {
			case "vmx":
				return "kvm_intel"
			case "svm":
				return "kvm_amd"
			}
		}
		return ""
	}
	return ""
}

// modLoader loads kernel modules by name, in parallel, each at most once.
type modLoader struct {
	prober  *kmodule.Prober
	aliases []drivers.Alias
	paths   map[string]string // module name -> path in the modules tree
	logf    func(string, ...any)
	mu      sync.Mutex
	cond    *sync.Cond // signalled when a module finishes loading
	tried   map[string]bool
	// inflight holds the modules being loaded; started is set once the
	// cold-plug has scheduled its first modules.
	inflight map[string]bool
	started  bool
}

// Module classes the boot steps wait on selectively: the network needs its
// NIC drivers but not the storage controllers (ahci probing its ports takes a
// second under TCG) nor KVM; STATE needs storage but not KVM.
func isKVMModule(path string) bool { return strings.Contains(path, "/arch/x86/kvm/") }

func isStorageModule(path string) bool {
	for _, d := range []string{"/drivers/ata/", "/drivers/scsi/", "/drivers/nvme/", "/drivers/block/", "/drivers/usb/", "/drivers/cdrom/"} {
		if strings.Contains(path, d) {
			return true
		}
	}
	return false
}

// waitQuiet blocks until the cold-plug has started and every module still
// loading is one that skip accepts (by its path), or until ctx ends.
func (l *modLoader) waitQuiet(ctx context.Context, skip func(path string) bool) {
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

func newModLoader(modulesDir string, logf func(string, ...any)) (*modLoader, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("open modules.alias: %w", err)
	}
	aliases, err := drivers.ParseAliases(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	dep, err := os.Open(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("open modules.dep: %w", err)
	}
	defer dep.Close()
	paths, err := drivers.ModulePaths(dep)
	if err != nil {
		return nil, err
	}
	l := &modLoader{prober: prober, aliases: aliases, paths: paths, logf: logf,
		tried: map[string]bool{}, inflight: map[string]bool{}}
	l.cond = sync.NewCond(&l.mu)
	return l, nil
}

// load loads the named modules not tried before, in parallel.
func (l *modLoader) load(names []string) (loaded []string) {
	var todo []string
	l.mu.Lock()
	for _, n := range names {
		if !l.tried[n] {
			l.tried[n] = true
			todo = append(todo, n)
		}
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.probe(n) {
				mu.Lock()
				loaded = append(loaded, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(loaded)
	return loaded
}

// coldplug loads, in parallel, the modules that the devices' modaliases ask
// for plus extra, and every time a module has loaded it looks again: a bus
// driver such as virtio_pci makes the devices it serves (virtio-net, ...)
// visible, and their drivers start at once rather than after the slowest
// module of a "pass" (ahci probing its ports, kvm_amd setting up SVM).
func (l *modLoader) coldplug(extra []string) []string {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		loaded []string
	)
	var schedule func(more []string)
	schedule = func(more []string) {
		devs, err := drivers.Devices("/sys")
		if err != nil {
			l.logf("modules: %v", err)
		}
		var mas []string
		for _, d := range devs {
			mas = append(mas, d.Modalias)
		}
		mods, _ := drivers.Match(l.aliases, mas)
		mods = append(mods, more...)
		l.mu.Lock()
		var todo []string
		for _, m := range mods {
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
				if l.probe(m) {
					mu.Lock()
					loaded = append(loaded, m)
					mu.Unlock()
				}
				// Look for new devices before saying this one is done, so
				// that waiters never see a gap between a bus driver and the
				// drivers of the devices it revealed.
				schedule(nil)
				l.mu.Lock()
				delete(l.inflight, m)
				l.cond.Broadcast()
				l.mu.Unlock()
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

// probe loads one module, logging a failure or a slow load.
func (l *modLoader) probe(m string) bool {
	t0 := time.Now()
	if err := l.prober.Probe(m, ""); err != nil {
		l.logf("modules: could not load %s: %v", m, err)
		return false
	}
	if d := time.Since(t0); d > 250*time.Millisecond {
		l.logf("modules: %s took %s", m, d.Round(time.Millisecond))
	}
	return true
}

// loadModules cold-plugs the hardware's drivers, bootModules and the CPU's
// KVM module.
func (p *initProc) loadModules() error {
	l := p.mods
	if l == nil {
		return fmt.Errorf("no module loader")
	}
	want := append([]string(nil), bootModules...)
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := kvmModule(string(b)); m != "" {
			want = append(want, m)
		}
	}
	// Listen for device events before the scan, so that a device that
	// appears later (a USB stick's disk) gets its driver too.
	ue, err := drivers.ListenUevents()
	if err != nil {
		p.logf("modules: no hot-plug: %v", err)
	}
	all := l.coldplug(want)
	p.logf("modules: loaded %d: %s", len(all), strings.Join(all, " "))
	if ue != nil {
		go p.hotplug(ue)
	}
	// PCI devices that nothing drives are worth a line: a missing NIC or
	// storage driver is the usual reason a server "has no network".
	devs, _ := drivers.Devices("/sys")
	for _, d := range devs {
		if strings.HasPrefix(d.Path, "bus/pci/") && d.Driver == "" {
			if mods, _ := drivers.Match(l.aliases, []string{d.Modalias}); len(mods) == 0 {
				p.logf("modules: no shipped driver for PCI device %s (%s)", filepath.Base(d.Path), d.Modalias)
			}
		}
	}
	return nil
}

// hotplug loads the drivers of devices added after the cold-plug, for as
// long as the host runs; after a socket overrun it rescans sysfs.
func (p *initProc) hotplug(ue *drivers.Uevents) {
	l := p.mods
	for {
		err := ue.Run(context.Background(), func(ev drivers.Uevent) {
			if ev.Action != "add" || ev.Modalias == "" {
				return
			}
			mods, _ := drivers.Match(l.aliases, []string{ev.Modalias})
			if loaded := l.load(mods); len(loaded) > 0 {
				p.logf("modules: hot-plug %s: loaded %s", ev.Modalias, strings.Join(loaded, " "))
			}
		})
		if !errors.Is(err, drivers.ErrUeventOverrun) {
			p.logf("modules: hot-plug stopped: %v", err)
			ue.Close()
			return
		}
		if loaded := l.coldplug(nil); len(loaded) > 0 {
			p.logf("modules: hot-plug rescan: loaded %s", strings.Join(loaded, " "))
		}
	}
}

// loadLaterModules loads laterModules; it runs in the background.
func (p *initProc) loadLaterModules() {
	if p.mods == nil {
		return
	}
	t0 := time.Now()
	loaded := p.mods.load(laterModules)
	p.logf("modules: loaded %d more in %s: %s", len(loaded), time.Since(t0).Round(time.Millisecond), strings.Join(loaded, " "))
}
