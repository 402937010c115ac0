package powerbench

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaperEnv set to "1" makes bench/poweron the reaper (IsReaper, Reap).
const reaperEnv = "PLINTH_POWERBENCH_REAPER"

// IsReaper says whether this process was started as the reaper of a
// libvirtd (startLibvirtd sets it); bench/poweron's main then calls Reap.
func IsReaper() bool { return os.Getenv(reaperEnv) == "1" }

// Reap runs args as a child with this process as its child subreaper, and
// reaps every process orphaned below it as soon as it exits, until the child
// itself exits; SIGTERM and SIGINT are passed on to the child. It returns
// the exit code to exit with.
//
// libvirtd daemonizes each QEMU, so a QEMU is orphaned once started and its
// exit is reaped by whoever adopts it. This container's PID 1 reaps only
// every ~1.7 s, and `virsh destroy` waits until the killed QEMU's pid is gone
// (a zombie still counts), which would make libvirt look slower than it is.
func Reap(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "reaper: no command")
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "reaper: PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "reaper: %v\n", err)
		return 1
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil: // ECHILD: nothing left
			return 1
		case pid != cmd.Process.Pid:
			continue // an orphan, reaped
		}
		// The child is gone: reap what has already exited, and leave any
		// survivor to PID 1.
		for {
			if p, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); p <= 0 || err != nil {
				break
			}
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
