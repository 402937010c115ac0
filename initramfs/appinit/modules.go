package appinit

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plinth/plinth/board/drivers"
	"github.com/u-root/u-root/pkg/kmodule"
)

// alwaysModules are loaded whatever the hardware: what the appliance's own
// features need (virtual switches, VLANs, bonds, taps, vhost, file systems for
// datastores and media, the power button's input events).
var alwaysModules = []string{
	"evdev", "button", "tun", "vhost_net", "bridge", "8021q", "bonding",
	"ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "iso9660", "loop",
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

// loadModules cold-plugs: it loads the modules every device's modalias asks
// for, then the always-on set, and repeats while new devices appear (a bus
// driver such as virtio_pci makes the virtio devices it serves visible).
func (p *initProc) loadModules() error {
	f, err := os.Open(filepath.Join(p.cfg.ModulesDir, "modules.alias"))
	if err != nil {
		return fmt.Errorf("open modules.alias: %w", err)
	}
	aliases, err := drivers.ParseAliases(f)
	f.Close()
	if err != nil {
		return err
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return fmt.Errorf("read modules.dep: %w", err)
	}
	tried := map[string]bool{}
	var loaded, failed []string
	load := func(m string) {
		if tried[m] {
			return
		}
		tried[m] = true
		if err := prober.Probe(m, ""); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", m, err))
			return
		}
		loaded = append(loaded, m)
	}
	want := append([]string(nil), alwaysModules...)
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := kvmModule(string(b)); m != "" {
			want = append(want, m)
		}
	}
	var devs []drivers.Device
	for pass := 0; pass < 5; pass++ {
		devs, err = drivers.Devices("/sys")
		if err != nil {
			return err
		}
		var mas []string
		for _, d := range devs {
			mas = append(mas, d.Modalias)
		}
		mods, _ := drivers.Match(aliases, mas)
		if pass == 0 {
			mods = append(mods, want...)
		}
		before := len(tried)
		for _, m := range mods {
			load(m)
		}
		if len(tried) == before {
			break
		}
	}
	sort.Strings(loaded)
	p.logf("modules: loaded %d: %s", len(loaded), strings.Join(loaded, " "))
	for _, f := range failed {
		p.logf("modules: could not load %s", f)
	}
	// PCI devices that nothing drives are worth a line: a missing NIC or
	// storage driver is the usual reason a server "has no network".
	devs, _ = drivers.Devices("/sys")
	for _, d := range devs {
		if strings.HasPrefix(d.Path, "bus/pci/") && d.Driver == "" {
			if mods, _ := drivers.Match(aliases, []string{d.Modalias}); len(mods) == 0 {
				p.logf("modules: no shipped driver for PCI device %s (%s)", filepath.Base(d.Path), d.Modalias)
			}
		}
	}
	return nil
}
