package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/plinth/plinth/api"
)

// autostartTimeout bounds one autostart VM's start.
const autostartTimeout = 2 * time.Minute

// vmStarter is what autostart needs of the runner.
type vmStarter interface {
	Status(id string) api.VMRuntime
	Start(ctx context.Context, spec api.VMSpec) error
}

// autostart starts every stopped VM of specs whose Autostart is enabled, in
// ascending Autostart.Order (ties by name), waiting the VM's DelaySeconds
// after each start before the next. Each spec is read again (get) just before
// its start, so a VM deleted or edited meanwhile is taken as it is then. VMs
// running already (re-attached) are left alone; a failure is logged and the
// next VM started. It returns when done or when ctx ends.
func autostart(ctx context.Context, log *slog.Logger, specs []api.VMSpec, get func(id string) (api.VMSpec, error), r vmStarter) {
	var todo []api.VMSpec
	for _, s := range specs {
		if s.Autostart.Enabled {
			todo = append(todo, s)
		}
	}
	slices.SortStableFunc(todo, func(a, b api.VMSpec) int {
		return cmp.Or(cmp.Compare(a.Autostart.Order, b.Autostart.Order), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	if len(todo) > 0 {
		log.Info("vmkernel: autostart", "vms", len(todo))
	}
	for i, s := range todo {
		if ctx.Err() != nil {
			return
		}
		spec, err := get(s.ID)
		if err != nil || !spec.Autostart.Enabled {
			log.Info("vmkernel: autostart VM skipped (deleted or no longer autostarted)", "vm", s.Name, "id", s.ID, "err", err)
			continue
		}
		if st := r.Status(spec.ID).State; st != api.VMStopped && st != api.VMCrashed {
			log.Info("vmkernel: autostart VM skipped: not stopped", "vm", spec.Name, "id", spec.ID, "state", st)
			continue
		}
		log.Info("vmkernel: autostart VM "+spec.Name, "vm", spec.Name, "id", spec.ID, "order", spec.Autostart.Order)
		sctx, cancel := context.WithTimeout(ctx, autostartTimeout)
		err = r.Start(sctx, spec)
		cancel()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				log.Error("vmkernel: autostart of VM "+spec.Name+" failed", "vm", spec.Name, "id", spec.ID, "err", err)
			}
			continue
		}
		if d := time.Duration(spec.Autostart.DelaySeconds) * time.Second; d > 0 && i < len(todo)-1 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}
