// Package vswitch manages Plinth's virtual switches: each one a Linux bridge
// named BridgePrefix + its name, created with netlink, optionally holding a
// physical uplink NIC, with one persistent tap per VM NIC as its ports. The
// switch definitions are kept in a state directory and the bridges are made
// again (or adopted when they exist) when a Manager opens it.
package vswitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"golang.org/x/sys/unix"
)

// BridgePrefix starts the name of every switch's bridge.
const BridgePrefix = "pvs-"

// StateFile holds the switch definitions in the state directory.
const StateFile = "switches.json"

// ifNameMax is the longest Linux interface name (IFNAMSIZ - 1).
const ifNameMax = 15

// MaxNameLen is the longest switch name (its bridge name must fit IFNAMSIZ).
const MaxNameLen = ifNameMax - len(BridgePrefix)

const schemaVersion = 1

// Sentinel errors, for errors.Is.
var (
	// ErrNotFound: no switch (or interface) of this name.
	ErrNotFound = errors.New("virtual switch not found")
	// ErrExists: a switch of this name is already defined.
	ErrExists = errors.New("virtual switch already exists")
	// ErrInUse: the switch still has taps, or the uplink is taken.
	ErrInUse = errors.New("in use")
	// ErrInvalid: a name or uplink that cannot be used.
	ErrInvalid = errors.New("invalid virtual switch request")
)

// Config is what a Manager needs.
type Config struct {
	// Dir is the state directory (created if missing).
	Dir string
	// NetNS is the network namespace the switches live in; nil means the
	// one of the calling process (on the appliance: the host's).
	NetNS *netns.NsHandle
	// Log receives what happens to switches; nil discards.
	Log *slog.Logger
}

// def is one switch as persisted.
type def struct {
	Name   string `json:"name"`
	Uplink string `json:"uplink,omitempty"`
}

type stateFile struct {
	Version  int   `json:"version"`
	Switches []def `json:"switches"`
}

// Manager owns the virtual switches. It is safe for concurrent use.
type Manager struct {
	cfg Config
	h   *netlink.Handle

	mu       sync.Mutex
	defs     map[string]def
	problems []error
}

// Open loads the switch definitions from cfg.Dir and makes each switch's
// bridge (adopting an existing one) with its uplink. A switch that cannot be
// made is kept defined and reported by Problems.
func Open(cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("vswitch: state directory: %w", err)
	}
	// Only rtnetlink: a handle for every family would also open XFRM and
	// netfilter sockets, which the appliance's kernel (their modules not
	// loaded) refuses with "protocol not supported".
	var h *netlink.Handle
	var err error
	if cfg.NetNS != nil {
		h, err = netlink.NewHandleAt(*cfg.NetNS, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("vswitch: netlink: %w", err)
	}
	m := &Manager{cfg: cfg, h: h, defs: map[string]def{}}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, StateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		h.Close()
		return nil, fmt.Errorf("vswitch: %w", err)
	default:
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil {
			h.Close()
			return nil, fmt.Errorf("vswitch: %s: %w", StateFile, err)
		}
		if st.Version != schemaVersion {
			h.Close()
			return nil, fmt.Errorf("vswitch: %s: schema version %d, want %d", StateFile, st.Version, schemaVersion)
		}
		for _, d := range st.Switches {
			if msg := CheckName(d.Name); msg != "" {
				m.problems = append(m.problems, fmt.Errorf("vswitch: switch %q: %s; skipped", d.Name, msg))
				continue
			}
			m.defs[d.Name] = d
			if err := m.ensure(d); err != nil {
				m.problems = append(m.problems, err)
				cfg.Log.Error("vswitch: switch not ready", "switch", d.Name, "err", err)
			}
		}
	}
	return m, nil
}

// Close releases the netlink handle; bridges and taps stay.
func (m *Manager) Close() error {
	m.h.Close()
	return nil
}

// Problems lists what went wrong making the defined switches at Open.
func (m *Manager) Problems() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.problems)
}

// CheckName returns what is wrong with a switch name, or "" if nothing.
func CheckName(name string) string {
	if msg := api.CheckName(name); msg != "" {
		return msg
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("longer than %d characters", MaxNameLen)
	}
	return ""
}

// checkIfName returns what is wrong with an interface name, or "".
func checkIfName(name string) string {
	if name == "" {
		return "required"
	}
	if len(name) > ifNameMax {
		return fmt.Sprintf("longer than %d characters", ifNameMax)
	}
	if name == "." || name == ".." {
		return "not an interface name"
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return fmt.Sprintf("character %q not allowed", c)
		}
	}
	return ""
}

// BridgeName is the bridge of the switch named name.
func BridgeName(name string) string { return BridgePrefix + name }

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// bridgeModuleWait bounds the wait for the bridge driver to register.
const bridgeModuleWait = 15 * time.Second

// ensure makes d's bridge (or adopts it), enslaves its uplink and sets both up.
func (m *Manager) ensure(d def) error {
	br, err := m.bridge(d.Name, true)
	if err != nil {
		return err
	}
	if d.Uplink != "" {
		if err := m.attachUplink(br, d.Uplink); err != nil {
			return err
		}
	}
	if err := m.h.LinkSetUp(br); err != nil {
		return fmt.Errorf("vswitch: switch %s: bridge up: %w", d.Name, err)
	}
	return nil
}

// bridge returns the switch's bridge, creating it when create is set.
func (m *Manager) bridge(name string, create bool) (netlink.Link, error) {
	bn := BridgeName(name)
	l, err := m.h.LinkByName(bn)
	if err == nil {
		if l.Type() != "bridge" {
			return nil, fmt.Errorf("vswitch: switch %s: %w: interface %s exists and is a %s, not a bridge", name, ErrInUse, bn, l.Type())
		}
		return l, nil
	}
	if !isNotFound(err) {
		return nil, fmt.Errorf("vswitch: switch %s: %w", name, err)
	}
	if !create {
		return nil, fmt.Errorf("vswitch: switch %s: bridge %s: %w", name, bn, ErrNotFound)
	}
	// EOPNOTSUPP: no bridge driver yet. The kernel asks the modprobe
	// helper for it, but when the appliance init is loading the module at
	// that moment the request returns before the driver has registered:
	// give it a few seconds.
	for deadline := time.Now().Add(bridgeModuleWait); ; {
		err = m.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bn}})
		if !errors.Is(err, unix.EOPNOTSUPP) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("vswitch: switch %s: creating bridge %s: %w", name, bn, err)
	}
	m.cfg.Log.Info("vswitch: bridge created", "switch", name, "bridge", bn)
	if l, err = m.h.LinkByName(bn); err != nil {
		return nil, fmt.Errorf("vswitch: switch %s: %w", name, err)
	}
	return l, nil
}

// attachUplink enslaves the NIC named uplink to br and sets it up.
func (m *Manager) attachUplink(br netlink.Link, uplink string) error {
	up, err := m.h.LinkByName(uplink)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("vswitch: uplink %s: %w", uplink, ErrNotFound)
		}
		return fmt.Errorf("vswitch: uplink %s: %w", uplink, err)
	}
	switch idx := up.Attrs().MasterIndex; {
	case idx == br.Attrs().Index:
	case idx != 0:
		return fmt.Errorf("vswitch: uplink %s: %w: it is enslaved to another interface (index %d)", uplink, ErrInUse, idx)
	case up.Type() == "bridge" || up.Type() == "tuntap" || up.Attrs().Name == "lo":
		return fmt.Errorf("vswitch: uplink %s: %w: a %s cannot be an uplink", uplink, ErrInvalid, up.Type())
	default:
		if err := m.h.LinkSetMaster(up, br); err != nil {
			return fmt.Errorf("vswitch: uplink %s: joining %s: %w", uplink, br.Attrs().Name, err)
		}
	}
	if err := m.h.LinkSetUp(up); err != nil {
		return fmt.Errorf("vswitch: uplink %s: up: %w", uplink, err)
	}
	return nil
}

