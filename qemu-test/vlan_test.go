package qemutest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestManagementVLAN runs the management network's VLAN for real: the
// appliance's kernel (which has 802.1Q; the machine running the tests may
// not) boots vlaninit on a machine with two virtio NICs on one QEMU hub, a
// wire between the host's management NIC and a peer in a network namespace
// of its own with an untagged address and VLAN 20. Through hostconf's
// commit-confirm, a change to VLAN 30 (which the peer lacks) cuts the host
// off and is rolled back at its deadline, the untagged address answering
// again; a change to VLAN 20 answers through the tag, is kept and saved.
// See qemu-test/vlaninit for each check.
func TestManagementVLAN(t *testing.T) {
	kernel, err := FindKernel()
	if err != nil {
		NoKernel(t, "%v", err)
	}
	modules := ImageModules(kernel)
	if _, err := os.Stat(modules); err != nil {
		NoKernel(t, "no modules beside %s (%v): run `make image`", kernel, err)
	}
	initrd, err := BuildGuest(t.TempDir(), modules, "vlaninit")
	if err != nil {
		t.Fatal(err)
	}
	args := CaptureArgs("q35", kernel, initrd, []string{
		"-netdev", "hubport,id=n0,hubid=0", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:15:01",
		"-netdev", "hubport,id=n1,hubid=0", "-device", "virtio-net-pci,netdev=n1,mac=52:54:00:00:15:02",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t0 := time.Now()
	lines, err := RunGuest(ctx, args, nil)
	ok := false
	for _, l := range lines {
		switch i := strings.Index(l, "PLINTH-VLAN"); {
		case i < 0:
		case strings.HasPrefix(l[i:], "PLINTH-VLAN-OK"):
			ok = true
		case strings.HasPrefix(l[i:], "PLINTH-VLAN-FAIL"):
			t.Error(l[i:])
		default:
			t.Log(l[i:])
		}
	}
	if !ok {
		t.Fatalf("the VLAN guest did not pass (%v)%s", err, formatTail(lines[max(0, len(lines)-TailLines):]))
	}
	t.Logf("the VLAN guest passed in %v", time.Since(t0).Round(time.Second))
}
