package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

type fakeStarter struct {
	mu      sync.Mutex
	state   map[string]string
	fail    map[string]bool
	started []string
	at      []time.Time
}

func (f *fakeStarter) Status(id string) api.VMRuntime {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.state[id]; s != "" {
		return api.VMRuntime{State: s}
	}
	return api.VMRuntime{State: api.VMStopped}
}

func (f *fakeStarter) Start(ctx context.Context, spec api.VMSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, spec.Name)
	f.at = append(f.at, time.Now())
	if f.fail[spec.Name] {
		return errors.New("boom")
	}
	f.state[spec.ID] = api.VMRunning
	return nil
}

func TestAutostartOrderDelayAndSkips(t *testing.T) {
	mk := func(name string, on bool, order, delay int) api.VMSpec {
		return api.VMSpec{ID: "id-" + name, Name: name, Autostart: api.Autostart{Enabled: on, Order: order, DelaySeconds: delay}}
	}
	specs := []api.VMSpec{
		mk("zeta", true, 1, 0), mk("late", true, 5, 0), mk("off", false, 0, 0),
		mk("alpha", true, 1, 1), mk("running", true, 0, 0), mk("broken", true, 3, 0), mk("gone", true, 4, 0),
	}
	byID := map[string]api.VMSpec{}
	for _, s := range specs {
		if s.Name != "gone" {
			byID[s.ID] = s
		}
	}
	get := func(id string) (api.VMSpec, error) {
		s, ok := byID[id]
		if !ok {
			return s, errors.New("not found")
		}
		return s, nil
	}
	f := &fakeStarter{state: map[string]string{"id-running": api.VMRunning}, fail: map[string]bool{"broken": true}}
	var logb strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logb.Write(b)
	}), nil))
	autostart(context.Background(), log, specs, get, f)

	if got, want := strings.Join(f.started, ","), "alpha,zeta,broken,late"; got != want {
		t.Fatalf("started %s, want %s", got, want)
	}
	if d := f.at[1].Sub(f.at[0]); d < time.Second {
		t.Errorf("zeta started %v after alpha, want alpha's 1 s delay", d)
	}
	out := logb.String()
	for _, s := range []string{`"vmkernel: autostart VM alpha"`, `"vmkernel: autostart of VM broken failed"`, "vm=running", "vm=gone"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %s:\n%s", s, out)
		}
	}
}

func TestAutostartStopsWithContext(t *testing.T) {
	specs := []api.VMSpec{
		{ID: "a", Name: "a", Autostart: api.Autostart{Enabled: true, DelaySeconds: 3600}},
		{ID: "b", Name: "b", Autostart: api.Autostart{Enabled: true, Order: 1}},
	}
	get := func(id string) (api.VMSpec, error) {
		for _, s := range specs {
			if s.ID == id {
				return s, nil
			}
		}
		return api.VMSpec{}, errors.New("not found")
	}
	f := &fakeStarter{state: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { autostart(ctx, slog.New(slog.DiscardHandler), specs, get, f); close(done) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("autostart did not return after cancel")
	}
	if len(f.started) != 1 {
		t.Fatalf("started %v", f.started)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }
