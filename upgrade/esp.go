package upgrade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// ESP is the boot disk's EFI system partition, mounted at Dir:
//
//	A/vmlinuz A/initrd A/VERSION     bank A (B/ likewise)
//	loader/loader.conf               systemd-boot: "default plinth-*"
//	loader/entries/plinth-GEN-a.conf one entry per bank; the highest
//	                                 generation that is not out of tries
//	                                 boots (plinth-GEN-b+3.conf: on trial,
//	                                 3 tries left; +0-3: none left)
//	syslinux/syslinux.cfg            BIOS: DEFAULT is the good bank, a
//	                                 LABEL per bank
//	syslinux/ldlinux.sys             its ADV holds the boot-once command
//	                                 of a trial on BIOS
type ESP struct {
	Dir string
}

// Banks are the two bank names.
var Banks = []string{"A", "B"}

// Other is the bank that is not b.
func Other(b string) string {
	if b == "A" {
		return "B"
	}
	return "A"
}

// ValidBank says whether b names a bank.
func ValidBank(b string) bool { return b == "A" || b == "B" }

// Entry is one systemd-boot loader entry of a bank.
type Entry struct {
	File string // name in loader/entries
	Gen  int
	Bank string
	// TriesLeft and TriesDone are the boot counter; -1 when the entry has
	// none (a good entry).
	TriesLeft, TriesDone int
}

// Trial says whether the entry is counting boots.
func (e Entry) Trial() bool { return e.TriesLeft >= 0 }

var entryRE = regexp.MustCompile(`^plinth-(?:(\d{1,9})-)?([ab])(?:\+(\d+)(?:-(\d+))?)?\.conf$`)

// ParseEntryName reads a loader entry's file name; ok is false for files
// that are not bank entries.
func ParseEntryName(name string) (Entry, bool) {
	m := entryRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{File: name, Bank: strings.ToUpper(m[2]), TriesLeft: -1, TriesDone: -1}
	e.Gen, _ = strconv.Atoi(m[1]) // plinth-a.conf (first images): generation 0
	if m[3] != "" {
		e.TriesLeft, _ = strconv.Atoi(m[3])
		e.TriesDone = 0
		if m[4] != "" {
			e.TriesDone, _ = strconv.Atoi(m[4])
		}
	}
	return e, true
}

func entryName(gen int, bank string, tries int) string {
	n := fmt.Sprintf("plinth-%04d-%s", gen, strings.ToLower(bank))
	if tries >= 0 {
		n += fmt.Sprintf("+%d", tries)
	}
	return n + ".conf"
}

func (e ESP) entriesDir() string { return filepath.Join(e.Dir, "loader", "entries") }

// Entries lists the bank entries, highest generation first (the order
// systemd-boot prefers among entries with tries left).
func (e ESP) Entries() ([]Entry, error) {
	des, err := os.ReadDir(e.entriesDir())
	if err != nil {
		return nil, fmt.Errorf("loader entries: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if en, ok := ParseEntryName(de.Name()); ok {
			out = append(out, en)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Gen > out[j].Gen })
	return out, nil
}

// Entry is bank's loader entry; ok is false when it has none.
func (e ESP) Entry(bank string) (Entry, bool, error) {
	es, err := e.Entries()
	if err != nil {
		return Entry{}, false, err
	}
	for _, en := range es {
		if en.Bank == bank {
			return en, true, nil
		}
	}
	return Entry{}, false, nil
}

// BankVersion is the version bank holds, "" when it is empty.
func (e ESP) BankVersion(bank string) string {
	if _, err := os.Stat(filepath.Join(e.Dir, bank, KernelName)); err != nil {
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(e.Dir, bank, "VERSION")); err == nil {
		return strings.TrimSpace(string(b))
	}
	// Images made before banks carried VERSION: the media file names bank A.
	if b, err := os.ReadFile(filepath.Join(e.Dir, "plinth", "media")); err == nil && bank == "A" {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "version="); ok {
				return v
			}
		}
	}
	return "unknown"
}

// entryOptions reads the "options" line of an entry file.
func (e ESP) entryOptions(file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.entriesDir(), file))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "options"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", nil
}

// bankOptions is the kernel command line for bank, made from the running
// bank's entry: the same options with plinth.bank= set to bank, and panic=
// set, so that a kernel panic (an init that exits) reboots and spends a
// try instead of hanging.
func bankOptions(base, bank string) string {
	var out []string
	hasPanic := false
	for _, f := range strings.Fields(base) {
		if strings.HasPrefix(f, "plinth.bank=") {
			continue
		}
		if strings.HasPrefix(f, "panic=") {
			hasPanic = true
		}
		out = append(out, f)
	}
	if !hasPanic {
		out = append(out, "panic=10")
	}
	return strings.Join(append(out, "plinth.bank="+bank), " ")
}

