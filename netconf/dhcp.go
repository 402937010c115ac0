package netconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// What an Apply put in place is kept in the run directory (AppliedFile),
// so the Keeper can look after it (renew its DHCP lease) and vmkernel can
// report it; every Apply and every Keeper step holds the run directory's
// lock (LockFile), so a console change and a renewal never interleave.
const (
	AppliedFile = "network-applied.json"
	LockFile    = "network.lock"
)

// Applied is what the last Apply (or the Keeper since) put in place.
type Applied struct {
	Config Config `json:"config"`
	Result Result `json:"result"`
	// ACK is the DHCP server's last acknowledgement (the raw packet) and
	// Obtained when it came; none when static or while DHCP got nothing.
	ACK      []byte    `json:"ack,omitempty"`
	Obtained time.Time `json:"obtained,omitzero"`
	// Problem is what is wrong now: no DHCP answer yet (the Keeper goes on
	// asking), a lease that ran out with no server answering.
	Problem string `json:"problem,omitempty"`
	// Generation counts Applies: the Keeper tells a new configuration
	// from its own updates of the same one.
	Generation uint64 `json:"generation"`
}

// LeaseTimes are a DHCP lease's moments (RFC 2131 4.4.5): renew with the
// server that gave it at Renew (T1), with any server at Rebind (T2); the
// address is the host's until Expire. Infinite leases have none.
type LeaseTimes struct {
	Renew, Rebind, Expire time.Time
	Infinite              bool
}

// infiniteLease is the lease time option's "forever" (0xffffffff seconds).
const infiniteLease = time.Duration(0xffffffff) * time.Second

// Times reads the lease times of ack, obtained at t. A lease without a
// lease time (which RFC 2131 forbids) counts as one hour; renewal and
// rebinding times that do not fit inside the lease take the defaults, half
// and seven eighths of it.
func Times(ack *dhcpv4.DHCPv4, t time.Time) LeaseTimes {
	lease := ack.IPAddressLeaseTime(time.Hour)
	if lease >= infiniteLease {
		return LeaseTimes{Infinite: true}
	}
	if lease < 2*time.Second {
		lease = 2 * time.Second
	}
	t1 := ack.IPAddressRenewalTime(lease / 2)
	t2 := ack.IPAddressRebindingTime(lease * 7 / 8)
	if t2 <= 0 || t2 > lease {
		t2 = lease * 7 / 8
	}
	if t1 <= 0 || t1 > t2 {
		t1 = min(lease/2, t2)
	}
	return LeaseTimes{Renew: t.Add(t1), Rebind: t.Add(t2), Expire: t.Add(lease)}
}

// Lease is the recorded lease: the ACK and its times (ok false: none).
func (ap Applied) Lease() (ack *dhcpv4.DHCPv4, times LeaseTimes, ok bool) {
	if len(ap.ACK) == 0 {
		return nil, LeaseTimes{}, false
	}
	ack, err := dhcpv4.FromBytes(ap.ACK)
	if err != nil {
		return nil, LeaseTimes{}, false
	}
	return ack, Times(ack, ap.Obtained), true
}

// API is the lease as the API reports it (nil: none).
func (ap Applied) API() *api.DHCPLease {
	ack, t, ok := ap.Lease()
	if !ok {
		return nil
	}
	out := &api.DHCPLease{Address: ap.Result.Address, Obtained: ap.Obtained, Renew: t.Renew, Rebind: t.Rebind, Expires: t.Expire}
	if s := ack.ServerIdentifier(); s != nil {
		out.Server = s.String()
	}
	return out
}

// ReadApplied reads runDir's record of the last Apply (ok false: none).
func ReadApplied(runDir string) (ap Applied, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(runDir, AppliedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ap, false, nil
	}
	if err != nil {
		return ap, false, err
	}
	if err := json.Unmarshal(b, &ap); err != nil {
		return ap, false, fmt.Errorf("read %s: %w", filepath.Join(runDir, AppliedFile), err)
	}
	return ap, true, nil
}

func writeApplied(runDir string, ap Applied) error {
	b, err := json.MarshalIndent(ap, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(runDir, AppliedFile), append(b, '\n'), 0o644)
}

// lock takes the run directory's network lock (none without a run
// directory), waiting while ctx lasts.
func (a *Applier) lock(ctx context.Context) (unlock func(), err error) {
	if a.RunDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(a.RunDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(a.RunDir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("the management network is being changed elsewhere (%s is held): %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond): // flock has no timeout of its own
		}
	}
}

// dhcpMods are the options every DHCP request of the host carries: who it
// is (vendor class, host name) and what it wants to know.
func dhcpMods(xid bool) []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("Plinth")),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
			dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue,
			dhcpv4.OptionNTPServers),
	}
	if h, err := os.Hostname(); err == nil && ValidHostname(h) && h != "localhost" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(h)))
	}
	if xid {
		if id, err := dhcpv4.GenerateTransactionID(); err == nil {
			mods = append(mods, dhcpv4.WithTransactionID(id))
		}
	}
	return mods
}

