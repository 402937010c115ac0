// Command boot measures how long the Plinth appliance takes to boot under
// QEMU to its PLINTH-READY line, against a floor (the same kernel with a Go
// /init that only prints a marker) measured in the same run (see package
// bootbench), and prints a markdown section for docs/PERFORMANCE.md.
// Progress goes to stderr. -loop N boots the appliance N more times to
// count stalls; -test-boot boots both as the tests do (qemutest's
// Options.ServerBoot says how that differs).
//
//	flock /work/heavy.lock go run ./bench/boot -n 7 -loop 40 > /tmp/boot.md
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plinth/plinth/bench/bootbench"
	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	kernel, initrd, err := qemutest.ImagePaths()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	n := fs.Int("n", 7, "measured boots of each guest (floor and appliance, interleaved, after one warm-up of each)")
	loop := fs.Int("loop", 0, "appliance boots after the measured ones, to count stalls")
	fs.StringVar(&kernel, "kernel", kernel, "kernel for both guests")
	fs.StringVar(&initrd, "initrd", initrd, "appliance initramfs")
	cpus := fs.Int("cpus", 2, "vCPUs per guest")
	mem := fs.Int("mem", 1024, "MiB of memory per guest")
	timeout := fs.Duration("timeout", 240*time.Second, "deadline for each appliance boot to PLINTH-READY")
	testBoot := fs.Bool("test-boot", false, "boot both as the tests do (the kernel's PVH entry, no crypto self-tests), not as a server does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v (run `make image`, or pass -kernel/-initrd)", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bootbench.Run(ctx, bootbench.Options{
		Kernel: kernel, Initrd: initrd, Runs: *n, Loop: *loop, CPUs: *cpus, MemoryMiB: *mem,
		ReadyTimeout: *timeout, TestBoot: *testBoot, Logf: log.Printf,
	})
	if err != nil {
		return err
	}
	res.Markdown(os.Stdout)
	if res.LoopErr != nil {
		return res.LoopErr // after the report, which says it too
	}
	return nil
}
