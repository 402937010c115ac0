package sntp

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/peerstest"
)

// TestQueryChrony asks Debian's chronyd: its clock is this host's, so the
// offset is within the round trip, and the stratum is its own.
func TestQueryChrony(t *testing.T) {
	port := peerstest.FreePort(t)
	peerstest.Chrony(t, "127.0.0.1", port)
	r, err := Query(context.Background(), "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	if r.Stratum != 8 || r.Addr != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("answer %+v, want stratum 8 from the address asked", r)
	}
	if r.Offset.Abs() > 50*time.Millisecond || r.RTT <= 0 || r.RTT > time.Second {
		t.Errorf("offset %v, round trip %v: want the same clock, a real round trip", r.Offset, r.RTT)
	}
	if d := time.Since(r.Time).Abs(); d > time.Second {
		t.Errorf("server time %v is %v from ours", r.Time, d)
	}
}

// TestQueryNoServer: nothing listens, so the query ends at its deadline
// (or at the port's refusal) with the server named.
func TestQueryNoServer(t *testing.T) {
	port := peerstest.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := Query(ctx, "127.0.0.1:"+strconv.Itoa(port))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) || time.Since(t0) > 2*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(t0))
	}
}

// answer is a server answer to the request req (as a forged or broken
// server might send it).
func answer(req []byte, first, stratum byte, origin bool, recv, xmit time.Time) []byte {
	p := make([]byte, 48)
	p[0], p[1] = first, stratum
	copy(p[12:16], "RATE")
	if origin {
		copy(p[24:32], req[40:48])
	}
	put := func(off int, t time.Time) {
		s := uint64(t.Unix()+ntpEpochOffset) << 32
		s |= uint64(t.Nanosecond()) << 32 / 1e9
		binary.BigEndian.PutUint64(p[off:], s)
	}
	put(32, recv)
	put(40, xmit)
	return p
}

// TestQueryChecksAnswers runs a UDP server that answers each query in a
// way a client must refuse (or, last, accept: 3 s ahead), on a real socket.
func TestQueryChecksAnswers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ahead := 3 * time.Second
	cases := []struct {
		name    string
		reply   func(req []byte) [][]byte
		wantErr string
	}{
		{"kiss-o'-death", func(req []byte) [][]byte {
			return [][]byte{answer(req, 4<<3|4, 0, true, time.Now(), time.Now())}
		}, `kiss-o'-death "RATE"`},
		{"client mode", func(req []byte) [][]byte {
			return [][]byte{answer(req, 4<<3|3, 2, true, time.Now(), time.Now())}
		}, "mode 3"},
		{"unsynchronized", func(req []byte) [][]byte {
			return [][]byte{answer(req, 3<<6|4<<3|4, 2, true, time.Now(), time.Now())}
		}, "not synchronized"},
		{"wrong origin only", func(req []byte) [][]byte {
			return [][]byte{answer(req, 4<<3|4, 2, false, time.Now(), time.Now())}
		}, "no answer"},
		{"forged first, then the real answer", func(req []byte) [][]byte {
			now := time.Now().Add(ahead)
			return [][]byte{answer(req, 4<<3|4, 1, false, now.Add(time.Hour), now.Add(time.Hour)), answer(req, 4<<3|4, 2, true, now, now)}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			go func() {
				buf := make([]byte, 512)
				pc.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := pc.ReadFrom(buf)
				if err != nil || n != 48 || buf[0] != 0x23 {
					return
				}
				for _, p := range c.reply(buf[:n]) {
					pc.WriteTo(p, from)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			r, err := Query(ctx, pc.LocalAddr().String())
			if c.wantErr == "" {
				if err != nil || r.Stratum != 2 || (r.Offset-ahead).Abs() > 100*time.Millisecond {
					t.Fatalf("got %+v, %v; want stratum 2, offset %v", r, err, ahead)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestAddr(t *testing.T) {
	for in, want := range map[string]string{"ntp.example.org": "ntp.example.org:123", "10.0.0.1:1123": "10.0.0.1:1123",
		"2001:db8::1": "[2001:db8::1]:123", "[2001:db8::1]:99": "[2001:db8::1]:99"} {
		if got, err := Addr(in); err != nil || got != want {
			t.Errorf("Addr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host:0", "host:x", ":123"} {
		if _, err := Addr(bad); err == nil {
			t.Errorf("Addr(%q): no error", bad)
		}
	}
}

func TestNTPTimeEras(t *testing.T) {
	// 2036-02-07 06:28:16 UTC is where era 0 ends: a timestamp just past
	// it (small seconds) near that time is in era 1.
	near := time.Date(2036, 2, 7, 6, 28, 10, 0, time.UTC)
	got := ntpTime(uint64(5)<<32, near)
	if want := time.Date(2036, 2, 7, 6, 28, 21, 0, time.UTC); !got.Equal(want) {
		t.Errorf("era 1: %v, want %v", got, want)
	}
}
