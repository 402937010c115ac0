package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/qmp"
)

// Changes to a running VM's hardware: disks, NICs and USB devices plugged
// in and out, the balloon's target. Everything reaches QEMU as a
// descriptor sent over QMP (SCM_RIGHTS: add-fd into an fd set, or getfd),
// then blockdev-add, netdev_add, device_add; disks and NICs go into the
// spare root ports a q35 VM was started with. A change that fails is
// undone, leaving the VM as it was.

// Errors of live changes.
var (
	// ErrHotplug: QEMU or the guest did not take or give up a device.
	ErrHotplug = errors.New("hot-plug failed")
	// ErrNoSlot: the VM has no free hot-plug slot left.
	ErrNoSlot = errors.New("no free hot-plug slot")
	// ErrBalloon: the VM has no balloon, or its target is out of bounds.
	ErrBalloon = errors.New("balloon")
)

// Timings of live changes.
var (
	// unplugTimeout bounds the wait for the guest to let a PCIe device go
	// (Linux's pciehp waits 5 s after the attention button).
	unplugTimeout = 60 * time.Second
	// hotplugQMPTimeout bounds one QMP command of a live change.
	hotplugQMPTimeout = 20 * time.Second
)

// hotplug is what a running QEMU has of the spec's disks, NICs and USB
// devices: each one's QEMU IDs in spec order, so that the i-th can be
// unplugged whatever was plugged or unplugged before it.
type hotplug struct {
	mu     sync.Mutex
	init   bool
	n      int // for unique IDs and fd sets
	disks  []plugged
	nics   []plugged
	ports  map[string]bool // spare root ports in use
	events []chan qmp.Event
}

// plugged is one device in a running QEMU.
type plugged struct {
	id, node, netdev, port, tap string
	fdsets                      []int
}

// DiskID, NICID and NetdevID are the IDs Cmdline gives the spec's i-th
// disk, NIC and its netdev.
func diskID(i int) string   { return "disk" + strconv.Itoa(i) }
func nicID(i int) string    { return "nic" + strconv.Itoa(i) }
func netdevID(i int) string { return "net" + strconv.Itoa(i) }

// initHot records the devices QEMU was started with (under h.mu).
func (h *hotplug) initLocked(spec api.VMSpec, sets []qemu.FDSet) {
	if h.init {
		return
	}
	h.init = true
	h.ports = map[string]bool{}
	for i := range spec.Disks {
		p := plugged{id: diskID(i), node: diskID(i) + "-fmt"}
		prefix := fmt.Sprintf("disks[%d] ", i)
		for _, s := range sets {
			if strings.HasPrefix(s.Opaque, prefix) && !containsInt(p.fdsets, s.Set) {
				p.fdsets = append(p.fdsets, s.Set)
			}
		}
		h.disks = append(h.disks, p)
	}
	taps := specTaps(spec)
	for i := range spec.NICs {
		p := plugged{id: nicID(i), netdev: netdevID(i)}
		if taps != nil {
			p.tap = taps[i]
		}
		h.nics = append(h.nics, p)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// event hands a QMP event to the live changes waiting for one.
func (h *hotplug) event(ev qmp.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.events {
		select {
		case c <- ev:
		default:
		}
	}
}

// listen starts collecting events for a wait; stop with the returned func.
func (h *hotplug) listen() (<-chan qmp.Event, func()) {
	c := make(chan qmp.Event, 16)
	h.mu.Lock()
	h.events = append(h.events, c)
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, x := range h.events {
			if x == c {
				h.events = append(h.events[:i], h.events[i+1:]...)
				break
			}
		}
	}
}

// live returns the running VM's instance, its spec and its hot-plug state.
func (m *Manager) live(id, op string) (*vm, *instance, *hotplug, error) {
	v, inst, err := m.running(id, op, api.VMRunning, api.VMPaused)
	if err != nil {
		return nil, nil, nil, err
	}
	m.mu.Lock()
	if inst.hw == nil {
		inst.hw = &instanceHW{}
	}
	h := &inst.hw.hot
	spec := v.startSpec(inst)
	sets := inst.hw.fdsets
	m.mu.Unlock()
	h.mu.Lock()
	h.initLocked(spec, sets)
	h.mu.Unlock()
	return v, inst, h, nil
}

func qctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, hotplugQMPTimeout)
}

