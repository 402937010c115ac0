package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/passthrough"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// The start steps of issue 18's guest hardware. Each does for QEMU what
// its sandbox forbids it: vmkernel runs swtpm as the VM's user, binds PCI
// devices to vfio-pci and gives their group to that user, opens USB
// devices, grows the huge page pool, raises QEMU's locked-memory limit for
// VFIO (QEMU waits in --preconfig until it has) and pins its threads.

// Files in a VM's state directory.
const (
	// TPMDir holds the VM's TPM state (swtpm's files, owned by the VM's
	// user): it is the VM's, kept with it (and in its snapshots).
	TPMDir = "tpm"
	// SWTPMLog is swtpm's log.
	SWTPMLog = "swtpm.log"
	// PCIRecord is what a PCI claim did, until the devices are back.
	PCIRecord = "pci.json"
)

// Devices gives host devices to VMs (a *passthrough.Host).
type Devices interface {
	ClaimPCI(vmID string, uid int, devs []api.PCIPassthrough, record string) ([]string, error)
	ReleasePCI(record string) error
	AdoptPCI(record string) error
	FindUSB(vmID string, u api.USBPassthrough) (api.USBDevice, error)
	OpenUSB(vmID string, d api.USBDevice) (*os.File, error)
	ReleaseUSB(vmID, port string)
	USBPresent(port string, bus, dev int) bool
}

// ErrNoDevices: a VM has PCI devices but the Manager has no Devices.
var ErrNoDevices = errors.New("device passthrough is not available")

// Default paths of the huge page pool and swtpm.
var (
	DefaultHugePagesDir = "/sys/kernel/mm/hugepages/hugepages-2048kB"
	DefaultSWTPM        = "/usr/bin/swtpm"
)

// instanceHW is what a QEMU process holds of issue 18's hardware.
type instanceHW struct {
	swtpm      *os.Process
	swtpmDone  chan struct{}
	pciRecord  string   // set while PCI devices are claimed
	pci        []string // their host addresses
	hugeGrown  int      // huge pages added to the pool for this VM
	usb        []*usbAttachment
	balloonMiB int // the balloon target last set
	hot        hotplug
	// accel, fdsets and spec are how QEMU was started: its accelerator,
	// its command line's fd sets, the spec (live changes index from it).
	accel  string
	fdsets []qemu.FDSet
	spec   *api.VMSpec
}

// usbAttachment is a USB device given to the running VM.
type usbAttachment struct {
	api.USBAttachment
	id    string // QEMU device ID
	fdset int    // the fd set holding its node, when attached live
}

// specProblem makes err a validation problem of the spec's field (422).
func specProblem(field string, err error) error { return &imageProblem{field: field, err: err} }

// devError maps a passthrough error to the spec's field where it has one.
func devError(err error) error {
	var fe *passthrough.FieldError
	if errors.As(err, &fe) && errors.Is(err, passthrough.ErrNotFound) {
		return specProblem(fe.Field, fe.Err)
	}
	return err
}

func (s *start) hw() *instanceHW {
	if s.hwState == nil {
		s.hwState = &instanceHW{}
	}
	return s.hwState
}

// tpm starts the VM's software TPM (swtpm, as the VM's user) with its
// state in the VM's state directory, reached through a descriptor (the
// state directory is root's), and its control socket in the run directory,
// where QEMU connects. swtpm ends by itself when QEMU closes the socket.
func (s *start) tpm() error {
	if !s.spec.TPM {
		return nil
	}
	bin := s.m.cfg.SWTPM
	if bin == "" {
		bin = DefaultSWTPM
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("tpm: swtpm: %w", err)
	}
	dir := filepath.Join(s.stateDir, TPMDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("tpm: %w", err)
	}
	if s.uid != 0 {
		if err := os.Chown(dir, s.uid, s.uid); err != nil {
			return fmt.Errorf("tpm: %w", err)
		}
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	defer d.Close()
	log, err := os.OpenFile(filepath.Join(s.stateDir, SWTPMLog), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("tpm: %w", err)
	}
	defer log.Close()
	sock := filepath.Join(s.runDir, qemu.TPMSocketName)
	os.Remove(sock)
	cmd := exec.Command(bin, "socket", "--tpm2",
		// fd 3 is the state directory: /proc/self/fd/3 reaches into it
		// without passing through the root-only directories above.
		"--tpmstate", "dir=/proc/self/fd/3,mode=0600",
		"--ctrl", "type=unixio,path="+sock+",mode=0600",
		"--log", "level=1", "--terminate", "--seccomp", "action=kill")
	cmd.ExtraFiles = []*os.File{d}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tpm: swtpm: %w", err)
	}
	h := s.hw()
	h.swtpm, h.swtpmDone = cmd.Process, make(chan struct{})
	done := h.swtpmDone
	go func() { cmd.Wait(); close(done) }()
	s.undo = append(s.undo, func() { stopSWTPM(h) })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("tpm: swtpm exited: %s", tailFile(log.Name(), 1024))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tpm: swtpm made no socket within 10 s: %s", tailFile(log.Name(), 1024))
		}
	}
	s.env.TPMSocket = sock
	return nil
}

