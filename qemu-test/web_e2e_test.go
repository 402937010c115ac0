package qemutest

import (
	"context"
	"fmt"
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
// terminal and see the state turn to stopped with no reload, give the host
// a static address on the settings page and keep it from that address, log out and
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
	// The host setting with its confirm step: a static address on QEMU's
	// user network, reached through a port forwarded to it, kept from there.
	const newAddr = "10.0.2.20"
	net := &webtest.NetChange{NIC: "eth0", Address: newAddr + "/24", Gateway: "10.0.2.2",
		NewURL: fmt.Sprintf("https://127.0.0.1:%d", hostfwdAdd(t, vm, newAddr))}
	b := webtest.Start(t, shots, 1280, 900)
	webtest.Tour(t, b, webtest.Site{URL: vm.APIURL(), Password: e2ePassword, Datastore: "ds1", ISO: iso,
		Marker: FloorMarker, Slow: 90 * time.Second, Net: net})
	t.Logf("screenshots in %s", shots)
}

// TestApplianceRunDisk is a newcomer's first path, as make run gives it:
// the appliance boots with make run's development disk (RunDisk), the
// password is set on the DCUI, a browser logs in at the web client and
// uploads a file to ds1; the host is powered down and booted again from the
// same disk, and the browser logs in with the same password (no DCUI this
// time) and finds the file.
func TestApplianceRunDisk(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "plinth-run.img")
	if made, err := RunDisk(disk); err != nil || !made {
		t.Fatalf("RunDisk: %v %v", made, err)
	}
	file := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(file, []byte("kept across runs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = RunDiskArgs(disk)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(root, "build", "screenshots", t.Name())
	os.RemoveAll(shots)
	b := webtest.Start(t, shots, 1280, 900)
	for boot := 1; boot <= 2; boot++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		vm, _, err := StartReady(ctx, o, 240*time.Second)
		if err != nil {
			cancel()
			t.Fatalf("boot %d: %v", boot, err)
		}
		site := webtest.Site{URL: vm.APIURL(), Password: e2ePassword, Datastore: "ds1", Slow: 60 * time.Second}
		if boot == 1 {
			if err := SetPasswordViaDCUI(ctx, vm, e2ePassword); err != nil {
				t.Fatal(err)
			}
			webtest.Login(t, b, site)
			webtest.Upload(t, b, site, file)
		} else {
			webtest.Login(t, b, site)
			webtest.Listed(t, b, site, "hello.txt")
			b.Shot("second-run")
		}
		if err := vm.PowerDown(); err != nil {
			t.Fatal(err)
		}
		if code, err := vm.Wait(120 * time.Second); err != nil || code != 0 {
			t.Fatalf("boot %d: power down: exit %d, %v%s", boot, code, err, formatTail(vm.Tail(TailLines)))
		}
		vm.Close()
		cancel()
	}
}
