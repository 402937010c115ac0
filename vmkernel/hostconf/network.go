package hostconf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
)

// The management network changes by commit-confirm, as on ESXi's console:
// a change is accepted (answered at once), applied ApplyDelay later, and
// rolled back to the configuration before it at its deadline unless it is
// confirmed: on the console, or through the API by a request that arrives
// on the change's new address. Only one change is in flight at a time;
// it is recorded in the run directory so that a vmkernel restarted
// meanwhile still rolls it back.

// Limits of NetworkChangeRequest.ConfirmSeconds.
const (
	defaultConfirm = 60 * time.Second
	minConfirm     = 10 * time.Second
	maxConfirm     = 10 * time.Minute
	// applyBudget bounds one apply (DHCP included).
	applyBudget = 45 * time.Second
)

// netState is the change in flight (cur: applying, pending or rolling
// back) and the last one settled.
type netState struct {
	cur    *netChange
	last   *api.NetworkChange
	nextID int
}

type netChange struct {
	view      api.NetworkChange
	cfg, prev netconf.Config
	confirm   time.Duration // how long it waits once applied
	timer     *time.Timer
	// address is the new address (invalid: none).
	address netip.Prefix
	// restart: the saved configuration applied again, nothing to confirm.
	restart bool
}

// AddressError is a confirmation that did not arrive on the change's new
// address.
type AddressError struct {
	Local netip.Addr // where the request arrived
	Want  netip.Addr // the change's new address (invalid: it has none)
}

func (e *AddressError) Error() string {
	if !e.Want.IsValid() {
		return "the management network change has no address yet (DHCP got none): only the console can keep it"
	}
	local := "an unknown address"
	if e.Local.IsValid() {
		local = e.Local.String()
	}
	return fmt.Sprintf("the request arrived on %s, not on the new management address %s: confirm from https://%s/", local, e.Want, e.Want)
}

func (e *AddressError) Unwrap() error { return ErrConflict }