func stopSWTPM(h *instanceHW) {
	if h == nil || h.swtpm == nil {
		return
	}
	select {
	case <-h.swtpmDone:
		return
	case <-time.After(2 * time.Second): // it ends by itself once QEMU has gone
	}
	h.swtpm.Kill()
	<-h.swtpmDone
}

// pciDevices binds the spec's PCI devices to vfio-pci for the VM's user.
func (s *start) pciDevices() error {
	if len(s.spec.PCIDevices) == 0 {
		return nil
	}
	if s.m.cfg.Devices == nil {
		return fmt.Errorf("pci_devices: %w on this host", ErrNoDevices)
	}
	record := filepath.Join(s.stateDir, PCIRecord)
	addrs, err := s.m.cfg.Devices.ClaimPCI(s.spec.ID, s.uid, s.spec.PCIDevices, record)
	if err != nil {
		return devError(err)
	}
	s.hw().pciRecord, s.hw().pci = record, addrs
	s.undo = append(s.undo, func() {
		if err := s.m.cfg.Devices.ReleasePCI(record); err != nil {
			s.m.cfg.Log.Error("runner: PCI devices not given back", "id", s.spec.ID, "err", err)
		}
	})
	s.env.PCIDevices = addrs
	return nil
}

// usbDevices opens the spec's USB devices present on the host for QEMU;
// one that is not there is noted, and the VM starts without it.
func (s *start) usbDevices() error {
	if len(s.spec.USBDevices) == 0 {
		return nil
	}
	h := s.hw()
	for i, u := range s.spec.USBDevices {
		att := &usbAttachment{USBAttachment: api.USBAttachment{Spec: u}, id: qemu.USBHostID(i)}
		h.usb = append(h.usb, att)
		if s.m.cfg.Devices == nil {
			att.Problem = ErrNoDevices.Error()
			continue
		}
		d, err := s.m.cfg.Devices.FindUSB(s.spec.ID, u)
		var f *os.File
		if err == nil {
			f, err = s.m.cfg.Devices.OpenUSB(s.spec.ID, d)
		}
		if err != nil {
			att.Problem = "not attached at start: " + err.Error()
			s.m.cfg.Log.Warn("runner: USB device not attached", "id", s.spec.ID, "usb", u.String(), "err", err)
			continue
		}
		port := d.Port
		s.undo = append(s.undo, func() { s.m.cfg.Devices.ReleaseUSB(s.spec.ID, port) })
		att.setDevice(d)
		s.env.USB = append(s.env.USB, qemu.USBHost{Index: i, FDSet: s.fdSet("usb "+u.String(), f)})
	}
	return nil
}

func (a *usbAttachment) setDevice(d api.USBDevice) {
	a.Port, a.Bus, a.Device, a.VendorID, a.ProductID, a.Present = d.Port, d.Bus, d.Device, d.VendorID, d.ProductID, true
}

// hugePages makes sure the pool has a free huge page for each 2 MiB of the
// guest's RAM, growing it for this VM (and shrinking it again when the VM
// stops).
func (s *start) hugePages() error {
	if !s.spec.HugePages {
		return nil
	}
	need := s.spec.MemoryMiB * 1024 * 1024 / qemu.HugePageBytes
	grown, err := s.m.growHugePages(need)
	if err != nil {
		return specProblem("huge_pages", err)
	}
	s.hw().hugeGrown = grown
	s.undo = append(s.undo, func() { s.m.shrinkHugePages(grown) })
	return nil
}

func (m *Manager) hugeDir() string {
	if m.cfg.HugePagesDir != "" {
		return m.cfg.HugePagesDir
	}
	return DefaultHugePagesDir
}

