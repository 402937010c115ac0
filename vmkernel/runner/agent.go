package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/guestagent"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// Timings of the guest agent; variables so tests could shorten them.
var (
	// agentPoll is how often a running VM's agent is asked for its facts;
	// agentFirst the first time after a start (a guest takes a while to
	// start its agent), agentRetry the delay while it does not answer.
	agentPoll  = 30 * time.Second
	agentFirst = 2 * time.Second
	agentRetry = 5 * time.Second
	// agentTimeout bounds one exchange.
	agentTimeout = 5 * time.Second
)

// ErrNoAgent: the VM's guest agent does not answer (none in the guest, or
// not started yet).
var ErrNoAgent = guestagent.ErrNoAgent

// startAgent gives inst its guest agent and polls it until the process is
// gone (m.wg counts it).
func (m *Manager) startAgent(v *vm, inst *instance) {
	inst.agent = guestagent.New(filepath.Join(m.cfg.RunRoot, v.id, qemu.AgentSocket))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer inst.agent.Close()
		wait := agentFirst
		for {
			select {
			case <-inst.exited:
				return
			case <-inst.agentStop:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
			g, err := inst.agent.Facts(ctx)
			cancel()
			m.mu.Lock()
			if err == nil {
				inst.facts = &g
				wait = agentPoll
			} else {
				inst.facts = nil
				wait = agentRetry
			}
			m.mu.Unlock()
		}
	}()
}

// GuestAgent returns the running VM's guest agent (for freezing its file
// systems around a snapshot or backup); ErrNoAgent if it has not answered.
func (m *Manager) GuestAgent(id string) (*guestagent.Agent, error) {
	_, inst, err := m.running(id, "reach the guest agent", api.VMRunning, api.VMPaused)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if inst.agent == nil || inst.facts == nil {
		return nil, fmt.Errorf("VM %s: %w", id, ErrNoAgent)
	}
	return inst.agent, nil
}

// agentShutdown asks the guest to power off through its agent, if it has
// answered; it reports whether the request went out.
func (m *Manager) agentShutdown(ctx context.Context, inst *instance) bool {
	m.mu.Lock()
	a, answered := inst.agent, inst.facts != nil
	m.mu.Unlock()
	if a == nil || !answered {
		return false
	}
	actx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	if err := a.Shutdown(actx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return true
}