// Network is the management network: saved, live, the change in flight
// and the last one settled.
func (h *Host) Network() api.HostNetwork {
	var out api.HostNetwork
	cfg, saved, err := netconf.Load(h.cfg.Layout.State)
	if err != nil {
		out.SavedError = err.Error()
	}
	out.Saved, out.Config = saved, cfg.API()
	out.NICs = []api.HostNIC{}
	if h.cfg.Net != nil {
		out.Live = h.cfg.Net.Live(cfg)
		var known []api.HostNIC
		if h.cfg.Hardware != nil {
			if hw, err := h.cfg.Hardware(); err == nil {
				known = hw.NICs
			}
		}
		out.NICs = h.cfg.Net.NICs(known)
	} else {
		out.Live.Addresses = []string{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.net.cur; c != nil {
		v := c.view
		out.Pending = &v
	}
	if l := h.net.last; l != nil {
		v := *l
		out.LastChange = &v
	}
	return out
}

// running is the configuration in effect: what the last apply recorded,
// else the saved one, else the default.
func (h *Host) running() netconf.Config {
	if ap, ok, err := netconf.ReadApplied(h.cfg.Layout.Run); err == nil && ok && ap.Config.Validate() == nil {
		return ap.Config
	}
	cfg, _, _ := netconf.Load(h.cfg.Layout.State)
	return cfg
}

// ChangeNetwork accepts a change of the management network: checked now
// (422 naming each bad field), applied ApplyDelay later, then awaiting
// confirmation for ConfirmSeconds.
func (h *Host) ChangeNetwork(req api.NetworkChangeRequest) (api.NetworkChange, error) {
	cfg, err := netconf.FromAPI(req.Config)
	if err != nil {
		var p netconf.Problems
		if errors.As(err, &p) {
			ve := &api.ValidationError{Subject: "network configuration"}
			for _, e := range p {
				ve.Problems = append(ve.Problems, api.FieldProblem{Field: "config." + e.Field, Message: e.Problem})
			}
			return api.NetworkChange{}, ve
		}
		return api.NetworkChange{}, err
	}
	wait := defaultConfirm
	if req.ConfirmSeconds != 0 {
		wait = time.Duration(req.ConfirmSeconds) * time.Second
		if wait < minConfirm || wait > maxConfirm {
			return api.NetworkChange{}, invalid("network change", "confirm_seconds", "%d is outside %d to %d", req.ConfirmSeconds,
				int(minConfirm/time.Second), int(maxConfirm/time.Second))
		}
	}
	return h.startChange(cfg, wait, false)
}

// RestoreNetwork changes the network back to its default, DHCP on the
// first NIC with a link, keeping the host name; like any change it is
// rolled back unless confirmed.
func (h *Host) RestoreNetwork(confirmSeconds int) (api.NetworkChange, error) {
	cfg := netconf.Default()
	cfg.Hostname = h.running().Hostname
	return h.ChangeNetwork(api.NetworkChangeRequest{Config: cfg.API(), ConfirmSeconds: confirmSeconds})
}

// RestartNetwork applies the saved configuration again (nothing to confirm).
func (h *Host) RestartNetwork() (api.NetworkChange, error) {
	cfg, _, err := netconf.Load(h.cfg.Layout.State)
	if err != nil {
		return api.NetworkChange{}, conflict("the saved configuration cannot be read: %v", err)
	}
	return h.startChange(cfg, 0, true)
}

func (h *Host) startChange(cfg netconf.Config, wait time.Duration, restart bool) (api.NetworkChange, error) {
	if h.cfg.Net == nil {
		return api.NetworkChange{}, fmt.Errorf("%w: this vmkernel does not manage the host's network", ErrUnavailable)
	}
	prev := h.running()
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.net.cur; c != nil {
		return api.NetworkChange{}, conflict("change %d of the management network is %s: confirm or roll it back first", c.view.ID, c.view.State)
	}
	h.net.nextID++
	now := h.now()
	c := &netChange{cfg: cfg, prev: prev, confirm: wait, restart: restart}
	c.view = api.NetworkChange{ID: h.net.nextID, Config: cfg.API(), Previous: prev.API(), State: api.NetChangeApplying,
		Deadline: now.Add(h.cfg.ApplyDelay + applyBudget + wait).UTC()}
	h.net.cur = c
	if !restart {
		// Should vmkernel die while it is applied, the next one rolls it back.
		if err := netconf.SavePending(h.cfg.Layout.Run, c.record()); err != nil {
			h.log.Warn("hostconf: recording the pending network change", "err", err)
		}
	}
	what := "change"
	if restart {
		what = "restart"
	}
	h.log.Info("hostconf: management network "+what+" accepted", "id", c.view.ID, "mode", cfg.Mode, "address", cfg.Address, "nic", cfg.NIC)
	go h.applyChange(c)
	return c.view, nil
}

func (c *netChange) record() netconf.Change {
	return netconf.Change{ID: c.view.ID, Config: c.cfg, Address: c.address, Interface: c.view.Interface,
		Deadline: c.view.Deadline, Previous: c.prev}
}

// applyChange puts c in place after ApplyDelay, then waits for its
// confirmation (or, a restart, is done).
func (h *Host) applyChange(c *netChange) {
	time.Sleep(h.cfg.ApplyDelay)
	ctx, cancel := context.WithTimeout(h.ctx(), applyBudget)
	r, err := h.cfg.Net.Apply(ctx, c.cfg)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.net.cur != c {
		return
	}
	c.view.Interface = r.Interface
	if p, perr := netip.ParsePrefix(r.Address); perr == nil {
		c.address = p
		c.view.Address = p.String()
	}
	if c.restart {
		if err != nil {
			h.settleLocked(c, api.NetChangeFailed, "the saved configuration failed to apply again", err)
		} else {
			h.settleLocked(c, api.NetChangeKept, "the saved configuration applied again (restart)", nil)
		}
		return
	}
	if err != nil {
		h.log.Warn("hostconf: the new management network failed; rolling back", "id", c.view.ID, "err", err)
		c.view.Error = err.Error()
		h.rollbackLocked(c, "the new configuration failed to apply ("+err.Error()+")")
		return
	}
	c.view.State = api.NetChangePending
	c.view.Deadline = h.now().Add(c.confirm).UTC()
	if err := netconf.SavePending(h.cfg.Layout.Run, c.record()); err != nil {
		h.log.Warn("hostconf: recording the pending network change", "err", err)
	}
	h.log.Info("hostconf: management network change in effect, awaiting confirmation", "id", c.view.ID,
		"address", r.Address, "interface", r.Interface, "deadline", c.view.Deadline.Format(time.TimeOnly))
	h.armLocked(c)
}

// armLocked rolls c back at its deadline unless settled before.
func (h *Host) armLocked(c *netChange) {
	d := c.view.Deadline.Sub(h.now())
	c.timer = time.AfterFunc(max(d, 0), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.net.cur != c || c.view.State != api.NetChangePending {
			return
		}
		h.log.Warn("hostconf: management network change not confirmed in time; rolling back", "id", c.view.ID)
		h.rollbackLocked(c, "not confirmed by "+c.view.Deadline.Local().Format(time.TimeOnly))
	})
}

// ConfirmNetwork keeps the change awaiting confirmation and saves it. A
// request through the API gives local, the address it arrived on, which
// must be the change's new address; the console gives none.
func (h *Host) ConfirmNetwork(local netip.Addr, console bool) (api.NetworkChange, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.net.cur
	switch {
	case c == nil || c.restart:
		return api.NetworkChange{}, conflict("no management network change is awaiting confirmation")
	case c.view.State != api.NetChangePending:
		return api.NetworkChange{}, conflict("the management network change is %s, not awaiting confirmation", c.view.State)
	case !h.now().Before(c.view.Deadline):
		return api.NetworkChange{}, conflict("the management network change was not confirmed in time and is being rolled back")
	}
	by := "on the console"
	if !console {
		if !c.address.IsValid() || local.Unmap() != c.address.Addr() {
			return api.NetworkChange{}, &AddressError{Local: local.Unmap(), Want: c.address.Addr()}
		}
		by = "through the API from " + c.address.Addr().String()
	}
	h.settleLocked(c, api.NetChangeKept, "confirmed "+by, nil)
	return *h.net.last, nil
}

// RollbackNetwork rolls the change awaiting confirmation back now (after
// ApplyDelay, so the answer goes out first).
func (h *Host) RollbackNetwork() (api.NetworkChange, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.net.cur
	if c == nil || c.restart || c.view.State != api.NetChangePending {
		return api.NetworkChange{}, conflict("no management network change is awaiting confirmation")
	}
	h.rollbackLocked(c, "rolled back on request")
	return c.view, nil
}

// rollbackLocked applies c's previous configuration (in the background)
// and settles c as rolled back.
func (h *Host) rollbackLocked(c *netChange, why string) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.view.State = api.NetChangeRollingBack
	c.view.Outcome = why
	go func() {
		time.Sleep(h.cfg.ApplyDelay)
		ctx, cancel := context.WithTimeout(h.ctx(), applyBudget)
		r, err := h.cfg.Net.Apply(ctx, c.prev)
		cancel()
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.net.cur != c {
			return
		}
		if err != nil {
			h.log.Error("hostconf: rolling the management network back", "id", c.view.ID, "err", err)
		} else {
			h.log.Info("hostconf: management network rolled back", "id", c.view.ID, "why", why, "address", r.Address, "interface", r.Interface)
		}
		h.settleLocked(c, api.NetChangeRolledBack, why, err)
	}()
}

