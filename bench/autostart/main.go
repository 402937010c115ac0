// Command autostart measures how long a server's workload takes to come back
// after a power cut: from powering the appliance on (starting QEMU) to the
// marker of a VM it starts by itself (flagged autostart in STATE's
// inventory) on that VM's serial console, read through the API. The peer,
// measured in the same run and interleaved, is the same guest (the image's
// kernel with qemu-test's floor initramfs, told to stay up) started by bare
// QEMU on this host until it prints the same marker. One warm-up of each is
// discarded; it prints a markdown section for docs/PERFORMANCE.md. Run it
// under the heavy lock:
//
//	flock /work/heavy.lock go run ./bench/autostart -n 5
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/bench/applrig"
	"github.com/plinth/plinth/bench/stats"
	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

const vmName = "workload"

func run(args []string) error {
	kernel, initrd, err := qemutest.ImagePaths()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("autostart", flag.ContinueOnError)
	n := fs.Int("n", 5, "measured runs of each (after one warm-up each)")
	fs.StringVar(&kernel, "kernel", kernel, "the appliance's kernel (also the guest's)")
	fs.StringVar(&initrd, "initrd", initrd, "the appliance's initramfs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "plinth-autostart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	disks, err := applrig.Seed(dir, kernel, applrig.GuestSpec(vmName, 256, true))
	if err != nil {
		return err
	}
	var bare, plinth, ready []time.Duration
	var accel []string
	for i := 0; i <= *n; i++ {
		what := fmt.Sprintf("run %d/%d", i, *n)
		if i == 0 {
			what = "warm-up"
		}
		b, err := bareQEMU(ctx, disks.Guest)
		if err != nil {
			return fmt.Errorf("bare QEMU %s: %w", what, err)
		}
		if err := disks.Reset(); err != nil { // each boot starts from the same STATE
			return err
		}
		p, r, acc, err := appliance(ctx, disks.Options(kernel, initrd, 2, 2048))
		if err != nil {
			return fmt.Errorf("appliance %s: %w", what, err)
		}
		log.Printf("%s: bare QEMU %.2fs, appliance to the VM's marker %.2fs (ready after %.2fs; VMs under %s)", what, b.Seconds(), p.Seconds(), r.Seconds(), acc)
		if i > 0 {
			bare, plinth, ready, accel = append(bare, b), append(plinth, p), append(ready, r), append(accel, acc)
		}
	}
	mb, mp := stats.Median(bare), stats.Median(plinth)
	fmt.Printf("## Power on to an autostarted VM's marker (%s, `go run ./bench/autostart -n %d`)\n\n", time.Now().Format("2006-01-02"), *n)
	fmt.Printf("- Machine: %s, %d CPUs, shared with other builds and tests (load average at the end: %s); QEMU on the host runs TCG.\n", qemutest.HostCPU(), runtime.NumCPU(), applrig.LoadAverage())
	fmt.Printf("- Plinth: the appliance (q35, 2 vCPUs, 2048 MiB, `-cpu max`) from a STATE disk whose inventory holds one VM flagged autostart (256 MiB, serial console, direct kernel boot from a PLINTH-DS1 disk); from starting QEMU to the marker on that VM's console, polled through the API every 200 ms after the ready line and a login. Inside, the VM runs under %s.\n", strings.Join(distinct(accel), ", "))
	fmt.Printf("- Bare QEMU: the same guest (kernel `%s`, the floor initramfs, `%s`) started by `qemu-system-x86_64` on the host (TCG, 1 vCPU, 256 MiB), to the same marker on its serial console.\n", kernel, applrig.GuestCmdline)
	fmt.Printf("- Runs interleaved, one warm-up of each discarded.\n\n")
	fmt.Println("| run | bare QEMU (s) | Plinth: power on to the VM's marker (s) | of which to the ready line (s) |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	for i := range bare {
		fmt.Printf("| %d | %.2f | %.2f | %.2f |\n", i+1, bare[i].Seconds(), plinth[i].Seconds(), ready[i].Seconds())
	}
	fmt.Printf("| **median** | **%.2f** | **%.2f** | %.2f |\n\n", mb.Seconds(), mp.Seconds(), stats.Median(ready).Seconds())
	fmt.Printf("Plinth − bare QEMU (medians): **%.2f s**; Plinth / bare QEMU: **%.2f×**.\n", (mp - mb).Seconds(), mp.Seconds()/mb.Seconds())
	return nil
}

// bareQEMU boots the guest with plain QEMU on the host to its marker: the
// bzImage with the kernel's self-tests, as the appliance's VM boots it.
func bareQEMU(ctx context.Context, guest string) (time.Duration, error) {
	vm, err := qemutest.Start(ctx, qemutest.Options{Kernel: filepath.Join(guest, "vmlinuz"), ServerBoot: true, Initrd: filepath.Join(guest, "init.cpio"),
		Cmdline: qemutest.FloorHangCmdline, MemoryMiB: 256, CPUs: 1})
	if err != nil {
		return 0, err
	}
	defer vm.Close()
	if _, err := vm.Expect(qemutest.FloorMarker, 120*time.Second); err != nil {
		return 0, err
	}
	return time.Since(vm.Started), nil
}

// appliance powers the appliance on and returns the time to the VM's
// marker and to the ready line, and the VMs' acceleration.
func appliance(ctx context.Context, o qemutest.Options) (marker, ready time.Duration, accel string, err error) {
	vm, err := qemutest.Start(ctx, o)
	if err != nil {
		return 0, 0, "", err
	}
	defer vm.Close()
	if _, err := vm.WaitReady(240 * time.Second); err != nil {
		return 0, 0, "", err
	}
	ready = time.Since(vm.Started)
	s, err := applrig.Login(ctx, vm.APIURL())
	if err != nil {
		return 0, 0, "", err
	}
	if err := s.WaitMarker(ctx, vmName, 240*time.Second); err != nil {
		return 0, 0, "", err
	}
	return time.Since(vm.Started), ready, s.Accel(ctx), nil
}

func distinct(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
