// Command memory measures the appliance's own memory: how much of the
// host's RAM it uses with no VM running, and with 10 idle VMs (qemu-test's
// floor guest, 64 MiB each, printing a marker and staying up), through the
// API (mgmtd's /metrics: the host's MemTotal and MemAvailable, and every
// VM's QEMU resident memory). What the appliance uses is MemTotal −
// MemAvailable, less the VMs' QEMU processes. The peers are the published
// minimums of ESXi (8 GB of host RAM to install and run, VMware's
// "ESXi Hardware Requirements") and Proxmox VE (2 GB for the OS and its
// services, its "System Requirements"). Prints a markdown section for
// docs/PERFORMANCE.md. Run it under the heavy lock:
//
//	flock /work/heavy.lock go run ./bench/memory
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/applrig"
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
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	vms := fs.Int("vms", 10, "idle VMs")
	vmMem := fs.Int("vm-mem", 64, "MiB of memory per VM")
	hostMem := fs.Int("mem", 4096, "MiB of memory of the appliance's (virtual) machine")
	samples := fs.Int("samples", 5, "samples of each state, 2 s apart; the report gives the median")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "plinth-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var specs []api.VMSpec
	for i := range *vms {
		specs = append(specs, applrig.GuestSpec(fmt.Sprintf("idle%02d", i), *vmMem, false))
	}
	disks, err := applrig.Seed(dir, kernel, specs...)
	if err != nil {
		return err
	}
	vm, err := qemutest.Start(ctx, disks.Options(kernel, initrd, 2, *hostMem))
	if err != nil {
		return err
	}
	defer vm.Close()
	if _, err := vm.WaitReady(240 * time.Second); err != nil {
		return err
	}
	s, err := applrig.Login(ctx, vm.APIURL())
	if err != nil {
		return err
	}
	time.Sleep(20 * time.Second) // the drivers that follow the ready line, the DCUIs
	idle, err := sample(ctx, s, *samples)
	if err != nil {
		return err
	}
	log.Printf("no VM: %+v", idle)
	for _, sp := range specs {
		if err := s.Do(ctx, http.MethodPost, applrig.VMPath(sp.Name)+"/start", nil, nil); err != nil {
			return err
		}
	}
	for _, sp := range specs {
		if err := s.WaitMarker(ctx, sp.Name, 600*time.Second); err != nil {
			return err
		}
	}
	time.Sleep(10 * time.Second)
	busy, err := sample(ctx, s, *samples)
	if err != nil {
		return err
	}
	log.Printf("%d VMs: %+v", *vms, busy)
	accel := s.Accel(ctx)
	if err := vm.PowerDown(); err == nil {
		vm.Wait(3 * time.Minute)
	}

	mib := func(b float64) string { return fmt.Sprintf("%.0f", b/(1<<20)) }
	fmt.Printf("## The appliance's own memory (%s, `go run ./bench/memory`)\n\n", time.Now().Format("2006-01-02"))
	fmt.Printf("- The appliance under QEMU (TCG, 2 vCPUs, %d MiB), booted from a STATE disk with %d VMs defined (qemu-test's floor guest, %d MiB each, serial console; under %s inside); samples through mgmtd's `/metrics`, %d of each state 2 s apart, medians. Machine shared with other builds and tests (load average at the end: %s).\n",
		*hostMem, *vms, *vmMem, accel, *samples, applrig.LoadAverage())
	fmt.Printf("- Used = MemTotal − MemAvailable; the appliance's own = used − the resident memory of the VMs' QEMU processes.\n\n")
	fmt.Println("| | host RAM used (MiB) | VMs' QEMU resident (MiB) | the appliance's own (MiB) |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	fmt.Printf("| no VM | %s | 0 | **%s** |\n", mib(idle.used), mib(idle.used))
	fmt.Printf("| %d idle VMs | %s | %s | **%s** |\n\n", *vms, mib(busy.used), mib(busy.qemu), mib(busy.used-busy.qemu))
	fmt.Printf("Peers: ESXi asks for at least 8 GB of host RAM (8192 MiB), Proxmox VE for 2 GB for itself (2048 MiB). Plinth's own use is %.1f%% of ESXi's minimum and %.1f%% of Proxmox's with no VM, %.1f%% and %.1f%% with %d idle VMs.\n",
		100*idle.used/(8192<<20), 100*idle.used/(2048<<20), 100*(busy.used-busy.qemu)/(8192<<20), 100*(busy.used-busy.qemu)/(2048<<20), *vms)
	return nil
}

type memory struct{ used, qemu float64 }

// sample reads /metrics n times, 2 s apart, and returns the medians.
func sample(ctx context.Context, s *applrig.Session, n int) (memory, error) {
	var used, qemu []float64
	for i := range n {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		var text string
		if err := s.Do(ctx, http.MethodGet, api.MgmtdMetricsPath, nil, &text); err != nil {
			return memory{}, err
		}
		m := parse(text)
		used = append(used, m["plinth_host_memory_total_bytes"]-m["plinth_host_memory_available_bytes"])
		qemu = append(qemu, m["plinth_vm_memory_rss_bytes"])
	}
	return memory{used: median(used), qemu: median(qemu)}, nil
}

// parse sums each metric's samples in Prometheus text (labels dropped).
func parse(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}
