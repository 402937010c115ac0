package upgrade

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

var testTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// bundleFiles writes a kernel and an initrd of the given contents.
func bundleFiles(t testing.TB, kernel, initrd string) (string, string) {
	t.Helper()
	d := t.TempDir()
	k, i := filepath.Join(d, "vmlinuz"), filepath.Join(d, "initrd")
	for p, c := range map[string]string{k: kernel, i: initrd} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return k, i
}

func makeBundle(t *testing.T, priv ed25519.PrivateKey, version string) []byte {
	t.Helper()
	return makeRelease(t, priv, version, 7)
}

func makeRelease(t testing.TB, priv ed25519.PrivateKey, version string, release uint64) []byte {
	t.Helper()
	k, i := bundleFiles(t, "kernel of "+version, strings.Repeat("initrd of "+version+"\n", 5000))
	var b bytes.Buffer
	if err := Write(&b, priv, version, release, k, i, testTime); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	priv, err := GenerateKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public().(ed25519.PublicKey), priv
}

func TestKeyRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys", "k.pem")
	priv, err := GenerateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(p)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("LoadKey: %v", err)
	}
	pub, err := ParsePublicKey(EncodePublicKey(priv.Public().(ed25519.PublicKey)))
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if _, err := ParsePublicKey(""); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty key: %v", err)
	}
}

func TestBundleOpens(t *testing.T) {
	pub, priv := newKey(t)
	b := makeBundle(t, priv, "1.2.3")
	dir := t.TempDir()
	var last int64
	st, err := Open(bytes.NewReader(b), pub, dir, func(done, total int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	if st.Manifest.Version != "1.2.3" || !st.Manifest.Created.Equal(testTime) {
		t.Errorf("manifest %+v", st.Manifest)
	}
	if k, _ := os.ReadFile(filepath.Join(dir, KernelName)); string(k) != "kernel of 1.2.3" {
		t.Errorf("kernel %q", k)
	}
	if want := st.Manifest.Files[0].Size + st.Manifest.Files[1].Size; last != want {
		t.Errorf("progress ended at %d, want %d", last, want)
	}
}

// TestBundleRefused: a tampered payload, another key's signature, a
// truncated or foreign file are refused with an error naming the problem,
// and nothing is left staged.
func TestBundleRefused(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	good := makeBundle(t, priv, "1.2.3")
	tampered := bytes.Clone(good)
	i := bytes.LastIndex(tampered, []byte("initrd of 1.2.3"))
	tampered[i] = 'I'
	cases := []struct {
		name string
		b    []byte
		want error
		sub  string
	}{
		{"tampered payload", tampered, ErrChecksum, "initrd has sha256"},
		{"other key", makeBundle(t, otherPriv, "1.2.3"), ErrSignature, "not signed by this Plinth's release key"},
		{"truncated", good[:len(good)-3000], ErrFormat, "cut off"},
		{"not a bundle", []byte("MZ this is not a tar file at all, sorry"), ErrFormat, "reading manifest.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Open(bytes.NewReader(c.b), pub, dir, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.sub)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left staged: %v", left)
			}
		})
	}
	if _, err := Open(bytes.NewReader(good), nil, t.TempDir(), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
}

// testESP lays out an ESP as installer/mkimage.sh does (bank A, entry
// plinth-0001-a.conf, syslinux with DEFAULT A and an ldlinux.sys whose ADV
// is empty).
func testESP(t *testing.T) ESP {
	t.Helper()
	d := t.TempDir()
	files := map[string]string{
		"A/vmlinuz":                         "kernel A",
		"A/initrd":                          "initrd A",
		"A/VERSION":                         "1.0\n",
		"loader/loader.conf":                "default plinth-*\ntimeout 2\n",
		"loader/entries/plinth-0001-a.conf": "title   Plinth 1.0 (bank A)\nlinux   /A/vmlinuz\ninitrd  /A/initrd\noptions console=ttyS0,115200 panic=10 plinth.bank=A\n",
		"syslinux/syslinux.cfg":             "SERIAL 0 115200\nDEFAULT A\nPROMPT 0\nTIMEOUT 20\nLABEL A\n  MENU LABEL Plinth 1.0 (bank A)\n  LINUX /A/vmlinuz\n  INITRD /A/initrd\n  APPEND console=ttyS0,115200 panic=10 plinth.bank=A\n",
	}
	for p, c := range files {
		p = filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(d, "B"), 0o755); err != nil {
		t.Fatal(err)
	}
	ld, err := os.ReadFile(fakeLdlinux(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "syslinux", "ldlinux.sys"), ld, 0o644); err != nil {
		t.Fatal(err)
	}
	return ESP{Dir: d}
}

