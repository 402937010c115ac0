package appinit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/board/drivers"
)

func TestModulePathsAndClasses(t *testing.T) {
	dep := "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko\n" +
		"kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko\n" +
		"kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko\n"
	p, err := drivers.ModulePaths(strings.NewReader(dep))
	if err != nil {
		t.Fatal(err)
	}
	if p["kvm_amd"] != "kernel/arch/x86/kvm/kvm-amd.ko" || p["virtio_net"] != "kernel/drivers/net/virtio_net.ko.xz" {
		t.Fatalf("paths = %v", p)
	}
	if !isStorageModule(p["ahci"]) || isStorageModule(p["virtio_net"]) || !isKVMModule(p["kvm_amd"]) {
		t.Error("module classes wrong")
	}
}

func TestWaitQuiet(t *testing.T) {
	l := &modLoader{paths: map[string]string{"ahci": "kernel/drivers/ata/ahci.ko", "virtio_net": "kernel/drivers/net/virtio_net.ko"},
		inflight: map[string]bool{"ahci": true, "virtio_net": true}, started: true}
	l.cond = sync.NewCond(&l.mu)
	done := make(chan struct{})
	go func() {
		l.waitQuiet(context.Background(), isStorageModule)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("waitQuiet returned while a NIC driver was still loading")
	case <-time.After(50 * time.Millisecond):
	}
	l.mu.Lock()
	delete(l.inflight, "virtio_net")
	l.cond.Broadcast()
	l.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waitQuiet did not return once only storage drivers were loading")
	}
	// A deadline ends the wait even when nothing finishes.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l.waitQuiet(ctx, nil)
	if ctx.Err() == nil {
		t.Fatal("waitQuiet(nil) returned with ahci still loading")
	}
}
