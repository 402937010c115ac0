// Command plinth-stallrepro boots the floor guest (the appliance's kernel
// and a one-file Go init, nothing of Plinth) again and again under QEMU as
// the appliance's tests boot it (q35, 2 vCPUs, TCG here), its init making
// the first memory cgroup while its other CPU runs through the call sites
// that turns on (floorinit's memcg mode). It counts the boots that never
// print the marker, and shows the first such boot's CPUs and console: the
// stall seen in the appliance's boot loop (docs/PERFORMANCE.md), outside
// Plinth. -cmdline adds kernel arguments (e.g. cgroup.memory=nokmem, which
// leaves that static key alone: qemutest passes it to every appliance it
// boots under TCG, but not here).
//
//	flock /work/heavy.lock go run ./qemu-test/cmd/plinth-stallrepro -n 40
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("plinth-stallrepro", flag.ContinueOnError)
	n := fs.Int("n", 40, "boots")
	mode := fs.String("mode", "memcg", "the floor guest's mode (plinthfloor=)")
	cmdline := fs.String("cmdline", "", "more kernel arguments")
	cpus := fs.Int("cpus", 2, "vCPUs")
	wait := fs.Duration("wait", 60*time.Second, "how long a boot may take to its marker before it counts as stalled")
	verbose := fs.Bool("v", false, "print each boot's console")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kernel, err := qemutest.FindKernel()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "plinth-stallrepro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	initrd, err := qemutest.BuildFloor(dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stalls := 0
	for i := 1; i <= *n && ctx.Err() == nil; i++ {
		vm, err := qemutest.Start(ctx, qemutest.Options{Kernel: kernel, Initrd: initrd, CPUs: *cpus, MemoryMiB: 1024, TCGAsIs: true,
			Cmdline: strings.TrimSpace("plinthfloor=" + *mode + " " + *cmdline)})
		if err != nil {
			return err
		}
		t0 := time.Now()
		_, err = vm.Expect(qemutest.FloorMarker, *wait)
		if err != nil {
			stalls++
			log.Printf("boot %d: no marker in %v: %v", i, *wait, err)
			if stalls == 1 {
				fmt.Printf("boot %d stalled; the guest's CPUs:\n%s\nits console's last lines:\n%s\n", i, vm.Diagnose(), strings.Join(vm.Tail(60), "\n"))
			}
		} else {
			log.Printf("boot %d: marker after %.1fs", i, time.Since(t0).Seconds())
		}
		if *verbose {
			fmt.Println(strings.Join(vm.Console(), "\n"))
		}
		vm.Close()
	}
	fmt.Printf("%d boots of plinthfloor=%s %s: %d without the marker in %v\n", *n, *mode, *cmdline, stalls, *wait)
	return nil
}
