package appinit

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/initramfs/supervisor"
)

// bootLog is the init's console writer. Every byte goes to the boot log
// (kept in memory until /run exists); to the serial console only until the
// DCUI owns it (mute), and again from the shutdown on (unmute).
type bootLog struct {
	mu      sync.Mutex
	console io.Writer
	muted   bool
	early   bytes.Buffer // before the file is open
	file    *os.File
}

func newBootLog(console io.Writer) *bootLog {
	if b, ok := console.(*bootLog); ok {
		return b
	}
	return &bootLog{console: console}
}

func (b *bootLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != nil {
		b.file.Write(p) // a full /run must not stop the boot
	} else if b.early.Len() < 1<<20 {
		b.early.Write(p)
	}
	if !b.muted {
		return b.console.Write(p)
	}
	return len(p), nil
}

// openFile starts writing the boot log to path, beginning with what came
// before.
func (b *bootLog) openFile(path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f.Write(b.early.Bytes())
	b.early.Reset()
	b.file = f
}

func (b *bootLog) setMuted(m bool) {
	b.mu.Lock()
	b.muted = m
	b.mu.Unlock()
}

// startDCUI supervises a DCUI on /dev/TTY.
func (p *initProc) startDCUI(tty, term string) error {
	return p.sup.Start(supervisor.Spec{
		Name: "dcui-" + tty, Path: filepath.Join(p.cfg.BinDir, "dcui"),
		Args:       []string{"-tty", "/dev/" + tty, "-vmkernel", p.cfg.Layout.VMKernelSocket()},
		Env:        []string{"TERM=" + term, "HOME=/root"},
		MinBackoff: time.Second, MaxRestarts: 20,
	})
}

// serialConsoles are the ttyS* devices named by console= on the kernel
// command line (the last console= is the kernel's main one; any of them).
func serialConsoles(raw string) []string {
	var out []string
	for _, f := range strings.Fields(raw) {
		v, ok := strings.CutPrefix(f, "console=")
		if !ok {
			continue
		}
		dev, _, _ := strings.Cut(v, ",")
		if strings.HasPrefix(dev, "ttyS") && !contains(out, dev) {
			out = append(out, dev)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// startSerialDCUIs hands the serial console(s) to the DCUI: the init's and
// the services' lines stop going there (they stay in the boot log), the
// kernel's messages are limited to errors, and a DCUI starts on each.
// plinth.dcui=off on the kernel command line keeps the log on the console.
func (p *initProc) startSerialDCUIs() {
	if p.sup == nil || p.cfg.Cmdline["plinth.dcui"] == "off" {
		return
	}
	raw, _ := os.ReadFile("/proc/cmdline")
	ttys := serialConsoles(string(raw))
	if len(ttys) == 0 {
		return
	}
	p.logf("the serial console is the DCUI's from now on; these lines go on in %s", p.cfg.Layout.BootLog())
	// plinth.dcui=nomute keeps the log lines on the console too (debugging).
	p.log.setMuted(p.cfg.Cmdline["plinth.dcui"] != "nomute")
	// Only errors and worse from the kernel on the console from now on.
	_ = os.WriteFile("/proc/sys/kernel/printk", []byte("3"), 0o644)
	for _, t := range ttys {
		if err := p.startDCUI(t, "vt100"); err != nil {
			p.logf("DCUI on %s: %v", t, err)
		}
	}
}

// releaseSerial stops the serial DCUIs and gives the console back to the
// init's lines, for the shutdown messages.
func (p *initProc) releaseSerial() {
	if p.sup != nil {
		for _, st := range p.sup.Status() {
			if strings.HasPrefix(st.Name, "dcui-ttyS") {
				ctx, cancel := contextWithTimeout(5 * time.Second)
				_ = p.sup.Stop(ctx, st.Name)
				cancel()
			}
		}
	}
	// The serial DCUI took the console's foreground; take it back.
	if fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
		unix.Close(fd)
	}
	p.log.setMuted(false)
	p.log.Write([]byte("\r\n"))
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
