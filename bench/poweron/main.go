// Command poweron measures vmkernel's power-on latency (the start API call
// to QMP reporting the VM running) against the floor (bare QEMU exec to QMP
// answering), and listing many defined VMs through the local API; it prints a
// markdown section for docs/PERFORMANCE.md. Progress goes to stderr.
//
//	go run ./bench/poweron -n 20 > /tmp/poweron.md
//
// With -libvirt it also times libvirt's `virsh start` of the same guest,
// interleaved with the other two; it installs Debian's libvirt with apt-get
// if it is missing, makes libvirt run QEMU as root (qemu.conf), and runs its
// own libvirtd under a child subreaper (this program, re-executed), which it
// stops at the end:
//
//	go run ./bench/poweron -n 20 -libvirt
//
// With -rss N it instead runs the real vmkernel binary with N VMs running
// (TCG) and reports vmkernel's own RSS:
//
//	go run ./bench/poweron -rss 50
//
// With -appliance it runs itself inside the appliance under QEMU, where
// vmkernel runs as it does there, with cgroup v2 (-cgroups; this host keeps
// the memory controller in cgroup v1), and prints that run's report:
//
//	flock /work/heavy.lock go run ./bench/poweron -appliance -n 11
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/powerbench"
	"github.com/plinth/plinth/board/accel"
	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if powerbench.IsReaper() {
		os.Exit(powerbench.Reap(os.Args[1:]))
	}
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	kernel, initrd, _ := qemutest.ImagePaths() // none inside the appliance: -kernel
	fs := flag.NewFlagSet("poweron", flag.ContinueOnError)
	n := fs.Int("n", 20, "power-ons of each kind (floor and Plinth, interleaved), and listings")
	fs.StringVar(&kernel, "kernel", kernel, "guest kernel")
	qemuBin := fs.String("qemu", "qemu-system-x86_64", "QEMU binary")
	mem := fs.Int("mem", 256, "MiB of memory of the guest")
	list := fs.Int("list", 1000, "VMs to define for the listing benchmark (0: skip it)")
	mode := fs.String("accel", "auto", "auto (detect) or tcg")
	rss := fs.Int("rss", 0, "instead: run the vmkernel binary with this many running VMs (TCG) and report its RSS")
	libvirt := fs.Bool("libvirt", false, "also time libvirt's virsh start of the same guest (installs libvirt with apt-get if missing; needs root)")
	rssMem := fs.Int("rss-mem", 64, "MiB of memory of each VM of -rss")
	guestInitrd := fs.String("initrd", "", "the guest's initramfs (qemu-test's floor); empty: build it (needs go and this repository)")
	cgroups := fs.Bool("cgroups", false, "run vmkernel as the appliance does, with cgroup v2 (needs the memory controller there)")
	inAppl := fs.Bool("appliance", false, "run the benchmark inside the appliance under QEMU (with -cgroups) and print its report")
	applInitrd := fs.String("appliance-initrd", initrd, "the appliance's initramfs, for -appliance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, err := os.Stat(kernel); err != nil {
		return fmt.Errorf("%v (run `make image`, or pass -kernel)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *inAppl {
		return inAppliance(ctx, kernel, *applInitrd, *n, *mem)
	}
	bin, err := exec.LookPath(*qemuBin)
	if err != nil {
		return err
	}
	if *rss > 0 {
		res, err := powerbench.RSS(ctx, powerbench.RSSOptions{QEMU: bin, Kernel: kernel, VMs: *rss, MemoryMiB: *rssMem, Logf: log.Printf})
		if err != nil {
			return err
		}
		res.Markdown(os.Stdout)
		return nil
	}
	acc := accel.Detect()
	switch *mode {
	case "auto":
	case api.AccelTCG:
		acc.Mode, acc.Reason = api.AccelTCG, "tcg: forced by -accel tcg"
	default:
		return fmt.Errorf("-accel %q: want auto or tcg", *mode)
	}
	var self string
	if *libvirt {
		if self, err = os.Executable(); err != nil {
			return err
		}
		if err := powerbench.SetupLibvirt(ctx, log.Printf); err != nil {
			return err
		}
	}
	res, err := powerbench.Run(ctx, powerbench.Options{
		QEMU: bin, Kernel: kernel, Initrd: *guestInitrd, Cgroups: *cgroups, Accel: acc, Runs: *n, MemoryMiB: *mem, ListVMs: *list,
		Libvirt: *libvirt, Self: self, Logf: log.Printf,
	})
	if err != nil {
		return err
	}
	res.Markdown(os.Stdout)
	return nil
}