func readInt(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// growHugePages adds pages to the pool until need are free and not
// reserved by another VM; it returns how many it added.
func (m *Manager) growHugePages(need int) (int, error) {
	m.hugeMu.Lock()
	defer m.hugeMu.Unlock()
	dir := m.hugeDir()
	total, err := readInt(filepath.Join(dir, "nr_hugepages"))
	if err != nil {
		return 0, fmt.Errorf("the host has no 2 MiB huge pages: %w", err)
	}
	free, _ := readInt(filepath.Join(dir, "free_hugepages"))
	resv, _ := readInt(filepath.Join(dir, "resv_hugepages"))
	short := need - (free - resv)
	if short <= 0 {
		return 0, nil
	}
	if err := os.WriteFile(filepath.Join(dir, "nr_hugepages"), []byte(strconv.Itoa(total+short)), 0); err != nil {
		return 0, fmt.Errorf("growing the huge page pool by %d: %w", short, err)
	}
	now, _ := readInt(filepath.Join(dir, "nr_hugepages"))
	if got := now - total; got < short {
		os.WriteFile(filepath.Join(dir, "nr_hugepages"), []byte(strconv.Itoa(total)), 0)
		return 0, fmt.Errorf("the VM needs %d huge pages of 2 MiB and %d are free; the host could add only %d of the %d more (too little memory, or too fragmented)",
			need, free-resv, got, short)
	}
	return short, nil
}

// shrinkHugePages takes n pages out of the pool again (the kernel frees
// only pages nobody uses).
func (m *Manager) shrinkHugePages(n int) {
	if n <= 0 {
		return
	}
	m.hugeMu.Lock()
	defer m.hugeMu.Unlock()
	p := filepath.Join(m.hugeDir(), "nr_hugepages")
	total, err := readInt(p)
	if err == nil {
		err = os.WriteFile(p, []byte(strconv.Itoa(max(total-n, 0))), 0)
	}
	if err != nil {
		m.cfg.Log.Warn("runner: huge page pool not shrunk", "pages", n, "err", err)
	}
}

// memoryLock lets a QEMU with PCI devices lock the guest's RAM (VFIO pins
// it for DMA), RAM plus 1 GiB as libvirt allows, then lets it create the
// machine: it waited in --preconfig, since under its sandbox it cannot
// raise its own limit.
func (s *start) memoryLock() error {
	if len(s.env.PCIDevices) == 0 {
		return nil
	}
	limit := uint64(s.spec.MemoryMiB+1024) << 20
	if err := unix.Prlimit(s.inst.pid, unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		return fmt.Errorf("raising QEMU's locked-memory limit to %d MiB: %w", limit>>20, err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, contTimeout)
	defer cancel()
	return s.inst.mon.Run(ctx, "x-exit-preconfig", nil, nil)
}

// attachHW hands the instance what the earlier steps set up.
func (s *start) attachHW() error {
	h := s.hw()
	h.accel, h.fdsets = s.accel, s.env.FDSets
	spec := s.spec.Clone()
	h.spec = &spec
	s.inst.hw = h
	return nil
}

// startSpec is the spec inst was started with (v.spec for a re-attached
// QEMU); m.mu held.
func (v *vm) startSpec(inst *instance) api.VMSpec {
	if inst.hw != nil && inst.hw.spec != nil {
		return *inst.hw.spec
	}
	return v.spec
}

// placeVCPUs pins each vCPU thread to its host CPU, and keeps every thread
// of a VM bound to a NUMA node on that node's CPUs (its memory is bound
// there by QEMU's memory backend).
func (s *start) placeVCPUs() error {
	c := s.spec.CPU
	if len(c.Pin) == 0 && c.NUMANode == nil {
		return nil
	}
	online, err := onlineCPUs()
	if err != nil {
		return err
	}
	if n := c.NUMANode; n != nil {
		cpus, err := nodeCPUs(*n)
		if err != nil {
			return specProblem("cpu.numa_node", err)
		}
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(s.inst.pid) + "/task")
		if err != nil {
			return err
		}
		var set unix.CPUSet
		for _, cpu := range cpus {
			set.Set(cpu)
		}
		for _, t := range tasks {
			tid, _ := strconv.Atoi(t.Name())
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cpu.numa_node: thread %d: %w", tid, err)
			}
		}
	}
	if len(c.Pin) == 0 {
		return nil
	}
	for i, cpu := range c.Pin {
		if !online[cpu] {
			return specProblem(fmt.Sprintf("cpu.pin[%d]", i), fmt.Errorf("host CPU %d is not online here (online: %s)", cpu, cpuList(online)))
		}
	}
	var cpus []struct {
		Index    int `json:"cpu-index"`
		ThreadID int `json:"thread-id"`
	}
	ctx, cancel := context.WithTimeout(s.ctx, contTimeout)
	defer cancel()
	if err := s.inst.mon.Run(ctx, "query-cpus-fast", nil, &cpus); err != nil {
		return err
	}
	for _, v := range cpus {
		if v.Index < 0 || v.Index >= len(c.Pin) || v.ThreadID <= 0 {
			continue
		}
		var set unix.CPUSet
		set.Set(c.Pin[v.Index])
		if err := unix.SchedSetaffinity(v.ThreadID, &set); err != nil {
			return fmt.Errorf("cpu.pin[%d]: vCPU thread %d: %w", v.Index, v.ThreadID, err)
		}
	}
	return nil
}

