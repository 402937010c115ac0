package qemutest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board/accel"
)

// Errors callers can test with errors.Is.
var (
	// ErrStartFailed marks a QEMU that exited (or never came up) during Start.
	ErrStartFailed = errors.New("qemu failed to start")
	// ErrPortInUse marks a host port QEMU could not forward.
	ErrPortInUse = errors.New("host port in use")
)

// StartTimeout bounds how long Start waits for QEMU's QMP socket.
var StartTimeout = 15 * time.Second

// VM is one running QEMU. Close it (t.Cleanup(vm.Close)) whatever happens.
type VM struct {
	// Accel is the acceleration QEMU runs with, and why.
	Accel api.Acceleration
	// Started is when the QEMU process was started (boot timings count from it).
	Started time.Time

	opts     Options
	hostPort int
	dir      string // holds the QMP socket
	cmd      *exec.Cmd
	console  *console
	stderr   *tailBuffer
	logFile  *os.File
	stdin    io.WriteCloser // QEMU's stdin: the serial console's input (see Type)
	screen   int            // console line where the next ExpectScreen starts
	done     chan struct{}  // closed once QEMU has been reaped
	exitCode int
	exitErr  error

	qmpMu sync.Mutex
	qmp   *qmpConn

	// What a relaunch (see WaitReady) needs: the context QEMU runs under,
	// the QMP commands sent before the first boot (qmpRun), and whether
	// anything makes a second boot unlike the first.
	ctx        context.Context
	replay     []qmpCommand
	typed      bool // something was typed on the console
	readySeen  bool // a ready line came
	relaunched bool
	killed     atomic.Bool // the harness killed QEMU (Kill)
	poweredOff atomic.Bool // the test pressed the power button (PowerDown)

	closeOnce sync.Once
}

type qmpCommand struct {
	command string
	args    map[string]any
}

// Start resolves the acceleration, picks a free localhost port, starts QEMU
// in its own process group and returns once QEMU's QMP socket answers. A
// QEMU that exits meanwhile is reported with its exit status and stderr.
func Start(ctx context.Context, o Options) (*VM, error) {
	if o.Kernel == "" && len(o.Disks) == 0 && o.CDROM == "" {
		return nil, fmt.Errorf("%w: nothing to boot: Options.Kernel, Disks and CDROM are empty", ErrStartFailed)
	}
	if o.Firmware == FirmwareUEFI && o.UEFIVars == "" {
		return nil, fmt.Errorf("%w: Options.UEFIVars is empty (see NewUEFIVars)", ErrStartFailed)
	}
	for _, f := range []string{o.Kernel, o.Initrd, o.CDROM, o.UEFIVars} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrStartFailed, err)
		}
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Kernel != "" && !o.ServerBoot && o.Firmware != FirmwareUEFI { // OVMF loads bzImages only
		k, err := PVHKernel(o.Kernel)
		switch {
		case errors.Is(err, ErrNoPVH):
			logf("qemutest: booting %s as a bzImage: %v", o.Kernel, err)
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrStartFailed, err)
		default:
			o.Kernel = k
		}
	}
	acc := api.Acceleration{Mode: o.Accel, Reason: "chosen by the caller"}
	if o.Accel == "" {
		acc = accel.Detect()
		o.Accel = acc.Mode
	}
	logf("qemutest: acceleration %s: %s", acc.Mode, acc.Reason)

	const attempts = 3
	for i := 1; ; i++ {
		port := o.HostPort
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			port = p
		}
		vm, err := start(ctx, o, port)
		if err == nil {
			vm.Accel = acc
			logf("qemutest: QEMU pid %d, API forwarded to %s", vm.Pid(), vm.APIURL())
			return vm, nil
		}
		// A port picked by us can be taken between our probe and QEMU's bind:
		// try another. A port the caller chose is theirs to fix.
		if !errors.Is(err, ErrPortInUse) || o.HostPort != 0 || i == attempts {
			return nil, err
		}
		logf("qemutest: %v; retrying with another port", err)
	}
}

// freePort asks the kernel for a free localhost port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("qemutest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(ctx context.Context, o Options, port int) (*VM, error) {
	vm := &VM{opts: o, hostPort: port, ctx: ctx}
	if err := vm.launch(); err != nil {
		return nil, err
	}
	return vm, nil
}

