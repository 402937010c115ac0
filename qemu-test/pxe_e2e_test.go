package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/crypto/bcrypt"
	"pack.ag/tftp"

	"github.com/plinth/plinth/installer/pxe"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"

	"github.com/plinth/plinth/internal/testenv"
)

// pxeNet is a lab segment for network boots: a Linux bridge in the host's
// namespace with the guest's tap on it, and two network namespaces joined
// to it by veth pairs, one for the site's DHCP server and one for Plinth's
// PXE server. The bridge itself has an address so the test can reach both.
type pxeNet struct {
	Bridge, Tap      string
	DHCPNS, PXENS    string
	Prefix           string // "10.231.N."
	DHCPIP, PXEIP    string
	HostIP           string
	NSIface          string // the veth's name inside each namespace
	vethDHCP, vethPX string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newPXENet builds the segment; t.Cleanup takes it down again (namespaces,
// veths, bridge and tap), also when the test fails.
func newPXENet(t *testing.T) *pxeNet {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unmet(t, "network boot test: needs root (network namespaces, bridge, tap)")
	}
	id := os.Getpid() % 100000
	n := &pxeNet{
		Bridge:   fmt.Sprintf("plpxbr%d", id),
		Tap:      fmt.Sprintf("plpxtap%d", id),
		DHCPNS:   fmt.Sprintf("plinth-dhcp-%d", id),
		PXENS:    fmt.Sprintf("plinth-pxe-%d", id),
		vethDHCP: fmt.Sprintf("plpxd%d", id),
		vethPX:   fmt.Sprintf("plpxs%d", id),
		NSIface:  "eth0",
		Prefix:   fmt.Sprintf("10.231.%d.", id%250),
	}
	n.DHCPIP, n.PXEIP, n.HostIP = n.Prefix+"1", n.Prefix+"2", n.Prefix+"3"
	t.Cleanup(func() {
		for _, args := range [][]string{
			{"netns", "del", n.DHCPNS}, {"netns", "del", n.PXENS},
			{"link", "del", n.vethDHCP}, {"link", "del", n.vethPX},
			{"link", "del", n.Tap}, {"link", "del", n.Bridge},
		} {
			exec.Command("ip", args...).Run() // best effort: some are gone with their namespace
		}
	})
	ipCmd(t, "link", "add", n.Bridge, "type", "bridge")
	ipCmd(t, "addr", "add", n.HostIP+"/24", "dev", n.Bridge)
	ipCmd(t, "link", "set", n.Bridge, "up")
	ipCmd(t, "tuntap", "add", "dev", n.Tap, "mode", "tap")
	ipCmd(t, "link", "set", n.Tap, "master", n.Bridge, "up")
	for _, p := range []struct{ ns, veth, ip string }{{n.DHCPNS, n.vethDHCP, n.DHCPIP}, {n.PXENS, n.vethPX, n.PXEIP}} {
		ipCmd(t, "netns", "add", p.ns)
		ipCmd(t, "link", "add", p.veth, "type", "veth", "peer", "name", p.veth+"p")
		ipCmd(t, "link", "set", p.veth, "master", n.Bridge, "up")
		ipCmd(t, "link", "set", p.veth+"p", "netns", p.ns)
		ipCmd(t, "-n", p.ns, "link", "set", p.veth+"p", "name", n.NSIface)
		ipCmd(t, "-n", p.ns, "addr", "add", p.ip+"/24", "dev", n.NSIface)
		ipCmd(t, "-n", p.ns, "link", "set", n.NSIface, "up")
		ipCmd(t, "-n", p.ns, "link", "set", "lo", "up")
	}
	return n
}

// startSiteDHCP runs a plain DHCP server (the site's own, knowing nothing
// of PXE) in the DHCP namespace: it leases Prefix.100 and up. The socket is
// made on a thread switched into the namespace; it stays there.
func startSiteDHCP(t *testing.T, n *pxeNet) {
	t.Helper()
	var mu sync.Mutex
	leases := map[string]net.IP{}
	me := net.ParseIP(n.DHCPIP).To4()
	handler := func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		var mt dhcpv4.MessageType
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			mt = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			mt = dhcpv4.MessageTypeAck
		default:
			return
		}
		mu.Lock()
		ip, ok := leases[req.ClientHWAddr.String()]
		if !ok {
			ip = net.ParseIP(fmt.Sprintf("%s%d", n.Prefix, 100+len(leases))).To4()
			leases[req.ClientHWAddr.String()] = ip
		}
		mu.Unlock()
		resp, err := dhcpv4.NewReplyFromRequest(req,
			dhcpv4.WithMessageType(mt),
			dhcpv4.WithYourIP(ip),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(me),
			dhcpv4.WithLeaseTime(3600),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(me)),
		)
		if err != nil {
			return
		}
		conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
		t.Logf("site DHCP: %s %s -> %s", mt, req.ClientHWAddr, ip)
	}
	var srv *server4.Server
	err := vswitchtest.Do(n.DHCPNS, func() (err error) {
		srv, err = server4.NewServer(n.NSIface, &net.UDPAddr{Port: dhcpv4.ServerPort}, handler)
		return err
	})
	if err != nil {
		t.Fatalf("site DHCP server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve()
}

// logWriter passes a process's output to t.Logf line by line.
type logWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
	done   bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		if !w.done {
			w.t.Logf("%s%s", w.prefix, strings.TrimRight(line, "\n"))
		}
	}
}

func (w *logWriter) stop() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

// buildPXE builds plinth-pxe into dir.
func buildPXE(t *testing.T, dir string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "plinth-pxe")
	cmd := exec.Command("go", "build", "-o", bin, "./installer/cmd/plinth-pxe")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build plinth-pxe: %v: %s", err, out)
	}
	return bin
}

// TestAppliancePXEBoot: a QEMU guest with no disk boots Plinth from the
// network. The site's DHCP server (its own namespace) leases the address;
// plinth-pxe serve (another namespace, proxy DHCP + TFTP + HTTP) tells the
// guest's iPXE where its script is; the script, rendered from the answer
// file matched by the guest's MAC, boots the kernel and initramfs over HTTP
// with the answer's host name and NIC and the answer file's URL
// (plinth.config=). Having no disk, the appliance boots stateless: it
// fetches the answer file from the PXE server and applies it. It must come
// up ready with mode=stateless, that host name and an address from the
// site's DHCP server (so its own DHCP also crossed the bridge), and (on
// one firmware, to keep the time) its API must take the answer file's root
// password across the bridge, with no DCUI step. TFTP, which QEMU's iPXE
// ROMs skip, is checked across the bridge by fetching undionly.kpxe as a
// legacy PXE client would.
func TestAppliancePXEBoot(t *testing.T) {
	o := e2eOptions(t)
	kernel, initrd := o.Kernel, o.Initrd
	n := newPXENet(t)
	startSiteDHCP(t, n)

	dir := t.TempDir()
	bin := buildPXE(t, dir)
	bundle := filepath.Join(dir, "pxe")
	if out, err := exec.Command(bin, "bundle", "-o", bundle, "-kernel", kernel, "-initrd", initrd).CombinedOutput(); err != nil {
		t.Fatalf("plinth-pxe bundle: %v: %s", err, out)
	}
	const mac, host = "52:54:00:50:58:45", "pxe-host-1"
	hash, err := bcrypt.GenerateFromPassword([]byte(pxePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// eth0 is the harness's user-mode NIC (see Options.Args); the tap NIC
	// the guest boots from comes second.
	answer := "# pxe e2e host\nhostname = " + host + "\nnic = eth1\nroot_password_hash = " + string(hash) + "\n"
	if err := os.WriteFile(filepath.Join(bundle, "answers", "52-54-00-50-58-45.txt"), []byte(answer), 0o600); err != nil {
		t.Fatal(err)
	}
	// Another host's file, which must not be picked.
	if err := os.WriteFile(filepath.Join(bundle, "answers", "default.txt"), []byte("hostname = wrong-host\nroot_password_hash = "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logw := &logWriter{t: t, prefix: "plinth-pxe: "}
	t.Cleanup(logw.stop)
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", n.PXENS, bin, "serve",
		"-dir", bundle, "-iface", n.NSIface, "-http", ":8080", "-cmdline", "panic=-1")
	srv.Stdout, srv.Stderr = logw, logw
	srv.WaitDelay = 5 * time.Second
	if err := srv.Start(); err != nil {
		t.Fatalf("plinth-pxe serve: %v", err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })

	// The server answers HTTP across the bridge (with a deadline).
	base := "http://" + n.PXEIP + ":8080"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/boot.ipxe?mac=" + mac)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "plinth.hostname="+host) {
				t.Fatalf("host script does not carry the answer file's host name:\n%s", b)
			}
			if !strings.Contains(string(b), " plinth.config="+base+"/answers/52-54-00-50-58-45.txt") {
				t.Fatalf("host script does not name the host's answer file (plinth.config=):\n%s", b)
			}
			t.Logf("host script:\n%s", b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PXE server's HTTP did not answer within 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // polling a port that is not open yet
	}

	// TFTP across the bridge, as a legacy BIOS PXE client's first stage.
	tc, err := tftp.NewClient(tftp.ClientTimeout(10))
	if err != nil {
		t.Fatal(err)
	}
	r, err := tc.Get("tftp://" + n.PXEIP + "/" + pxe.BIOSBootFile)
	if err != nil {
		t.Fatalf("TFTP %s: %v", pxe.BIOSBootFile, err)
	}
	got, err := io.ReadAll(r)
	want, _ := os.ReadFile(filepath.Join(bundle, pxe.BIOSBootFile))
	if err != nil || !bytes.Equal(got, want) || len(want) == 0 {
		t.Fatalf("TFTP %s: %d bytes (err %v), want the bundle's %d", pxe.BIOSBootFile, len(got), err, len(want))
	}

	o.Kernel, o.Initrd = "", ""
	o.MemoryMiB = 1024
	for _, v := range []string{"bios", "uefi", "uefi-native"} {
		t.Run(v, func(t *testing.T) { pxeBootGuest(t, o, v, n, dir, mac, host, v == "bios") })
	}
}

// pxePassword is the root password of the PXE e2e host's answer file.
const pxePassword = "pxe-e2e-password"

// pxeBootGuest boots a guest with no kernel, disk or CD from the tap NIC
// (bootindex 0) and checks its ready line. variant is
//   - bios: SeaBIOS; the NIC's option ROM (QEMU's iPXE) is the PXE client
//     and is sent straight to the script;
//   - uefi: OVMF with the same ROM's iPXE EFI driver, likewise;
//   - uefi-native: OVMF with no option ROMs (romfile=), so OVMF's own
//     virtio-net driver and PXE client boot: they get ipxe.efi (the
//     bundle's, from Debian) by TFTP, and that iPXE asks for the script.
//
// login: also log in to the API, across the bridge, with the answer
// file's password.
func pxeBootGuest(t *testing.T, o Options, variant string, n *pxeNet, dir, mac, host string, login bool) {
	fw := FirmwareBIOS
	if strings.HasPrefix(variant, "uefi") {
		fw = FirmwareUEFI
	}
	o.Firmware = fw
	o.ConsoleLog = strings.TrimSuffix(o.ConsoleLog, ".console.log") + "-" + variant + ".console.log"
	t.Logf("console log: %s", o.ConsoleLog)
	nic := "virtio-net-pci,netdev=pxe0,mac=" + mac + ",bootindex=0"
	if variant == "uefi-native" {
		// For every virtio NIC: an EFI driver from one NIC's ROM would
		// drive the other NIC too.
		o.ExtraArgs = append(o.ExtraArgs, "-global", "virtio-net-pci.romfile=")
	}
	o.ExtraArgs = append(o.ExtraArgs,
		"-netdev", "tap,id=pxe0,ifname="+n.Tap+",script=no,downscript=no",
		"-device", nic)
	if fw == FirmwareUEFI {
		vars, err := NewUEFIVars(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		o.UEFIVars = vars
	} else {
		// SeaBIOS copies the screen (iPXE's messages) to the serial
		// console, so a failed network boot shows why in the log.
		sercon := filepath.Join(dir, "sercon-port")
		if err := os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644); err != nil { // COM1, 0x3f8, little-endian
			t.Fatal(err)
		}
		o.ExtraArgs = append(o.ExtraArgs, "-fw_cfg", "name=etc/sercon-port,file="+sercon)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := start(context.Background(), o, port) // start, not Start: Start insists on a kernel or disk
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	ready, err := vm.WaitReady(8 * time.Minute)
	if err != nil {
		t.Fatalf("network boot: %v", err)
	}
	took := time.Since(vm.Started)
	t.Logf("PXE boot (%s) to ready: %.1fs (ready line %v)", variant, took.Seconds(), ready)
	if ready["hostname"] != host {
		t.Errorf("ready hostname=%q, want %q (from answers/52-54-00-50-58-45.txt)", ready["hostname"], host)
	}
	if !strings.HasPrefix(ready["addr"], n.Prefix) {
		t.Errorf("ready addr=%q, want one leased by the site's DHCP server (%s100+)", ready["addr"], n.Prefix)
	}
	if ready["mode"] != "stateless" {
		t.Errorf("ready mode=%q, want stateless (no disk, plinth.config= from the PXE server)%s", ready["mode"], formatTail(vm.Tail(TailLines)))
	}
	if console := strings.Join(vm.Console(), "\n"); !strings.Contains(console, "stateless: configuration from http://"+n.PXEIP+":8080/answers/52-54-00-50-58-45.txt") {
		t.Errorf("the console does not say where the configuration came from%s", formatTail(vm.Tail(TailLines)))
	}
	if login {
		// The root password came with the answer file: no DCUI step.
		addr, _, _ := strings.Cut(ready["addr"], "/")
		t0 := time.Now()
		newPinnedClient().login(t, "https://"+addr, pxePassword)
		t.Logf("API login at https://%s with the answer file's password: %.1fs", addr, time.Since(t0).Seconds())
	}
	vm.Close()
}
