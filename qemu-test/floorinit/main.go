// Command floorinit is the "floor" guest's /init: the least a Linux guest can
// do. It prints FloorMarker on the console and powers the machine off, so a
// boot to it measures the kernel and QEMU alone. With plinthfloor=hang on the
// kernel command line (the kernel hands it to init as an environment
// variable) it prints the marker and then waits forever instead; with
// plinthfloor=reboot it reboots instead (with reboot=t, by a triple fault). Modes
// combine with commas: with plinthfloor=disks (e.g. plinthfloor=disks,hang)
// it first loads the kernel modules the initramfs holds in /modules (in name
// order), mounts sysfs and prints one "PLINTH-DISK <name> <bytes>" line per
// block device. With plinthfloor=console it answers its console after the
// marker: each line typed is echoed back as "floor: LINE", and the line
// "poweroff" powers the machine off (the web client's test types it into
// the serial terminal). With plinthfloor=fs (after loading /modules, as
// plinthfloor=disks does) it mounts /dev/vda (ext4) on /mnt and, when the
// kernel booted through UEFI, efivarfs; its console then also takes
// "mark TEXT" (writes TEXT to /mnt/marker and syncs: "floor: marked TEXT"),
// "fill NAME MIB" (MIB MiB of fresh data in /mnt/NAME: "floor: filled NAME MIB"),
// "cat" ("floor: marker=TEXT"), "efiset TEXT" (a UEFI variable of its own:
// "floor: efiset TEXT") and "efiget" ("floor: efivar=TEXT"), for the
// snapshot tests. Traffic of a known size, for the byte counters'
// tests (after loading /modules, as plinthfloor=disks does): write=N writes N
// MiB to /dev/vda and prints "PLINTH-WROTE <bytes>"; net brings the first
// NIC up (so its frames are taken in); send=N also sends N MiB of broadcast
// Ethernet frames on it and prints "PLINTH-SENT <bytes>". With tpm it
// prints "PLINTH-TPM version=2 pcr0=HEX pcr7=HEX random=N" (the PCRs the
// kernel reads from the TPM, and N random bytes asked of /dev/tpm0), or
// "PLINTH-TPM none: WHY". With mem (after loading /modules, where the
// balloon driver is) it prints "PLINTH-MEM total_kb=N free_kb=N" now and
// every 2 s. With watch it reports block devices and network interfaces
// and USB devices as they come and go (hot-plug): "PLINTH-DISK name
// bytes", "PLINTH-NIC name mac" and "PLINTH-USB port vendor:product" for
// each new one, "PLINTH-GONE name" for each that left. With root:DEV:INIT (e.g.
// plinthfloor=root:/dev/vda:/usr/sbin/plinth-guest) it loads /modules,
// mounts the ext4 file system on DEV and hands over to INIT there
// (switch_root): a guest with a real root file system (qemu-test's Debian
// guest) booted with the appliance's kernel. With memcg it does, before
// the marker, what the appliance's vmkernel did in a boot that stalled
// under TCG: the first memory cgroup made (which turns on the kernel's
// memcg_kmem static key, patching its call sites) while another CPU runs
// through those sites (stat calls allocate from a slab cache); it prints
// "PLINTH-MEMCG made" (see qemu-test's TestStaticKeyStall).
package main

import (
	"bufio"
	"encoding/binary"
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
	for _, m := range modes {
		if r, ok := strings.CutPrefix(m, "root:"); ok {
			dev, init, _ := strings.Cut(r, ":")
			switchRoot(dev, init)
		}
	}
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
	if slices.Contains(modes, "tpm") {
		loadModules()
		printTPM()
	}
	if slices.Contains(modes, "mem") {
		loadModules()
		printMemory()
	}
	if slices.Contains(modes, "watch") {
		loadModules()
		go watchDevices()
	}
	if slices.Contains(modes, "fs") {
		loadModules()
		mountFS()
	}
	if slices.Contains(modes, "memcg") {
		firstMemcg()
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
	if slices.Contains(modes, "reboot") {
		// With reboot=t on the command line the kernel reboots by a
		// triple fault: a guest that ends its QEMU (-no-reboot) the way
		// the appliance does when the rig loses it.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
			fmt.Println("floorinit: reboot:", err)
		}
	}
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
		if fsCommand(line) {
			continue
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

// printTPM reads the TPM the kernel found: its version, PCRs 0 and 7 in
// the SHA-256 bank, and a TPM2_GetRandom through /dev/tpm0.
func printTPM() {
	var dev string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/dev/tpm0"); err == nil {
			dev = "/dev/tpm0"
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("PLINTH-TPM none: no /dev/tpm0")
			return
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "error:" + err.Error()
		}
		return strings.TrimSpace(string(b))
	}
	ver := read("/sys/class/tpm/tpm0/tpm_version_major")
	pcr0 := read("/sys/class/tpm/tpm0/pcr-sha256/0")
	pcr7 := read("/sys/class/tpm/tpm0/pcr-sha256/7")
	random := -1
	if f, err := os.OpenFile(dev, os.O_RDWR, 0); err == nil {
		// TPM2_GetRandom(8): tag NO_SESSIONS, size 12, code 0x17b.
		cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8}
		resp := make([]byte, 64)
		if _, err := f.Write(cmd); err == nil {
			if n, err := f.Read(resp); err == nil && n >= 12 && resp[6]|resp[7]|resp[8]|resp[9] == 0 {
				random = int(resp[10])<<8 | int(resp[11])
			}
		}
		f.Close()
	}
	fmt.Printf("PLINTH-TPM version=%s pcr0=%s pcr7=%s random=%d\n", ver, pcr0, pcr7, random)
}

