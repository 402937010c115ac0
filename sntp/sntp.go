// Package sntp asks an NTP server the time: the client's half of the
// exchange of RFC 4330 (SNTPv4, a subset of RFC 5905), one packet each way.
// Query returns the local clock's offset from the server's and the round
// trip, and refuses answers a server should not have sent: the wrong mode,
// an unsynchronized or kiss-o'-death server, an origin timestamp that is
// not the one this client sent (RFC 5905's check against forged and stale
// answers; the transmit timestamp sent is random, as RFC 9109 advises, so
// an off-path attacker cannot guess it). Setting the clock is the caller's.
package sntp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is NTP's UDP port.
const DefaultPort = 123

// Response is a server's answer to one query.
type Response struct {
	// Addr is the address asked (IP:port).
	Addr string
	// Offset is how far the local clock is behind the server's: the
	// server's time is the local time plus Offset.
	Offset time.Duration
	// RTT is the round trip, less the server's own processing time.
	RTT time.Duration
	// Stratum is the server's distance from a reference clock (1: it has
	// one; 2-15: servers in between).
	Stratum int
	// Time is the server's clock when it answered.
	Time time.Time
}

// ntpEpochOffset is the seconds from 1900 (NTP's era 0) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// Addr is server ("host", "host:port", "[v6]:port" or a bare IPv6 address)
// with the port made explicit.
func Addr(server string) (string, error) {
	s := strings.TrimSpace(server)
	if s == "" {
		return "", errors.New("empty server")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", server, port)
		}
		if host == "" {
			return "", fmt.Errorf("%q: no host", server)
		}
		return net.JoinHostPort(host, port), nil
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(DefaultPort)), nil
}

// Query asks server (see Addr) the time once, within ctx's deadline (5 s
// when it has none).
func Query(ctx context.Context, server string) (Response, error) {
	addr, err := Addr(server)
	if err != nil {
		return Response{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Response{}, fmt.Errorf("NTP %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	out := Response{Addr: conn.RemoteAddr().String()}

	var req [48]byte
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	if _, err := rand.Read(req[40:48]); err != nil {
		return out, err
	}
	nonce := binary.BigEndian.Uint64(req[40:48])
	t1 := time.Now()
	if _, err := conn.Write(req[:]); err != nil {
		return out, fmt.Errorf("NTP %s: %w", server, err)
	}
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
				return out, fmt.Errorf("NTP %s: no answer within the deadline", server)
			}
			return out, fmt.Errorf("NTP %s: %w", server, err)
		}
		// t4 from t1 and the monotonic clock: a step of the wall clock
		// meanwhile does not skew the round trip.
		t4 := t1.Add(time.Since(t1))
		if n < 48 {
			continue // not an NTP packet; wait for one
		}
		p := buf[:n]
		if binary.BigEndian.Uint64(p[24:32]) != nonce {
			continue // not the answer to this query (stale or forged)
		}
		return parse(out, server, p, t1, t4)
	}
}

// parse checks the answer p to a query sent at t1 and received at t4.
func parse(out Response, server string, p []byte, t1, t4 time.Time) (Response, error) {
	leap, version, mode := p[0]>>6, (p[0]>>3)&7, p[0]&7
	stratum := int(p[1])
	switch {
	case mode != 4:
		return out, fmt.Errorf("NTP %s: answered in mode %d, not as a server (4)", server, mode)
	case version < 3 || version > 4:
		return out, fmt.Errorf("NTP %s: answered with NTP version %d", server, version)
	case stratum == 0:
		code := strings.TrimRight(string(p[12:16]), "\x00")
		return out, fmt.Errorf("NTP %s: refused (kiss-o'-death %q)", server, code)
	case leap == 3 || stratum > 15:
		return out, fmt.Errorf("NTP %s: the server's own clock is not synchronized (stratum %d)", server, stratum)
	}
	t2 := ntpTime(binary.BigEndian.Uint64(p[32:40]), t1)
	t3 := ntpTime(binary.BigEndian.Uint64(p[40:48]), t1)
	if binary.BigEndian.Uint64(p[40:48]) == 0 {
		return out, fmt.Errorf("NTP %s: the answer has no transmit time", server)
	}
	out.Stratum = stratum
	out.Time = t3
	out.Offset = (t2.Sub(t1) + t3.Sub(t4)) / 2
	out.RTT = max(t4.Sub(t1)-t3.Sub(t2), 0)
	return out, nil
}

// ntpTime is the NTP timestamp v (32 bits of seconds since 1900, 32 of
// fraction) in the era nearest to near, so it holds past 2036.
func ntpTime(v uint64, near time.Time) time.Time {
	secs, frac := uint32(v>>32), uint32(v)
	nearSecs := uint32(near.Unix() + ntpEpochOffset) // modulo 2^32: the era drops out
	diff := int64(int32(secs - nearSecs))            // within ±68 years
	ns := (int64(frac) * 1e9) >> 32
	return time.Unix(near.Unix()+diff, ns)
}