// sdBoot does what systemd-boot does at power-on with "default plinth-*"
// (its config_entry_compare and boot counting, src/boot/efi/boot.c): the
// entries with tries left come first, highest version-sorted id first; a
// counted entry loses a try (its file renamed) before it boots. It returns
// the bank booted. Firmware cannot run in a unit test; the end-to-end
// upgrade test boots the real systemd-boot.
func sdBoot(t *testing.T, e ESP) string {
	t.Helper()
	es, err := e.Entries()
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(es, func(i, j int) bool {
		bi, bj := es[i].TriesLeft == 0, es[j].TriesLeft == 0
		if bi != bj {
			return !bi
		}
		return es[i].Gen > es[j].Gen
	})
	en := es[0]
	if en.Trial() && en.TriesLeft > 0 {
		next := strings.TrimSuffix(entryName(en.Gen, en.Bank, -1), ".conf") + "+" + itoa(en.TriesLeft-1) + "-" + itoa(en.TriesDone+1) + ".conf"
		if err := os.Rename(filepath.Join(e.entriesDir(), en.File), filepath.Join(e.entriesDir(), next)); err != nil {
			t.Fatal(err)
		}
	}
	return en.Bank
}

// sysBoot does what syslinux does: the boot-once command, cleared, else
// DEFAULT.
func sysBoot(t *testing.T, e ESP) string {
	t.Helper()
	once, err := ReadBootOnce(e.ldlinux())
	if err != nil {
		t.Fatal(err)
	}
	if once != "" {
		if err := SetBootOnce(e.ldlinux(), ""); err != nil {
			t.Fatal(err)
		}
		return once
	}
	cfg, err := e.readSyslinux()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Default
}

func itoa(n int) string { return strconv.Itoa(n) }

