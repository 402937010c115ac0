package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// ErrNoVNC: the VM's spec has no VNC display.
var ErrNoVNC = errors.New("the VM has no VNC display")

// VNCSocket is the unix socket of the VNC server of the VM with this ID,
// whose QEMU must run (else a *StateError); a VM without VNC gives ErrNoVNC.
func (m *Manager) VNCSocket(id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", ErrClosed
	}
	v := m.vms[id]
	if v == nil || v.inst == nil {
		state := api.VMStopped
		if v != nil {
			state = v.state
		}
		return "", &StateError{id, "connect to VNC", state}
	}
	if !v.spec.VNC {
		return "", fmt.Errorf("VM %s: %w", id, ErrNoVNC)
	}
	return filepath.Join(m.cfg.RunRoot, id, qemu.VNCSocket), nil
}

// BlockStats asks the VM's QEMU for its block devices' counters (QMP
// query-blockstats); the VM must run (else a *StateError).
func (m *Manager) BlockStats(ctx context.Context, id string) ([]api.VMBlockStats, error) {
	_, inst, err := m.running(id, "read block statistics", api.VMStarting, api.VMRunning, api.VMPaused, api.VMStopping)
	if err != nil {
		return nil, err
	}
	var res []struct {
		Device   string `json:"device"`
		QDev     string `json:"qdev"`
		NodeName string `json:"node-name"`
		Stats    struct {
			RdBytes      uint64 `json:"rd_bytes"`
			WrBytes      uint64 `json:"wr_bytes"`
			RdOperations uint64 `json:"rd_operations"`
			WrOperations uint64 `json:"wr_operations"`
		} `json:"stats"`
	}
	if err := inst.mon.Run(ctx, "query-blockstats", nil, &res); err != nil {
		return nil, fmt.Errorf("VM %s: %w", id, err)
	}
	out := make([]api.VMBlockStats, 0, len(res))
	for _, r := range res {
		if strings.HasPrefix(r.QDev, "/machine/system.flash") {
			continue // UEFI's code and variables: not a disk
		}
		dev := r.Device
		if dev == "" { // -blockdev drives have no legacy name
			dev = r.QDev
		}
		out = append(out, api.VMBlockStats{Device: dev, NodeName: r.NodeName,
			RdBytes: r.Stats.RdBytes, WrBytes: r.Stats.WrBytes,
			RdOperations: r.Stats.RdOperations, WrOperations: r.Stats.WrOperations})
	}
	return out, nil
}