// writeFileSync writes a file and flushes it to the disk.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// removeBank makes bank unbootable before it is overwritten: its loader
// entry and syslinux label go first.
func (e ESP) removeBank(bank string) error {
	if en, ok, err := e.Entry(bank); err != nil {
		return err
	} else if ok {
		if err := os.Remove(filepath.Join(e.entriesDir(), en.File)); err != nil {
			return fmt.Errorf("remove loader entry %s: %w", en.File, err)
		}
	}
	cfg, err := e.readSyslinux()
	if err != nil {
		return err
	}
	if cfg.Default == bank {
		return fmt.Errorf("bank %s is syslinux's default: refusing to overwrite the bank BIOS boots", bank)
	}
	delete(cfg.Labels, bank)
	if err := e.writeSyslinux(cfg); err != nil {
		return err
	}
	syncDir(e.entriesDir())
	return nil
}

// WriteBank copies a staged bundle into bank (not the running one): its
// entries go first, then the files are written to BANK.new, flushed, and
// renamed into place.
func (e ESP) WriteBank(bank string, st *Staged) error {
	if err := e.removeBank(bank); err != nil {
		return fmt.Errorf("bank %s: %w", bank, err)
	}
	tmp := filepath.Join(e.Dir, bank+".new")
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("bank %s: %w", bank, err)
	}
	for _, f := range []string{KernelName, InitrdName} {
		b, err := os.ReadFile(filepath.Join(st.Dir, f))
		if err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(tmp, f), b); err != nil {
			return fmt.Errorf("bank %s: write %s: %w", bank, f, err)
		}
	}
	if err := writeFileSync(filepath.Join(tmp, "VERSION"), []byte(st.Manifest.Version+"\n")); err != nil {
		return fmt.Errorf("bank %s: %w", bank, err)
	}
	final := filepath.Join(e.Dir, bank)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("bank %s: remove the old system: %w", bank, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("bank %s: %w", bank, err)
	}
	syncDir(e.Dir)
	return nil
}

func (e ESP) maxGen() (int, error) {
	es, err := e.Entries()
	if err != nil {
		return 0, err
	}
	g := 0
	for _, en := range es {
		g = max(g, en.Gen)
	}
	return g, nil
}

// writeEntry writes bank's loader entry of generation gen.
func (e ESP) writeEntry(gen int, bank, version, options string, tries int) error {
	body := fmt.Sprintf("title   Plinth %s (bank %s)\nlinux   /%s/%s\ninitrd  /%s/%s\noptions %s\n",
		version, bank, bank, KernelName, bank, InitrdName, options)
	if err := writeFileSync(filepath.Join(e.entriesDir(), entryName(gen, bank, tries)), []byte(body)); err != nil {
		return fmt.Errorf("loader entry for bank %s: %w", bank, err)
	}
	return nil
}

// writeLoaderConf makes systemd-boot pick the highest generation with
// tries left ("default plinth-*": entries that ran out of tries sort last).
func (e ESP) writeLoaderConf() error {
	return writeFileSync(filepath.Join(e.Dir, "loader", "loader.conf"),
		[]byte("default plinth-*\ntimeout 2\nconsole-mode keep\neditor no\n"))
}

// AddTrial makes bank (just written) the next boot, on trial: a loader
// entry of the next generation with tries boots (UEFI), and syslinux's
// boot-once command (BIOS; one try). running is the bank running now,
// whose kernel command line the new entry inherits.
func (e ESP) AddTrial(bank, running string, tries int) error {
	if tries < 1 {
		return fmt.Errorf("trial of bank %s: %d tries", bank, tries)
	}
	version := e.BankVersion(bank)
	if version == "" {
		return fmt.Errorf("trial of bank %s: the bank is empty", bank)
	}
	cur, ok, err := e.Entry(running)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("trial of bank %s: the running bank %s has no loader entry", bank, running)
	}
	opts, err := e.entryOptions(cur.File)
	if err != nil {
		return err
	}
	if cur.Gen == 0 { // an image from before generations: give it one
		if err := os.Rename(filepath.Join(e.entriesDir(), cur.File), filepath.Join(e.entriesDir(), entryName(1, running, -1))); err != nil {
			return err
		}
	}
	g, err := e.maxGen()
	if err != nil {
		return err
	}
	options := bankOptions(opts, bank)
	if err := e.writeLoaderConf(); err != nil {
		return err
	}
	if err := e.writeEntry(g+1, bank, version, options, tries); err != nil {
		return err
	}
	cfg, err := e.readSyslinux()
	if err != nil {
		return err
	}
	cfg.Labels[bank] = syslinuxLabel{Title: fmt.Sprintf("Plinth %s (bank %s)", version, bank), Append: options}
	if err := e.writeSyslinux(cfg); err != nil {
		return err
	}
	if err := e.setBootOnce(bank); err != nil {
		return fmt.Errorf("syslinux boot-once: %w", err)
	}
	syncDir(e.entriesDir())
	return nil
}