func (m *Manager) qmpRun(ctx context.Context, inst *instance, cmd string, args, result any) error {
	c, cancel := qctx(ctx)
	defer cancel()
	if err := inst.mon.Run(c, cmd, args, result); err != nil {
		return fmt.Errorf("%s: %w: %w", cmd, ErrHotplug, err)
	}
	return nil
}

// addFD puts f into a new fd set of inst's QEMU and returns the set's ID.
func (m *Manager) addFD(ctx context.Context, inst *instance, h *hotplug, opaque string, f *os.File) (int, error) {
	h.mu.Lock()
	h.n++
	set := 1000 + h.n
	h.mu.Unlock()
	c, cancel := qctx(ctx)
	defer cancel()
	if err := inst.mon.RunWithFile(c, "add-fd", map[string]any{"fdset-id": set, "opaque": opaque}, nil, f); err != nil {
		return 0, fmt.Errorf("add-fd: %w: %w", ErrHotplug, err)
	}
	return set, nil
}

func (m *Manager) removeFDSets(inst *instance, sets []int) {
	for _, s := range sets {
		c, cancel := context.WithTimeout(context.Background(), hotplugQMPTimeout)
		inst.mon.Run(c, "remove-fd", map[string]any{"fdset-id": s}, nil)
		cancel()
	}
}

