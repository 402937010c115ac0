package pxe

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzHandleDHCP feeds the proxy DHCP handler any packet a neighbour on the
// PXE network could send, through a real UDP socket: it never panics, and
// whatever it answers is one well-formed DHCP reply offering no address,
// only the boot file this server means to hand out.
func FuzzHandleDHCP(f *testing.F) {
	dir := bundleDir(f)
	s, err := NewServer(Config{Dir: dir, ServerIP: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { peer.Close() })
	for _, mods := range [][]dhcpv4.Modifier{{pxeClass}, {pxeClass, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))},
		{pxeClass, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))}, {}} {
		for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform} {
			m, err := dhcpv4.NewDiscovery(clientMAC, append(mods, dhcpv4.WithMessageType(mt))...)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(m.ToBytes())
		}
	}
	f.Add([]byte{1, 1, 6, 0})
	allowed := map[string]bool{BIOSBootFile: true, EFIBootFile: true, s.ScriptURL(): true}
	buf := make([]byte, 1500)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return // server4 drops what does not parse
		}
		for { // nothing left over from an earlier input
			peer.SetReadDeadline(time.Now())
			if _, _, err := peer.ReadFrom(buf); err != nil {
				break
			}
		}
		s.handleDHCP(srv, peer.LocalAddr(), req)
		peer.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, _, err := peer.ReadFrom(buf)
		if err != nil {
			return // no answer: a proxy DHCP server stays silent
		}
		resp, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatalf("the answer does not parse: %v", err)
		}
		if !resp.YourIPAddr.IsUnspecified() || resp.OpCode != dhcpv4.OpcodeBootReply {
			t.Fatalf("the answer offers an address or is no reply: %s", resp.Summary())
		}
		if !allowed[resp.BootFileName] {
			t.Fatalf("the answer names boot file %q", resp.BootFileName)
		}
		if resp.TransactionID != req.TransactionID {
			t.Fatalf("the answer is for another transaction")
		}
	})
}
