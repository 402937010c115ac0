package qemutest

import (
	"context"
	"os"
	"strings"
	"time"
)

// earlyStall is how long the guest kernel may print nothing before the
// appliance init has started, before the boot counts as stalled.
const earlyStall = 75 * time.Second

// StartReady starts the appliance and waits up to timeout for its ready line.
// A boot whose kernel stops printing for earlyStall before the appliance init
// has said anything is retried once, saying so through o.Logf: TCG on a
// heavily loaded 2-core host has been seen to stall a guest kernel early
// ("pnp: PnP ACPI init"), before any of Plinth's code runs. A stall or
// failure after the init started is the appliance's, and is returned.
func StartReady(ctx context.Context, o Options, timeout time.Duration) (*VM, map[string]string, error) {
	for attempt := 1; ; attempt++ {
		vm, err := Start(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		type result struct {
			ready map[string]string
			err   error
		}
		done := make(chan result, 1)
		go func() {
			r, err := vm.WaitReady(timeout)
			done <- result{r, err}
		}()
		stalled := watchEarlyStall(vm)
		r := <-done
		if r.err == nil {
			return vm, r.ready, nil
		}
		if !stalled() || attempt > 1 {
			vm.Close()
			return nil, nil, r.err
		}
		vm.Close()
		if o.ConsoleLog != "" { // kept for a look; the retry writes a new one
			os.Rename(o.ConsoleLog, strings.TrimSuffix(o.ConsoleLog, ".console.log")+".stalled.console.log")
		}
		if o.Logf != nil {
			o.Logf("qemutest: the guest kernel printed nothing for %v before the appliance init started (a TCG stall, not Plinth's code); booting once more", earlyStall)
		}
	}
}

// watchEarlyStall closes vm when its console stops for earlyStall before any
// line of the appliance init; the returned func says whether it did.
func watchEarlyStall(vm *VM) func() bool {
	stalledCh := make(chan bool, 1)
	go func() {
		last, lastAt := 0, time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-vm.done:
				stalledCh <- false
				return
			}
			lines := vm.Console()
			if len(lines) != last {
				last, lastAt = len(lines), time.Now()
			}
			if slicesContainsPrefix(lines, "plinth-init:") {
				stalledCh <- false
				return
			}
			if time.Since(lastAt) > earlyStall {
				stalledCh <- true
				vm.Close()
				return
			}
		}
	}()
	return func() bool {
		select {
		case s := <-stalledCh:
			return s
		case <-time.After(5 * time.Second):
			return false
		}
	}
}

func slicesContainsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.Contains(l, prefix) {
			return true
		}
	}
	return false
}