// launch starts vm's QEMU (its options, its port) in its own process group
// and connects to its QMP socket. A relaunch appends to the console log.
func (vm *VM) launch() (err error) {
	o := vm.opts
	dir, err := os.MkdirTemp("", "plinth-qemu-")
	if err != nil {
		return err
	}
	vm.dir, vm.cmd, vm.stdin, vm.screen = dir, nil, nil, 0
	vm.stderr = &tailBuffer{max: 16 << 10}
	vm.done = make(chan struct{})
	vm.exitCode, vm.exitErr = 0, nil
	vm.killed.Store(false)
	vm.poweredOff.Store(false)
	defer func() {
		if err != nil {
			if vm.cmd == nil {
				close(vm.done) // nothing to reap
			}
			vm.Close()
		}
	}()
	if o.ConsoleLog != "" {
		flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if vm.relaunched {
			flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		if vm.logFile, err = os.OpenFile(o.ConsoleLog, flags, 0o644); err != nil {
			return fmt.Errorf("qemutest: console log: %w", err)
		}
	}
	if vm.logFile != nil {
		vm.console = newConsole(vm.logFile)
	} else {
		vm.console = newConsole(nil)
	}

	sock := filepath.Join(dir, "qmp.sock")
	cmd := exec.CommandContext(vm.ctx, QEMUBinary, o.Args(vm.hostPort, sock)...)
	// A pipe, not our terminal: -serial stdio must not touch it, and what
	// Type writes into the pipe is typed on the serial console.
	if vm.stdin, err = cmd.StdinPipe(); err != nil {
		return fmt.Errorf("qemutest: stdin pipe: %w", err)
	}
	cmd.Stdout = vm.console
	cmd.Stderr = vm.stderr
	// Own process group, so Close can kill everything QEMU started; and
	// killed by the kernel if the test binary dies (timeout, panic) before
	// any cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	vm.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %v", ErrStartFailed, err)
	}
	vm.cmd = cmd
	go vm.reap(cmd, vm.console, vm.stderr, vm.done)

	return vm.connectQMP(sock)
}

// reap waits for QEMU, records how it ended and ends the console. It is
// handed the process's own console and channel: a relaunch replaces vm's.
func (vm *VM) reap(cmd *exec.Cmd, con *console, stderr *tailBuffer, done chan struct{}) {
	err := cmd.Wait()
	vm.exitCode = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		vm.exitErr = err
	}
	why := fmt.Errorf("qemu exited: %s%s", cmd.ProcessState, stderrSuffix(stderr.String()))
	con.close(why)
	close(done)
}

func stderrSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

var hostfwdFailure = regexp.MustCompile(`(?i)host forwarding rule|hostfwd`)