// waitLink waits up to wait for link's carrier (IFF_LOWER_UP), read through
// netlink so it holds in whichever network namespace the caller is.
func waitLink(ctx context.Context, link netlink.Link, wait time.Duration) error {
	name := link.Attrs().Name
	deadline := time.Now().Add(wait)
	for {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("DHCP on %s: %w", name, err)
		}
		if l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("DHCP on %s: no link after %s (is the cable in?)", name, wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("DHCP on %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// acquire asks for a lease from scratch (DISCOVER, OFFER, REQUEST, ACK),
// with retries each waiting up to DHCPWait, within ctx.
func (a *Applier) acquire(ctx context.Context, link netlink.Link, retries int) (*dhcpv4.DHCPv4, error) {
	name := link.Attrs().Name
	if err := waitLink(ctx, link, a.linkWait()); err != nil {
		return nil, err
	}
	c, err := nclient4.New(name, nclient4.WithTimeout(a.dhcpWait()), nclient4.WithRetry(retries))
	if err != nil {
		return nil, fmt.Errorf("DHCP on %s: %w", name, err)
	}
	defer c.Close()
	lease, err := c.Request(ctx, dhcpMods(false)...)
	if err != nil {
		return nil, fmt.Errorf("DHCP on %s: %w", name, noAnswer(err))
	}
	return lease.ACK, nil
}

// renew asks the server that gave ack to extend it (RENEWING).
func (a *Applier) renew(ctx context.Context, link netlink.Link, ack *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	name := link.Attrs().Name
	c, err := nclient4.New(name, nclient4.WithTimeout(a.dhcpWait()), nclient4.WithRetry(2))
	if err != nil {
		return nil, fmt.Errorf("renew the DHCP lease on %s: %w", name, err)
	}
	defer c.Close()
	l, err := c.Renew(ctx, &nclient4.Lease{Offer: ack, ACK: ack}, dhcpMods(true)...)
	if err != nil {
		return nil, fmt.Errorf("renew the DHCP lease on %s with %s: %w", name, ack.ServerIdentifier(), noAnswer(err))
	}
	return l.ACK, nil
}

// noAnswer says a timeout as what it is.
func noAnswer(err error) error {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		return err
	}
	if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no DHCP server answered: %w", err)
	}
	return err
}

// configureLease puts ack in place on link: its address (replacing any
// other IPv4 address there, an earlier lease's), its routes (classless
// static routes, else the router as default gateway) and, unless cfg names
// its own, its DNS servers and search domains.
func (a *Applier) configureLease(link netlink.Link, ack *dhcpv4.DHCPv4, cfg Config) (netip.Prefix, error) {
	name := link.Attrs().Name
	ip4 := ack.YourIPAddr.To4()
	if ip4 == nil || ip4.IsUnspecified() {
		return netip.Prefix{}, fmt.Errorf("DHCP on %s: the server's answer holds no address", name)
	}
	mask := ack.SubnetMask()
	if len(mask) != net.IPv4len {
		mask = net.CIDRMask(32, 32)
	}
	bits, _ := mask.Size()
	addr, _ := netip.AddrFromSlice(ip4)
	prefix := netip.PrefixFrom(addr, bits)
	if addrs, err := netlink.AddrList(link, netlink.FAMILY_V4); err == nil {
		for _, old := range addrs {
			if !old.IP.Equal(ip4) {
				_ = netlink.AddrDel(link, &old)
			}
		}
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip4, Mask: mask}}); err != nil {
		return prefix, fmt.Errorf("set the DHCP address %s on %s: %w", prefix, name, err)
	}
	if routes := ack.ClasslessStaticRoute(); routes != nil {
		for _, rt := range routes {
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: rt.Dest, Gw: rt.Router}
			if r.Gw == nil || r.Gw.Equal(net.IPv4zero) {
				r.Scope = netlink.SCOPE_LINK
			}
			if err := netlink.RouteReplace(r); err != nil {
				return prefix, fmt.Errorf("DHCP route %s on %s: %w", rt, name, err)
			}
		}
	} else if gw := ack.Router(); len(gw) > 0 {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw[0]}); err != nil {
			return prefix, fmt.Errorf("default route via %s on %s: %w", gw[0], name, err)
		}
	}
	var ns []net.IP
	for _, d := range cfg.DNS {
		ns = append(ns, d.AsSlice())
	}
	if len(ns) == 0 {
		ns = ack.DNS()
	}
	search := cfg.Search
	if len(search) == 0 {
		if l := ack.DomainSearch(); l != nil {
			search = l.Labels
		} else if d := strings.TrimSuffix(ack.DomainName(), "."); d != "" {
			search = []string{d}
		}
	}
	if a.ResolvConf != "" {
		if err := writeResolvConf(a.ResolvConf, ns, search); err != nil {
			return prefix, err
		}
	}
	return prefix, nil
}