// settleLocked ends c: kept (saved in STATE unless a restart) or rolled back.
func (h *Host) settleLocked(c *netChange, state, outcome string, err error) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.view.State, c.view.Outcome = state, outcome
	c.view.Confirmed = state == api.NetChangeKept && !c.restart
	if err != nil && c.view.Error == "" {
		c.view.Error = err.Error()
	}
	if c.view.Confirmed {
		if serr := netconf.Save(h.cfg.Layout.State, c.cfg); serr != nil {
			c.view.Error = "kept, but not saved: " + serr.Error()
			h.log.Error("hostconf: saving the management network", "err", serr)
		}
		h.log.Info("hostconf: management network change kept", "id", c.view.ID, "how", outcome)
	}
	if cerr := netconf.ClearPending(h.cfg.Layout.Run); cerr != nil {
		h.log.Warn("hostconf: clearing the pending network change", "err", cerr)
	}
	v := c.view
	h.net.last, h.net.cur = &v, nil
}

// resumePending takes over a change an earlier vmkernel left pending: it
// is rolled back at its deadline (at once if that has passed).
func (h *Host) resumePending() {
	rec, ok, err := netconf.LoadPending(h.cfg.Layout.Run)
	if err != nil {
		h.log.Warn("hostconf: the pending network change cannot be read", "err", err)
		return
	}
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &netChange{cfg: rec.Config, prev: rec.Previous, address: rec.Address}
	c.view = api.NetworkChange{ID: rec.ID, Config: rec.Config.API(), Previous: rec.Previous.API(), State: api.NetChangePending,
		Interface: rec.Interface, Deadline: rec.Deadline}
	if rec.Address.IsValid() {
		c.view.Address = rec.Address.String()
	}
	h.net.cur, h.net.nextID = c, max(h.net.nextID, rec.ID)
	h.log.Warn("hostconf: a management network change awaits confirmation from before this vmkernel started",
		"id", rec.ID, "deadline", rec.Deadline.Local().Format(time.TimeOnly))
	h.armLocked(c)
}

// TestNetwork pings the gateway and DNS servers and resolves the host name.
func (h *Host) TestNetwork(ctx context.Context) ([]api.NetworkCheck, error) {
	if h.cfg.Net == nil {
		return nil, fmt.Errorf("%w: this vmkernel does not manage the host's network", ErrUnavailable)
	}
	cfg := h.running()
	var out []api.NetworkCheck
	for _, c := range h.cfg.Net.Test(ctx, cfg) {
		out = append(out, api.NetworkCheck{What: c.What, OK: c.OK, Info: c.Info})
	}
	return out, nil
}

func (h *Host) ctx() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bg
}