// onlineCPUs are the host CPUs vmkernel may run on.
func onlineCPUs() (map[int]bool, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for i := range 1024 {
		if set.IsSet(i) {
			out[i] = true
		}
	}
	return out, nil
}

func cpuList(cpus map[int]bool) string {
	var out []string
	for i := range 1024 {
		if cpus[i] {
			out = append(out, strconv.Itoa(i))
		}
	}
	return strings.Join(out, ",")
}

// nodeCPUs reads a NUMA node's CPUs (its sysfs cpulist, "0-3,8-11").
func nodeCPUs(node int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/node/node%d/cpulist", node))
	if err != nil {
		return nil, fmt.Errorf("no NUMA node %d on this host", node)
	}
	var out []int
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		z := a
		if ok {
			if z, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := a; i <= z; i++ {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("NUMA node %d has no CPU", node)
	}
	return out, nil
}

// balloonPolling asks the balloon driver for the guest's memory figures
// every 2 seconds (qom-get guest-stats then answers them).
func (s *start) balloonPolling() error {
	if s.spec.Balloon == nil {
		return nil
	}
	s.hw().balloonMiB = s.spec.MemoryMiB
	ctx, cancel := context.WithTimeout(s.ctx, contTimeout)
	defer cancel()
	return s.inst.mon.Run(ctx, "qom-set", map[string]any{
		"path": "/machine/peripheral/" + qemu.BalloonID, "property": "guest-stats-polling-interval", "value": 2}, nil)
}

// releaseHW gives back what a QEMU process that has ended held: its PCI
// devices (from the record, whoever started it), its USB devices, the huge
// pages added for it; it stops its swtpm if that lingers.
func (m *Manager) releaseHW(id string, inst *instance) {
	h := inst.hw
	if m.cfg.Devices != nil {
		if err := m.cfg.Devices.ReleasePCI(filepath.Join(m.cfg.StateRoot, id, PCIRecord)); err != nil {
			m.cfg.Log.Error("runner: PCI devices not given back", "id", id, "err", err)
		}
	}
	if h == nil {
		return
	}
	if taps := h.hot.taps(); len(taps) > 0 && m.cfg.Switches != nil {
		m.removeTaps(id, taps) // a NIC plugged in or out renamed nothing
	}
	stopSWTPM(h)
	for _, u := range h.usb {
		if u.Present && m.cfg.Devices != nil {
			m.cfg.Devices.ReleaseUSB(id, u.Port)
		}
	}
	m.shrinkHugePages(h.hugeGrown)
}

// recoverPCI deals with a PCI record a previous vmkernel left: the devices
// stay with a QEMU still running, and go back to the host otherwise.
func (m *Manager) recoverPCI(id string, running bool) {
	if m.cfg.Devices == nil {
		return
	}
	record := filepath.Join(m.cfg.StateRoot, id, PCIRecord)
	if _, err := os.Stat(record); err != nil {
		return
	}
	var err error
	if running {
		err = m.cfg.Devices.AdoptPCI(record)
	} else {
		err = m.cfg.Devices.ReleasePCI(record)
	}
	if err != nil {
		m.cfg.Log.Error("runner: PCI devices of a previous run", "id", id, "running", running, "err", err)
	}
}

// runtime adds what h holds to a VM's runtime (m.mu held).
func (h *instanceHW) runtime(r *api.VMRuntime) {
	if h == nil {
		return
	}
	for _, u := range h.usb {
		r.USB = append(r.USB, u.USBAttachment)
	}
	r.PCI = append([]string(nil), h.pci...)
	r.TPM = h.swtpm != nil
}
