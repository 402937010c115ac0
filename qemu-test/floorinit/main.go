// Command floorinit is the "floor" guest's /init: the least a Linux guest can
// do. It prints FloorMarker on the console and powers the machine off, so a
// boot to it measures the kernel and QEMU alone. With plinthfloor=hang on the
// kernel command line (the kernel hands it to init as an environment
// variable) it prints the marker and then waits forever instead.
package main

import (
	"fmt"
	"os"
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
	fmt.Printf("%s uptime_ms=%d\n", marker, ts.Nano()/1e6)
	if os.Getenv("plinthfloor") == "hang" {
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
