package auth

import (
	"sync"
	"time"
)

// Throttle slows password guessing: after FreeFailures failed logins in a
// row from one client, or against one account, each further attempt must
// wait a delay that doubles with every failure (1 s, 2 s, 4 s ... up to
// MaxDelay). A success clears the client's and the account's record;
// records are forgotten after Window without a failure.
type Throttle struct {
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
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
	maxKeys      = 10000
)

// NewThrottle makes a Throttle; now is the clock (time.Now when nil).
func NewThrottle(now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{now: now, keys: map[string]*failures{}}
}

func delayFor(count int) time.Duration {
	if count < FreeFailures {
		return 0
	}
	d := time.Second << min(count-FreeFailures, 20)
	return min(d, MaxDelay)
}

// Wait says how long the caller must wait before another login attempt for
// any of keys (e.g. "client:10.0.0.9" and "user:root"); 0 lets it try now.
func (t *Throttle) Wait(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
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
	return wait
}

// Fail records a failed attempt for each key.
func (t *Throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.keys) > maxKeys { // a flood of clients: drop the stale ones
		for k, f := range t.keys {
			if now.Sub(f.last) > Window {
				delete(t.keys, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := t.keys[k]
		if !ok || now.Sub(f.last) > Window {
			f = &failures{}
			t.keys[k] = f
		}
		f.count++
		f.last = now
	}
}

// Succeed clears the record of each key.
func (t *Throttle) Succeed(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.keys, k)
	}
}
