// Command boot measures how long the Plinth appliance takes to boot under
// QEMU to its PLINTH-READY line, against a floor (the same kernel with a Go
// /init that only prints a marker) measured in the same run, and prints a
// markdown section for docs/PERFORMANCE.md. Progress goes to stderr.
//
//	go run ./bench/boot -n 5 > /tmp/boot.md
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
	n := fs.Int("n", 5, "boots of each guest (floor and appliance, interleaved)")
	fs.StringVar(&kernel, "kernel", kernel, "kernel for both guests")
	fs.StringVar(&initrd, "initrd", initrd, "appliance initramfs")
	cpus := fs.Int("cpus", 2, "vCPUs per guest")
	mem := fs.Int("mem", 1024, "MiB of memory per guest")
	timeout := fs.Duration("timeout", 240*time.Second, "deadline for each appliance boot to PLINTH-READY")
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
	res, err := qemutest.BootBench(ctx, qemutest.BenchOptions{
		Kernel: kernel, Initrd: initrd, Runs: *n, CPUs: *cpus, MemoryMiB: *mem,
		ReadyTimeout: *timeout, Logf: log.Printf,
	})
	if err != nil {
		return err
	}
	res.Markdown(os.Stdout)
	return nil
}