// port takes a free spare root port ("" on a machine that plugs into its
// root bus).
func (h *hotplug) port(machine string) (string, error) {
	if machine != api.MachineQ35 {
		return "", nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range qemu.HotplugPorts {
		p := qemu.HotplugPort(i)
		if !h.ports[p] {
			h.ports[p] = true
			return p, nil
		}
	}
	return "", fmt.Errorf("all %d spare PCIe slots of the VM are taken; stop it to add more: %w", qemu.HotplugPorts, ErrNoSlot)
}

func (h *hotplug) freePort(p string) {
	h.mu.Lock()
	delete(h.ports, p)
	h.mu.Unlock()
}

func (m *Manager) nextID(h *hotplug, prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	return prefix + strconv.Itoa(h.n)
}

// AttachDisk plugs disk d into the running VM id as its next disk (only
// virtio-blk disks can be). It returns how long QEMU took to take it.
func (m *Manager) AttachDisk(ctx context.Context, id string, d api.Disk) error {
	if d.Bus != api.BusVirtioBlk {
		return specProblem("bus", fmt.Errorf("only virtio-blk disks can be plugged into a running VM, not %s", d.Bus))
	}
	v, inst, h, err := m.live(id, "plug a disk into")
	if err != nil {
		return err
	}
	one := v.spec
	one.Disks, one.CDROM = []api.Disk{d}, nil
	disks, _, err := OpenImages(m.cfg.Datastores, one, true)
	if err != nil {
		return fieldRename(err, "disks[0]", "")
	}
	im := disks[0]
	defer im.Close()
	dev := m.nextID(h, "hpdisk")
	p := plugged{id: dev, node: dev + "-fmt"}
	undo := func() { m.removeFDSets(inst, p.fdsets) }
	var ferr error
	node := im.Node(func(link *datastore.Image) string {
		files := []*os.File{link.File}
		if link == im && !d.ReadOnly {
			ro, err := reopenReadOnly(link.File)
			if err != nil {
				ferr = err
				return ""
			}
			defer ro.Close()
			files = append(files, ro)
		}
		set := 0
		for _, f := range files {
			if set == 0 {
				s, err := m.addFD(ctx, inst, h, fmt.Sprintf("%s %s:%s", dev, link.Datastore, link.Path), f)
				if err != nil {
					ferr = err
					return ""
				}
				set = s
				p.fdsets = append(p.fdsets, s)
				continue
			}
			c, cancel := qctx(ctx)
			err := inst.mon.RunWithFile(c, "add-fd", map[string]any{"fdset-id": set}, nil, f)
			cancel()
			if err != nil {
				ferr = fmt.Errorf("add-fd: %w: %w", ErrHotplug, err)
			}
		}
		return qemu.FDSetName(set)
	})
	if ferr != nil {
		undo()
		return ferr
	}
	args, err := node.Blockdev(qemu.NodeOptions{Name: p.node, ReadOnly: d.ReadOnly,
		Direct: d.Cache == api.CacheNone || d.Cache == api.CacheDirectsync, NoFlush: d.Cache == api.CacheUnsafe})
	if err != nil {
		undo()
		return err
	}
	if err := m.qmpRun(ctx, inst, "blockdev-add", args, nil); err != nil {
		undo()
		return err
	}
	undo = func() {
		m.qmpRun(context.Background(), inst, "blockdev-del", map[string]any{"node-name": p.node}, nil)
		m.removeFDSets(inst, p.fdsets)
	}
	if p.port, err = h.port(v.spec.Machine); err != nil {
		undo()
		return err
	}
	dargs := map[string]any{"driver": "virtio-blk-pci", "id": dev, "drive": p.node, "write-cache": onOff(writeCache(d.Cache))}
	if p.port != "" {
		dargs["bus"] = p.port
	}
	if err := m.qmpRun(ctx, inst, "device_add", dargs, nil); err != nil {
		h.freePort(p.port)
		undo()
		return err
	}
	h.mu.Lock()
	h.disks = append(h.disks, p)
	h.mu.Unlock()
	m.mu.Lock()
	v.spec.Disks = append(v.spec.Disks, d)
	m.mu.Unlock()
	m.cfg.Log.Info("runner: disk plugged in", "id", id, "device", dev, "disk", d.Datastore+":"+d.Path)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func writeCache(cache string) bool {
	return cache != api.CacheWritethrough && cache != api.CacheDirectsync
}

// fieldRename renames a validation problem's field prefix (OpenImages
// names the one disk disks[0]; the request's field is the disk itself).
func fieldRename(err error, from, to string) error {
	var ip *imageProblem
	if errors.As(err, &ip) {
		f := strings.TrimPrefix(strings.TrimPrefix(ip.field, from), ".")
		if to != "" {
			f = to + "." + f
		}
		return &imageProblem{field: f, err: ip.err}
	}
	return err
}

// unplug asks QEMU to take device dev out and waits for the guest to let
// it go (DEVICE_DELETED); on time out the device stays, and so does the VM.
func (m *Manager) unplug(ctx context.Context, inst *instance, h *hotplug, dev string) error {
	events, stop := h.listen()
	defer stop()
	if err := m.qmpRun(ctx, inst, "device_del", map[string]any{"id": dev}, nil); err != nil {
		return err
	}
	t := time.NewTimer(unplugTimeout)
	defer t.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Name != "DEVICE_DELETED" {
				continue
			}
			var d struct {
				Device string `json:"device"`
			}
			json.Unmarshal(ev.Data, &d)
			if d.Device == dev {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("the guest did not release %s within %s (does it support hot-unplug? it is still attached): %w", dev, unplugTimeout, ErrHotplug)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest to release %s: %w", dev, ctx.Err())
		case <-inst.exited:
			return fmt.Errorf("QEMU exited: %w", ErrHotplug)
		}
	}
}

// DetachDisk unplugs the running VM's disk at index.
func (m *Manager) DetachDisk(ctx context.Context, id string, index int) error {
	v, inst, h, err := m.live(id, "unplug a disk from")
	if err != nil {
		return err
	}
	h.mu.Lock()
	if index < 0 || index >= len(h.disks) {
		h.mu.Unlock()
		return specProblem("index", fmt.Errorf("the VM has no disk %d", index))
	}
	p := h.disks[index]
	h.mu.Unlock()
	if err := m.unplug(ctx, inst, h, p.id); err != nil {
		return err
	}
	m.qmpRun(ctx, inst, "blockdev-del", map[string]any{"node-name": p.node}, nil)
	m.removeFDSets(inst, p.fdsets)
	h.freePort(p.port)
	h.mu.Lock()
	h.disks = append(h.disks[:index], h.disks[index+1:]...)
	h.mu.Unlock()
	m.mu.Lock()
	if index < len(v.spec.Disks) {
		v.spec.Disks = append(v.spec.Disks[:index:index], v.spec.Disks[index+1:]...)
	}
	m.mu.Unlock()
	m.cfg.Log.Info("runner: disk unplugged", "id", id, "device", p.id)
	return nil
}

// AttachNIC plugs NIC n (its MAC set) into the running VM id as its next NIC.
func (m *Manager) AttachNIC(ctx context.Context, id string, n api.NIC) error {
	v, inst, h, err := m.live(id, "plug a NIC into")
	if err != nil {
		return err
	}
	dev := m.nextID(h, "hpnic")
	p := plugged{id: dev, netdev: dev + "-net"}
	net := map[string]any{"id": p.netdev, "type": "user"}
	var undo []func()
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}
	if n.Switch != "" {
		if m.cfg.Switches == nil {
			return fmt.Errorf("switch %q: %w on this host", n.Switch, ErrNoSwitches)
		}
		h.mu.Lock()
		p.tap = TapName(id, 16+h.n) // beyond any NIC index a start gives
		h.mu.Unlock()
		f, err := m.cfg.Switches.AddTap(n.Switch, p.tap)
		if err != nil {
			return specProblem("switch", err)
		}
		defer f.Close()
		undo = append(undo, func() { m.removeTaps(id, []string{p.tap}) })
		if err := m.getfd(ctx, inst, p.netdev+"-fd", f); err != nil {
			return fail(err)
		}
		net = map[string]any{"id": p.netdev, "type": "tap", "fd": p.netdev + "-fd"}
		if m.accelOf(inst) == api.AccelKVM && n.Model == api.NICVirtio {
			if vh, err := os.OpenFile("/dev/vhost-net", os.O_RDWR, 0); err == nil {
				err = m.getfd(ctx, inst, p.netdev+"-vhost", vh)
				vh.Close()
				if err == nil {
					net["vhost"], net["vhostfd"] = true, p.netdev+"-vhost"
				}
			}
		}
	}
	if err := m.qmpRun(ctx, inst, "netdev_add", net, nil); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { m.qmpRun(context.Background(), inst, "netdev_del", map[string]any{"id": p.netdev}, nil) })
	if p.port, err = h.port(v.spec.Machine); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { h.freePort(p.port) })
	driver := "e1000e"
	if n.Model == api.NICVirtio {
		driver = "virtio-net-pci"
	}
	dargs := map[string]any{"driver": driver, "id": dev, "netdev": p.netdev, "mac": n.MAC}
	if p.port != "" {
		dargs["bus"] = p.port
	}
	if err := m.qmpRun(ctx, inst, "device_add", dargs, nil); err != nil {
		return fail(err)
	}
	h.mu.Lock()
	h.nics = append(h.nics, p)
	h.mu.Unlock()
	m.mu.Lock()
	v.spec.NICs = append(v.spec.NICs, n)
	m.mu.Unlock()
	m.cfg.Log.Info("runner: NIC plugged in", "id", id, "device", dev, "mac", n.MAC)
	return nil
}

