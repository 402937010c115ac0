package netconf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/plinth/plinth/api"
)

// Check is one line of a network test: what was tried and how it went.
type Check struct {
	What string
	OK   bool
	Info string
}

// Test checks the management network as it is now (live: Live's view of
// it): it pings the gateway and each DNS server (cfg's, else the ones in
// use, from DHCP), says whether IPv6 has the address cfg asks for (static)
// or any global address (automatic), and resolves hostname through the
// first DNS server; a line each.
func Test(ctx context.Context, cfg Config, live api.NetworkLive, hostname string) []Check {
	var out []Check
	gw := cfg.Gateway
	if !gw.IsValid() {
		gw, _ = netip.ParseAddr(live.Gateway)
	}
	if gw.IsValid() {
		out = append(out, ping(ctx, "ping gateway "+gw.String(), gw))
	} else {
		out = append(out, Check{What: "ping gateway", Info: "no gateway configured"})
	}
	dns := cfg.DNS
	if len(dns) == 0 {
		for _, d := range live.DNS {
			if a, err := netip.ParseAddr(d); err == nil {
				dns = append(dns, a)
			}
		}
	}
	for _, d := range dns {
		out = append(out, ping(ctx, "ping DNS server "+d.String(), d))
	}
	if c, ok := checkIPv6(cfg, live); ok {
		out = append(out, c)
	}
	if hostname != "" {
		what := "resolve " + hostname
		r := &net.Resolver{}
		if len(dns) > 0 {
			server := netip.AddrPortFrom(dns[0], 53).String()
			r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			}}
		}
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, err := r.LookupHost(c, hostname)
		cancel()
		if err != nil {
			out = append(out, Check{What: what, Info: err.Error()})
		} else {
			out = append(out, Check{What: what, OK: true, Info: fmt.Sprint(addrs)})
		}
	}
	return out
}

// checkIPv6 is the IPv6 line of Test (ok false: IPv6 is off).
func checkIPv6(cfg Config, live api.NetworkLive) (Check, bool) {
	var v6 []string
	for _, a := range live.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() {
			v6 = append(v6, a)
		}
	}
	on := live.Interface
	if on == "" {
		on = "the management interface"
	}
	switch cfg.IPv6 {
	case IPv6Off:
		return Check{}, false
	case IPv6Static:
		want := cfg.IPv6Address.String()
		if slices.Contains(v6, want) {
			return Check{What: "IPv6 address " + want, OK: true, Info: "on " + on}, true
		}
		return Check{What: "IPv6 address " + want, Info: fmt.Sprintf("not on %s (it has %s)", on, orNoneList(v6))}, true
	default:
		if len(v6) > 0 {
			return Check{What: "IPv6 (automatic)", OK: true, Info: strings.Join(v6, ", ")}, true
		}
		return Check{What: "IPv6 (automatic)", Info: "no global address on " + on + " (no IPv6 router advertises on this network?)"}, true
	}
}

func orNoneList(l []string) string {
	if len(l) == 0 {
		return "no global IPv6 address"
	}
	return strings.Join(l, ", ")
}

// ping sends up to three ICMP echo requests (raw socket as root, else an
// unprivileged ICMP datagram socket) and reports the first answer.
func ping(ctx context.Context, what string, to netip.Addr) Check {
	if !to.Is4() {
		return Check{What: what, Info: "only IPv4 is pinged"}
	}
	network, dst := "ip4:icmp", net.Addr(&net.IPAddr{IP: to.AsSlice()})
	c, err := icmp.ListenPacket(network, "0.0.0.0")
	if err != nil {
		network, dst = "udp4", &net.UDPAddr{IP: to.AsSlice()}
		if c, err = icmp.ListenPacket(network, "0.0.0.0"); err != nil {
			return Check{What: what, Info: "cannot open an ICMP socket: " + err.Error()}
		}
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	for seq := 1; seq <= 3; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("plinth")}}
		b, _ := msg.Marshal(nil)
		t0 := time.Now()
		if _, err := c.WriteTo(b, dst); err != nil {
			return Check{What: what, Info: err.Error()}
		}
		deadline := t0.Add(time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.SetReadDeadline(deadline)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && m.Type == ipv4.ICMPTypeEchoReply {
				return Check{What: what, OK: true, Info: fmt.Sprintf("answered in %s", time.Since(t0).Round(100*time.Microsecond))}
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return Check{What: what, Info: "no answer to 3 echo requests"}
}