// save persists the definitions; the caller holds mu.
func (m *Manager) save() error {
	st := stateFile{Version: schemaVersion, Switches: []def{}}
	for _, d := range m.defs {
		st.Switches = append(st.Switches, d)
	}
	sort.Slice(st.Switches, func(i, j int) bool { return st.Switches[i].Name < st.Switches[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(m.cfg.Dir, StateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("vswitch: saving switches: %w", err)
	}
	return nil
}

// Create defines the switch name, makes its bridge (an existing bridge of
// that name is adopted) and enslaves uplink to it when uplink is not empty.
func (m *Manager) Create(name, uplink string) error {
	if msg := CheckName(name); msg != "" {
		return fmt.Errorf("vswitch: switch name %q: %w: %s", name, ErrInvalid, msg)
	}
	if uplink != "" {
		if msg := checkIfName(uplink); msg != "" {
			return fmt.Errorf("vswitch: uplink %q: %w: %s", uplink, ErrInvalid, msg)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.defs[name]; ok {
		return fmt.Errorf("vswitch: switch %s: %w", name, ErrExists)
	}
	for _, d := range m.defs {
		if uplink != "" && d.Uplink == uplink {
			return fmt.Errorf("vswitch: uplink %s: %w: it is the uplink of switch %s", uplink, ErrInUse, d.Name)
		}
	}
	_, lerr := m.h.LinkByName(BridgeName(name))
	existed := lerr == nil
	d := def{Name: name, Uplink: uplink}
	undo := func() {
		if uplink != "" {
			if l, err := m.h.LinkByName(uplink); err == nil && l.Attrs().MasterIndex != 0 {
				m.h.LinkSetNoMaster(l)
			}
		}
		if !existed {
			if l, err := m.h.LinkByName(BridgeName(name)); err == nil {
				m.h.LinkDel(l)
			}
		}
	}
	if err := m.ensure(d); err != nil {
		undo()
		return err
	}
	m.defs[name] = d
	if err := m.save(); err != nil {
		delete(m.defs, name)
		undo()
		return err
	}
	m.cfg.Log.Info("vswitch: switch created", "switch", name, "uplink", uplink)
	return nil
}

// ports lists the interfaces enslaved to br.
func (m *Manager) ports(br netlink.Link) ([]netlink.Link, error) {
	links, err := m.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("vswitch: listing interfaces: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l)
		}
	}
	return out, nil
}

// Delete deletes the switch: its uplink is released and its bridge deleted.
// A switch with other ports than its uplink (VM taps) is refused: ErrInUse.
func (m *Manager) Delete(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.defs[name]
	if !ok {
		return fmt.Errorf("vswitch: switch %s: %w", name, ErrNotFound)
	}
	br, err := m.bridge(name, false)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if br != nil {
		ports, err := m.ports(br)
		if err != nil {
			return err
		}
		var busy []string
		for _, p := range ports {
			if p.Attrs().Name != d.Uplink {
				busy = append(busy, p.Attrs().Name)
			}
		}
		if len(busy) > 0 {
			return fmt.Errorf("vswitch: switch %s: %w: ports %v are attached", name, ErrInUse, busy)
		}
		for _, p := range ports {
			if err := m.h.LinkSetNoMaster(p); err != nil {
				return fmt.Errorf("vswitch: switch %s: releasing uplink %s: %w", name, p.Attrs().Name, err)
			}
		}
		if err := m.h.LinkDel(br); err != nil {
			return fmt.Errorf("vswitch: switch %s: deleting bridge: %w", name, err)
		}
	}
	delete(m.defs, name)
	if err := m.save(); err != nil {
		m.defs[name] = d
		return err
	}
	m.cfg.Log.Info("vswitch: switch deleted", "switch", name)
	return nil
}

// List describes the defined switches, sorted by name.
func (m *Manager) List() ([]api.Switch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Switch, 0, len(m.defs))
	for _, d := range m.defs {
		s := api.Switch{Name: d.Name, Bridge: BridgeName(d.Name), Uplink: d.Uplink, Ports: []string{}}
		br, err := m.bridge(d.Name, false)
		switch {
		case errors.Is(err, ErrNotFound):
			s.Problem = "bridge missing"
		case err != nil:
			s.Problem = err.Error()
		default:
			s.MTU = br.Attrs().MTU
			s.Up = br.Attrs().Flags&net.FlagUp != 0
			ports, err := m.ports(br)
			if err != nil {
				return nil, err
			}
			for _, p := range ports {
				s.Ports = append(s.Ports, p.Attrs().Name)
			}
			sort.Strings(s.Ports)
			if d.Uplink != "" && !slices.Contains(s.Ports, d.Uplink) {
				s.Problem = "uplink " + d.Uplink + " is not attached"
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// inNetNS runs f on a thread in the Manager's network namespace (tap
// creation goes through /dev/net/tun, which acts in the caller's namespace).
func (m *Manager) inNetNS(f func() error) error {
	if m.cfg.NetNS == nil {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("vswitch: current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(*m.cfg.NetNS); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("vswitch: entering network namespace: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime ends it with this goroutine.
		return errors.Join(ferr, fmt.Errorf("vswitch: leaving network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// AddTap makes a persistent tap (single queue, owned by root) named tapName,
// puts it on the switch switchName, sets it up, and returns a descriptor
// attached to it (IFF_TAP, IFF_NO_PI, IFF_VNET_HDR) for an unprivileged
// QEMU, which could not attach to it itself. A tap of that name left over
// (e.g. by a vmkernel that died) is adopted.
func (m *Manager) AddTap(switchName, tapName string) (*os.File, error) {
	if err := m.addTap(switchName, tapName); err != nil {
		return nil, err
	}
	var f *os.File
	err := m.inNetNS(func() error {
		var err error
		f, err = openTap(tapName)
		return err
	})
	if err != nil {
		m.RemoveTap(tapName)
		return nil, fmt.Errorf("vswitch: opening tap %s: %w", tapName, err)
	}
	return f, nil
}

// openTap attaches a new descriptor of /dev/net/tun to the tap name (in
// the calling thread's network namespace).
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

func (m *Manager) addTap(switchName, tapName string) error {
	if msg := checkIfName(tapName); msg != "" {
		return fmt.Errorf("vswitch: tap %q: %w: %s", tapName, ErrInvalid, msg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.defs[switchName]
	if !ok {
		return fmt.Errorf("vswitch: switch %s: %w", switchName, ErrNotFound)
	}
	// A defined switch whose bridge could not be made at Open (or was
	// deleted by hand) is made now: the VM's start is what needs it.
	if err := m.ensure(d); err != nil {
		return err
	}
	br, err := m.bridge(switchName, false)
	if err != nil {
		return err
	}
	tap, err := m.h.LinkByName(tapName)
	switch {
	case err == nil:
		if _, ok := tap.(*netlink.Tuntap); !ok {
			return fmt.Errorf("vswitch: tap %s: %w: interface exists and is a %s", tapName, ErrInUse, tap.Type())
		}
	case !isNotFound(err):
		return fmt.Errorf("vswitch: tap %s: %w", tapName, err)
	default:
		t := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: tapName},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_TUN_EXCL | netlink.TUNTAP_ONE_QUEUE,
			Owner:     0, Group: 0,
		}
		if err := m.inNetNS(func() error { return m.h.LinkAdd(t) }); err != nil {
			return fmt.Errorf("vswitch: creating tap %s: %w", tapName, err)
		}
		if tap, err = m.h.LinkByName(tapName); err != nil {
			return fmt.Errorf("vswitch: tap %s: %w", tapName, err)
		}
	}
	err = m.h.LinkSetMaster(tap, br)
	if err == nil && tap.Attrs().MTU != br.Attrs().MTU {
		err = m.h.LinkSetMTU(tap, br.Attrs().MTU)
	}
	if err == nil {
		err = m.h.LinkSetUp(tap)
	}
	if err != nil {
		m.h.LinkDel(tap)
		return fmt.Errorf("vswitch: tap %s on switch %s: %w", tapName, switchName, err)
	}
	return nil
}

// RemoveTap deletes the tap tapName; a tap that is not there is no error.
func (m *Manager) RemoveTap(tapName string) error {
	if msg := checkIfName(tapName); msg != "" {
		return fmt.Errorf("vswitch: tap %q: %w: %s", tapName, ErrInvalid, msg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tap, err := m.h.LinkByName(tapName)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vswitch: tap %s: %w", tapName, err)
	}
	if _, ok := tap.(*netlink.Tuntap); !ok {
		return fmt.Errorf("vswitch: %s: %w: not a tap but a %s", tapName, ErrInvalid, tap.Type())
	}
	if err := m.h.LinkDel(tap); err != nil {
		return fmt.Errorf("vswitch: deleting tap %s: %w", tapName, err)
	}
	return nil
}
