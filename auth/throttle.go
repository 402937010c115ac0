package auth

import (
	"net/netip"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// Throttle slows password guessing over the network. Each attempt is
// counted as a failure before its password is checked (Begin), in the same
// step as the check of the wait, so attempts sent at once cannot all slip
// through between the wait and the failure: after FreeFailures attempts
// without a success, from one client or against one account, each further
// one must wait a delay that doubles with every failure (1 s, 2 s, 4 s ...
// up to MaxDelay), and is refused (429) without being counted until then.
// A success clears the client's and the account's record; records are
// forgotten after Window without a failure.
//
// Lockout is remote only, as on ESXi: the console (the DCUI) checks the
// password without a Throttle and is never held back. And a client that
// has logged in successfully before (KnownFor) answers only for its own
// failures: a stranger guessing root's password throttles root for other
// strangers, never for known clients, so nobody can keep root throttled
// for everyone.
//
// A client is its IPv4 address, or its IPv6 /64 (one host commonly holds a
// whole /64, and would otherwise get a fresh record per address).
type Throttle struct {
	now func() time.Time

	mu    sync.Mutex
	keys  map[string]*failures
	known map[string]time.Time // client → last successful login
}

type failures struct {
	count int
	last  time.Time
}

// Throttle parameters.
const (
	FreeFailures = 5
	MaxDelay     = 5 * time.Minute
	Window       = 15 * time.Minute
	// KnownFor is how long a client that logged in stays known.
	KnownFor = 30 * 24 * time.Hour
	maxKeys  = 10000
	maxKnown = 1000
)

// NewThrottle makes a Throttle; now is the clock (time.Now when nil).
func NewThrottle(now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{now: now, keys: map[string]*failures{}, known: map[string]time.Time{}}
}

func delayFor(count int) time.Duration {
	if count < FreeFailures {
		return 0
	}
	d := time.Second << min(count-FreeFailures, 20)
	return min(d, MaxDelay)
}

// ClientKey is the throttle's name for a client address: the IPv4
// address, or the IPv6 /64 it is in; an address that does not parse is
// used as it is.
func ClientKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

// userKey bounds the records strangers can make: root has its own, every
// other (non-existent) user name shares one.
func userKey(user string) string {
	if user == api.RootUser {
		return "user:" + api.RootUser
	}
	return "user:?"
}

// Attempt is one login attempt under way, counted as failed until
// Succeeded or Undo says otherwise.
type Attempt struct {
	t      *Throttle
	client string
	keys   []string
}

// Begin starts an attempt by client (an address) to log in as user: when
// either is throttled it returns the wait and counts nothing; else it
// counts the attempt as a failure at once and returns it.
func (t *Throttle) Begin(client, user string) (*Attempt, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	ck := ClientKey(client)
	keys := []string{"client:" + ck}
	if !t.knownLocked(ck, now) {
		keys = append(keys, userKey(user))
	}
	var wait time.Duration
	for _, k := range keys {
		f, ok := t.keys[k]
		if !ok {
			continue
		}
		if now.Sub(f.last) > Window {
			delete(t.keys, k)
			continue
		}
		if w := f.last.Add(delayFor(f.count)).Sub(now); w > wait {
			wait = w
		}
	}
	if wait > 0 {
		return nil, wait
	}
	for _, k := range keys {
		t.failLocked(k, now)
	}
	return &Attempt{t: t, client: ck, keys: keys}, 0
}

func (t *Throttle) knownLocked(client string, now time.Time) bool {
	at, ok := t.known[client]
	if ok && now.Sub(at) > KnownFor {
		delete(t.known, client)
		return false
	}
	return ok
}

func (t *Throttle) failLocked(k string, now time.Time) {
	f, ok := t.keys[k]
	if !ok || now.Sub(f.last) > Window {
		if !ok && len(t.keys) >= maxKeys {
			t.evictLocked(now)
		}
		f = &failures{}
		t.keys[k] = f
	}
	f.count++
	f.last = now
}

// evictLocked makes room: the stale records go, and when none is stale the
// one failed longest ago (a flood of addresses can forget its own records,
// never the account's, which it keeps fresh).
func (t *Throttle) evictLocked(now time.Time) {
	var oldest string
	var at time.Time
	for k, f := range t.keys {
		if now.Sub(f.last) > Window {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || f.last.Before(at) {
			oldest, at = k, f.last
		}
	}
	if len(t.keys) >= maxKeys && oldest != "" {
		delete(t.keys, oldest)
	}
}

// Succeeded says the password was right: the client's and the account's
// records are cleared and the client is known from now on.
func (a *Attempt) Succeeded() {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range a.keys {
		delete(t.keys, k)
	}
	if _, ok := t.known[a.client]; !ok && len(t.known) >= maxKnown {
		var oldest string
		var at time.Time
		for c, when := range t.known {
			if oldest == "" || when.Before(at) {
				oldest, at = c, when
			}
		}
		delete(t.known, oldest)
	}
	t.known[a.client] = now
}

// Undo takes the attempt back: the password could not be checked at all
// (no password set yet, an unreadable file), which is no guess.
func (a *Attempt) Undo() {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range a.keys {
		if f, ok := t.keys[k]; ok {
			if f.count--; f.count <= 0 {
				delete(t.keys, k)
			}
		}
	}
}