// accelOf is how inst runs (its QEMU's -accel, as recorded at start).
func (m *Manager) accelOf(inst *instance) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if inst.hw != nil && inst.hw.accel != "" {
		return inst.hw.accel
	}
	return m.cfg.Accel
}

func (m *Manager) getfd(ctx context.Context, inst *instance, name string, f *os.File) error {
	c, cancel := qctx(ctx)
	defer cancel()
	if err := inst.mon.RunWithFile(c, "getfd", map[string]any{"fdname": name}, nil, f); err != nil {
		return fmt.Errorf("getfd: %w: %w", ErrHotplug, err)
	}
	return nil
}

// DetachNIC unplugs the running VM's NIC at index.
func (m *Manager) DetachNIC(ctx context.Context, id string, index int) error {
	v, inst, h, err := m.live(id, "unplug a NIC from")
	if err != nil {
		return err
	}
	h.mu.Lock()
	if index < 0 || index >= len(h.nics) {
		h.mu.Unlock()
		return specProblem("index", fmt.Errorf("the VM has no NIC %d", index))
	}
	p := h.nics[index]
	h.mu.Unlock()
	if err := m.unplug(ctx, inst, h, p.id); err != nil {
		return err
	}
	m.qmpRun(ctx, inst, "netdev_del", map[string]any{"id": p.netdev}, nil)
	if p.tap != "" && m.cfg.Switches != nil {
		m.removeTaps(id, []string{p.tap})
	}
	h.freePort(p.port)
	h.mu.Lock()
	h.nics = append(h.nics[:index], h.nics[index+1:]...)
	h.mu.Unlock()
	m.mu.Lock()
	if index < len(v.spec.NICs) {
		v.spec.NICs = append(v.spec.NICs[:index:index], v.spec.NICs[index+1:]...)
	}
	m.mu.Unlock()
	m.cfg.Log.Info("runner: NIC unplugged", "id", id, "device", p.id)
	return nil
}

