package netconf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// Check is one line of a network test: what was tried and how it went.
type Check struct {
	What string
	OK   bool
	Info string
}

// Test pings cfg's gateway (or gateway, when cfg is DHCP and the caller knows
// it) and DNS servers, and resolves hostname through the first DNS server.
func Test(ctx context.Context, cfg Config, gateway netip.Addr, hostname string) []Check {
	var out []Check
	gw := cfg.Gateway
	if !gw.IsValid() {
		gw = gateway
	}
	if gw.IsValid() {
		out = append(out, ping(ctx, "ping gateway "+gw.String(), gw))
	} else {
		out = append(out, Check{What: "ping gateway", Info: "no gateway configured"})
	}
	for _, d := range cfg.DNS {
		out = append(out, ping(ctx, "ping DNS server "+d.String(), d))
	}
	if hostname != "" {
		what := "resolve " + hostname
		r := &net.Resolver{}
		if len(cfg.DNS) > 0 {
			server := netip.AddrPortFrom(cfg.DNS[0], 53).String()
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

// DefaultGateway is the IPv4 default route's gateway, if any.
func DefaultGateway() netip.Addr {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return netip.Addr{}
	}
	var iface, dst, gw string
	lines := splitLines(string(b))
	for _, l := range lines[1:] {
		if n, _ := fmt.Sscanf(l, "%s %s %s", &iface, &dst, &gw); n == 3 && dst == "00000000" {
			var v uint32
			fmt.Sscanf(gw, "%X", &v)
			return netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
		}
	}
	return netip.Addr{}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
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
