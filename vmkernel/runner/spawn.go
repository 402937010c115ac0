package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/cloudinit"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// Starting a VM is a list of named steps (firecracker-go-sdk's handler
// lists): each does one thing and may leave an undo, run last-first when a
// later step fails; a failure names its step.
//
// QEMU runs as the VM's own unprivileged user with its seccomp sandbox on.
// Everything it needs that a user supplied is opened here, by vmkernel, and
// handed over as a descriptor: each disk, CD-ROM and UEFI variables file
// (checked as datastore.OpenImage checks) in a QEMU fd set, each tap. QEMU
// opens by name only its own run directory (its sockets, the copies of a
// direct-boot kernel and initrd) and the read-only system files it ships
// with.

// start is one QEMU start under way.
type start struct {
	m    *Manager
	spec api.VMSpec
	ctx  context.Context
	// paused: the guest's vCPUs stay stopped (no cont).
	paused bool

	runDir, stateDir string
	accel            string // kvm or tcg, for this start
	uid              int    // the VM's user (0: vmkernel is not root; no switch)
	env              qemu.Env
	files            []*os.File // inherited by QEMU: fd 3 + index
	images           []*datastore.Image
	bootFiles        []string // kernel and initrd copies, removed once QEMU runs
	inst             *instance
	undo             []func()
	stderrPath       string
	hwState          *instanceHW // issue 18's devices (hardware.go)
}

// spawnStep is one named step of a start.
type spawnStep struct {
	name string
	do   func(*start) error
}

// spawnSteps are the steps of a start, in order.
var spawnSteps = []spawnStep{
	{"acceleration", (*start).acceleration},
	{"directories", (*start).directories},
	{"user", (*start).user},
	{"firmware", (*start).firmware},
	{"tpm", (*start).tpm},
	{"pci devices", (*start).pciDevices},
	{"usb devices", (*start).usbDevices},
	{"huge pages", (*start).hugePages},
	{"images", (*start).openImages},
	{"cloud-init", (*start).cloudInit},
	{"direct boot", (*start).directBoot},
	{"taps", (*start).taps},
	{"exec", (*start).exec},
	{"cgroup", (*start).cgroup},
	{"qmp", (*start).qmp},
	{"memory lock", (*start).memoryLock},
	{"confinement", (*start).confinement},
	{"runtime record", (*start).record},
	{"serial console", (*start).serial},
	{"vcpu placement", (*start).placeVCPUs},
	{"balloon", (*start).balloonPolling},
	{"hardware", (*start).attachHW},
	{"cont", (*start).cont},
}

// spawn starts one QEMU process for spec and returns it running the guest.
func (m *Manager) spawn(ctx context.Context, spec api.VMSpec, paused bool) (*instance, error) {
	s := &start{m: m, spec: spec, ctx: ctx, paused: paused,
		runDir: filepath.Join(m.cfg.RunRoot, spec.ID), stateDir: filepath.Join(m.cfg.StateRoot, spec.ID)}
	defer s.release()
	for _, st := range spawnSteps {
		if err := st.do(s); err != nil {
			for i := len(s.undo) - 1; i >= 0; i-- {
				s.undo[i]()
			}
			if s.stderrPath != "" {
				if tail := tailFile(s.stderrPath, 2048); tail != "" {
					err = fmt.Errorf("%w; QEMU said: %s", err, tail)
				}
			}
			m.cfg.Log.Warn("runner: VM start failed", "id", spec.ID, "step", st.name, "err", err)
			return nil, fmt.Errorf("VM %s: %w: step %s: %w", spec.ID, ErrStartFailed, st.name, err)
		}
	}
	return s.inst, nil
}

// release closes vmkernel's copies of what QEMU inherited (the images'
// files among them) and removes the boot file copies (QEMU has read them
// once it answers QMP).
func (s *start) release() {
	for _, im := range s.images {
		im.Close()
	}
	for _, f := range s.files {
		f.Close() // an image's file is closed already: harmless
	}
	for _, p := range s.bootFiles {
		os.Remove(p)
	}
}

// pass hands f to QEMU and returns its descriptor number there.
func (s *start) pass(f *os.File) int {
	s.files = append(s.files, f)
	return 3 + len(s.files) - 1
}

