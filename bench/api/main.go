// Command api measures mgmtd's GET /api/v1/vms with many defined VMs over
// HTTPS on loopback (see package apibench) and prints a markdown section for
// docs/PERFORMANCE.md; progress goes to stderr. It exits 1 when the target
// (p99 under 20 ms at the rate, no errors) is missed.
//
//	go run ./bench/api -runs 3 > /tmp/api.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/plinth/plinth/bench/apibench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	var o apibench.Options
	fs.IntVar(&o.VMs, "vms", 1000, "VMs to define")
	fs.IntVar(&o.Rate, "rate", 500, "open-loop requests per second")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "length of each open-loop and closed-loop run")
	fs.IntVar(&o.Runs, "runs", 3, "runs; the report gives medians")
	fs.IntVar(&o.Workers, "c", 8, "connections")
	fs.BoolVar(&o.Identity, "identity", false, "ask for uncompressed answers (default: accept gzip)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (server and load generator) here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.Logf = log.Printf
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := apibench.Run(ctx, o)
	if err != nil {
		return err
	}
	res.Markdown(os.Stdout)
	if !res.Pass() {
		return errors.New("target missed")
	}
	return nil
}