// Taps are the taps of the VM's NICs in spec order ("" for NAT), as its
// running QEMU has them.
func (m *Manager) Taps(id string) []string {
	m.mu.Lock()
	v := m.vms[id]
	var inst *instance
	if v != nil {
		inst = v.inst
	}
	var spec api.VMSpec
	if v != nil {
		spec = v.spec
	}
	m.mu.Unlock()
	if inst == nil || inst.hw == nil {
		return specTaps(spec)
	}
	h := &inst.hw.hot
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.init {
		return specTaps(spec)
	}
	out := make([]string, len(h.nics))
	for i, p := range h.nics {
		out[i] = p.tap
	}
	return out
}

// hotTaps are the taps a running QEMU's hot-plugged NICs had, for removal
// at exit (the start's taps are removed by their names).
func (h *hotplug) taps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.nics {
		if p.tap != "" {
			out = append(out, p.tap)
		}
	}
	return out
}

// AttachUSB gives the host USB device u to the running VM id.
func (m *Manager) AttachUSB(ctx context.Context, id string, u api.USBPassthrough) (api.USBAttachment, error) {
	v, inst, h, err := m.live(id, "attach a USB device to")
	if err != nil {
		return api.USBAttachment{}, err
	}
	if v.spec.Machine == api.MachineMicroVM {
		return api.USBAttachment{}, specProblem("usb", errors.New("microvm has no USB controller"))
	}
	if m.cfg.Devices == nil {
		return api.USBAttachment{}, ErrNoDevices
	}
	d, err := m.cfg.Devices.FindUSB(id, u)
	if err != nil {
		return api.USBAttachment{}, err
	}
	m.mu.Lock()
	hw := inst.hw
	for _, a := range hw.usb {
		if a.Present && a.Port == d.Port {
			m.mu.Unlock()
			return api.USBAttachment{}, fmt.Errorf("USB device at port %s is attached to this VM already: %w", d.Port, ErrState)
		}
	}
	m.mu.Unlock()
	f, err := m.cfg.Devices.OpenUSB(id, d)
	if err != nil {
		return api.USBAttachment{}, err
	}
	defer f.Close()
	release := func() { m.cfg.Devices.ReleaseUSB(id, d.Port) }
	set, err := m.addFD(ctx, inst, h, "usb "+u.String(), f)
	if err != nil {
		release()
		return api.USBAttachment{}, err
	}
	att := &usbAttachment{USBAttachment: api.USBAttachment{Spec: u}, id: m.nextID(h, "hpusb")}
	att.setDevice(d)
	if err := m.qmpRun(ctx, inst, "device_add", map[string]any{"driver": "usb-host", "id": att.id, "bus": qemu.USBBus,
		"hostdevice": qemu.FDSetName(set)}, nil); err != nil {
		m.removeFDSets(inst, []int{set})
		release()
		return api.USBAttachment{}, err
	}
	att.fdset = set
	m.mu.Lock()
	hw.usb = append(hw.usb, att)
	v.spec.USBDevices = append(v.spec.USBDevices, u)
	m.mu.Unlock()
	m.cfg.Log.Info("runner: USB device attached", "id", id, "device", att.id, "port", d.Port, "usb", d.VendorID+":"+d.ProductID)
	return att.USBAttachment, nil
}

// DetachUSB takes the running VM's USB device at index (in its
// usb_devices) away; one that left the host already only goes from the list.
func (m *Manager) DetachUSB(ctx context.Context, id string, index int) error {
	v, inst, h, err := m.live(id, "detach a USB device from")
	if err != nil {
		return err
	}
	m.mu.Lock()
	hw := inst.hw
	if index < 0 || index >= len(hw.usb) {
		m.mu.Unlock()
		return specProblem("index", fmt.Errorf("the VM has no USB device %d", index))
	}
	att := hw.usb[index]
	m.mu.Unlock()
	if att.Present || att.fdset != 0 || att.Port != "" {
		// USB devices leave at once (no guest handshake); a device that
		// vanished from the host is still a QEMU device until deleted.
		if err := m.unplug(ctx, inst, h, att.id); err != nil && att.Port != "" && m.cfg.Devices != nil &&
			m.cfg.Devices.USBPresent(att.Port, att.Bus, att.Device) {
			return err
		}
		if att.fdset != 0 {
			m.removeFDSets(inst, []int{att.fdset})
		}
		if m.cfg.Devices != nil && att.Port != "" {
			m.cfg.Devices.ReleaseUSB(id, att.Port)
		}
	}
	m.mu.Lock()
	hw.usb = append(hw.usb[:index:index], hw.usb[index+1:]...)
	if index < len(v.spec.USBDevices) {
		v.spec.USBDevices = append(v.spec.USBDevices[:index:index], v.spec.USBDevices[index+1:]...)
	}
	m.mu.Unlock()
	m.cfg.Log.Info("runner: USB device detached", "id", id, "device", att.id)
	return nil
}

