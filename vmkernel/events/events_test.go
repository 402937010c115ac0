package events

import (
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestSlowSubscriberDroppedWithOverflow(t *testing.T) {
	b := New(4)
	slow, _ := b.Subscribe()
	fast, cancel := b.Subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			b.StateHook("id", "vm", api.VMRunning, "") // never blocks
			<-fast
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked")
	}
	var got []api.Event
	for ev := range slow {
		got = append(got, ev)
	}
	if len(got) != 5 || got[4].Type != api.EventOverflow || got[0].Type != api.EventState || got[0].Time.IsZero() {
		t.Fatalf("slow subscriber got %+v", got)
	}
	if n := b.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers, want 1", n)
	}
	cancel()
	cancel() // idempotent
	if _, ok := <-fast; ok {
		t.Fatal("channel open after cancel")
	}
	b.Publish(api.Event{Type: api.EventCreated}) // no subscribers: fine
}
