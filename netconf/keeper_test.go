package netconf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"

	"github.com/plinth/plinth/internal/testenv"
)

// The tests here run the real Applier and Keeper against a real DHCP
// server (server4) across a veth pair between two network namespaces.

// dhcpServer is a site DHCP server whose behaviour a test changes as it
// goes: the address it hands out, the lease time, NAKs, silence.
type dhcpServer struct {
	mu       sync.Mutex
	offer    net.IP
	lease    time.Duration
	silent   bool // answers nothing
	nakOther bool // NAKs a REQUEST for any address but offer
	renewals int  // REQUESTs with ciaddr set (RENEWING)
	requests int
	me       net.IP
}

func (s *dhcpServer) set(f func(s *dhcpServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *dhcpServer) counts() (requests, renewals int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.renewals
}

func (s *dhcpServer) handle(t *testing.T) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		s.mu.Lock()
		if s.silent {
			s.mu.Unlock()
			return
		}
		mt := dhcpv4.MessageTypeOffer
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
		case dhcpv4.MessageTypeRequest:
			s.requests++
			want := req.RequestedIPAddress()
			if !req.ClientIPAddr.IsUnspecified() {
				s.renewals++
				want = req.ClientIPAddr
			}
			mt = dhcpv4.MessageTypeAck
			if s.nakOther && !want.Equal(s.offer) {
				mt = dhcpv4.MessageTypeNak
			}
		default:
			s.mu.Unlock()
			return
		}
		mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.me))}
		if mt != dhcpv4.MessageTypeNak {
			mods = append(mods, dhcpv4.WithYourIP(s.offer), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
				dhcpv4.WithRouter(s.me), dhcpv4.WithDNS(net.ParseIP("192.0.2.53")),
				dhcpv4.WithLeaseTime(uint32(s.lease/time.Second)))
		}
		s.mu.Unlock()
		resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
		if err != nil {
			return
		}
		if _, err := conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}); err != nil {
			t.Logf("DHCP server: %v", err)
		}
	}
}

// dhcpNet is a client namespace with kc0 and a server namespace with ks0
// (192.0.2.1/24) running s.
type dhcpNet struct {
	client, server string
	s              *dhcpServer
}

func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

func newDHCPNet(t *testing.T, lease time.Duration) *dhcpNet {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unmet(t, "needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Unmet(t, "no ip command")
	}
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, time.Now().UnixNano()%100000)
	n := &dhcpNet{client: "pkc-" + id, server: "pks-" + id,
		s: &dhcpServer{offer: net.ParseIP("192.0.2.100").To4(), lease: lease, me: net.ParseIP("192.0.2.1").To4()}}
	ipRun(t, "netns", "add", n.client)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.client).Run() })
	ipRun(t, "netns", "add", n.server)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.server).Run() })
	ipRun(t, "-n", n.client, "link", "add", "kc0", "type", "veth", "peer", "name", "ks0", "netns", n.server)
	ipRun(t, "-n", n.client, "link", "set", "lo", "up")
	ipRun(t, "-n", n.server, "addr", "add", "192.0.2.1/24", "dev", "ks0")
	ipRun(t, "-n", n.server, "link", "set", "ks0", "up")
	var srv *server4.Server
	if err := vswitchtest.Do(n.server, func() (err error) {
		srv, err = server4.NewServer("ks0", &net.UDPAddr{Port: dhcpv4.ServerPort}, n.s.handle(t))
		return err
	}); err != nil {
		t.Fatalf("DHCP server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve()
	return n
}

// logBuf collects log lines for the test to look at.
type logBuf struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
	l.t.Logf(format, args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testApplier(t *testing.T, log *logBuf) *Applier {
	dir := t.TempDir()
	return &Applier{ResolvConf: filepath.Join(dir, "resolv.conf"), RunDir: filepath.Join(dir, "run"),
		LinkWait: 5 * time.Second, DHCPWait: 400 * time.Millisecond, Logf: log.logf}
}

// keep runs k in the client namespace until the test ends.
func (n *dhcpNet) keep(t *testing.T, k *Keeper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	started := make(chan error, 1)
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := netns.GetFromName(n.client)
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		started <- err
		if err == nil {
			k.Run(ctx)
		}
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
}

// addrs lists kc0's IPv4 addresses.
func (n *dhcpNet) addrs(t *testing.T) []string {
	t.Helper()
	var out []string
	if err := vswitchtest.Do(n.client, func() error {
		l, err := netlink.LinkByName("kc0")
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range as {
			out = append(out, a.IPNet.String())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func (n *dhcpNet) apply(t *testing.T, a *Applier, cfg Config, timeout time.Duration) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r Result
	err := vswitchtest.Do(n.client, func() (err error) { r, err = a.Apply(ctx, cfg); return err })
	return r, err
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var dhcpOnKC0 = Config{Mode: ModeDHCP, NIC: "kc0"}

// A lease of 4 s is renewed with its server at T1 (2 s) over and over:
// the address stays past several lease times, and the record follows.
func TestKeeperRenewsLease(t *testing.T) {
	t.Parallel()
	n := newDHCPNet(t, 4*time.Second)
	log := &logBuf{t: t}
	a := testApplier(t, log)
	r, err := n.apply(t, a, dhcpOnKC0, 20*time.Second)
	if err != nil || r.Address != "192.0.2.100/24" || r.Interface != "kc0" || r.Method != ModeDHCP {
		t.Fatalf("Apply: %+v, %v", r, err)
	}
	if b, _ := os.ReadFile(a.ResolvConf); !strings.Contains(string(b), "nameserver 192.0.2.53") {
		t.Errorf("resolv.conf lacks the lease's DNS server:\n%s", b)
	}
	first, ok, err := ReadApplied(a.RunDir)
	if !ok || err != nil || first.API() == nil || first.API().Server != "192.0.2.1" {
		t.Fatalf("record after Apply: %+v, %v, %v", first, ok, err)
	}
	if l := first.API(); !l.Renew.Equal(first.Obtained.Add(2*time.Second)) || !l.Expires.Equal(first.Obtained.Add(4*time.Second)) {
		t.Errorf("lease times %+v for a 4 s lease obtained at %v", l, first.Obtained)
	}
	n.keep(t, &Keeper{Applier: a, Poll: 200 * time.Millisecond})
	time.Sleep(9 * time.Second) // more than two lease times
	_, renewals := n.s.counts()
	if renewals < 3 {
		t.Errorf("%d renewals in 9 s of a 4 s lease, want at least 3", renewals)
	}
	if got := n.addrs(t); len(got) != 1 || got[0] != "192.0.2.100/24" {
		t.Errorf("kc0 has %v after the lease times, want 192.0.2.100/24", got)
	}
	last, _, _ := ReadApplied(a.RunDir)
	if !last.Obtained.After(first.Obtained.Add(4*time.Second)) || last.Problem != "" || last.Generation != first.Generation {
		t.Errorf("record after the renewals: obtained %v (first %v), problem %q, generation %d (was %d)",
			last.Obtained, first.Obtained, last.Problem, last.Generation, first.Generation)
	}
	if !strings.Contains(log.String(), "DHCP lease on kc0 renewed: 192.0.2.100/24 until") {
		t.Errorf("the log does not say the lease was renewed:\n%s", log)
	}
}

// A server that answers a renewal with a NAK (its address plan changed)
// gets asked afresh, and the host moves to the new address alone.
func TestKeeperNAKMovesToNewAddress(t *testing.T) {
	t.Parallel()
	n := newDHCPNet(t, 4*time.Second)
	log := &logBuf{t: t}
	a := testApplier(t, log)
	if _, err := n.apply(t, a, dhcpOnKC0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	n.s.set(func(s *dhcpServer) { s.offer, s.nakOther = net.ParseIP("192.0.2.150").To4(), true })
	n.keep(t, &Keeper{Applier: a, Poll: 200 * time.Millisecond})
	waitFor(t, 15*time.Second, "kc0 never moved to 192.0.2.150/24 alone", func() bool {
		got := n.addrs(t)
		return len(got) == 1 && got[0] == "192.0.2.150/24" && strings.Contains(log.String(), "the address is now")
	})
	ap, _, _ := ReadApplied(a.RunDir)
	if ap.Result.Address != "192.0.2.150/24" {
		t.Errorf("record: %+v", ap.Result)
	}
	for _, w := range []string{"server rejected request with Nak", "the address is now 192.0.2.150/24 (was 192.0.2.100/24)"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("the log lacks %q:\n%s", w, log)
		}
	}
}

// DHCP that gets no answer at Apply is asked again by the Keeper until a
// server answers; meanwhile the record says what is wrong.
func TestKeeperAsksAgainUntilAnswered(t *testing.T) {
	t.Parallel()
	n := newDHCPNet(t, time.Hour)
	n.s.set(func(s *dhcpServer) { s.silent = true })
	log := &logBuf{t: t}
	a := testApplier(t, log)
	if _, err := n.apply(t, a, dhcpOnKC0, 3*time.Second); err == nil || !strings.Contains(err.Error(), "no DHCP server answered") {
		t.Fatalf("Apply with a silent server: %v", err)
	}
	ap, ok, _ := ReadApplied(a.RunDir)
	if !ok || !strings.Contains(ap.Problem, "no DHCP server answered") || !strings.HasSuffix(ap.Problem, "; asking again") || ap.Result.Interface != "kc0" {
		t.Fatalf("record after a failed Apply: %+v", ap)
	}
	n.keep(t, &Keeper{Applier: a, Poll: 200 * time.Millisecond, RetryMax: time.Second})
	time.Sleep(2 * time.Second)
	if got := n.addrs(t); len(got) != 0 {
		t.Fatalf("kc0 has %v without a DHCP answer", got)
	}
	n.s.set(func(s *dhcpServer) { s.silent = false })
	waitFor(t, 15*time.Second, "no lease after the server came back", func() bool {
		ap, _, _ := ReadApplied(a.RunDir)
		return ap.Problem == "" && ap.Result.Address == "192.0.2.100/24"
	})
	if got := n.addrs(t); len(got) != 1 || got[0] != "192.0.2.100/24" {
		t.Errorf("kc0 has %v, want 192.0.2.100/24", got)
	}
	if !strings.Contains(log.String(), " at attempt ") {
		t.Errorf("the log does not say the lease came:\n%s", log)
	}
}

// A lease that runs out while no server answers keeps its address (the
// host stays reachable), says so, and is taken up again when a server is
// back.
func TestKeeperKeepsAddressPastExpiry(t *testing.T) {
	t.Parallel()
	n := newDHCPNet(t, 3*time.Second)
	log := &logBuf{t: t}
	a := testApplier(t, log)
	if _, err := n.apply(t, a, dhcpOnKC0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	n.s.set(func(s *dhcpServer) { s.silent = true })
	n.keep(t, &Keeper{Applier: a, Poll: 200 * time.Millisecond, RetryMax: time.Second})
	waitFor(t, 20*time.Second, "the record never said the lease ended", func() bool {
		ap, _, _ := ReadApplied(a.RunDir)
		return strings.Contains(ap.Problem, "ended")
	})
	if got := n.addrs(t); len(got) != 1 || got[0] != "192.0.2.100/24" {
		t.Errorf("kc0 has %v after the lease ended, want 192.0.2.100/24 kept", got)
	}
	if !strings.Contains(log.String(), "no DHCP server answers: keeping the address") {
		t.Errorf("the log does not say the address is kept:\n%s", log)
	}
	n.s.set(func(s *dhcpServer) { s.silent = false })
	waitFor(t, 15*time.Second, "the lease was not taken up again", func() bool {
		ap, _, _ := ReadApplied(a.RunDir)
		return ap.Problem == "" && ap.Result.Address == "192.0.2.100/24"
	})
}

// Lease times come from the server's options where they make sense, else
// from RFC 2131's defaults (T1 half the lease, T2 seven eighths).
func TestLeaseTimes(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	secs := func(s uint32) []byte { return []byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)} }
	for _, c := range []struct {
		name               string
		opts               map[dhcpv4.OptionCode][]byte
		renew, rebind, end time.Duration
		infinite           bool
	}{
		{"lease only", map[dhcpv4.OptionCode][]byte{dhcpv4.OptionIPAddressLeaseTime: secs(3600)}, 1800 * time.Second, 3150 * time.Second, time.Hour, false},
		{"server's T1 and T2", map[dhcpv4.OptionCode][]byte{dhcpv4.OptionIPAddressLeaseTime: secs(3600),
			dhcpv4.OptionRenewTimeValue: secs(600), dhcpv4.OptionRebindingTimeValue: secs(1200)}, 600 * time.Second, 1200 * time.Second, time.Hour, false},
		{"T1 after T2", map[dhcpv4.OptionCode][]byte{dhcpv4.OptionIPAddressLeaseTime: secs(3600),
			dhcpv4.OptionRenewTimeValue: secs(3000), dhcpv4.OptionRebindingTimeValue: secs(1200)}, 1200 * time.Second, 1200 * time.Second, time.Hour, false},
		{"T2 beyond the lease", map[dhcpv4.OptionCode][]byte{dhcpv4.OptionIPAddressLeaseTime: secs(100),
			dhcpv4.OptionRebindingTimeValue: secs(500)}, 50 * time.Second, 87500 * time.Millisecond, 100 * time.Second, false},
		{"no lease time", nil, 30 * time.Minute, 3150 * time.Second, time.Hour, false},
		{"infinite", map[dhcpv4.OptionCode][]byte{dhcpv4.OptionIPAddressLeaseTime: secs(0xffffffff)}, 0, 0, 0, true},
	} {
		ack, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
		if err != nil {
			t.Fatal(err)
		}
		for code, v := range c.opts {
			ack.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
		got := Times(ack, at)
		if got.Infinite != c.infinite {
			t.Errorf("%s: infinite %v", c.name, got.Infinite)
			continue
		}
		if c.infinite {
			continue
		}
		if got.Renew.Sub(at) != c.renew || got.Rebind.Sub(at) != c.rebind || got.Expire.Sub(at) != c.end {
			t.Errorf("%s: renew %v rebind %v end %v, want %v %v %v", c.name, got.Renew.Sub(at), got.Rebind.Sub(at), got.Expire.Sub(at), c.renew, c.rebind, c.end)
		}
	}
}

// Test Management Network on a DHCP configuration checks what DHCP gave:
// the lease's gateway answers (the server's namespace), its DNS server
// does not exist, and IPv6 has no global address.
func TestNetworkTestUsesTheLease(t *testing.T) {
	t.Parallel()
	n := newDHCPNet(t, time.Hour)
	a := testApplier(t, &logBuf{t: t})
	if _, err := n.apply(t, a, dhcpOnKC0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var checks []Check
	if err := vswitchtest.Do(n.client, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		checks = Test(ctx, dhcpOnKC0, Live(dhcpOnKC0, "/sys", a.ResolvConf), "")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		what string
		ok   bool
		info string
	}{
		{"ping gateway 192.0.2.1", true, "answered in"},
		{"ping DNS server 192.0.2.53", false, "no answer"},
		{"IPv6 (automatic)", false, "no global address on kc0"},
	}
	if len(checks) != len(want) {
		t.Fatalf("checks %+v, want %d lines", checks, len(want))
	}
	for i, w := range want {
		if c := checks[i]; c.What != w.what || c.OK != w.ok || !strings.Contains(c.Info, w.info) {
			t.Errorf("line %d: %+v, want %+v", i+1, c, w)
		}
	}
}

func TestCheckIPv6(t *testing.T) {
	live := api.NetworkLive{Interface: "eth0", Addresses: []string{"10.0.2.15/24", "2001:db8::10/64"}}
	static := Config{Mode: ModeDHCP, IPv6: IPv6Static, IPv6Address: netip.MustParsePrefix("2001:db8::10/64")}
	other := static
	other.IPv6Address = netip.MustParsePrefix("2001:db8::99/64")
	for _, c := range []struct {
		name    string
		cfg     Config
		live    api.NetworkLive
		ok, has bool
		info    string
	}{
		{"static present", static, live, true, true, "on eth0"},
		{"static missing", other, live, false, true, "not on eth0 (it has 2001:db8::10/64)"},
		{"auto with an address", Config{Mode: ModeDHCP}, live, true, true, "2001:db8::10/64"},
		{"auto without", Config{Mode: ModeDHCP, IPv6: IPv6Auto}, api.NetworkLive{Interface: "eth0", Addresses: []string{"10.0.2.15/24"}}, false, true, "no global address on eth0"},
		{"off", Config{Mode: ModeDHCP, IPv6: IPv6Off}, live, false, false, ""},
	} {
		got, has := checkIPv6(c.cfg, c.live)
		if has != c.has || got.OK != c.ok || !strings.Contains(got.Info, c.info) {
			t.Errorf("%s: %+v (shown %v), want ok %v shown %v info %q", c.name, got, has, c.ok, c.has, c.info)
		}
	}
}
