// Command captureinit is the /init of the capture guest: the appliance's
// kernel with its modules and this one program (see qemutest.BuildCapture).
// It mounts /proc, /sys and /dev, cold-plugs the hardware's drivers the way
// the appliance does (board/drivers: every device's modalias against
// modules.alias, again each time a driver reveals new devices, until nothing
// new has appeared for a few seconds), then captures the files board's
// inventory reads (board.Capture) together with every device's modalias and
// bound driver, and prints the lot as a gzipped tar, base64, on the console
// between the BEGIN and END lines qemutest.ParseCapture looks for. Then it
// powers the machine off.
//
// Kernel command line (the kernel hands unknown key=value words to init as
// environment variables): plinthcapture_settle=SECONDS is how long no new
// device may appear before the capture is taken (default 5: a USB stick
// shows up a second or two after its host controller's driver loads).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/board/drivers"
)

// These must equal the constants of the same names in qemutest (capture.go).
const (
	captureBegin   = "PLINTH-CAPTURE-BEGIN"
	captureLine    = "PLINTH-CAPTURE "
	captureEnd     = "PLINTH-CAPTURE-END"
	captureModules = "PLINTH-CAPTURE-MODULES"
)

func main() {
	if err := run(); err != nil {
		fmt.Println("captureinit:", err)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		// PID 1 exiting panics the kernel; panic=-1 and -no-reboot end QEMU.
		fmt.Println("captureinit: power off:", err)
	}
}

func run() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"}, {"efivarfs", "/sys/firmware/efi/efivars", "efivarfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && m.typ != "efivarfs" {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	// Kernel messages would land in the middle of the base64 lines.
	os.WriteFile("/proc/sys/kernel/printk", []byte("1 4 1 7"), 0o644)

	settle := 5 * time.Second
	if s, err := strconv.Atoi(os.Getenv("plinthcapture_settle")); err == nil && s >= 0 {
		settle = time.Duration(s) * time.Second
	}
	loaded, err := coldplug(settle, 90*time.Second)
	if err != nil {
		return err
	}
	fmt.Println(captureModules, strings.Join(loaded, " "))
	// The appliance brings every NIC up to find one with a link; so does
	// the capture, or carrier, speed and duplex would read as unknown.
	nicsUp(5 * time.Second)

	const dst = "/tmp/capture"
	root := board.DefaultRoot()
	if err := board.Capture(root, dst); err != nil {
		return err
	}
	devs, err := drivers.Devices("/sys")
	if err != nil {
		return err
	}
	var list strings.Builder
	for _, d := range devs {
		fmt.Fprintf(&list, "%s\t%s\t%s\n", d.Path, d.Modalias, d.Driver)
	}
	if err := os.WriteFile(filepath.Join(dst, "modaliases"), []byte(list.String()), 0o644); err != nil {
		return err
	}
	b, err := tarGz(dst)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	out := bytes.NewBufferString(captureBegin + "\n")
	enc := base64.StdEncoding.EncodeToString(b)
	for len(enc) > 0 {
		n := min(len(enc), 76)
		out.WriteString(captureLine + enc[:n] + "\n")
		enc = enc[n:]
	}
	fmt.Fprintf(out, "%s sha256=%x\n", captureEnd, sum)
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// coldplug loads the modules the devices' modaliases ask for until no new
// module has been called for during settle, or until limit. It returns the
// modules it loaded, sorted.
func coldplug(settle, limit time.Duration) ([]string, error) {
	rel, err := release()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/lib/modules/" + rel + "/modules.alias")
	if err != nil {
		return nil, err
	}
	aliases, err := drivers.ParseAliases(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	tried := map[string]bool{}
	var loaded []string
	var mu sync.Mutex
	quietSince := time.Now()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		devs, _ := drivers.Devices("/sys")
		var mas []string
		for _, d := range devs {
			mas = append(mas, d.Modalias)
		}
		mods, _ := drivers.Match(aliases, mas)
		var todo []string
		for _, m := range mods {
			if !tried[m] {
				tried[m] = true
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			if time.Since(quietSince) >= settle {
				break
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var wg sync.WaitGroup
		for _, m := range todo {
			wg.Go(func() {
				if err := prober.Probe(m, ""); err != nil {
					fmt.Printf("captureinit: could not load %s: %v\n", m, err)
					return
				}
				mu.Lock()
				loaded = append(loaded, m)
				mu.Unlock()
			})
		}
		wg.Wait()
		quietSince = time.Now()
	}
	sort.Strings(loaded)
	return loaded, nil
}

// nicsUp sets every interface but lo up and waits up to wait for each to
// report its carrier (an interface whose peer is unplugged never does).
func nicsUp(wait time.Duration) {
	ents, _ := os.ReadDir("/sys/class/net")
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		fmt.Println("captureinit: socket:", err)
		return
	}
	defer unix.Close(fd)
	var names []string
	for _, e := range ents {
		if e.Name() == "lo" {
			continue
		}
		ifr, err := unix.NewIfreq(e.Name())
		if err != nil {
			continue
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			continue
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			fmt.Printf("captureinit: %s up: %v\n", e.Name(), err)
			continue
		}
		names = append(names, e.Name())
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		up := 0
		for _, n := range names {
			if b, _ := os.ReadFile("/sys/class/net/" + n + "/carrier"); strings.TrimSpace(string(b)) == "1" {
				up++
			}
		}
		if up == len(names) {
			return
		}
	}
}

func release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// tarGz packs dir (files, directories and symlinks) into a gzipped tar.
func tarGz(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname = time.Unix(0, 0), 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack the capture: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
