package hwbench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/bench/barevm"
)

// startBare runs the floor (bench/barevm) with the CPU model cpu (as
// vmkernel gave its own guest) and q35 with four empty PCIe root ports
// hp0..hp3 (as vmkernel's q35 VMs have).
func startBare(b testing.TB, dir, name, cpu string, memMiB int, cmdline string) *barevm.VM {
	b.Helper()
	args := []string{"-machine", "q35", "-cpu", cpu}
	for i := range 4 {
		args = append(args, "-device", fmt.Sprintf("pcie-root-port,id=hp%d,bus=pcie.0,chassis=%d,io-reserve=0", i, 20+i))
	}
	return barevm.Start(b, dir, name, memMiB, cmdline, args...)
}

// unplug deletes device id and waits for QEMU's DEVICE_DELETED (the guest
// let it go), so its root port takes the next one.
func unplug(b testing.TB, q *barevm.VM, id string) {
	b.Helper()
	q.Run(b, "device_del", map[string]any{"id": id}, "")
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-q.Mon.Events():
			if ev.Name == "DEVICE_DELETED" && bytes.Contains(ev.Data, []byte(`"`+id+`"`)) {
				return
			}
		case <-timeout:
			b.Fatalf("bare QEMU: %s not deleted in 60 s", id)
		}
	}
}

// qemuCPU is the -cpu argument of the QEMU process pid.
func qemuCPU(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", err
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "-cpu" && i+1 < len(args) {
			return args[i+1], nil
		}
	}
	return "", fmt.Errorf("QEMU %d has no -cpu", pid)
}

// waitCount polls tail every 10 ms until s appears n times in it.
func waitCount(b testing.TB, tail func() ([]byte, error), s string, n int, timeout time.Duration) {
	b.Helper()
	end := time.Now().Add(timeout)
	for {
		out, err := tail()
		if err == nil && bytes.Count(out, []byte(s)) >= n {
			return
		}
		if time.Now().After(end) {
			b.Fatalf("console did not show %q %d times in %v (err %v):\n%s", s, n, timeout, err, out[max(0, len(out)-1500):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
