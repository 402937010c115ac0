package drivers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

func TestModulePathsAndClasses(t *testing.T) {
	dep := "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko\n" +
		"kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko\n" +
		"kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko\n"
	p, err := ModulePaths(strings.NewReader(dep))
	if err != nil {
		t.Fatal(err)
	}
	if p["kvm_amd"] != "kernel/arch/x86/kvm/kvm-amd.ko" || p["virtio_net"] != "kernel/drivers/net/virtio_net.ko.xz" {
		t.Fatalf("paths = %v", p)
	}
	if !IsStorage(p["ahci"]) || IsStorage(p["virtio_net"]) || !IsKVM(p["kvm_amd"]) {
		t.Error("module classes wrong")
	}
}

func TestWaitQuiet(t *testing.T) {
	l := &Loader{paths: map[string]string{"ahci": "kernel/drivers/ata/ahci.ko", "virtio_net": "kernel/drivers/net/virtio_net.ko"},
		inflight: map[string]bool{"ahci": true, "virtio_net": true}, started: true}
	l.cond = sync.NewCond(&l.mu)
	done := make(chan struct{})
	go func() {
		l.WaitQuiet(context.Background(), IsStorage)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("WaitQuiet returned while a NIC driver was still loading")
	case <-time.After(50 * time.Millisecond):
	}
	l.done("virtio_net")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitQuiet did not return once only storage drivers were loading")
	}
	// A deadline ends the wait even when nothing finishes.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l.WaitQuiet(ctx, nil)
	if ctx.Err() == nil {
		t.Fatal("WaitQuiet(nil) returned with ahci still loading")
	}
}

func TestNewLoaderWantsAModulesTree(t *testing.T) {
	if _, err := NewLoader(t.TempDir(), "/sys", nil); err == nil {
		t.Fatal("NewLoader on an empty directory: no error")
	}
}

// TestLoaderOnTheImageModules reads the image's module tree (make image).
func TestLoaderOnTheImageModules(t *testing.T) {
	rel, err := os.ReadFile("../../build/kernel-release")
	if err != nil {
		testenv.Unmet(t, "no image modules (make image): %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join("../../build/modules/lib/modules", strings.TrimSpace(string(rel))))
	l, err := NewLoader(dir, "/sys", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Path("kvm_amd"); !IsKVM(p) {
		t.Errorf("kvm_amd at %q", p)
	}
	if p := l.Path("virtio_blk"); !IsStorage(p) {
		t.Errorf("virtio_blk at %q", p)
	}
	for name, want := range map[string]string{"rtnl-link-bridge": "bridge", "fs-ext4": "ext4", "virtio-net": "virtio_net"} {
		if got := l.Resolve(name); len(got) != 1 || got[0] != want {
			t.Errorf("Resolve(%q) = %q, want %s", name, got, want)
		}
	}
	if got := l.Match("virtio:d00000001v00001AF4"); len(got) != 1 || got[0] != "virtio_net" {
		t.Errorf("Match(virtio net) = %q", got)
	}
}

func TestLoadWaitsForAModuleInFlight(t *testing.T) {
	l := &Loader{paths: map[string]string{}, tried: map[string]bool{"ext4": true}, inflight: map[string]bool{"ext4": true}}
	l.cond = sync.NewCond(&l.mu)
	done := make(chan struct{})
	go func() {
		l.Load("ext4")
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Load returned while another call was still loading the module")
	case <-time.After(50 * time.Millisecond):
	}
	l.done("ext4")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Load did not return once the module had loaded")
	}
}

func TestHoldBack(t *testing.T) {
	l := &Loader{paths: map[string]string{"evdev": "kernel/drivers/input/evdev.ko", "virtio_net": "kernel/drivers/net/virtio_net.ko"},
		tried: map[string]bool{}, inflight: map[string]bool{}}
	l.cond = sync.NewCond(&l.mu)
	if got := l.holdBack([]string{"evdev", "virtio_net"}); len(got) != 2 {
		t.Fatalf("without Hold: %q", got)
	}
	l.Hold(func(path string) bool { return strings.Contains(path, "/input/") })
	if got := l.holdBack([]string{"evdev", "virtio_net"}); len(got) != 1 || got[0] != "virtio_net" {
		t.Fatalf("with Hold: %q, want only virtio_net", got)
	}
	if !l.held["evdev"] {
		t.Fatalf("evdev not recorded as held: %v", l.held)
	}
}
