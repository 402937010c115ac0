// Command plinth-run boots the built image under QEMU for a developer (make
// run): the serial console on this terminal, the web client and the API
// forwarded to https://127.0.0.1:8443, and a disk of its own under build/run
// (STATE and datastore ds1, made on the first run and kept after, so the
// password, VMs and uploads survive). It uses the same QEMU command line as
// the tests.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board/accel"
	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "plinth-run: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	kernel, initrd, err := qemutest.ImagePaths()
	if err != nil {
		return err
	}
	port := flag.Int("port", 8443, "localhost port the API (guest port 443) is forwarded to")
	mem := flag.Int("m", 2048, "memory in MiB")
	cpus := flag.Int("smp", 2, "vCPUs")
	cmdline := flag.String("append", "", "extra kernel command line, e.g. plinth.hostname=esx1")
	disk := flag.String("disk", filepath.Join(filepath.Dir(kernel), "run", "plinth-run.img"), "the development disk (STATE and datastore ds1), made when missing; empty for none (live mode)")
	flag.Parse()
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing: run 'make image' first", f)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		return fmt.Errorf("port %d is in use (another 'make run'?); choose another with -port: %w", *port, err)
	}
	ln.Close()

	a := accel.Detect()
	if a.Mode != api.AccelKVM {
		fmt.Fprintf(os.Stderr, "plinth-run: WARNING: running QEMU with TCG (slow): %s\n", a.Reason)
	}
	dir, err := os.MkdirTemp("", "plinth-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// make run shows the appliance as a server boots it (the tests boot
	// it quicker: qemutest.Options.ServerBoot).
	o := qemutest.Options{Kernel: kernel, Initrd: initrd, Cmdline: *cmdline, MemoryMiB: *mem, CPUs: *cpus, Accel: a.Mode, ServerBoot: true}
	firstRun := false
	if *disk != "" {
		if err := os.MkdirAll(filepath.Dir(*disk), 0o755); err != nil {
			return err
		}
		if firstRun, err = qemutest.RunDisk(*disk); err != nil {
			return fmt.Errorf("the development disk: %w", err)
		}
		o.ExtraArgs = append(o.ExtraArgs, qemutest.RunDiskArgs(*disk)...)
	}
	args := o.Args(*port, filepath.Join(dir, "qmp.sock"))
	// The tests read the console from a pipe; here it is the terminal, with
	// QEMU's monitor multiplexed on it (Ctrl-A C) so Ctrl-A X quits.
	for i := range args {
		if args[i] == "stdio" && i > 0 && args[i-1] == "-serial" {
			args[i] = "mon:stdio"
		}
	}
	diskNote := "none: live mode, nothing is kept (-disk)"
	switch {
	case *disk != "" && firstRun:
		diskNote = *disk + " (new: STATE and datastore ds1; kept for the next run, delete it to start again)"
	case *disk != "":
		diskNote = *disk + " (kept from the last run: password, VMs and files as you left them)"
	}
	fmt.Fprintf(os.Stderr, `plinth-run: booting %s + %s
plinth-run: disk: %s
plinth-run: web client: https://127.0.0.1:%d/   (the certificate is self-signed: its fingerprint is on the DCUI)
plinth-run: first run: set the root password on the DCUI below (Enter), then log in as root in the browser; or
plinth-run:       go run ./mgmtd/cmd/plinth login --server 127.0.0.1:%d && go run ./mgmtd/cmd/plinth host info
plinth-run: quit: Ctrl-A X    ACPI power button (clean shutdown): Ctrl-A C, then 'system_powerdown'
`, kernel, initrd, diskNote, *port, *port)
	cmd := exec.Command(qemutest.QEMUBinary, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}
