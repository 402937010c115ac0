package supervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// As PID 1 the init inherits every orphan on the host (a QEMU whose vmkernel
// died, what a shell left behind), and an orphan nobody waits for stays a
// zombie for ever. ReapOrphans reaps them; it must not reap the children the
// init waits for itself (its services, through os/exec), or their Wait would
// fail. So those are started through startOwned, which records their pids,
// and the reaper only peeks (WNOWAIT) before it reaps.
var (
	// startMu is held for reading around each start of an owned child and
	// for writing by the reaper while it decides: a child that exits at once
	// cannot be taken for an orphan before its pid is recorded.
	startMu sync.RWMutex
	ownedMu sync.Mutex
	owned   = map[int]bool{}
)

// startOwned starts cmd as a child whose exit is its Wait's to collect;
// call disown after that Wait.
func startOwned(cmd *exec.Cmd) error {
	startMu.RLock()
	defer startMu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	ownedMu.Lock()
	owned[cmd.Process.Pid] = true
	ownedMu.Unlock()
	return nil
}

func disown(pid int) {
	ownedMu.Lock()
	delete(owned, pid)
	ownedMu.Unlock()
}

func isOwned(pid int) bool {
	ownedMu.Lock()
	defer ownedMu.Unlock()
	return owned[pid]
}

// ReapOrphans reaps, until ctx ends, every child of this process that no
// Supervisor started, calling onReap (when set) with each one's pid and wait
// status. Only one ReapOrphans may run in a process, and children started
// otherwise than by a Supervisor while it runs (os/exec elsewhere) may be
// reaped before their Wait.
func ReapOrphans(ctx context.Context, onReap func(pid int, ws unix.WaitStatus)) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	idle := func() { // until a child changes state (or a second, in case)
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-chld:
		case <-t.C:
		}
	}
	for ctx.Err() == nil {
		var info unix.Siginfo
		// Peek, without reaping, at a child that has exited; WNOHANG so
		// that ctx is honoured, with a short sleep when there is none.
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
		pid := siginfoPid(&info)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid == 0 {
			idle() // no children, or none exited
			continue
		}
		startMu.Lock()
		mine := isOwned(pid)
		if !mine {
			var ws unix.WaitStatus
			if p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && p == pid && onReap != nil {
				onReap(pid, ws)
			}
		}
		startMu.Unlock()
		if mine {
			// Its owner's Wait collects it; until then waitid keeps
			// showing it, so look again a little later.
			sleep(ctx, 20*time.Millisecond)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// siginfoPid is si_pid of a siginfo_t filled by waitid (x86-64 and arm64:
// after si_signo, si_errno, si_code and 4 bytes of padding).
func siginfoPid(info *unix.Siginfo) int {
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	return int(int32(binary.LittleEndian.Uint32(b[16:20])))
}
