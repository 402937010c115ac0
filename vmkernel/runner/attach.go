package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/qmp"
)

// runtimeRecord is the link from a VM to its running QEMU, kept in the VM's
// state directory while QEMU runs so that a restarted vmkernel re-attaches.
type runtimeRecord struct {
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat (clock ticks since boot):
	// with the pid it names one process, never a later one reusing the pid.
	StartTime uint64    `json:"start_time"`
	QMPSocket string    `json:"qmp_socket"`
	StartedAt time.Time `json:"started_at"`
}

// writeRuntime stores rec atomically (temp file, fsync, rename, fsync dir).
func writeRuntime(dir string, rec runtimeRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, RuntimeFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("runtime record: %w", err)
	}
	return nil
}

func readRuntime(dir string) (runtimeRecord, error) {
	var rec runtimeRecord
	b, err := os.ReadFile(filepath.Join(dir, RuntimeFile))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("runtime record: corrupt: %w", err)
	}
	if rec.PID <= 0 || rec.QMPSocket == "" {
		return rec, errors.New("runtime record: no pid or QMP socket")
	}
	return rec, nil
}

// procStartTime reads field 22 (starttime) of /proc/PID/stat.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

// parseStartTime takes field 22 of a /proc/PID/stat line. The command name
// (field 2) is in parentheses and may hold spaces and ')', so fields are
// counted from the last ')'.
func parseStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // field 3 onwards
	if len(f) < 20 {
		return 0, errors.New("/proc stat: too few fields")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func jsonUnmarshal(b []byte, v any) {
	if len(b) > 0 {
		json.Unmarshal(b, v) // a malformed event field is just ignored
	}
}

// Reattach finds the QEMU processes a previous vmkernel left running (from
// the runtime records in the state root) and watches them again without
// restarting them. A record is used only when its pid is alive with the
// recorded start time and its QMP socket answers (waited for, within ctx,
// while the process lives: a busy QEMU answers late); stale records are
// removed.
// specs are the defined VMs (for crash policies); records of VMs not among
// them are left alone. It returns the IDs re-attached.
func (m *Manager) Reattach(ctx context.Context, specs []api.VMSpec) ([]string, error) {
	byID := map[string]api.VMSpec{}
	for _, s := range specs {
		byID[s.ID] = s
	}
	entries, err := os.ReadDir(m.cfg.StateRoot)
	if err != nil {
		return nil, fmt.Errorf("runner: reattach: %w", err)
	}
	var ids []string
	for _, e := range entries {
		id := e.Name()
		dir := filepath.Join(m.cfg.StateRoot, id)
		rec, err := readRuntime(dir)
		if errors.Is(err, os.ErrNotExist) {
			m.recoverPCI(id, false) // devices a QEMU gone meanwhile still held
			continue
		}
		spec, known := byID[id]
		if err == nil && !known {
			m.cfg.Log.Warn("runner: QEMU record of an unknown VM left alone", "id", id, "pid", rec.PID)
			continue
		}
		var inst *instance
		if err == nil {
			inst, err = m.attach(ctx, rec)
		}
		if err != nil {
			m.cfg.Log.Info("runner: stale runtime record removed", "id", id, "why", err)
			m.recoverPCI(id, false)
			os.Remove(filepath.Join(dir, RuntimeFile))
			atomicfile.SyncDir(dir)
			continue
		}
		state := api.VMRunning
		var st struct {
			Running bool   `json:"running"`
			Status  string `json:"status"`
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := inst.mon.Run(qctx, "query-status", nil, &st); err == nil && !st.Running {
			state = api.VMPaused
			if st.Status == "shutdown" {
				state = api.VMStopping
			}
		}
		cancel()
		m.mu.Lock()
		if m.closed || m.vms[id] != nil {
			m.mu.Unlock()
			inst.mon.Close()
			continue
		}
		if m.cfg.Cgroups != nil {
			inst.cgroup = m.cfg.Cgroups.Path(id)
		}
		v := &vm{id: id, spec: spec.Clone(), state: state, inst: inst, con: newConsole(dir)}
		m.vms[id] = v
		m.wg.Add(1)
		go m.watch(v, inst)
		if spec.Serial { // the console reader of the previous vmkernel is gone: connect again
			inst.serial = newSerialConn()
			m.wg.Add(1)
			go m.readConsole(v, inst, nil)
		}
		m.startAgent(v, inst)
		m.mu.Unlock()
		m.recoverPCI(id, true)
		ids = append(ids, id)
		m.cfg.Log.Info("runner: re-attached VM", "vm", spec.Name, "id", id, "pid", rec.PID, "state", state)
	}
	return ids, nil
}

// attach checks rec's process (pid alive, same start time, QMP answers) and
// watches it through a pidfd, since it is not our child.
func (m *Manager) attach(ctx context.Context, rec runtimeRecord) (*instance, error) {
	fd, err := unix.PidfdOpen(rec.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", rec.PID, err)
	}
	// Checked after opening the pidfd: the pidfd then surely names this process.
	st, err := procStartTime(rec.PID)
	if err != nil || st != rec.StartTime {
		unix.Close(fd)
		return nil, fmt.Errorf("pid %d is another process now (start time %d, recorded %d)", rec.PID, st, rec.StartTime)
	}
	inst := &instance{pid: rec.PID, startTime: st, startedAt: rec.StartedAt, exited: make(chan struct{}), agentStop: make(chan struct{})}
	if c, err := readConfinement(rec.PID); err == nil {
		inst.uid, inst.sandboxed = c.uid, c.sandboxed()
	}
	stop := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		for {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 200)
			if err != nil && !errors.Is(err, unix.EINTR) {
				m.cfg.Log.Error("runner: pidfd poll", "pid", rec.PID, "err", err)
				return
			}
			if n > 0 {
				inst.exit = api.VMExit{Time: time.Now(), Status: "unknown (not vmkernel's child)", Code: -1}
				close(inst.exited)
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	// The process is the recorded QEMU: its QMP is waited for as long as
	// it lives (within ctx). A QEMU saving a snapshot (snapshot-save
	// writes the guest's memory with its main loop held) answers only when
	// done, seconds or minutes later; taken for stale, it would run on
	// unwatched, its VM shown stopped.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-inst.exited:
			cancel()
		case <-dctx.Done():
		}
	}()
	slow := time.AfterFunc(2*time.Second, func() {
		m.cfg.Log.Warn("runner: a running QEMU's QMP does not answer yet (busy, e.g. saving a snapshot): waiting", "pid", rec.PID)
	})
	inst.mon, err = qmp.Dial(dctx, rec.QMPSocket)
	slow.Stop()
	if err != nil {
		close(stop)
		return nil, fmt.Errorf("QMP socket does not answer: %w", err)
	}
	go func() { // the poller ends when the process does or the monitor is closed
		select {
		case <-inst.exited:
		case <-inst.mon.Done():
			select {
			case <-inst.exited:
			case <-time.After(quitGrace + time.Second):
			}
		}
		close(stop)
	}()
	return inst, nil
}
