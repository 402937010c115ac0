package upgrade

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// syslinuxCfg is the BIOS boot loader's configuration as the image build
// writes it (installer/mkimage.sh): a DEFAULT bank and a LABEL per bank.
type syslinuxCfg struct {
	absent  bool // no syslinux on this ESP (the ISO's)
	Default string
	Labels  map[string]syslinuxLabel
}

type syslinuxLabel struct {
	Title, Append string
}

func (e ESP) syslinuxPath() string { return filepath.Join(e.Dir, "syslinux", "syslinux.cfg") }
func (e ESP) ldlinux() string      { return filepath.Join(e.Dir, "syslinux", "ldlinux.sys") }

func (e ESP) readSyslinux() (syslinuxCfg, error) {
	cfg := syslinuxCfg{Labels: map[string]syslinuxLabel{}}
	b, err := os.ReadFile(e.syslinuxPath())
	if os.IsNotExist(err) {
		cfg.absent = true
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	label := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		rest := strings.TrimSpace(strings.TrimSpace(l)[len(f[0]):])
		switch strings.ToUpper(f[0]) {
		case "DEFAULT":
			cfg.Default = rest
		case "LABEL":
			label = rest
			cfg.Labels[label] = syslinuxLabel{}
		case "MENU":
			if label != "" && strings.EqualFold(f[1], "LABEL") {
				lb := cfg.Labels[label]
				lb.Title = strings.TrimSpace(rest[len(f[1]):])
				cfg.Labels[label] = lb
			}
		case "APPEND":
			if label != "" {
				lb := cfg.Labels[label]
				lb.Append = rest
				cfg.Labels[label] = lb
			}
		}
	}
	for l := range cfg.Labels {
		if !ValidBank(l) {
			return cfg, fmt.Errorf("%s: label %q is not a bank", e.syslinuxPath(), l)
		}
	}
	return cfg, nil
}

func (e ESP) writeSyslinux(cfg syslinuxCfg) error {
	if cfg.absent {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SERIAL 0 115200\nDEFAULT %s\nPROMPT 0\nTIMEOUT 20\n", cfg.Default)
	var names []string
	for n := range cfg.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := cfg.Labels[n]
		fmt.Fprintf(&b, "LABEL %s\n  MENU LABEL %s\n  LINUX /%s/%s\n  INITRD /%s/%s\n  APPEND %s\n", n, l.Title, n, KernelName, n, InitrdName, l.Append)
	}
	tmp := e.syslinuxPath() + ".new"
	if err := writeFileSync(tmp, []byte(b.String())); err != nil {
		return fmt.Errorf("syslinux.cfg: %w", err)
	}
	return os.Rename(tmp, e.syslinuxPath())
}

// setBootOnce sets syslinux's boot-once command where syslinux is present.
func (e ESP) setBootOnce(cmd string) error {
	if _, err := os.Stat(e.ldlinux()); os.IsNotExist(err) {
		return nil
	}
	return SetBootOnce(e.ldlinux(), cmd)
}