// connectQMP waits until QEMU's QMP socket answers (QEMU creates it after
// the network backends, so a taken host port fails before), or QEMU exits.
func (vm *VM) connectQMP(sock string) error {
	deadline := time.Now().Add(StartTimeout)
	backoff := 5 * time.Millisecond
	for {
		select {
		case <-vm.done:
			return vm.exitedEarly()
		default:
		}
		conn, err := net.DialTimeout("unix", sock, time.Until(deadline))
		if err == nil {
			q, err := qmpHandshake(conn, time.Now().Add(5*time.Second))
			if err != nil {
				conn.Close()
				// QEMU listens on the socket before it sets up the network
				// and the monitor, so a failing QEMU can accept and then
				// drop us: report its exit rather than the QMP error.
				select {
				case <-vm.done:
					return vm.exitedEarly()
				case <-time.After(3 * time.Second):
				}
				return fmt.Errorf("%w: %v", ErrStartFailed, err)
			}
			vm.qmp = q
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: QMP socket %s did not answer within %v: %v%s",
				ErrStartFailed, sock, StartTimeout, err, stderrSuffix(vm.stderr.String()))
		}
		// The socket does not exist yet: poll it, but wake at once if QEMU exits.
		select {
		case <-vm.done:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// exitedEarly describes a QEMU that exited during Start.
func (vm *VM) exitedEarly() error {
	stderr := vm.stderr.String()
	if hostfwdFailure.MatchString(stderr) {
		return fmt.Errorf("%w: QEMU could not forward 127.0.0.1:%d to guest port %d: %s",
			ErrPortInUse, vm.hostPort, GuestAPIPort, stderr)
	}
	return fmt.Errorf("%w: %s%s", ErrStartFailed, vm.cmd.ProcessState, stderrSuffix(stderr))
}

// Pid is QEMU's process id (also its process group id).
func (vm *VM) Pid() int { return vm.cmd.Process.Pid }

// HostPort is the localhost port forwarded to the guest's port 443.
func (vm *VM) HostPort() int { return vm.hostPort }

// APIURL is the base URL of the guest's HTTPS API, e.g. https://127.0.0.1:40123.
func (vm *VM) APIURL() string { return "https://127.0.0.1:" + strconv.Itoa(vm.hostPort) }

// Console returns every complete console line printed so far.
func (vm *VM) Console() []string { return vm.console.all() }

// Tail returns the last n console lines.
func (vm *VM) Tail(n int) []string { return vm.console.tail(n) }

// Expect waits up to timeout for a console line matching pattern (a
// *regexp.Regexp, or a string that the line must contain) printed after the
// line the previous Expect matched, and returns it. Its errors show the last
// console lines, and QEMU's exit status if QEMU is gone.
func (vm *VM) Expect(pattern any, timeout time.Duration) (string, error) {
	return vm.console.expect(pattern, timeout)
}

// NotReadyPrefix starts the line the appliance init prints when a boot step
// failed and it will never be ready.
const NotReadyPrefix = "PLINTH-NOT-READY"

var (
	readyLine       = regexp.MustCompile(regexp.QuoteMeta(api.ReadyPrefix) + `(\s|$)`)
	readyOrNotReady = regexp.MustCompile(`(` + regexp.QuoteMeta(api.ReadyPrefix) + `|` + regexp.QuoteMeta(NotReadyPrefix) + `)(\s|$)`)
)

// WaitReady waits for the appliance's ready line and returns its key=value
// pairs. A PLINTH-NOT-READY line ends the wait at once with an error; so
// does a stall (ErrStalled: no progress on the console for StallSilence),
// whose error shows the guest's registers and the last console lines, the
// kernel's lockup reports among them. QEMU is then killed.
func (vm *VM) WaitReady(timeout time.Duration) (map[string]string, error) {
	line, err := vm.waitReadyOrStall(timeout)
	if err != nil && vm.mayRelaunch() {
		RigRelaunches.Add(1)
		vm.logf("qemutest: %v\nqemutest: that is the rig QEMU's own assertion (docs/PERFORMANCE.md), before the first ready line: booting again, once", err)
		if rerr := vm.relaunch(); rerr != nil {
			return nil, fmt.Errorf("%w; booting again after the rig QEMU's assertion: %v", err, rerr)
		}
		line, err = vm.waitReadyOrStall(timeout)
	}
	if err != nil {
		return nil, err
	}
	if strings.Contains(line, NotReadyPrefix) {
		return nil, fmt.Errorf("the appliance will not be ready: %s%s", line, formatTail(vm.Tail(TailLines)))
	}
	vm.readySeen = true
	return ParseReady(line)
}

// RigRelaunches counts the boots WaitReady started again after the rig
// QEMU's assertion; the suite reports it.
var RigRelaunches atomic.Int32

// rigAbort is the test rig's QEMU (Debian's 10.0.2, and 11.1.3 still)
// failing its own assertion while the guest's kernel scans the PCI bus
// (under TCG, two of about 170 boots here on 10.0.2, two in one make test's
// unit tests on 11.1.3; docs/PERFORMANCE.md): QEMU's MSI-X emulation is
// handed an access beyond the table it sized itself, QEMU's fault, not the
// guest's. Nothing else is booted again: a stall fails its test.
var rigAbort = regexp.MustCompile(`msix_table_mmio_write: Assertion .* failed`)

// mayRelaunch says whether the boot WaitReady waited for ended with the
// rig QEMU's assertion, and a second boot would be the first one again: no
// ready line yet, no relaunch yet, nothing typed (QMP commands are sent
// again by relaunch).
func (vm *VM) mayRelaunch() bool {
	if vm.readySeen || vm.relaunched || vm.typed {
		return false
	}
	select {
	case <-vm.done:
	case <-time.After(5 * time.Second): // the console ends just before QEMU is reaped
		return false
	}
	ws, ok := vm.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGABRT && rigAbort.MatchString(vm.stderr.String())
}

// relaunch boots vm again in a new QEMU after its QEMU died: the same
// options, port, disks and UEFI variables (a power cycle), the console log
// continued, and the QMP commands sent before the first boot sent again.
func (vm *VM) relaunch() error {
	if vm.logFile != nil {
		fmt.Fprintf(vm.logFile, "\nqemutest: the rig QEMU aborted (%s); booting again\n", strings.TrimSpace(rigAbort.FindString(vm.stderr.String())))
	}
	vm.release()
	vm.relaunched = true
	if err := vm.launch(); err != nil {
		return err
	}
	replay := vm.replay
	vm.replay = nil
	for _, c := range replay {
		if _, err := vm.qmpRun(c.command, c.args); err != nil {
			return err
		}
	}
	return nil
}

func (vm *VM) logf(format string, args ...any) {
	if vm.opts.Logf != nil {
		vm.opts.Logf(format, args...)
	}
}

// qmpRun sends one QMP command and returns its answer. Commands sent
// before the first ready line are kept, for a relaunch to send again.
func (vm *VM) qmpRun(command string, args map[string]any) (json.RawMessage, error) {
	vm.qmpMu.Lock()
	defer vm.qmpMu.Unlock()
	if vm.qmp == nil {
		return nil, fmt.Errorf("qemutest: no QMP connection")
	}
	if !vm.readySeen {
		vm.replay = append(vm.replay, qmpCommand{command, args})
	}
	var a any
	if args != nil {
		a = args
	}
	return vm.qmp.runArgs(command, a, time.Now().Add(5*time.Second))
}

// ParseReady parses a PLINTH-READY line (possibly preceded by other console
// output) into its key=value pairs.
func ParseReady(line string) (map[string]string, error) {
	i := strings.Index(line, api.ReadyPrefix)
	if i < 0 {
		return nil, fmt.Errorf("no %s in %q", api.ReadyPrefix, line)
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(line[i+len(api.ReadyPrefix):]) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("ready line %q: field %q is not key=value", line, f)
		}
		kv[k] = v
	}
	return kv, nil
}

// PowerDown presses the ACPI power button (QMP system_powerdown). It does
// not wait for the guest: use Wait.
func (vm *VM) PowerDown() error {
	vm.qmpMu.Lock()
	defer vm.qmpMu.Unlock()
	if vm.qmp == nil {
		return errors.New("qemutest: no QMP connection")
	}
	vm.poweredOff.Store(true)
	_, err := vm.qmp.run("system_powerdown", time.Now().Add(5*time.Second))
	return err
}

// Wait waits up to timeout for QEMU to exit and returns its exit code
// (-1 when a signal killed it).
func (vm *VM) Wait(timeout time.Duration) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-vm.done:
		return vm.exitCode, vm.exitErr
	case <-timer.C:
		return 0, fmt.Errorf("qemu (pid %d) still running after %v%s", vm.Pid(), timeout, formatTail(vm.Tail(TailLines)))
	}
}