// USB lists the USB devices given to the running VM, each checked to be
// still on the host.
func (m *Manager) USB(id string) []api.USBAttachment {
	m.mu.Lock()
	v := m.vms[id]
	if v == nil || v.inst == nil || v.inst.hw == nil {
		m.mu.Unlock()
		return nil
	}
	atts := append([]*usbAttachment(nil), v.inst.hw.usb...)
	m.mu.Unlock()
	out := make([]api.USBAttachment, 0, len(atts))
	for _, a := range atts {
		if a.Present && m.cfg.Devices != nil && !m.cfg.Devices.USBPresent(a.Port, a.Bus, a.Device) {
			a.Present = false
			a.Problem = fmt.Sprintf("the device left the host while attached (port %s); the guest lost it and the VM runs on: detach it, or plug it back in and attach it again", a.Port)
			m.cfg.Log.Warn("runner: USB device vanished", "id", id, "port", a.Port)
		}
		out = append(out, a.USBAttachment)
	}
	return out
}

// SetBalloon sets the running VM's balloon target (MiB), between its
// spec's balloon.min_mib and memory_mib.
func (m *Manager) SetBalloon(ctx context.Context, id string, targetMiB int) error {
	v, inst, err := m.running(id, "set the balloon of", api.VMRunning, api.VMPaused)
	if err != nil {
		return err
	}
	m.mu.Lock()
	spec := v.spec
	m.mu.Unlock()
	if spec.Balloon == nil {
		return fmt.Errorf("the VM has no balloon (its spec's balloon is not set): %w", ErrBalloon)
	}
	if targetMiB < spec.Balloon.MinMiB || targetMiB > spec.MemoryMiB {
		return specProblem("target_mib", fmt.Errorf("%d MiB is outside the VM's balloon range, %d MiB (balloon.min_mib, the least the guest keeps) to %d MiB (memory_mib)",
			targetMiB, spec.Balloon.MinMiB, spec.MemoryMiB))
	}
	if err := m.qmpRun(ctx, inst, "balloon", map[string]any{"value": int64(targetMiB) << 20}, nil); err != nil {
		return err
	}
	m.mu.Lock()
	if inst.hw == nil {
		inst.hw = &instanceHW{}
	}
	inst.hw.balloonMiB = targetMiB
	m.mu.Unlock()
	m.cfg.Log.Info("runner: balloon target set", "id", id, "target_mib", targetMiB)
	return nil
}

// Balloon is the running VM's balloon: its target, what the guest has,
// and what the guest last reported of its memory.
func (m *Manager) Balloon(ctx context.Context, id string) (api.BalloonStatus, error) {
	v, inst, err := m.running(id, "read the balloon of", api.VMRunning, api.VMPaused)
	if err != nil {
		return api.BalloonStatus{}, err
	}
	m.mu.Lock()
	spec := v.spec
	target := spec.MemoryMiB
	if inst.hw != nil && inst.hw.balloonMiB > 0 {
		target = inst.hw.balloonMiB
	}
	m.mu.Unlock()
	if spec.Balloon == nil {
		return api.BalloonStatus{}, fmt.Errorf("the VM has no balloon: %w", ErrBalloon)
	}
	st := api.BalloonStatus{TargetMiB: target, MinMiB: spec.Balloon.MinMiB, MaxMiB: spec.MemoryMiB}
	var q struct {
		Actual int64 `json:"actual"`
	}
	if err := m.qmpRun(ctx, inst, "query-balloon", nil, &q); err != nil {
		return st, err
	}
	st.ActualMiB = int(q.Actual >> 20)
	var gs struct {
		Stats map[string]int64 `json:"stats"`
	}
	if err := m.qmpRun(ctx, inst, "qom-get", map[string]any{"path": "/machine/peripheral/" + qemu.BalloonID, "property": "guest-stats"}, &gs); err == nil {
		if v, ok := gs.Stats["stat-free-memory"]; ok && v >= 0 {
			n := int(v >> 20)
			st.GuestFreeMiB = &n
		}
		if v, ok := gs.Stats["stat-total-memory"]; ok && v >= 0 {
			n := int(v >> 20)
			st.GuestTotalMiB = &n
		}
	}
	return st, nil
}