// printMemory prints the guest's total and free memory (/proc/meminfo)
// now and, in the background, every 2 s.
func printMemory() {
	os.Mkdir("/proc", 0o755)
	unix.Mount("proc", "/proc", "proc", 0, "")
	line := func() {
		b, _ := os.ReadFile("/proc/meminfo")
		var total, free string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "MemTotal:" {
				total = f[1]
			}
			if len(f) >= 2 && f[0] == "MemFree:" {
				free = f[1]
			}
		}
		fmt.Printf("PLINTH-MEM total_kb=%s free_kb=%s\n", total, free)
	}
	line()
	go func() {
		for {
			time.Sleep(2 * time.Second)
			line()
		}
	}()
}

// watchDevices prints block devices, network interfaces and USB devices
// as they appear and disappear, polling sysfs every 100 ms.
func watchDevices() {
	seen := map[string]bool{}
	for first := true; ; first = false {
		now := map[string]bool{}
		blocks, _ := os.ReadDir("/sys/block")
		for _, e := range blocks {
			n := e.Name()
			if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") {
				continue
			}
			now["block:"+n] = true
			if !seen["block:"+n] {
				b, _ := os.ReadFile("/sys/block/" + n + "/size")
				sectors, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				fmt.Printf("PLINTH-DISK %s %d\n", n, sectors*512)
			}
		}
		nets, _ := os.ReadDir("/sys/class/net")
		for _, e := range nets {
			n := e.Name()
			if n == "lo" {
				continue
			}
			now["net:"+n] = true
			if !seen["net:"+n] {
				mac, _ := os.ReadFile("/sys/class/net/" + n + "/address")
				fmt.Printf("PLINTH-NIC %s %s\n", n, strings.TrimSpace(string(mac)))
			}
		}
		usbs, _ := os.ReadDir("/sys/bus/usb/devices")
		for _, e := range usbs {
			n := e.Name()
			if strings.ContainsAny(n, ":") || strings.HasPrefix(n, "usb") {
				continue // interfaces and root hubs
			}
			now["usb:"+n] = true
			if !seen["usb:"+n] {
				v, _ := os.ReadFile("/sys/bus/usb/devices/" + n + "/idVendor")
				p, _ := os.ReadFile("/sys/bus/usb/devices/" + n + "/idProduct")
				fmt.Printf("PLINTH-USB %s %s:%s\n", n, strings.TrimSpace(string(v)), strings.TrimSpace(string(p)))
			}
		}
		for k := range seen {
			if !now[k] && !first {
				_, name, _ := strings.Cut(k, ":")
				fmt.Printf("PLINTH-GONE %s\n", name)
			}
		}
		seen = now
		time.Sleep(100 * time.Millisecond)
	}
}

// efiVar is the floor guest's own UEFI variable (a GUID of its own, so
// the kernel leaves it writable).
const efiVar = "/sys/firmware/efi/efivars/PlinthFloor-8be4df61-93ca-11d2-aa0d-00e098032b8d"

// mountFS mounts /dev/vda (waiting up to 10 s for it) on /mnt, and
// efivarfs when there is UEFI.
func mountFS() {
	os.Mkdir("/mnt", 0o755)
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err = unix.Mount("/dev/vda", "/mnt", "ext4", unix.MS_NOATIME, ""); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Println("floorinit: mount /dev/vda:", err)
	}
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		if err := unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, ""); err != nil {
			fmt.Println("floorinit: mount efivarfs:", err)
		}
	}
}

