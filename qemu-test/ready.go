package qemutest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// StallSilence is how long a boot may go without progress on the console
// before its ready line (lines of a kernel lockup or stall report do not
// count) before it counts as stalled: the wait then ends at once with the
// guest's state, instead of running into its deadline.
var StallSilence = 90 * time.Second

// ErrStalled marks a boot that stopped making progress (see StallSilence).
var ErrStalled = errors.New("the guest stalled")

// StartReady starts the appliance and waits up to timeout for its ready
// line (see WaitReady). There is no second try: a boot that stalls fails,
// and the error carries what is needed to find out why.
func StartReady(ctx context.Context, o Options, timeout time.Duration) (*VM, map[string]string, error) {
	vm, err := Start(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	ready, err := vm.WaitReady(timeout)
	if err != nil {
		vm.Close()
		return nil, nil, err
	}
	return vm, ready, nil
}

// kernelReport matches the first line of the guest kernel's reports of a
// CPU that does not move on: soft and hard lockups, RCU stalls, hung tasks.
var kernelReport = regexp.MustCompile(`soft lockup|hard LOCKUP|self-detected stall|detected stalls on CPUs|rcu_.*stall|blocked for more than \d+ seconds`)

// kernelLine matches a line the kernel printed with its timestamp.
var kernelLine = regexp.MustCompile(`^\[\s*\d+\.\d+\]`)

// progress tracks when the console last showed progress: a new line that is
// not part of a kernel lockup or stall report (which a stuck guest keeps
// printing).
type progress struct {
	seen     int
	inReport bool
	last     time.Time
	reports  int // report lines seen
}

func (p *progress) update(lines []string, now time.Time) {
	for _, l := range lines[min(p.seen, len(lines)):] {
		switch {
		case kernelReport.MatchString(l):
			p.inReport = true
			p.reports++
		case p.inReport && (kernelLine.MatchString(l) || strings.TrimSpace(l) == ""):
			p.reports++
		default:
			p.inReport = false
			p.last = now
		}
	}
	p.seen = len(lines)
}

// watchStall calls onStall once the console shows no progress for silence;
// it returns when done is closed.
func (vm *VM) watchStall(silence time.Duration, done <-chan struct{}, onStall func(p progress)) {
	p := progress{last: time.Now()}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-vm.done:
			return
		case <-tick.C:
		}
		now := time.Now()
		p.update(vm.Console(), now)
		if now.Sub(p.last) > silence {
			onStall(p)
			return
		}
	}
}

// Diagnose describes the guest's CPUs for a stall report: QMP's
// query-cpus-fast (each vCPU's host thread), then every vCPU's registers
// (HMP "info registers -a") twice a second apart, so that a CPU spinning
// in place shows the same RIP.
func (vm *VM) Diagnose() string {
	vm.qmpMu.Lock()
	defer vm.qmpMu.Unlock()
	if vm.qmp == nil {
		return "(no QMP connection)"
	}
	var b strings.Builder
	if r, err := vm.qmp.run("query-cpus-fast", time.Now().Add(5*time.Second)); err != nil {
		fmt.Fprintf(&b, "query-cpus-fast: %v\n", err)
	} else {
		fmt.Fprintf(&b, "query-cpus-fast: %s\n", r)
	}
	for i := 1; i <= 2; i++ {
		if i > 1 {
			time.Sleep(time.Second)
		}
		r, err := vm.qmp.runArgs("human-monitor-command", map[string]string{"command-line": "info registers -a"}, time.Now().Add(5*time.Second))
		if err != nil {
			fmt.Fprintf(&b, "info registers -a (%d): %v\n", i, err)
			continue
		}
		var text string
		if json.Unmarshal(r, &text) != nil {
			text = string(r)
		}
		fmt.Fprintf(&b, "info registers -a (sample %d):\n%s\n", i, strings.TrimSpace(text))
	}
	return b.String()
}

// stallTailLines is how many console lines a stall report shows: enough for
// a lockup trace.
const stallTailLines = 80

// waitReadyOrStall is WaitReady's wait: the ready line, a line the init
// prints when it will never be ready, the deadline, or a stall.
func (vm *VM) waitReadyOrStall(timeout time.Duration) (string, error) {
	done, watched := make(chan struct{}), make(chan struct{})
	stalled := make(chan error, 1)
	go func() {
		defer close(watched)
		vm.watchStall(StallSilence, done, vm.onStall(stalled))
	}()
	line, err := vm.Expect(readyOrNotReady, timeout)
	close(done)
	<-watched
	select {
	case serr := <-stalled:
		return "", serr
	default:
	}
	return line, err
}

// onStall reports a stall on stalled, with the guest's state, and kills
// QEMU (which ends any wait on its console).
func (vm *VM) onStall(stalled chan<- error) func(progress) {
	return func(p progress) {
		diag := vm.Diagnose()
		err := fmt.Errorf("%w: no progress on the console for %v before the ready line (%d lines of kernel lockup or stall reports); the guest's CPUs:\n%s%s",
			ErrStalled, StallSilence, p.reports, diag, formatTail(vm.Tail(stallTailLines)))
		stalled <- err
		vm.Kill()
	}
}
