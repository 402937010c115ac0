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
// the serial terminal). Traffic of a known size, for the byte counters'
// tests (after loading /modules, as plinthfloor=disks does): write=N writes N
// MiB to /dev/vda and prints "PLINTH-WROTE <bytes>"; net brings the first
// NIC up (so its frames are taken in); send=N also sends N MiB of broadcast
// Ethernet frames on it and prints "PLINTH-SENT <bytes>".
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
	for _, m := range modes {
		if n, ok := strings.CutPrefix(m, "write="); ok {
			loadModules()
			writeDisk(n)
		}
	}
	for _, m := range modes {
		if n, ok := strings.CutPrefix(m, "send="); ok {
			loadModules()
			sendFrames(n)
		} else if m == "net" {
			loadModules()
			nicUp()
		}
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
	loadModules()
	printBlock()
}

var modulesLoaded bool

// loadModules loads /modules/*.ko once, in name order, and mounts sysfs
// and devtmpfs.
func loadModules() {
	if modulesLoaded {
		return
	}
	modulesLoaded = true
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
	unix.Mount("sysfs", "/sys", "sysfs", 0, "")
	os.Mkdir("/dev", 0o755)
	unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
}

// printBlock prints each block device with its size in bytes. It waits up
// to 10 s for a disk other than loop and ram devices to appear.
func printBlock() {
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

// writeDisk writes n MiB to /dev/vda from its start and syncs it.
func writeDisk(n string) {
	mib, err := strconv.Atoi(n)
	if err != nil || mib < 1 {
		fmt.Println("floorinit: write=", n, ": not a number of MiB")
		return
	}
	var f *os.File
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if f, err = os.OpenFile("/dev/vda", os.O_WRONLY, 0); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Println("floorinit: write:", err)
		return
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	total := 0
	for range mib {
		w, err := f.Write(buf)
		total += w
		if err != nil {
			fmt.Println("floorinit: write:", err)
			break
		}
	}
	if err := f.Sync(); err != nil {
		fmt.Println("floorinit: sync:", err)
	}
	f.Close()
	fmt.Printf("PLINTH-WROTE %d\n", total)
}

// nicUp brings the first NIC up and answers its name and index.
func nicUp() (string, int) {
	var name string
	for deadline := time.Now().Add(10 * time.Second); name == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		entries, _ := os.ReadDir("/sys/class/net")
		for _, e := range entries {
			if e.Name() != "lo" {
				name = e.Name()
				break
			}
		}
	}
	if name == "" {
		fmt.Println("floorinit: no NIC")
		return "", 0
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		fmt.Println("floorinit: socket:", err)
		return "", 0
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		fmt.Println("floorinit:", err)
		return "", 0
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		fmt.Println("floorinit: flags:", err)
		return "", 0
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		fmt.Println("floorinit: up:", err)
		return "", 0
	}
	b, _ := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	idx, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	fmt.Printf("PLINTH-NIC %s up\n", name)
	return name, idx
}

// sendFrames sends n MiB of 1500-byte broadcast frames (a local
// experimental EtherType) on the first NIC.
func sendFrames(n string) {
	mib, err := strconv.Atoi(n)
	if err != nil || mib < 1 {
		fmt.Println("floorinit: send=", n, ": not a number of MiB")
		return
	}
	name, idx := nicUp()
	if name == "" {
		return
	}
	const etherType = 0x88b5
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(etherType)))
	if err != nil {
		fmt.Println("floorinit: packet socket:", err)
		return
	}
	defer unix.Close(fd)
	mac, _ := os.ReadFile("/sys/class/net/" + name + "/address")
	frame := make([]byte, 1500)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	var src [6]byte
	fmt.Sscanf(strings.TrimSpace(string(mac)), "%x:%x:%x:%x:%x:%x", &src[0], &src[1], &src[2], &src[3], &src[4], &src[5])
	copy(frame[6:], src[:])
	frame[12], frame[13] = etherType>>8, etherType&0xff
	to := &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: idx, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	total := 0
	for total < mib<<20 {
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			if err == unix.ENOBUFS || err == unix.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			fmt.Println("floorinit: send:", err)
			break
		}
		total += len(frame)
	}
	fmt.Printf("PLINTH-SENT %d\n", total)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
