package vmkernel_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

// startCfg serves a vmkernel with cfg on a unix socket in a temp dir and
// returns its client.
func startCfg(t *testing.T, cfg vmkernel.Config) *client.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vmkernel.sock")
	l, err := vmkernel.Listen(sock, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host == nil {
		cfg.Host = func() (api.Host, error) { return api.Host{}, nil }
	}
	srv := vmkernel.New(cfg)
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostPower: without Config.Power the route answers 501; with it, a
// good request reaches Power and is answered 202, a bad action or empty
// reason is 422 naming the field, an unknown field 400.
func TestHostPower(t *testing.T) {
	ctx := ctx(t)
	apiErr(t, startCfg(t, vmkernel.Config{}).HostPower(ctx, api.PowerReboot, "test", ""), http.StatusNotImplemented)

	var mu sync.Mutex
	var calls []string
	c := startCfg(t, vmkernel.Config{Power: func(action, reason string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, action+":"+reason)
		if reason == "fail" {
			return errors.New("init is gone")
		}
		return nil
	}})
	if err := c.HostPower(ctx, api.PowerReboot, "new kernel", "host1"); err != nil {
		t.Fatal(err)
	}
	if err := c.HostPower(ctx, api.PowerShutdown, "moving racks", ""); err != nil {
		t.Fatal(err)
	}
	if e := apiErr(t, c.HostPower(ctx, "explode", "x", ""), http.StatusUnprocessableEntity); e.Problem.Field != "action" {
		t.Errorf("bad action: %+v", e.Problem)
	}
	if e := apiErr(t, c.HostPower(ctx, api.PowerReboot, " ", ""), http.StatusUnprocessableEntity); e.Problem.Field != "reason" {
		t.Errorf("empty reason: %+v", e.Problem)
	}
	apiErr(t, c.HostPower(ctx, api.PowerReboot, "fail", ""), http.StatusInternalServerError)
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(calls, ","); got != "reboot:new kernel,shutdown:moving racks,reboot:fail" {
		t.Errorf("Power calls %s", got)
	}
}

// TestHardware reads the inventory of the machine the test runs on through
// the API.
func TestHardware(t *testing.T) {
	hw, err := startCfg(t, vmkernel.Config{}).Hardware(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if hw.CPU.Threads < 1 || hw.Memory.TotalBytes == 0 {
		t.Errorf("hardware: cpu %+v, memory %d; gaps %v", hw.CPU, hw.Memory.TotalBytes, hw.Gaps)
	}
}

// TestStatsWithQEMU: the host's counters, a running VM's (CPU time, RSS,
// its disk's QMP counters, its NIC) and a stopped VM's zero ones; and a
// running VM's file cannot be overwritten by an upload.
func TestStatsWithQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "disks/a.qcow2", SizeBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	spec := guest("measured")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "disks/a.qcow2"}}
	spec.NICs = []api.NIC{{NAT: true}}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := r.c.CreateVM(ctx, guest("idle"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	runnertest.WaitConsole(t, func() ([]byte, error) { return r.c.VMConsole(ctx, vm.Spec.ID) }, runnertest.Marker, 150*time.Second)

	st, err := r.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := st.Host
	if h.CPUSeconds.User <= 0 || h.CPUSeconds.Idle <= 0 || h.MemoryTotalBytes == 0 ||
		h.MemoryAvailableBytes == 0 || h.MemoryAvailableBytes > h.MemoryTotalBytes || h.UptimeSeconds <= 0 {
		t.Errorf("host stats %+v", h)
	}
	if len(st.VMs) != 2 || st.VMs[0].Name != "idle" || st.VMs[1].Name != "measured" {
		t.Fatalf("VMs %+v", st.VMs)
	}
	if s := st.VMs[0]; s.Running || s.State != api.VMStopped || s.CPUSeconds != 0 || s.MemoryRSSBytes != 0 ||
		s.ID != idle.Spec.ID || s.MemoryBytes != 128<<20 || s.Error != "" {
		t.Errorf("stopped VM stats %+v", s)
	}
	s := st.VMs[1]
	t.Logf("running VM stats: %+v", s)
	if !s.Running || s.State != api.VMRunning || s.CPUSeconds <= 0 || s.MemoryRSSBytes < 1<<20 ||
		s.MemoryBytes != 128<<20 || s.Error != "" {
		t.Errorf("running VM stats %+v", s)
	}
	if len(s.Disks) != 1 || s.Disks[0].Device == "" {
		t.Errorf("disks %+v", s.Disks)
	}
	if len(s.NICs) != 1 || s.NICs[0].MAC == "" || s.NICs[0].Tap != "" {
		t.Errorf("NICs %+v", s.NICs)
	}

	// A QEMU that does not answer QMP (stopped by SIGSTOP) costs its VM an
	// error after the 2 s deadline, not the answer.
	got, err := r.c.GetVM(ctx, vm.Spec.ID)
	if err != nil || got.Runtime.PID == 0 {
		t.Fatalf("%+v, %v", got.Runtime, err)
	}
	if err := syscall.Kill(got.Runtime.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	st, err = r.c.Stats(ctx)
	took := time.Since(t0)
	syscall.Kill(got.Runtime.PID, syscall.SIGCONT)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.VMs[1]; !s.Running || s.Error == "" || s.CPUSeconds <= 0 || took > 30*time.Second {
		t.Errorf("stats of a VM whose QMP hangs (after %v): %+v", took, s)
	} else {
		t.Logf("stats of a VM whose QMP hangs, after %v: error %q", took, s.Error)
	}
	if s := st.VMs[0]; s.Error != "" {
		t.Errorf("the other VM got an error: %+v", s)
	}
	// The running VM's files: an upload may not replace them.
	e := apiErr(t, errOf(r.c.UploadFile(ctx, "ds", "disks/a.qcow2", strings.NewReader("x"), 1, true)), http.StatusConflict)
	if !strings.Contains(e.Problem.Detail, "measured") {
		t.Errorf("in use: %+v", e.Problem)
	}
	// A defined but stopped VM's file may be (the VM is not holding it).
	if _, err := r.c.UploadFile(ctx, "ds", "other.iso", strings.NewReader("x"), 1, false); err != nil {
		t.Fatal(err)
	}

	if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	st, err = r.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.VMs[1]; s.Running || s.CPUSeconds != 0 || len(s.Disks) != 0 || len(s.NICs) != 0 {
		t.Errorf("stopped VM stats %+v", s)
	}
}