// Bless keeps bank for good: its entry loses its boot counter and syslinux
// boots it by default.
func (e ESP) Bless(bank string) error {
	en, ok, err := e.Entry(bank)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("bless bank %s: it has no loader entry", bank)
	}
	if en.Trial() {
		if err := os.Rename(filepath.Join(e.entriesDir(), en.File), filepath.Join(e.entriesDir(), entryName(en.Gen, bank, -1))); err != nil {
			return fmt.Errorf("bless bank %s: %w", bank, err)
		}
	}
	return e.syslinuxDefault(bank)
}

// syslinuxDefault makes BIOS boot bank, with no boot-once pending.
func (e ESP) syslinuxDefault(bank string) error {
	cfg, err := e.readSyslinux()
	if err != nil || cfg.absent {
		return err
	}
	if _, ok := cfg.Labels[bank]; !ok {
		return fmt.Errorf("syslinux has no label for bank %s", bank)
	}
	cfg.Default = bank
	if err := e.writeSyslinux(cfg); err != nil {
		return err
	}
	return e.setBootOnce("")
}

// DropTrial removes a failed trial's entry, label and boot-once; the bank's
// files stay (the next upgrade overwrites them).
func (e ESP) DropTrial(bank string) error {
	if en, ok, err := e.Entry(bank); err != nil {
		return err
	} else if ok && en.Trial() {
		if err := os.Remove(filepath.Join(e.entriesDir(), en.File)); err != nil {
			return err
		}
	}
	cfg, err := e.readSyslinux()
	if err != nil {
		return err
	}
	if cfg.Default != bank {
		delete(cfg.Labels, bank)
		if err := e.writeSyslinux(cfg); err != nil {
			return err
		}
	}
	return e.setBootOnce("")
}

// MakeDefault makes bank (a good one) the bank every boot takes from now
// on: its entry gets the next generation, syslinux boots it by default.
func (e ESP) MakeDefault(bank string) error {
	en, ok, err := e.Entry(bank)
	if err != nil {
		return err
	}
	if !ok || en.Trial() {
		return fmt.Errorf("bank %s has no good loader entry", bank)
	}
	g, err := e.maxGen()
	if err != nil {
		return err
	}
	if en.Gen != g || g == 0 {
		if err := e.writeLoaderConf(); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(e.entriesDir(), en.File), filepath.Join(e.entriesDir(), entryName(g+1, bank, -1))); err != nil {
			return err
		}
	}
	return e.syslinuxDefault(bank)
}

// Banks reports both banks as seen from a system booted from running.
func (e ESP) Banks(running string) ([]api.Bank, error) {
	es, err := e.Entries()
	if err != nil {
		return nil, err
	}
	var out []api.Bank
	for _, b := range Banks {
		bk := api.Bank{Name: b, Version: e.BankVersion(b), State: api.BankEmpty}
		var en *Entry
		for i := range es {
			if es[i].Bank == b {
				en = &es[i]
				break
			}
		}
		switch {
		case bk.Version == "":
		case b == running:
			bk.State = api.BankActive
		case en == nil:
			bk.State = api.BankFailed // written, then dropped after its trial
		case en.Trial() && en.TriesLeft == 0:
			bk.State = api.BankFailed
		case en.Trial():
			bk.State = api.BankTrial
			n := en.TriesLeft
			bk.TriesLeft = &n
		default:
			bk.State = api.BankStandby
		}
		if b == running && en != nil && en.Trial() {
			n := en.TriesLeft
			bk.TriesLeft = &n
		}
		out = append(out, bk)
	}
	return out, nil
}

// errNoESP: the directory is not a Plinth ESP.
var errNoESP = errors.New("not a Plinth boot partition (no loader/entries)")

// Check says whether Dir looks like a Plinth ESP.
func (e ESP) Check() error {
	if fi, err := os.Stat(e.entriesDir()); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: %w", e.Dir, errNoESP)
	}
	return nil
}