func stage(t *testing.T, priv ed25519.PrivateKey, version string) *Staged {
	t.Helper()
	st, err := Open(bytes.NewReader(makeBundle(t, priv, version)), priv.Public().(ed25519.PublicKey), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func host(e ESP, state, running, version string) Host {
	return Host{ESP: e, StateDir: state, Running: running, Version: version, Firmware: "uefi", Now: func() time.Time { return testTime }}
}

func bankStates(t *testing.T, h Host) string {
	t.Helper()
	s := h.Status()
	var out []string
	for _, b := range s.Banks {
		out = append(out, b.Name+"="+b.State+":"+b.Version)
	}
	return strings.Join(out, " ")
}

// TestTrialKept: an upgrade written to B boots on trial (UEFI and BIOS),
// is blessed, and from then on both firmware paths boot B; A is standby.
func TestTrialKept(t *testing.T) {
	_, priv := newKey(t)
	for _, fw := range []string{"uefi", "bios"} {
		t.Run(fw, func(t *testing.T) {
			e, state := testESP(t), t.TempDir()
			h := host(e, state, "A", "1.0")
			p, err := h.Apply(stage(t, priv, "2.0"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Bank != "B" || p.ToVersion != "2.0" || p.FromVersion != "1.0" {
				t.Fatalf("pending %+v", p)
			}
			if got := bankStates(t, h); got != "A=active:1.0 B=trial:2.0" {
				t.Errorf("after apply: %s", got)
			}
			boot := sdBoot
			if fw == "bios" {
				boot = sysBoot
			}
			if b := boot(t, e); b != "B" {
				t.Fatalf("first boot after the upgrade took bank %s", b)
			}
			nh := host(e, state, "B", "2.0")
			trial, msg, err := nh.Reconcile()
			if err != nil || !trial {
				t.Fatalf("Reconcile on the trial: %v %v", trial, err)
			}
			t.Log(msg)
			if _, err := nh.Apply(stage(t, priv, "3.0"), nil); !errors.Is(err, ErrBusy) {
				t.Errorf("upgrade while on trial: %v", err)
			}
			if _, err := nh.Bless("API answered, 1 VM"); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if b, c := sdBoot(t, e), sysBoot(t, e); b != "B" || c != "B" {
					t.Fatalf("boot %d after bless: UEFI %s BIOS %s", i, b, c)
				}
			}
			if trial, _, _ := nh.Reconcile(); trial {
				t.Error("still a trial after Bless")
			}
			s := nh.Status()
			if s.Last == nil || s.Last.Result != api.UpgradeSucceeded || s.Pending != nil {
				t.Errorf("status %+v", s)
			}
			if got := bankStates(t, nh); got != "A=standby:1.0 B=active:2.0" {
				t.Errorf("after bless: %s", got)
			}
			// The next upgrade goes to A, the bank not running.
			if p, err := nh.Apply(stage(t, priv, "3.0"), nil); err != nil || p.Bank != "A" {
				t.Fatalf("second upgrade: %+v %v", p, err)
			}
		})
	}
}

// TestTrialRolledBack: a trial whose kernel or init dies before marking
// itself good runs out of tries; the old bank boots, and Reconcile there
// records the rollback with its reason and removes the failed entry.
func TestTrialRolledBack(t *testing.T) {
	_, priv := newKey(t)
	for _, fw := range []string{"uefi", "bios"} {
		t.Run(fw, func(t *testing.T) {
			e, state := testESP(t), t.TempDir()
			h := host(e, state, "A", "1.0")
			if _, err := h.Apply(stage(t, priv, "2.0-broken"), nil); err != nil {
				t.Fatal(err)
			}
			boot, tries := sdBoot, DefaultTries
			if fw == "bios" {
				boot, tries = sysBoot, 1
			}
			for i := 0; i < tries; i++ {
				if b := boot(t, e); b != "B" {
					t.Fatalf("trial boot %d took bank %s", i+1, b)
				}
				if i == 0 { // the first try reached the init, which gave up
					if err := host(e, state, "B", "2.0-broken").TrialFailed("mgmtd did not answer within 10m0s"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if b := boot(t, e); b != "A" {
				t.Fatalf("after %d failed tries the firmware path took bank %s, want A", tries, b)
			}
			trial, msg, err := h.Reconcile()
			if err != nil || trial {
				t.Fatalf("Reconcile on A: %v %v", trial, err)
			}
			if !strings.Contains(msg, "ROLLED BACK") || !strings.Contains(msg, "mgmtd did not answer") {
				t.Errorf("console message %q", msg)
			}
			s := h.Status()
			if s.Last == nil || s.Last.Result != api.UpgradeRolledBack || s.Last.ToVersion != "2.0-broken" || s.Pending != nil {
				t.Fatalf("status %+v", s)
			}
			if fw == "uefi" && !strings.Contains(s.Last.Reason, "booted 3 times") {
				t.Errorf("reason %q lacks the tries", s.Last.Reason)
			}
			if got := bankStates(t, h); got != "A=active:1.0 B=failed:2.0-broken" {
				t.Errorf("banks: %s", got)
			}
			for i := 0; i < 2; i++ {
				if b, c := sdBoot(t, e), sysBoot(t, e); b != "A" || c != "A" {
					t.Fatalf("after the rollback: UEFI %s BIOS %s", b, c)
				}
			}
		})
	}
}

// TestManualRollback: after a kept upgrade, rollback makes the standby
// bank the default; with nothing to go back to it is refused; a pending
// upgrade not yet booted is cancelled.
func TestManualRollback(t *testing.T) {
	_, priv := newKey(t)
	e, state := testESP(t), t.TempDir()
	h := host(e, state, "A", "1.0")
	if _, err := h.Rollback(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "bank B is empty") {
		t.Errorf("rollback with B empty: %v", err)
	}
	if _, err := h.Apply(stage(t, priv, "2.0"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := h.Rollback()
	if err != nil || p.Result != api.UpgradeManual || !strings.Contains(p.Reason, "cancelled") {
		t.Fatalf("cancel: %+v %v", p, err)
	}
	if b := sdBoot(t, e); b != "A" {
		t.Fatalf("after cancel UEFI boots %s", b)
	}
	if b := sysBoot(t, e); b != "A" {
		t.Fatalf("after cancel BIOS boots %s", b)
	}
	if _, err := h.Apply(stage(t, priv, "2.0"), nil); err != nil {
		t.Fatal(err)
	}
	sdBoot(t, e)
	nh := host(e, state, "B", "2.0")
	if _, _, err := nh.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if _, err := nh.Bless("up"); err != nil {
		t.Fatal(err)
	}
	p, err = nh.Rollback()
	if err != nil || p.ToVersion != "1.0" || p.Bank != "A" {
		t.Fatalf("rollback: %+v %v", p, err)
	}
	if b, c := sdBoot(t, e), sysBoot(t, e); b != "A" || c != "A" {
		t.Fatalf("after rollback: UEFI %s BIOS %s", b, c)
	}
}

func TestEntryNames(t *testing.T) {
	for name, want := range map[string]Entry{
		"plinth-a.conf":          {Gen: 0, Bank: "A", TriesLeft: -1, TriesDone: -1},
		"plinth-0002-b+3.conf":   {Gen: 2, Bank: "B", TriesLeft: 3, TriesDone: 0},
		"plinth-0012-a+0-3.conf": {Gen: 12, Bank: "A", TriesLeft: 0, TriesDone: 3},
	} {
		got, ok := ParseEntryName(name)
		want.File = name
		if !ok || got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	for _, bad := range []string{"plinth-c.conf", "other.conf", "plinth-0001-a.conf~"} {
		if _, ok := ParseEntryName(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
	if got := bankOptions("console=ttyS0 plinth.bank=A quiet", "B"); got != "console=ttyS0 quiet panic=10 plinth.bank=B" {
		t.Errorf("bankOptions: %q", got)
	}
}
