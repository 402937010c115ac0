// Command floorinit is the "floor" guest's /init: the least a Linux guest can
// do. It prints FloorMarker on the console and powers the machine off, so a
// boot to it measures the kernel and QEMU alone. With plinthfloor=hang on the
// kernel command line (the kernel hands it to init as an environment
// variable) it prints the marker and then waits forever instead. Modes
// combine with commas: with plinthfloor=disks (e.g. plinthfloor=disks,hang)
// it first loads the kernel modules the initramfs holds in /modules (in name
// order), mounts sysfs and prints one "PLINTH-DISK <name> <bytes>" line per
// block device. With plinthfloor=console it answers its console after the
// marker: each line typed is echoed back as "floor: LINE", and the line
// "poweroff" powers the machine off (the web client's test types it into
// the serial terminal).
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// marker must equal qemutest.FloorMarker.
const marker = "PLINTH-FLOOR-UP"

func main() {
	// The time since the kernel started, so that the benchmark can split the
	// floor's wall time into firmware+QEMU and kernel.
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	modes := strings.Split(os.Getenv("plinthfloor"), ",")
	if slices.Contains(modes, "disks") {
		printDisks()
	}
	fmt.Printf("%s uptime_ms=%d\n", marker, ts.Nano()/1e6)
	if slices.Contains(modes, "console") {
		answerConsole()
	}
	if slices.Contains(modes, "hang") {
		for { // not select{}: Go would call that a deadlock and exit
			time.Sleep(time.Hour)
		}
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		// PID 1 exiting panics the kernel; panic=-1 and -no-reboot end QEMU.
		fmt.Println("floorinit: power off:", err)
	}
}

// answerConsole reads lines from the console until "poweroff" (or the end).
func answerConsole() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "poweroff" {
			fmt.Println("floor: powering off")
			return
		}
		fmt.Printf("floor: %s\n", line)
	}
}

// printDisks loads /modules/*.ko (the builder named them in load order),
// mounts sysfs and prints each block device with its size in bytes. It
// waits up to 10 s for a disk other than loop and ram devices to appear.
func printDisks() {
	mods, _ := filepath.Glob("/modules/*.ko")
	for _, m := range mods { // Glob sorts
		f, err := os.Open(m)
		if err != nil {
			fmt.Println("floorinit:", err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			fmt.Printf("floorinit: loading %s: %v\n", m, err)
		}
		f.Close()
	}
	os.Mkdir("/sys", 0o755)
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		fmt.Println("floorinit: mounting sysfs:", err)
		return
	}
	var names []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		names = nil
		entries, _ := os.ReadDir("/sys/block")
		real := false
		for _, e := range entries {
			names = append(names, e.Name())
			real = real || !strings.HasPrefix(e.Name(), "loop") && !strings.HasPrefix(e.Name(), "ram")
		}
		if real || time.Now().After(deadline) {
			break
		}
	}
	for _, n := range names {
		b, err := os.ReadFile("/sys/block/" + n + "/size")
		if err != nil {
			continue
		}
		sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		fmt.Printf("PLINTH-DISK %s %d\n", n, sectors*512)
	}
}
