package vmkernel_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/upgrade"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// bankESP lays out an ESP as the image build does (UEFI side only).
func bankESP(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p, c := range map[string]string{
		"A/vmlinuz": "kernel", "A/initrd": "initrd", "A/VERSION": "1.0\n",
		"loader/loader.conf":                "default plinth-*\n",
		"loader/entries/plinth-0001-a.conf": "title Plinth 1.0 (bank A)\nlinux /A/vmlinuz\ninitrd /A/initrd\noptions console=ttyS0 plinth.bank=A\n",
	} {
		p = filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestUpgradeRoutes: without -upgrades the routes answer 501; with a bank
// ESP, an image with a flipped byte, another key's signature or a wrong
// sha256 is a 422 naming why, with nothing written; a good one becomes a
// task that writes bank B, puts it on trial and reboots; rollback then
// cancels it.
func TestUpgradeRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := vmkerneltest.Start(t, vmkerneltest.Options{})
	_, err := plain.Client.UpgradeStatus(ctx)
	apiErr(t, err, 501)

	priv, err := upgrade.GenerateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := upgrade.GenerateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	esp, state := bankESP(t), t.TempDir()
	var mu sync.Mutex
	var reboots []string
	r := vmkerneltest.Start(t, vmkerneltest.Options{
		Power: func(action, reason string) error {
			mu.Lock()
			defer mu.Unlock()
			reboots = append(reboots, action+": "+reason)
			return nil
		},
		Upgrades: &vmkernel.Upgrades{
			PublicKey: upgrade.EncodePublicKey(priv.Public().(ed25519.PublicKey)),
			StageDir:  t.TempDir(),
			Open: func(bool) (upgrade.Host, func(), error) {
				return upgrade.Host{ESP: upgrade.ESP{Dir: esp}, StateDir: state, Running: "A", Version: "1.0", Release: 100, Firmware: "uefi"}, func() {}, nil
			},
		},
	})
	s, err := r.Client.UpgradeStatus(ctx)
	if err != nil || !s.Supported || s.Active != "A" || len(s.Banks) != 2 || s.Banks[1].State != api.BankEmpty {
		t.Fatalf("status %+v %v", s, err)
	}

	k, i := filepath.Join(t.TempDir(), "vmlinuz"), filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(k, []byte("new kernel"), 0o644)
	os.WriteFile(i, bytes.Repeat([]byte("new initrd "), 10000), 0o644)
	release := func(key ed25519.PrivateKey, version string, release uint64) []byte {
		var b bytes.Buffer
		if err := upgrade.Write(&b, key, version, release, k, i, time.Now()); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	bundle := func(key ed25519.PrivateKey) []byte { return release(key, "2.0", 101) }
	good := bundle(priv)
	older := release(priv, "0.9", 99)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-2000] ^= 1
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for name, c := range map[string]struct {
		body []byte
		sum  string
		want string
	}{
		"flipped byte":  {flipped, sum(flipped), "checksum does not match"},
		"other key":     {bundle(other), "", "signature is not valid"},
		"wrong sha256":  {good, sum(flipped), "the request says"},
		"not an image":  {[]byte("hello"), "", "not a Plinth upgrade image"},
		"malformed sum": {good, "xyz", "not a hex sha256"},
	} {
		_, err := r.Client.Upgrade(ctx, bytes.NewReader(c.body), int64(len(c.body)), client.UpgradeOptions{SHA256: c.sum, Reboot: true})
		if e := apiErr(t, err, 422); !strings.Contains(e.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, e, c.want)
		}
	}
	// An older release is refused unless a downgrade is asked for with
	// this host's name; asked for with another name, nothing is read.
	host, err := r.Client.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		o     client.UpgradeOptions
		field string
		want  string
	}{
		"older release":        {client.UpgradeOptions{}, "allow_downgrade", "release 99 is older than the running release 100"},
		"downgrade, no name":   {client.UpgradeOptions{AllowDowngrade: true}, "confirm", host.Hostname},
		"downgrade, elsewhere": {client.UpgradeOptions{AllowDowngrade: true, Confirm: "other-host"}, "confirm", host.Hostname},
	} {
		_, err := r.Client.Upgrade(ctx, bytes.NewReader(older), int64(len(older)), c.o)
		if e := apiErr(t, err, 422); e != nil && (e.Problem.Field != c.field || !strings.Contains(e.Error(), c.want)) {
			t.Errorf("%s: %v (field %q), want field %q saying %q", name, e, e.Problem.Field, c.field, c.want)
		}
	}
	if fs, _ := os.ReadDir(filepath.Join(esp, "B")); len(fs) != 0 {
		t.Errorf("refused images wrote bank B: %v", fs)
	}
	if s, _ := r.Client.UpgradeStatus(ctx); s.Pending != nil || len(reboots) != 0 {
		t.Fatalf("after refusals: pending %+v, reboots %v", s.Pending, reboots)
	}

	task, err := r.Client.Upgrade(ctx, bytes.NewReader(good), int64(len(good)), client.UpgradeOptions{SHA256: sum(good), Reboot: true})
	if err != nil {
		t.Fatal(err)
	}
	if task, err = r.Client.WaitTask(ctx, task.ID, 20*time.Millisecond, nil); err != nil || task.State != api.TaskSucceeded {
		t.Fatalf("upgrade task %+v %v", task, err)
	}
	s, err = r.Client.UpgradeStatus(ctx)
	if err != nil || s.Pending == nil || s.Pending.ToVersion != "2.0" || s.Banks[1].State != api.BankTrial || s.Banks[1].Version != "2.0" {
		t.Fatalf("after the upgrade: %+v %v", s, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(reboots)
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(reboots) != 1 || !strings.Contains(reboots[0], "reboot: upgrade to 2.0") {
		t.Errorf("reboots %v", reboots)
	}
	if b, _ := os.ReadFile(filepath.Join(esp, "B", "vmlinuz")); string(b) != "new kernel" {
		t.Errorf("bank B kernel %q", b)
	}

	res, err := r.Client.Rollback(ctx, false)
	if err != nil || res.Result != api.UpgradeManual {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	// The older release, asked for by name, is written.
	task, err = r.Client.Upgrade(ctx, bytes.NewReader(older), int64(len(older)), client.UpgradeOptions{AllowDowngrade: true, Confirm: host.Hostname})
	if err != nil {
		t.Fatalf("an allowed downgrade: %v", err)
	}
	if task, err = r.Client.WaitTask(ctx, task.ID, 20*time.Millisecond, nil); err != nil || task.State != api.TaskSucceeded {
		t.Fatalf("downgrade task %+v %v", task, err)
	}
	if s, _ := r.Client.UpgradeStatus(ctx); s.Pending == nil || s.Pending.ToVersion != "0.9" {
		t.Fatalf("after the allowed downgrade: pending %+v", s.Pending)
	}
	if res, err = r.Client.Rollback(ctx, false); err != nil {
		t.Fatalf("rollback of the downgrade: %v", err)
	}
	if _, err := r.Client.Rollback(ctx, false); err != nil {
		apiErr(t, err, 409) // B is not standby: nothing to roll back to
	} else {
		t.Error("a second rollback with nothing to go back to was accepted")
	}
}