// fdSet puts the given descriptors in a new fd set and returns its name.
func (s *start) fdSet(opaque string, files ...*os.File) string {
	set := len(s.env.FDSets) + 1
	if len(s.env.FDSets) > 0 {
		set = s.env.FDSets[len(s.env.FDSets)-1].Set + 1
	}
	for _, f := range files {
		s.env.FDSets = append(s.env.FDSets, qemu.FDSet{Set: set, FD: s.pass(f), Opaque: opaque})
	}
	return qemu.FDSetName(set)
}

// acceleration decides KVM or TCG for this start (AccelNow waits for a
// KVM module still loading).
func (s *start) acceleration() error {
	s.accel = s.m.cfg.Accel
	if s.m.cfg.AccelNow != nil {
		var err error
		if s.accel, err = s.m.cfg.AccelNow(s.ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *start) directories() error {
	for _, d := range []string{s.runDir, s.stateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for _, name := range []string{qemu.QMPSocket, qemu.SerialSocket, qemu.VNCSocket, qemu.AgentSocket, "kernel", "initrd"} {
		os.Remove(filepath.Join(s.runDir, name)) // stale from a QEMU that died
	}
	return nil
}

// user gives the run directory to the VM's user: QEMU makes its sockets
// there, and can write nowhere else.
func (s *start) user() error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, err := s.m.vmUser(s.spec.ID)
	if err != nil {
		return err
	}
	s.uid = uid
	if err := os.Chown(s.runDir, uid, uid); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return os.Chmod(s.runDir, 0o700)
}

func (s *start) firmware() error {
	if !s.spec.UEFI() {
		return nil
	}
	if err := s.m.EnsureVars(s.ctx, s.spec); err != nil {
		return err
	}
	vars, err := s.m.OpenVars(s.spec, true)
	if err != nil {
		return err
	}
	s.images = append(s.images, vars)
	ro, err := reopenReadOnly(vars.File)
	if err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	code, err := os.Open(s.m.cfg.OVMFCode)
	if err != nil {
		ro.Close()
		return fmt.Errorf("UEFI firmware: %w", err)
	}
	s.env.OVMFCode = &qemu.Node{Format: api.FormatRaw, Filename: s.fdSet("firmware", code)}
	s.env.OVMFVars = &qemu.Node{Format: api.FormatQcow2, Filename: s.fdSet("uefi-vars", vars.File, ro)}
	return nil
}

// reopenReadOnly opens f's file again, read-only (QEMU's fd sets want one
// descriptor per access mode it may reopen the file with).
func reopenReadOnly(f *os.File) (*os.File, error) {
	return os.Open("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

// imageError makes a refused or missing image a field problem of the spec
// (422), keeping the error's chain for errors.Is.
func imageError(field string, err error) error {
	if errors.Is(err, datastore.ErrRefused) || errors.Is(err, datastore.ErrNotFound) ||
		errors.Is(err, datastore.ErrEscapes) || errors.Is(err, datastore.ErrInvalid) {
		return &imageProblem{field: field, err: err}
	}
	return fmt.Errorf("%s: %w", field, err)
}

// imageProblem is an image the spec names that cannot be used: a
// validation problem of its field.
type imageProblem struct {
	field string
	err   error
}

func (e *imageProblem) Error() string { return e.field + ": " + e.err.Error() }
func (e *imageProblem) Unwrap() []error {
	return []error{e.err, &api.ValidationError{Problems: []api.FieldProblem{{Field: e.field, Message: e.err.Error()}}}}
}

// OpenImages opens and checks every disk and the CD-ROM of spec as a start
// would (write: disks that are not read-only read-write); the caller
// closes them. It is how vmkernel checks a spec's images before keeping it.
func OpenImages(datastores map[string]string, spec api.VMSpec, write bool) (disks []*datastore.Image, cdrom *datastore.Image, err error) {
	defer func() {
		if err != nil {
			for _, im := range disks {
				im.Close()
			}
			if cdrom != nil {
				cdrom.Close()
			}
		}
	}()
	open := func(field, ds, path string, rw bool) (*datastore.Image, error) {
		root, ok := datastores[ds]
		if !ok {
			return nil, &imageProblem{field: field + ".datastore", err: fmt.Errorf("datastore %q: %w", ds, datastore.ErrNotFound)}
		}
		im, err := datastore.Datastore{Name: ds, Root: root}.OpenImage(path, rw)
		if err != nil {
			return nil, imageError(field+".path", err)
		}
		return im, nil
	}
	for i, d := range spec.Disks {
		field := fmt.Sprintf("disks[%d]", i)
		im, err := open(field, d.Datastore, d.Path, write && !d.ReadOnly)
		if err != nil {
			return nil, nil, err
		}
		disks = append(disks, im)
		if err := im.CheckFormat("a VM disk", api.FormatRaw, api.FormatQcow2, api.FileFormatISO); err != nil {
			return nil, nil, imageError(field+".path", err)
		}
		if got := driverFormat(im.Format); got != d.Format {
			return nil, nil, &imageProblem{field: field + ".format", err: fmt.Errorf(
				"image %s:%s is %s (established from its content when it entered the datastore); the spec says %s",
				d.Datastore, d.Path, im.Format, d.Format)}
		}
	}
	if cd := spec.CDROM; cd != nil {
		cdrom, err = open("cdrom", cd.Datastore, cd.Path, false)
		if err != nil {
			return nil, nil, err
		}
		if err := cdrom.CheckFormat("a CD-ROM", api.FileFormatISO, api.FormatRaw); err != nil {
			return nil, nil, imageError("cdrom.path", err)
		}
	}
	return disks, cdrom, nil
}

// driverFormat is the spec's disk format of an established image format.
func driverFormat(format string) string {
	if datastore.IsRaw(format) {
		return api.FormatRaw
	}
	return format
}

func (s *start) openImages() error {
	disks, cdrom, err := OpenImages(s.m.cfg.Datastores, s.spec, true)
	if err != nil {
		return err
	}
	s.images = append(s.images, disks...)
	if cdrom != nil {
		s.images = append(s.images, cdrom)
	}
	var ferr error
	for i, im := range disks {
		writable := !s.spec.Disks[i].ReadOnly
		node := im.Node(func(link *datastore.Image) string {
			fds := []*os.File{link.File}
			if link == im && writable {
				ro, err := reopenReadOnly(link.File)
				if err != nil && ferr == nil {
					ferr = fmt.Errorf("disks[%d]: %w", i, err)
				}
				if ro != nil {
					fds = append(fds, ro)
				}
			}
			return s.fdSet(fmt.Sprintf("disks[%d] %s:%s", i, link.Datastore, link.Path), fds...)
		})
		s.env.Disks = append(s.env.Disks, node)
	}
	if cdrom != nil {
		node := cdrom.Node(func(i *datastore.Image) string { return s.fdSet("cdrom "+i.Datastore+":"+i.Path, i.File) })
		node.Format = api.FormatRaw
		s.env.CDROM = &node
	}
	return ferr
}

// SeedFile is the VM's cloud-init seed in its state directory.
const SeedFile = "cidata.iso"

// cloudInit writes the VM's cloud-init seed (made anew from the spec at
// every start) and hands it to QEMU read-only.
func (s *start) cloudInit() error {
	if s.spec.CloudInit == nil {
		return nil
	}
	img, err := cloudinit.Image(s.spec)
	if err != nil {
		return err
	}
	p := filepath.Join(s.stateDir, SeedFile)
	if err := atomicfile.Write(p, img, 0o600); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	s.env.Seed = &qemu.Node{Format: api.FormatRaw, Filename: s.fdSet("cloud-init seed", f)}
	return nil
}

// directBoot copies a direct-boot kernel and initrd into the run directory,
// for the VM's user to read: QEMU reads them by name (-kernel, -initrd),
// once, before it answers QMP; the copies go once it does.
func (s *start) directBoot() error {
	k := s.spec.Kernel
	if k == nil {
		return nil
	}
	root, ok := s.m.cfg.Datastores[k.Datastore]
	if !ok {
		return &imageProblem{field: "kernel.datastore", err: fmt.Errorf("datastore %q: %w", k.Datastore, datastore.ErrNotFound)}
	}
	ds := datastore.Datastore{Name: k.Datastore, Root: root}
	cp := func(field, rel, name string) (string, error) {
		src, _, err := ds.Open(rel)
		if err != nil {
			return "", imageError(field, err)
		}
		defer src.Close()
		dst := filepath.Join(s.runDir, name)
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o400)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		s.bootFiles = append(s.bootFiles, dst)
		_, err = io.Copy(out, src)
		if err == nil && s.uid != 0 {
			err = out.Chown(s.uid, s.uid)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("%s: copying %s:%s for QEMU: %w", field, k.Datastore, rel, err)
		}
		return dst, nil
	}
	var err error
	if s.env.Kernel, err = cp("kernel.kernel", k.Kernel, "kernel"); err != nil {
		return err
	}
	if k.Initrd != "" {
		if s.env.Initrd, err = cp("kernel.initrd", k.Initrd, "initrd"); err != nil {
			return err
		}
	}
	return nil
}

// taps makes the taps of the NICs on switches and opens them for QEMU
// (and /dev/vhost-net for virtio NICs on KVM).
func (s *start) taps() error {
	for i, n := range s.spec.NICs {
		if n.Switch == "" {
			continue
		}
		if s.m.cfg.Switches == nil {
			return fmt.Errorf("nics[%d]: switch %q: %w on this host", i, n.Switch, ErrNoSwitches)
		}
		if s.env.Taps == nil {
			s.env.Taps = make([]qemu.Tap, len(s.spec.NICs))
		}
		tap := TapName(s.spec.ID, i)
		f, err := s.m.cfg.Switches.AddTap(n.Switch, tap)
		if err != nil {
			return fmt.Errorf("nics[%d]: %w", i, err)
		}
		s.undo = append(s.undo, func() { s.m.removeTaps(s.spec.ID, []string{tap}) })
		s.env.Taps[i].FD = s.pass(f)
		if s.accel == api.AccelKVM && n.Model == api.NICVirtio {
			if v, err := os.OpenFile("/dev/vhost-net", os.O_RDWR, 0); err == nil {
				s.env.Taps[i].VhostFD = s.pass(v)
			} else {
				s.m.cfg.Log.Warn("runner: no vhost-net; the NIC runs in QEMU", "id", s.spec.ID, "nic", i, "err", err)
			}
		}
	}
	return nil
}

func (s *start) exec() error {
	s.env.QEMU, s.env.Accel, s.env.RunDir = s.m.cfg.QEMU, s.accel, s.runDir
	args, err := qemu.Cmdline(s.spec, s.env)
	if err != nil {
		return err
	}
	args = append(args, "-S")
	s.stderrPath = filepath.Join(s.stateDir, StderrFile)
	stderr, err := os.OpenFile(s.stderrPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer stderr.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	cmd.Dir = s.runDir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.ExtraFiles = s.files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.uid != 0 {
		groups := []uint32{}
		if s.accel == api.AccelKVM {
			if err := grantKVM(); err != nil {
				return err
			}
			groups = append(groups, api.KVMGID)
		}
		// Dropped before exec: QEMU never runs as root, holds no
		// capability, and its sandbox forbids getting any back.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), Groups: groups}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	inst := &instance{pid: cmd.Process.Pid, startedAt: time.Now(), exited: make(chan struct{}), agentStop: make(chan struct{})}
	s.inst = inst
	go func() { // reap at once: the exit status is ours to record
		werr := cmd.Wait()
		inst.exit = exitFromWait(cmd.ProcessState, werr)
		close(inst.exited)
	}()
	s.undo = append(s.undo, func() {
		killGroup(inst.pid)
		select {
		case <-inst.exited:
		case <-time.After(quitGrace):
		}
		os.Remove(filepath.Join(s.stateDir, RuntimeFile))
	})
	inst.startTime, err = procStartTime(inst.pid)
	return err
}

// grantKVM gives /dev/kvm to the KVM group (mode 0660): the appliance has
// no udev to do it.
func grantKVM() error {
	const dev = "/dev/kvm"
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	if st.Gid != api.KVMGID {
		if err := os.Chown(dev, 0, api.KVMGID); err != nil {
			return fmt.Errorf("%s: %w", dev, err)
		}
	}
	if st.Mode&0o777 != 0o660 {
		if err := os.Chmod(dev, 0o660); err != nil {
			return fmt.Errorf("%s: %w", dev, err)
		}
	}
	return nil
}

func (s *start) cgroup() error {
	if s.m.cfg.Cgroups == nil {
		return nil
	}
	// QEMU is still paused (-S): the guest never runs outside its limits.
	var err error
	if s.inst.cgroup, err = s.m.cfg.Cgroups.Place(s.spec.ID, s.inst.pid, limits(s.spec)); err != nil {
		return err
	}
	// Undone after the kill registered before it (undos run last-first).
	s.undo = append(s.undo, func() { s.m.cfg.Cgroups.Remove(s.spec.ID) })
	return nil
}

func (s *start) qmp() error {
	dctx, cancel := context.WithTimeout(s.ctx, qmpDialTimeout)
	defer cancel()
	mon, err := dialQMP(dctx, filepath.Join(s.runDir, qemu.QMPSocket), s.inst.exited)
	if err != nil {
		return err
	}
	s.inst.mon = mon
	s.undo = append(s.undo, func() { mon.Close() })
	return nil
}

// confinement checks, once QEMU answers (its sandbox is on by then), that
// it runs as it was started to: as the VM's user, with no capability,
// under its seccomp filter with no_new_privs. A QEMU found otherwise is
// not let run.
func (s *start) confinement() error {
	c, err := readConfinement(s.inst.pid)
	if err != nil {
		return err
	}
	s.inst.uid, s.inst.sandboxed = c.uid, c.sandboxed()
	if s.uid != 0 && c.uid != s.uid {
		return fmt.Errorf("QEMU runs as uid %d, not the VM's user %d", c.uid, s.uid)
	}
	if !c.sandboxed() {
		return fmt.Errorf("QEMU is not confined: seccomp mode %q, no_new_privs %q, effective capabilities %q", c.seccomp, c.noNewPrivs, c.capEff)
	}
	return nil
}

// procConfinement is what /proc/PID/status says of a process's confinement.
type procConfinement struct {
	uid                         int
	seccomp, noNewPrivs, capEff string
}

func (c procConfinement) sandboxed() bool {
	return c.seccomp == "2" && c.noNewPrivs == "1" && strings.Trim(c.capEff, "0") == ""
}

func readConfinement(pid int) (procConfinement, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procConfinement{}, err
	}
	var c procConfinement
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Uid":
			if f := strings.Fields(v); len(f) > 0 {
				c.uid, _ = strconv.Atoi(f[0])
			}
		case "Seccomp":
			c.seccomp = v
		case "NoNewPrivs":
			c.noNewPrivs = v
		case "CapEff":
			c.capEff = v
		}
	}
	return c, nil
}

func (s *start) record() error {
	return writeRuntime(s.stateDir, runtimeRecord{
		PID: s.inst.pid, StartTime: s.inst.startTime, QMPSocket: filepath.Join(s.runDir, qemu.QMPSocket), StartedAt: s.inst.startedAt,
	})
}

func (s *start) serial() error {
	if !s.spec.Serial {
		return nil
	}
	// Connected before the guest runs, so its first line is logged; a
	// reader without a connection yet keeps trying.
	s.inst.serial = newSerialConn()
	sctx, cancel := context.WithTimeout(s.ctx, serialDialTimeout/2)
	defer cancel()
	s.inst.serialFirst, _ = dialSerial(sctx, filepath.Join(s.runDir, qemu.SerialSocket), s.inst.exited, nil)
	if c := s.inst.serialFirst; c != nil {
		s.undo = append(s.undo, func() { c.Close() })
	}
	return nil
}

func (s *start) cont() error {
	if s.paused {
		return nil
	}
	cctx, cancel := context.WithTimeout(s.ctx, contTimeout)
	defer cancel()
	return s.inst.mon.Run(cctx, "cont", nil, nil)
}

// vmUserFile holds the number of the VM's user in its state directory.
const vmUserFile = "uid"

// vmUser returns the VM's own unprivileged user, allocating one (the
// lowest not recorded for another VM) at its first start.
func (m *Manager) vmUser(id string) (int, error) {
	m.uidMu.Lock()
	defer m.uidMu.Unlock()
	p := filepath.Join(m.cfg.StateRoot, id, vmUserFile)
	if b, err := os.ReadFile(p); err == nil {
		if uid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && uid >= api.VMUIDBase && uid < api.VMUIDBase+api.VMUIDCount {
			return uid, nil
		}
	}
	used := map[int]bool{}
	des, err := os.ReadDir(m.cfg.StateRoot)
	if err != nil {
		return 0, err
	}
	for _, de := range des {
		if de.Name() == id {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(m.cfg.StateRoot, de.Name(), vmUserFile)); err == nil {
			if uid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				used[uid] = true
			}
		}
	}
	for uid := api.VMUIDBase; uid < api.VMUIDBase+api.VMUIDCount; uid++ {
		if !used[uid] {
			if err := os.WriteFile(p, []byte(strconv.Itoa(uid)+"\n"), 0o600); err != nil {
				return 0, err
			}
			return uid, nil
		}
	}
	return 0, fmt.Errorf("no VM user left (%d in use)", api.VMUIDCount)
}