// Exited reports whether QEMU has exited (and been reaped).
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to QEMU's process group. It does not wait.
func (vm *VM) Kill() error {
	if vm.cmd == nil || vm.cmd.Process == nil || vm.Exited() {
		return nil
	}
	vm.killed.Store(true)
	if err := syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("qemutest: killing QEMU: %w", err)
	}
	return nil
}

// Close kills QEMU's process group, reaps QEMU and removes the harness's
// files. It is idempotent and safe to call at any time.
func (vm *VM) Close() {
	vm.closeOnce.Do(func() {
		// A guest the rig lost takes its QEMU down, but a test can fail on
		// the lost guest (a refused connection) before QEMU has exited and
		// been reaped: let it, so that what follows says how it ended (on
		// 2026-12-07 a triple fault went unnamed, and was not run again).
		if vm.cmd != nil && !vm.Exited() && !vm.killed.Load() && vm.rigLoss() != "" {
			select {
			case <-vm.done:
			case <-time.After(10 * time.Second):
			}
		}
		// A QEMU that died on its own (a signal, not ours; or an error exit)
		// is what a test's failure was about, whatever the test saw
		// ("connection refused"): say how it ended, and its stderr.
		if vm.cmd != nil && vm.Exited() && !vm.killed.Load() {
			ws, _ := vm.cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case ws.Signaled() || ws.ExitStatus() != 0:
				vm.logf("qemutest: QEMU had ended on its own: %s%s%s", vm.cmd.ProcessState, stderrSuffix(vm.stderr.String()), vm.resetLogTail())
			case !vm.poweredOff.Load():
				// -no-reboot: a guest's reset (a triple fault; a kernel
				// panic, with panic=-1) ends QEMU with status 0, and the
				// console may say nothing of it.
				// QEMU also ends with status 0 on SIGTERM, SIGINT or
				// SIGHUP, and names the sender on stderr.
				vm.logf("qemutest: QEMU had exited (status 0) with no power-down asked: the guest reset itself (a triple fault, or a panic) or powered off, or a signal ended QEMU%s%s%s", vm.lastEvents(), stderrSuffix(vm.stderr.String()), vm.resetLogTail())
				if how := vm.rigLoss(); how != "" {
					vm.logf("%s %s", RigLostGuest, how)
				}
			}
		}
		vm.Kill()
		select {
		case <-vm.done:
		case <-time.After(10 * time.Second):
			// Not reaped in time (cannot normally happen after SIGKILL):
			// leave the reaper running rather than hang the caller.
		}
		vm.release()
	})
}

