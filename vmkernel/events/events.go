// Package events is vmkernel's in-process event broker: publishers (the
// runner, the API) never block; each subscriber has a buffered channel, and
// one that falls behind is dropped with a final overflow event.
package events

import (
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// DefaultBuffer is a subscriber's channel capacity.
const DefaultBuffer = 256

// recentLen is how many of the last events Recent keeps (for the support
// bundle).
const recentLen = 500

// Broker fans events out to subscribers. The zero value is not usable; use New.
type Broker struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	buffer int
	recent []api.Event
}

type sub struct {
	ch   chan api.Event
	done bool
}

// New makes a Broker whose subscribers get buffer events of slack (0: DefaultBuffer).
func New(buffer int) *Broker {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Broker{subs: map[*sub]struct{}{}, buffer: buffer}
}

// Subscribe returns a channel of the events published from now on and a
// cancel function that ends the subscription (and closes the channel). The
// channel is also closed, after an overflow event, when the subscriber
// falls behind by more than the buffer.
func (b *Broker) Subscribe() (<-chan api.Event, func()) {
	// One slot is kept for the overflow event.
	s := &sub{ch: make(chan api.Event, b.buffer+1)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.drop(s)
	}
}

func (b *Broker) drop(s *sub) {
	if s.done {
		return
	}
	s.done = true
	delete(b.subs, s)
	close(s.ch)
}

// Publish sends ev to every subscriber without blocking; Time is set when zero.
func (b *Broker) Publish(ev api.Event) {
	if b == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.recent) >= recentLen {
		b.recent = append(b.recent[:0], b.recent[1:]...)
	}
	b.recent = append(b.recent, ev)
	for s := range b.subs {
		if len(s.ch) < b.buffer {
			s.ch <- ev
			continue
		}
		s.ch <- api.Event{Type: api.EventOverflow, Time: ev.Time, Detail: "subscriber fell behind; events were lost"}
		b.drop(s)
	}
}

// Recent are the last events published (at most 500), oldest first.
func (b *Broker) Recent() []api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]api.Event{}, b.recent...)
}

// Subscribers is the number of current subscribers.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// StateHook is a runner.Config.OnState function publishing state events.
func (b *Broker) StateHook(id, name, state, detail string) {
	b.Publish(api.Event{Type: api.EventState, VMID: id, Name: name, State: state, Detail: detail})
}