// fsCommand answers the file-system commands; false for another line.
func fsCommand(line string) bool {
	cmd, arg, _ := strings.Cut(line, " ")
	switch cmd {
	case "mark":
		f, err := os.OpenFile("/mnt/marker", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			_, err = f.WriteString(arg)
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		unix.Sync()
		if err != nil {
			fmt.Println("floor: mark:", err)
			return true
		}
		fmt.Printf("floor: marked %s\n", arg)
	case "fill":
		// fill NAME MIB: MIB MiB of data no two runs share, in /mnt/NAME.
		name, n, _ := strings.Cut(arg, " ")
		mib, err := strconv.Atoi(n)
		if err != nil || mib < 1 || strings.Contains(name, "/") {
			fmt.Println("floor: fill: want NAME MIB")
			return true
		}
		f, err := os.OpenFile("/mnt/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			buf := make([]byte, 1<<20)
			seed := uint64(time.Now().UnixNano())
			for range mib {
				for i := 0; i+8 <= len(buf); i += 8 {
					seed = seed*6364136223846793005 + 1442695040888963407
					binary.LittleEndian.PutUint64(buf[i:], seed)
				}
				if _, err = f.Write(buf); err != nil {
					break
				}
			}
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		unix.Sync()
		if err != nil {
			fmt.Println("floor: fill:", err)
			return true
		}
		fmt.Printf("floor: filled %s %d\n", name, mib)
	case "cat":
		b, err := os.ReadFile("/mnt/marker")
		if err != nil {
			fmt.Println("floor: cat:", err)
			return true
		}
		fmt.Printf("floor: marker=%s\n", b)
	case "efiset":
		// An existing variable's file is immutable (chattr -i first).
		if f, err := os.Open(efiVar); err == nil {
			if flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS); err == nil {
				unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^0x10)) // FS_IMMUTABLE_FL
			}
			f.Close()
		}
		// Attributes: non-volatile, boot service and runtime access.
		if err := os.WriteFile(efiVar, append([]byte{7, 0, 0, 0}, arg...), 0o644); err != nil {
			fmt.Println("floor: efiset:", err)
			return true
		}
		fmt.Printf("floor: efiset %s\n", arg)
	case "efiget":
		b, err := os.ReadFile(efiVar)
		if err != nil || len(b) < 4 {
			fmt.Println("floor: efiget:", err)
			return true
		}
		fmt.Printf("floor: efivar=%s\n", b[4:])
	default:
		return false
	}
	return true
}

// switchRoot mounts dev (ext4) and runs init in it as PID 1, the initramfs
// left behind (it is small). It returns only when that fails.
func switchRoot(dev, init string) {
	loadModules()
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		os.Mkdir("/newroot", 0o755)
		if err = unix.Mount(dev, "/newroot", "ext4", 0, ""); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Println("floorinit: mounting the root file system:", dev, err)
		return
	}
	for _, m := range []string{"/dev", "/sys"} {
		os.Mkdir("/newroot"+m, 0o755)
		if err := unix.Mount(m, "/newroot"+m, "", unix.MS_MOVE, ""); err != nil {
			fmt.Println("floorinit: moving", m, err)
		}
	}
	if err := os.Chdir("/newroot"); err != nil {
		fmt.Println("floorinit:", err)
		return
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		fmt.Println("floorinit: switch_root:", err)
		return
	}
	if err := unix.Chroot("."); err != nil {
		fmt.Println("floorinit: chroot:", err)
		return
	}
	os.Chdir("/")
	err = unix.Exec(init, []string{init}, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=vt100"})
	fmt.Println("floorinit: exec", init, err)
}

// firstMemcg mounts cgroup2, enables the memory controller for children
// and makes the first child, while goroutines on the other CPU stat a
// path as fast as they can (each stat allocates the name from a slab
// cache, through the call sites the static key patches).
func firstMemcg() {
	must := func(what string, err error) {
		if err != nil {
			fmt.Printf("floorinit: memcg: %s: %v\n", what, err)
		}
	}
	os.MkdirAll("/sys", 0o755)
	must("mount sysfs", unix.Mount("sysfs", "/sys", "sysfs", 0, ""))
	must("mount cgroup2", unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""))
	stop := make(chan struct{})
	for range 4 {
		go func() {
			var st unix.Stat_t
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 1000 {
					unix.Stat("/sys/fs/cgroup", &st)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	must("subtree_control", os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory"), 0o644))
	must("mkdir", os.Mkdir("/sys/fs/cgroup/first", 0o755))
	close(stop)
	fmt.Println("PLINTH-MEMCG made")
}
