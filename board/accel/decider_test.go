package accel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestDeciderWaitsForTheMarker(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "kvm-loading")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	decided := make(chan time.Duration, 1)
	kvm := api.Acceleration{Mode: api.AccelKVM, Reason: "kvm: test"}
	d := NewDecider(DeciderConfig{Loading: marker, Detect: func() api.Acceleration { return kvm },
		OnDecided: func(a api.Acceleration, waited time.Duration) { decided <- waited }})
	if d.Decided() {
		t.Fatal("decided while the marker exists")
	}
	if a := d.Current(); a.Mode != api.AccelTCG || a.Reason != PendingReason {
		t.Fatalf("Current while pending = %+v", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := d.Wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with the marker in place = %v, want the context's deadline", err)
	}
	os.Remove(marker)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := d.Wait(ctx)
	if err != nil || a != kvm {
		t.Fatalf("Wait after the marker went = %+v, %v", a, err)
	}
	if d.Current() != kvm || !d.Decided() {
		t.Fatalf("Current after deciding = %+v", d.Current())
	}
	select {
	case <-decided:
	case <-time.After(30 * time.Second):
		t.Fatal("OnDecided not called")
	}
}

func TestDeciderWithoutMarkerDecidesAtOnce(t *testing.T) {
	calls := 0
	d := NewDecider(DeciderConfig{Loading: filepath.Join(t.TempDir(), "absent"),
		Detect: func() api.Acceleration { calls++; return api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"} }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a, err := d.Wait(ctx); err != nil || a.Reason != "tcg: test" {
		t.Fatalf("Wait = %+v, %v", a, err)
	}
	d.Current()
	if calls != 1 {
		t.Fatalf("Detect called %d times, want once", calls)
	}
}

func TestDeciderMaxWait(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "stuck")
	os.WriteFile(marker, nil, 0o644)
	d := NewDecider(DeciderConfig{Loading: marker, MaxWait: 50 * time.Millisecond,
		Detect: func() api.Acceleration { return api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"} }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a, err := d.Wait(ctx); err != nil || a.Reason != "tcg: test" {
		t.Fatalf("Wait past MaxWait = %+v, %v", a, err)
	}
}
