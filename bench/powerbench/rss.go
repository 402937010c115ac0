package powerbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	qemutest "github.com/plinth/plinth/qemu-test"
)

// RSSOptions configures RSS.
type RSSOptions struct {
	QEMU   string // qemu-system-x86_64 binary
	Kernel string // guest kernel (direct boot); the floor initramfs is built
	// VMKernel is the vmkernel binary; empty: built with `go build` from
	// the module (the command must then run inside the repository).
	VMKernel  string
	VMs       int // VMs to run at once
	MemoryMiB int // per VM (default 64)
	// Parallel is how many start calls are in flight at once (default 4).
	Parallel int
	Logf     func(format string, args ...any)
}

// RSSResult is what RSS measured: vmkernel's resident memory in KiB
// (VmRSS, and VmHWM, its peak), idle and with VMs running.
type RSSResult struct {
	Options           RSSOptions
	Date              time.Time
	Running           int
	IdleRSS           uint64
	RSS, HWM          uint64
	QEMURSS           uint64 // sum of the QEMUs' VmRSS, for scale
	StartAll, StopAll time.Duration
}

// TargetRSS is issue 3's bound on vmkernel's RSS with 50 running VMs.
const TargetRSS = 64 << 10 // KiB

// RSS runs the real vmkernel binary as a child process, creates and starts
// o.VMs VMs through its API (all running, not paused), and reads vmkernel's
// VmRSS from /proc. Then it stops every VM and kills vmkernel; every QEMU it
// saw is killed (as a process group) before it returns.
func RSS(ctx context.Context, o RSSOptions) (_ *RSSResult, err error) {
	if o.VMs <= 0 {
		o.VMs = 50
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 64
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	base, err := os.MkdirTemp("", "rss") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	ds := filepath.Join(base, "ds")
	if err := os.MkdirAll(ds, 0o755); err != nil {
		return nil, err
	}
	if err := qemutest.InstallGuest(o.Kernel, ds, qemutest.BuildFloor); err != nil {
		return nil, err
	}
	bin := o.VMKernel
	if bin == "" {
		bin = filepath.Join(base, "vmkernel")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/plinth/plinth/vmkernel/cmd/vmkernel").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("building vmkernel: %v\n%s", err, out)
		}
	}

	// Every QEMU seen is killed at the end, whatever happens.
	var mu sync.Mutex
	var qemus []int
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range qemus {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}()

	sock := filepath.Join(base, "vmkernel.sock")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-socket", sock, "-state", filepath.Join(base, "state"),
		"-run", filepath.Join(base, "run"), "-datastore", "ds="+ds, "-qemu", o.QEMU,
		"-socket-gid", strconv.Itoa(os.Getgid()), "-accel", api.AccelTCG)
	cmd.Stderr = &lockedWriter{w: &stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		if err != nil {
			err = fmt.Errorf("%w\nvmkernel's log (tail):\n%s", err, tail(stderr.String(), 2048))
		}
	}()
	c, err := client.NewVMKernel(sock, client.WithTimeout(2*time.Minute))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, herr := c.Health(hctx)
		cancel()
		if herr == nil {
			break
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("vmkernel exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("vmkernel did not answer within 30 s: %w", herr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := &RSSResult{Options: o, Date: time.Now()}
	if res.IdleRSS, _, err = procMem(pid); err != nil {
		return nil, err
	}
	logf("vmkernel pid %d answers; idle VmRSS %d KiB", pid, res.IdleRSS)

	ids := make([]string, o.VMs)
	for i := range ids {
		vm, err := c.CreateVM(ctx, guest(fmt.Sprintf("rss%02d", i), o.MemoryMiB))
		if err != nil {
			return nil, fmt.Errorf("creating VM %d: %w", i, err)
		}
		ids[i] = vm.Spec.ID
	}
	t0 := time.Now()
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			vm, err := c.VMAction(ctx, id, api.ActionStart)
			if err != nil {
				errs <- fmt.Errorf("starting VM %d: %w", i, err)
				return
			}
			mu.Lock()
			qemus = append(qemus, vm.Runtime.PID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	res.StartAll = time.Since(t0)
	logf("started %d VMs in %v", len(ids), res.StartAll.Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the console readers and watchers settle
	vms, err := c.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	for _, vm := range vms {
		if vm.Runtime.State == api.VMRunning {
			res.Running++
			if r, _, err := procMem(vm.Runtime.PID); err == nil {
				res.QEMURSS += r
			}
		}
	}
	if res.Running != len(ids) {
		return nil, fmt.Errorf("%d of %d VMs running", res.Running, len(ids))
	}
	if res.RSS, res.HWM, err = procMem(pid); err != nil {
		return nil, err
	}
	logf("%d VMs running: vmkernel VmRSS %d KiB (peak %d KiB); the QEMUs together %d MiB", res.Running, res.RSS, res.HWM, res.QEMURSS>>10)

	t0 = time.Now()
	wg = sync.WaitGroup{}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c.VMAction(ctx, id, api.ActionStop) // the deferred kill covers a failure
		}()
	}
	wg.Wait()
	res.StopAll = time.Since(t0)
	logf("stopped them in %v", res.StopAll.Round(time.Millisecond))
	return res, nil
}

// procMem reads VmRSS and VmHWM (KiB) of a process.
func procMem(pid int) (rss, hwm uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return rss, hwm, sc.Err()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Markdown writes the result as a section for docs/PERFORMANCE.md.
func (r *RSSResult) Markdown(w io.Writer) {
	fmt.Fprintf(w, "## vmkernel's RSS with %d running VMs (`go run ./bench/poweron -rss %d`)\n\n", r.Running, r.Options.VMs)
	fmt.Fprintf(w, "- Date: %s; the real vmkernel binary as a child process, VMs created and started through its API\n", r.Date.Format("2006-01-02"))
	fmt.Fprintf(w, "- Guests: floor guest (direct kernel boot, serial console), %d MiB, TCG, all running\n\n", r.Options.MemoryMiB)
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| vmkernel VmRSS idle | %.1f MiB |\n", float64(r.IdleRSS)/1024)
	fmt.Fprintf(w, "| vmkernel VmRSS, %d VMs running | %.1f MiB |\n", r.Running, float64(r.RSS)/1024)
	fmt.Fprintf(w, "| vmkernel VmHWM (peak) | %.1f MiB |\n", float64(r.HWM)/1024)
	fmt.Fprintf(w, "| QEMUs' VmRSS together | %.0f MiB |\n", float64(r.QEMURSS)/1024)
	fmt.Fprintf(w, "| start all / stop all | %s / %s ms |\n\n", ms(r.StartAll), ms(r.StopAll))
	fmt.Fprintf(w, "Target: under 64 MiB: %s\n", verdict(r.RSS < TargetRSS))
}
