// Command dcui is Plinth's Direct Console UI on one terminal: the appliance
// init runs one on tty1 and one on the serial console (-tty). The work is in
// package dcui.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/dcui"
	"github.com/plinth/plinth/layout"
)

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stdout) // the supervisor's log
	if err := run(os.Args); err != nil {
		log.Fatalf("dcui: %v", err)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet(args[0], flag.ContinueOnError)
	tty := fl.String("tty", "", "terminal device to run on (default: standard input and output)")
	runDir := fl.String("run", layout.RunDir, "the run directory (where vmkernel's socket is)")
	vmk := fl.String("vmkernel", "", "vmkernel's socket (default RUN/vmkernel.sock)")
	shell := fl.String("shell", "/bbin/gosh", "the Troubleshooting shell")
	shellIdle := fl.Duration("shell-idle", 5*time.Minute, "end the Troubleshooting shell after this long without input")
	idle := fl.Duration("idle", 10*time.Minute, "log the console out after this long without a key")
	confirm := fl.Duration("confirm", 60*time.Second, "roll network changes back unless kept within this")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if *vmk == "" {
		*vmk = layout.Host{Run: *runDir}.VMKernelSocket()
	}
	in, out := os.Stdin, os.Stdout
	ttyPath := *tty
	if *tty != "" {
		// O_NONBLOCK: a serial line without CLOCAL would block the open
		// until carrier detect; blocking I/O again once it is open.
		fd, err := unix.Open(*tty, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", *tty, err)
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			return fmt.Errorf("%s: %w", *tty, err)
		}
		if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil && t.Cflag&unix.CLOCAL == 0 {
			t.Cflag |= unix.CLOCAL
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
		}
		// On the appliance the serial console is the controlling terminal
		// of the init's session, and the supervisor gives the DCUI its own
		// process group: a background group, which the kernel stops
		// (SIGTTOU) when it sets raw mode. Take the foreground instead.
		signal.Ignore(syscall.SIGTTOU, syscall.SIGTTIN)
		_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
		f := os.NewFile(uintptr(fd), *tty)
		defer f.Close()
		in, out = f, f
	} else if p, err := os.Readlink("/proc/self/fd/0"); err == nil {
		ttyPath = p
	}
	// A serial line has no size: tell the line discipline it is a VT100's,
	// so bubbletea and the shell lay out for 80x24.
	if ws, err := unix.IoctlGetWinsize(int(out.Fd()), unix.TIOCGWINSZ); err == nil && (ws.Col == 0 || ws.Row == 0) {
		_ = unix.IoctlSetWinsize(int(out.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	}
	d, err := dcui.System(dcui.SystemConfig{VMKernel: *vmk, TTY: ttyPath, Shell: *shell, ShellIdle: *shellIdle})
	if err != nil {
		return err
	}
	d.IdleTimeout, d.ConfirmTimeout = *idle, *confirm
	ws, _ := unix.IoctlGetWinsize(int(out.Fd()), unix.TIOCGWINSZ)
	if ws == nil {
		ws = &unix.Winsize{}
	}
	log.Printf("dcui: on %s (%dx%d, TERM=%s)", orStd(*tty), ws.Col, ws.Row, os.Getenv("TERM"))
	p := tea.NewProgram(dcui.New(d), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	// A terminal that hangs up (the serial line's, a closed tmux pane) reads
	// as end of file, which bubbletea takes quietly and then goes on
	// drawing to nobody: the DCUI ends instead (the init's supervisor
	// starts another). Poll for the hang-up, reading nothing.
	var hungUp atomic.Bool
	go func() {
		for {
			fds := []unix.PollFd{{Fd: int32(in.Fd())}}
			if _, err := unix.Poll(fds, 1000); err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
			if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				hungUp.Store(true)
				p.Quit()
				return
			}
		}
	}()
	_, err = p.Run()
	if err == nil && hungUp.Load() {
		return errors.New("the terminal hung up")
	}
	return err
}

func orStd(s string) string {
	if s == "" {
		return "standard input"
	}
	return s
}
