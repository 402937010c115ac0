package netconf

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// Keeper looks after the management network between changes, from what
// the last Apply recorded in the run directory: it renews the DHCP lease
// (with its server at T1, with any server from T2), keeps asking when DHCP
// got no answer (a cable plugged in late, a DHCP server that was down),
// and keeps the address when a lease runs out with no server answering (the
// host stays manageable; it says so and goes on asking). vmkernel, the
// owner of the management network, runs one.
type Keeper struct {
	*Applier
	// Poll is how often the run directory is looked at (5 s).
	Poll time.Duration
	// RetryMax is the longest wait between DHCP attempts while there is
	// no lease (2 min; the first waits Poll, then doubling).
	RetryMax time.Duration
	Now      func() time.Time

	gen     uint64    // the Applied generation the state below is about
	next    time.Time // no DHCP traffic before this
	fails   int       // DHCP attempts in a row that got nothing
	expired bool      // the lease's expiry has been reported
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keeper) poll() time.Duration {
	if k.Poll > 0 {
		return k.Poll
	}
	return 5 * time.Second
}

// Run keeps the network until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	for {
		wait := k.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Step does what is due now and returns how long until it should look
// again.
func (k *Keeper) Step(ctx context.Context) time.Duration {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	unlock, err := k.lock(lctx)
	cancel()
	if err != nil {
		k.logf("network keeper: %v", err)
		return k.poll()
	}
	defer unlock()
	now := k.now()
	wait := k.poll()
	ap, ok, err := ReadApplied(k.RunDir)
	if err != nil {
		k.logf("network keeper: %v", err)
	}
	if !ok || ap.Config.Mode != ModeDHCP {
		return wait
	}
	if ap.Generation != k.gen {
		k.gen, k.next, k.fails, k.expired = ap.Generation, time.Time{}, 0, false
	}
	if now.Before(k.next) {
		return min(wait, k.next.Sub(now))
	}
	return min(wait, k.dhcp(ctx, ap, now))
}

// dhcp does the DHCP work that is due for ap and returns when to look
// again.
func (k *Keeper) dhcp(ctx context.Context, ap Applied, now time.Time) time.Duration {
	ack, t, leased := ap.Lease()
	if !leased {
		// Nothing yet (no answer, or no link): the whole Apply again.
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		r, nack, err := k.apply(actx, ap.Config)
		if err != nil {
			k.fails++
			if k.fails == 1 || k.fails%10 == 0 {
				k.logf("network: %v; asking again (attempt %d)", err, k.fails+1)
			}
			if r.Interface != "" {
				ap.Result = r
			}
			ap.Problem = err.Error() + "; asking again"
			if err := writeApplied(k.RunDir, ap); err != nil {
				k.logf("network keeper: %v", err)
			}
			return k.retry(now)
		}
		ap.Result = r
		return k.record(ap, nack, fmt.Sprintf("DHCP lease on %s at attempt %d", r.Interface, k.fails+2))
	}
	name := ap.Result.Interface
	link, err := netlink.LinkByName(name)
	if err != nil {
		k.logf("network keeper: management interface %s: %v", name, err)
		k.fails++
		return k.retry(now)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case t.Infinite:
		k.next = now.Add(24 * time.Hour)
		return k.next.Sub(now)
	case now.Before(t.Renew):
		k.next = t.Renew
		return t.Renew.Sub(now)
	case now.Before(t.Rebind):
		nack, err := k.renew(ctx, link, ack)
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			k.logf("network: %v; asking any DHCP server for a new lease", err)
			return k.rebind(ctx, ap, link, t, now)
		}
		if err != nil {
			// RFC 2131 4.4.5: try again after half the time left to T2.
			k.next = now.Add(max(t.Rebind.Sub(now)/2, time.Second))
			k.logf("network: %v; trying again at %s, any server from %s", err, k.next.Format(time.TimeOnly), t.Rebind.Format(time.TimeOnly))
			return k.next.Sub(now)
		}
		return k.install(ap, link, nack, "DHCP lease on "+name+" renewed")
	default:
		return k.rebind(ctx, ap, link, t, now)
	}
}

// rebind asks any server for a lease (T2 has passed, or the server said
// no); past the lease's end the address stays, said once.
func (k *Keeper) rebind(ctx context.Context, ap Applied, link netlink.Link, t LeaseTimes, now time.Time) time.Duration {
	nack, err := k.acquire(ctx, link, 2)
	if err == nil {
		return k.install(ap, link, nack, "DHCP lease on "+link.Attrs().Name+" rebound")
	}
	if now.Before(t.Expire) {
		k.next = now.Add(max(t.Expire.Sub(now)/2, time.Second))
		k.logf("network: %v; the lease on %s ends at %s", err, ap.Result.Address, t.Expire.Format(time.DateTime))
		return k.next.Sub(now)
	}
	if !k.expired {
		k.expired = true
		k.logf("network: the DHCP lease of %s on %s ended at %s and no DHCP server answers: keeping the address, asking again",
			ap.Result.Address, link.Attrs().Name, t.Expire.Format(time.DateTime))
		ap.Problem = fmt.Sprintf("the DHCP lease of %s ended at %s and no DHCP server answers: the address is kept; asking again",
			ap.Result.Address, t.Expire.Format(time.RFC3339))
		if err := writeApplied(k.RunDir, ap); err != nil {
			k.logf("network keeper: %v", err)
		}
	}
	k.fails++
	return k.retry(now)
}

// retry schedules the next attempt while DHCP gets nothing: Poll, then
// doubling up to RetryMax.
func (k *Keeper) retry(now time.Time) time.Duration {
	limit := k.RetryMax
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	d := k.poll()
	for i := 1; i < k.fails && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	k.next = now.Add(d)
	return d
}

// install puts a new or renewed lease in place and records it.
func (k *Keeper) install(ap Applied, link netlink.Link, ack *dhcpv4.DHCPv4, what string) time.Duration {
	p, err := k.configureLease(link, ack, ap.Config)
	if err != nil {
		k.logf("network: %v", err)
		k.fails++
		return k.retry(k.now())
	}
	ap.Result.Address = p.String()
	return k.record(ap, ack, what)
}

// record keeps the lease in place in the run directory, says so, and
// returns how long until it is renewed.
func (k *Keeper) record(ap Applied, ack *dhcpv4.DHCPv4, what string) time.Duration {
	now := k.now()
	old, _, _ := ReadApplied(k.RunDir)
	ap.ACK, ap.Obtained, ap.Problem = ack.ToBytes(), now, ""
	if err := writeApplied(k.RunDir, ap); err != nil {
		k.logf("network keeper: %v", err)
	}
	t := Times(ack, now)
	until := "for ever"
	if !t.Infinite {
		until = "until " + t.Expire.Format(time.DateTime)
	}
	if was := old.Result.Address; was != "" && was != ap.Result.Address {
		k.logf("network: %s: the address is now %s (was %s), %s", what, ap.Result.Address, was, until)
	} else {
		k.logf("network: %s: %s %s", what, ap.Result.Address, until)
	}
	k.fails, k.expired = 0, false
	k.next = t.Renew
	if t.Infinite {
		k.next = now.Add(24 * time.Hour)
	}
	return k.next.Sub(now)
}

func orNoAddr(s string) string {
	if s == "" {
		return "(no address)"
	}
	return s
}
