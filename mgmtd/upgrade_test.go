package mgmtd_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/upgrade"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestRefusedUpgradeThroughProxy: an image vmkernel refuses after its
// first kilobytes (another key's signature) while the client is still
// sending 24 MiB comes back through mgmtd as vmkernel's 422 naming why,
// never as a 502 from a broken pipe, every time.
func TestRefusedUpgradeThroughProxy(t *testing.T) {
	priv, err := upgrade.GenerateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := upgrade.GenerateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	esp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(esp, "loader", "entries"), 0o755); err != nil {
		t.Fatal(err)
	}
	vmk := vmkerneltest.Start(t, vmkerneltest.Options{Upgrades: &vmkernel.Upgrades{
		PublicKey: upgrade.EncodePublicKey(priv.Public().(ed25519.PublicKey)),
		StageDir:  t.TempDir(),
		Open: func(bool) (upgrade.Host, func(), error) {
			return upgrade.Host{ESP: upgrade.ESP{Dir: esp}, StateDir: t.TempDir(), Running: "A", Version: "1.0"}, func() {}, nil
		},
	}})
	r := startMgmtd(t, t.TempDir(), vmk.Socket, nil)
	c := loggedIn(t, r)
	dir := t.TempDir()
	k, i := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	big := make([]byte, 24<<20)
	rand.Read(big)
	os.WriteFile(k, []byte("kernel"), 0o644)
	os.WriteFile(i, big, 0o644)
	var b bytes.Buffer
	if err := upgrade.Write(&b, other, "9.9", 99, k, i, time.Now()); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 5; n++ {
		_, err := c.Upgrade(deadline(t), bytes.NewReader(b.Bytes()), int64(b.Len()), client.UpgradeOptions{})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 422 || !strings.Contains(e.Error(), "signature is not valid") {
			t.Fatalf("try %d: %v, want 422 saying the signature is not valid", n+1, err)
		}
	}
}