// lastEvents is what QEMU said on QMP that nobody read, for a message
// about a QEMU that ended: its SHUTDOWN event gives the reason
// (guest-shutdown, guest-reset, host-signal, ...).
func (vm *VM) lastEvents() string {
	vm.qmpMu.Lock()
	defer vm.qmpMu.Unlock()
	if vm.qmp == nil {
		return ""
	}
	evs := vm.qmp.unreadEvents(time.Now().Add(time.Second))
	if len(evs) == 0 {
		return "; no QMP event unread"
	}
	return "; QMP events unread: " + strings.Join(evs, "; ")
}

// RigLostGuest begins the line Close logs when the guest's QEMU ended on
// one of the two ways the rig has of losing the appliance: a triple fault
// of the guest (QEMU's log, Options.ResetLog, names it), or its kernel's
// panic on a corrupted stack ("stack guard page was hit", "corrupted
// stack end detected inside scheduler" on the console; with panic=-1 and
// -no-reboot the panic ends QEMU). Both come only with VMs running nested
// on the rig's TCG emulation of AMD's SVM, about one nested-guest test in
// four in a full make test, and were seen with KSM merging the nested
// guests' pages far more often (args.go): the emulation corrupts the
// appliance's memory or stacks, as far as we can tell; the appliance's
// kernel prints an oops for any fault it can still take, and a triple
// fault is one it could not. make e2e's runner (cmd/plinth-e2e) runs a
// test that failed with this line again, and says so.
const RigLostGuest = "qemutest: RIG LOST THE GUEST:"

// rigLoss is how the rig lost the guest whose QEMU ended on its own, or
// "" when it did not (by the signs RigLostGuest names).
func (vm *VM) rigLoss() string {
	if b, err := os.ReadFile(vm.opts.ResetLog()); err == nil && namesTripleFault(b) {
		return "the guest's CPU triple-faulted (QEMU's log names it)"
	}
	for _, l := range vm.Console() {
		for _, sign := range corruptedStack {
			if strings.Contains(l, sign) {
				return "the guest's kernel found its stack corrupted: " + strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// corruptedStack are the kernel's words for a stack run over or
// overwritten.
var corruptedStack = []string{"stack guard page was hit", "corrupted stack end detected"}

// namesTripleFault says whether a QEMU log (-d cpu_reset) has QEMU's line
// for a triple fault.
func namesTripleFault(log []byte) bool { return bytes.Contains(log, []byte("Triple fault")) }

// resetLogTail is the end of QEMU's own log (Options.ResetLog: the CPU's
// state at each reset), for a message about a QEMU that ended.
func (vm *VM) resetLogTail() string {
	path := vm.opts.ResetLog()
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const n = 40
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	triple := ""
	if namesTripleFault(b) {
		triple = ", which names a triple fault"
	}
	return fmt.Sprintf("\nQEMU's log %s%s ends:\n%s", path, triple, strings.Join(lines, "\n"))
}

// release closes what the harness holds of a QEMU that is gone: the QMP
// connection, the console log, the QMP socket's directory.
func (vm *VM) release() {
	vm.qmpMu.Lock()
	if vm.qmp != nil {
		vm.qmp.close()
		vm.qmp = nil
	}
	vm.qmpMu.Unlock()
	if vm.logFile != nil {
		vm.logFile.Close()
		vm.logFile = nil
	}
	os.RemoveAll(vm.dir)
}

// CPUTime is the CPU time (user and system) QEMU has used so far: under a
// loaded host a boot's wall time stretches, its CPU time much less, so
// benchmarks report both.
func (vm *VM) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(vm.Pid()) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("qemutest: QEMU's CPU time: %w", err)
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("qemutest: QEMU's CPU time: short /proc/%d/stat", vm.Pid())
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("qemutest: QEMU's CPU time: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}
