package qemutest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/web/webtest"
)

// TestApplianceWebClient is the web client's whole path in the appliance,
// driven by Debian's Chromium over the DevTools protocol (webtest.Tour): log
// in on https://HOST/, upload an ISO to the datastore disk with its progress
// shown, create a VM from the form, start it and see the guest's text in
// the serial terminal and its screen over VNC, power the guest off from the
// terminal and see the state turn to stopped with no reload, log out and
// see the old session refused. The screenshots stay in
// build/screenshots/TestApplianceWebClient.
func TestApplianceWebClient(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	iso, err := BuildFloorISO(o.Kernel, dir)
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "ds-seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "192M")
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{"-drive", "file=" + dsImg + ",if=virtio,format=raw"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := SetPasswordViaDCUI(ctx, vm, e2ePassword); err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(root, "build", "screenshots", t.Name())
	os.RemoveAll(shots)
	b := webtest.Start(t, shots, 1280, 900)
	webtest.Tour(t, b, webtest.Site{URL: vm.APIURL(), Password: e2ePassword, Datastore: "ds1", ISO: iso,
		Marker: FloorMarker, Slow: 90 * time.Second})
	t.Logf("screenshots in %s", shots)
}
