package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/bench/applrig"
	qemutest "github.com/plinth/plinth/qemu-test"
)

// inAppliance runs this benchmark inside the appliance, whose vmkernel has
// cgroup v2 with the cpu and memory controllers (a host with cgroup v1 for
// them cannot run vmkernel as the appliance does): it builds itself
// (static), puts itself and the guest on a datastore disk, boots the
// appliance under QEMU, opens the DCUI's local shell on the serial console
// and runs itself there with -cgroups, then powers the appliance off and
// reads the report from the datastore.
func inAppliance(ctx context.Context, kernel, initrd string, runs, mem int) error {
	root, err := qemutest.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "plinth-poweron-appliance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self := filepath.Join(dir, "poweron")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", self, "./bench/poweron")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the benchmark for the appliance: %v: %s", err, out)
	}
	disks, err := applrig.SeedFiles(dir, kernel, map[string]string{"poweron": self})
	if err != nil {
		return err
	}
	vm, err := qemutest.Start(ctx, disks.Options(kernel, initrd, 2, 3072))
	if err != nil {
		return err
	}
	defer vm.Close()
	if _, err := vm.WaitReady(240 * time.Second); err != nil {
		return err
	}
	if err := openShell(vm); err != nil {
		return err
	}
	const ds = "/datastores/ds1"
	cmd := fmt.Sprintf("%s/poweron -kernel %s/vmlinuz -initrd %s/init.cpio -cgroups -list 0 -n %d -mem %d > %s/poweron.md 2> %s/poweron.log; echo POWERON-DONE-$?",
		ds, ds, ds, runs, mem, ds, ds)
	if err := vm.Type(cmd + qemutest.KeyEnter); err != nil {
		return err
	}
	done := regexp.MustCompile(`POWERON-DONE-(\d+)`)
	var line string
	for deadline := time.Now().Add(40 * time.Minute); ; {
		// The DCUI ends a shell left without input for minutes: a key now
		// and then (an empty line, for the shell after the benchmark).
		line, err = vm.Expect(done, time.Minute)
		if err == nil || vm.Exited() || time.Now().After(deadline) {
			break
		}
		vm.Type(qemutest.KeyEnter)
	}
	if err != nil {
		return fmt.Errorf("the benchmark in the appliance did not end: %w", err)
	}
	code, _ := strconv.Atoi(done.FindStringSubmatch(line)[1])
	vm.PowerDown()
	if _, err := vm.Wait(3 * time.Minute); err != nil {
		return err
	}
	report, err := exec.Command("debugfs", "-R", "cat /poweron.md", disks.Datastore).Output()
	if err != nil {
		return fmt.Errorf("reading the report from the datastore: %w", err)
	}
	if code != 0 {
		logs, _ := exec.Command("debugfs", "-R", "cat /poweron.log", disks.Datastore).Output()
		return fmt.Errorf("the benchmark in the appliance exited %d:\n%s", code, logs)
	}
	fmt.Printf("%s\n(Run inside the appliance under QEMU: `go run ./bench/poweron -appliance -n %d`; load average on the host at the end: %s.)\n",
		strings.TrimSpace(string(report)), runs, applrig.LoadAverage())
	return nil
}

// openShell logs in on the serial DCUI and opens its local shell.
func openShell(vm *qemutest.VM) error {
	if err := vm.ExpectScreen("Customize System", 60*time.Second); err != nil {
		return err
	}
	if err := qemutest.LoginViaDCUI(vm, applrig.Password); err != nil {
		return fmt.Errorf("DCUI login: %w", err)
	}
	for _, item := range []string{"> Troubleshooting Options", "> Local Shell"} {
		found := false
		for i := 0; i < 25 && !found; i++ {
			if i > 0 { // the first look is at the screen as drawn
				vm.MarkScreen()
				if err := vm.Type(qemutest.KeyDown); err != nil {
					return err
				}
			}
			found = vm.ExpectScreen(item, 3*time.Second) == nil
		}
		if !found {
			return fmt.Errorf("DCUI: no %q in the menu", item)
		}
		vm.MarkScreen()
		if err := vm.Type(qemutest.KeyEnter); err != nil {
			return err
		}
	}
	if err := vm.ExpectScreen("Plinth local shell", 30*time.Second); err != nil {
		return fmt.Errorf("DCUI: the local shell did not start: %w", err)
	}
	log.Printf("in the appliance's local shell")
	return nil
}
