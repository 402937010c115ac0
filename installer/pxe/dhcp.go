package pxe

import (
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// PXEPort is where PXE clients send their DHCPREQUEST to a proxy DHCP
// server once they have an address (the PXE spec's port 4011).
const PXEPort = 4011

// Client is what a DHCP request says about the machine booting.
type Client struct {
	MAC  net.HardwareAddr
	PXE  bool // vendor class PXEClient...
	IPXE bool // user class "iPXE": iPXE itself is asking
	EFI  bool // client architecture (option 93) is a UEFI one
	UUID string
}

// ClientOf reads a DHCP request.
func ClientOf(req *dhcpv4.DHCPv4) Client {
	c := Client{MAC: req.ClientHWAddr, PXE: strings.HasPrefix(req.ClassIdentifier(), "PXEClient")}
	for _, u := range req.UserClass() {
		if u == "iPXE" {
			c.IPXE = true
		}
	}
	// iPXE sends option 77 in RFC 3004 form; some versions as a bare string.
	if !c.IPXE && string(req.GetOneOption(dhcpv4.OptionUserClassInformation)) == "iPXE" {
		c.IPXE = true
	}
	for _, a := range req.ClientArch() {
		switch a {
		case iana.EFI_IA32, iana.EFI_X86_64, iana.EFI_BC, iana.EFI_ARM32, iana.EFI_ARM64, iana.EFI_X86_HTTP, iana.EFI_X86_64_HTTP:
			c.EFI = true
		}
	}
	// Option 97: a type byte (0) and the 16-byte SMBIOS UUID.
	if b := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); len(b) == 17 && b[0] == 0 {
		u := b[1:]
		c.UUID = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	return c
}

// BootFile is the file a client is told to boot: iPXE itself gets the
// HTTP URL of the script; a UEFI firmware ipxe.efi; a legacy BIOS one
// undionly.kpxe (both by TFTP from the server).
func BootFile(c Client, scriptURL string) string {
	switch {
	case c.IPXE:
		return scriptURL
	case c.EFI:
		return EFIBootFile
	default:
		return BIOSBootFile
	}
}

// pxeVendorOptions is option 43 for a PXE client: PXE_DISCOVERY_CONTROL (6)
// = 8, "boot the file named in this offer, no boot server discovery".
var pxeVendorOptions = []byte{6, 1, 8, 255}

// ProxyReply builds the proxy DHCP answer to req: a DHCPOFFER to a
// DHCPDISCOVER (broadcast on port 67) or a DHCPACK to a DHCPREQUEST (sent to
// port 4011). It offers no address (the site's DHCP server does that), only
// the boot server and file. It returns nil for anything that is not a PXE
// client's DISCOVER or REQUEST: a proxy DHCP server stays silent then.
func ProxyReply(req *dhcpv4.DHCPv4, serverIP net.IP, scriptURL string) (*dhcpv4.DHCPv4, error) {
	c := ClientOf(req)
	if !c.PXE || req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, nil
	}
	var mt dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		mt = dhcpv4.MessageTypeAck
	default:
		return nil, nil
	}
	file := BootFile(c, scriptURL)
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		dhcpv4.WithOption(dhcpv4.OptBootFileName(file)),
	}
	if !c.IPXE {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions)))
	}
	if b := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); b != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, b)))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, err
	}
	resp.YourIPAddr = net.IPv4zero
	resp.BootFileName = file
	return resp, nil
}
