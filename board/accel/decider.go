package accel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/plinth/plinth/api"
)

// PendingReason is the Reason of the acceleration reported while a Decider
// is still waiting for the KVM module.
const PendingReason = "tcg for now: the KVM module is still loading; decided again once it has"

// Decider makes the decision once the KVM module has finished loading. The
// appliance init starts vmkernel beside the driver load instead of after it:
// it creates a marker file before it starts loading the KVM module and
// removes it when the load has ended (loaded or failed). Until the file is
// gone, or MaxWait has passed, the decision is pending; then Detect decides,
// once, for as long as the Decider lives.
type Decider struct {
	done  chan struct{}
	final api.Acceleration
	start time.Time
}

// DeciderConfig configures NewDecider.
type DeciderConfig struct {
	// Loading is the marker file that exists while the KVM module loads;
	// "" (or a file that is not there) decides at once.
	Loading string
	// MaxWait bounds how long the decision stays pending, in case the
	// marker is never removed; 0 means 2 minutes.
	MaxWait time.Duration
	// Detect decides; nil means the live host's Detect.
	Detect func() api.Acceleration
	// OnDecided, when set, is called once with the decision and how long
	// it was pending.
	OnDecided func(a api.Acceleration, waited time.Duration)
}

// NewDecider starts deciding in the background.
func NewDecider(cfg DeciderConfig) *Decider {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	if cfg.Detect == nil {
		cfg.Detect = Detect
	}
	d := &Decider{done: make(chan struct{}), start: time.Now()}
	go func() {
		deadline := d.start.Add(cfg.MaxWait)
		for cfg.Loading != "" && time.Now().Before(deadline) {
			if _, err := os.Stat(cfg.Loading); errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		d.final = cfg.Detect()
		close(d.done)
		if cfg.OnDecided != nil {
			cfg.OnDecided(d.final, time.Since(d.start))
		}
	}()
	return d
}

// Current is the decision, or, while it is pending, TCG with PendingReason.
func (d *Decider) Current() api.Acceleration {
	select {
	case <-d.done:
		return d.final
	default:
		return api.Acceleration{Mode: api.AccelTCG, Reason: PendingReason}
	}
}

// Decided reports whether the decision has been made.
func (d *Decider) Decided() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Wait returns the decision, waiting for it within ctx.
func (d *Decider) Wait(ctx context.Context) (api.Acceleration, error) {
	select {
	case <-d.done:
		return d.final, nil
	case <-ctx.Done():
		return api.Acceleration{}, fmt.Errorf("waiting for the KVM module to load: %w", context.Cause(ctx))
	}
}
