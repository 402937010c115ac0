// Package pxe network-boots Plinth: it lays out a PXE bundle (kernel,
// initramfs, iPXE binaries, a generic iPXE script) and serves it with a
// proxy DHCP server (beside the site's own DHCP server, which keeps handing
// out addresses), TFTP for the firmware's first stage and HTTP for
// everything after it, including a per-host iPXE script rendered from the
// host's answer file (found by MAC address or SMBIOS UUID).
//
// A boot goes: the firmware's PXE client broadcasts DHCPDISCOVER; the site's
// DHCP server offers an address and this server a proxy offer naming the
// boot file (undionly.kpxe for legacy BIOS, ipxe.efi for UEFI), fetched by
// TFTP. iPXE then asks DHCP again, now with user class "iPXE", and is told
// http://SERVER:PORT/boot.ipxe, which chains to the host's own script
// (boot.ipxe?mac=${mac:hexhyp}&uuid=${uuid}); that script loads the kernel
// and initramfs by HTTP with the host's settings on the kernel command line
// and the URL of its answer file: plinth.config=URL (stateless: a host
// without STATE fetches and applies the file at every boot, as ESXi Auto
// Deploy hosts do) or, with -install, plinth.answer=URL (the unattended
// install). (QEMU's NIC option ROMs are iPXE already and skip the TFTP
// stage.)
//
// Bundle directory layout (make pxe writes build/pxe):
//
//	vmlinuz              the kernel
//	initramfs.cpio.zst   the initramfs
//	boot.ipxe            a generic script (no per-host settings) for other servers
//	undionly.kpxe        iPXE for legacy BIOS PXE (chains via the NIC's UNDI)
//	ipxe.pxe             iPXE for legacy BIOS with its own NIC drivers
//	ipxe.efi             iPXE for UEFI x86-64
//	snponly.efi          iPXE for UEFI using the firmware's network stack
//	answers/             per-host answer files (the default for -answers):
//	  52-54-00-12-34-56.txt                 by MAC (or 52:54:00:12:34:56.txt)
//	  4c4c4544-0042-3510-8051-b7c04f4e3232.txt  by SMBIOS UUID
//	  default.txt                           for any other host (optional)
package pxe

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/netconf"
)

// Names of the bundle's files.
const (
	KernelFile   = "vmlinuz"
	InitrdFile   = "initramfs.cpio.zst"
	ScriptFile   = "boot.ipxe"
	BIOSBootFile = "undionly.kpxe"
	EFIBootFile  = "ipxe.efi"
	AnswersDir   = "answers"
	// DefaultAnswer is the answer file for hosts without their own.
	DefaultAnswer = "default.txt"
)

// IPXEFiles are the iPXE binaries a bundle carries, from Debian's ipxe
// package (/usr/lib/ipxe).
var IPXEFiles = []string{"undionly.kpxe", "ipxe.pxe", "ipxe.efi", "snponly.efi"}

// ErrNoAnswer says no answer file matches a host.
var ErrNoAnswer = errors.New("no answer file for this host")

// NormalizeMAC parses a MAC address written with colons, dashes, dots or
// nothing between its bytes and returns it as lower-case hex with dashes
// (52-54-00-12-34-56).
func NormalizeMAC(s string) (string, error) {
	hex := strings.Map(func(r rune) rune {
		switch r {
		case ':', '-', '.':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
	if len(hex) != 12 {
		return "", fmt.Errorf("%q is not a MAC address", s)
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if !isHex(hex[i]) || !isHex(hex[i+1]) {
			return "", fmt.Errorf("%q is not a MAC address", s)
		}
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(hex[i : i+2])
	}
	return b.String(), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// NormalizeUUID checks an SMBIOS UUID (8-4-4-4-12 hex digits) and returns it
// in lower case.
func NormalizeUUID(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if len(u) != 36 {
		return "", fmt.Errorf("%q is not a UUID", s)
	}
	for i := 0; i < len(u); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if u[i] != '-' {
				return "", fmt.Errorf("%q is not a UUID", s)
			}
		} else if !isHex(u[i]) {
			return "", fmt.Errorf("%q is not a UUID", s)
		}
	}
	return u, nil
}

// Found is the answer file picked for a host.
type Found struct {
	// Name is the file's name inside the answers directory.
	Name string
	// By says what matched: "mac", "uuid" or "default".
	By     string
	Answer *installer.Answer
	// SHA256 is the file's, hex: the host's kernel command line carries
	// it (installer.AnswerSHA256Key), for the answer file comes over
	// plain http.
	SHA256 string
}

// LookupAnswer finds a host's answer file in dir: by MAC (dash- or
// colon-separated, lower case), then by SMBIOS UUID, then default.txt. mac
// or uuid may be empty; a malformed one is ignored. The file is parsed with
// installer.ParseAnswer; a file that does not parse is an error (naming the
// file and line), never a silent fallback to the default.
func LookupAnswer(dir, mac, uuid string) (*Found, error) {
	var cands []Found
	if m, err := NormalizeMAC(mac); err == nil {
		cands = append(cands, Found{Name: m + ".txt", By: "mac"}, Found{Name: strings.ReplaceAll(m, "-", ":") + ".txt", By: "mac"})
	}
	// iPXE prints an absent UUID as all zeroes or all ff: not a host's own.
	if u, err := NormalizeUUID(uuid); err == nil && strings.Trim(u, "0-") != "" && strings.Trim(u, "f-") != "" {
		cands = append(cands, Found{Name: u + ".txt", By: "uuid"})
	}
	cands = append(cands, Found{Name: DefaultAnswer, By: "default"})
	for _, c := range cands {
		b, err := os.ReadFile(filepath.Join(dir, c.Name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a, err := installer.ParseAnswer(strings.NewReader(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, c.Name), err)
		}
		c.Answer = a
		sum := sha256.Sum256(b)
		c.SHA256 = hex.EncodeToString(sum[:])
		return &c, nil
	}
	return nil, fmt.Errorf("%w (mac %q, uuid %q, looked in %s)", ErrNoAnswer, mac, uuid, dir)
}

// HostCmdline is the kernel command line that carries a host's answer file
// settings the appliance's init reads at boot (plinth.hostname, plinth.ip,
// plinth.gw, plinth.dns, plinth.nic): enough to bring the management network
// up. The rest of an answer file (password, SSH keys, NTP, VLAN, disk) takes
// effect when the host reads the file itself: at every boot for a
// stateless host (plinth.config=URL), or through an install
// (plinth.answer=URL).
func HostCmdline(a *installer.Answer) []string {
	var out []string
	if a.Hostname != "" {
		out = append(out, "plinth.hostname="+a.Hostname)
	}
	n := a.Network
	if n.NIC != "" {
		out = append(out, "plinth.nic="+n.NIC)
	}
	if n.Mode == netconf.ModeStatic && n.Address.IsValid() {
		out = append(out, "plinth.ip="+n.Address.String())
		if n.Gateway.IsValid() {
			out = append(out, "plinth.gw="+n.Gateway.String())
		}
	}
	if len(n.DNS) > 0 {
		s := make([]string, len(n.DNS))
		for i, d := range n.DNS {
			s[i] = d.String()
		}
		out = append(out, "plinth.dns="+strings.Join(s, ","))
	}
	return out
}

// Script says what an iPXE script boots.
type Script struct {
	// BaseURL is where the bundle is served, e.g. http://192.0.2.2:8080
	// (no trailing slash); empty means paths relative to the script.
	BaseURL string
	// Cmdline is the kernel command line after initrd= and the consoles.
	Cmdline []string
	// Comment lines head the script (who it is for, which answer file).
	Comment []string
}

// BaseCmdline is what every network boot gets, as on the boot media
// (installer/mkimage.sh): the consoles, the serial port last so that it is
// /dev/console.
const BaseCmdline = "console=tty0 console=ttyS0,115200"

// Render returns the iPXE script. initrd= names the initramfs for the UEFI
// kernel stub (without it an EFI boot finds no initramfs).
func (s Script) Render() string {
	url := func(f string) string {
		if s.BaseURL == "" {
			return f
		}
		return s.BaseURL + "/" + f
	}
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	for _, c := range s.Comment {
		b.WriteString("# " + strings.ReplaceAll(c, "\n", " ") + "\n")
	}
	args := append([]string{"initrd=" + InitrdFile, BaseCmdline}, s.Cmdline...)
	fmt.Fprintf(&b, "kernel %s %s\n", url(KernelFile), strings.Join(args, " "))
	fmt.Fprintf(&b, "initrd %s\n", url(InitrdFile))
	b.WriteString("boot\n")
	return b.String()
}

// ChainScript is what iPXE gets first over HTTP: it asks again with the
// host's MAC and SMBIOS UUID, which iPXE fills in.
func ChainScript(scriptURL string) string {
	return "#!ipxe\n# Plinth: ask for this host's own script\nchain " + scriptURL + "?mac=${mac:hexhyp}&uuid=${uuid}\n"
}

// interfaceIPv4 is the first IPv4 address of an interface.
func interfaceIPv4(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address", name)
}
