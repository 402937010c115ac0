package pxe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/crypto/bcrypt"
	"pack.ag/tftp"

	"github.com/plinth/plinth/installer"
)

var (
	serverIP  = net.IPv4(192, 0, 2, 2).To4()
	scriptURL = "http://192.0.2.2:8080/boot.ipxe"
	clientMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
)

func discover(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(clientMAC, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var pxeClass = dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))

func TestProxyReply(t *testing.T) {
	uuid := make([]byte, 17)
	for i := range uuid[1:] {
		uuid[1+i] = byte(i)
	}
	for _, tc := range []struct {
		name     string
		mods     []dhcpv4.Modifier
		wantFile string // "" = no reply
		want43   bool
	}{
		{"bios", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, BIOSBootFile, true},
		{"no-arch-is-bios", []dhcpv4.Modifier{pxeClass}, BIOSBootFile, true},
		{"uefi-x64", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, EFIBootFile, true},
		{"uefi-bc", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))}, EFIBootFile, true},
		// iPXE sends its user class as a bare string (what QEMU's ROMs
		// send, seen on the wire) or in RFC 3004 form.
		{"ipxe-bare", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))}, scriptURL, false},
		{"ipxe-rfc3004", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"iPXE"})),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, scriptURL, false},
		{"uuid-echoed", []dhcpv4.Modifier{pxeClass, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, uuid))}, BIOSBootFile, true},
		{"not-pxe", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("Plinth"))}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := discover(t, tc.mods...)
			resp, err := ProxyReply(req, serverIP, scriptURL)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFile == "" {
				if resp != nil {
					t.Fatalf("a proxy must stay silent to a non-PXE client, got %s", resp.Summary())
				}
				return
			}
			if resp == nil {
				t.Fatal("no reply")
			}
			if resp.MessageType() != dhcpv4.MessageTypeOffer || resp.TransactionID != req.TransactionID || !bytes.Equal(resp.ClientHWAddr, clientMAC) {
				t.Errorf("reply %s: want an OFFER for the same xid and MAC", resp.Summary())
			}
			if !resp.YourIPAddr.IsUnspecified() {
				t.Errorf("proxy offered address %s: the site's DHCP server does that", resp.YourIPAddr)
			}
			if !resp.ServerIPAddr.Equal(serverIP) || !resp.ServerIdentifier().Equal(serverIP) {
				t.Errorf("siaddr %s, server id %s, want %s", resp.ServerIPAddr, resp.ServerIdentifier(), serverIP)
			}
			if resp.ClassIdentifier() != "PXEClient" {
				t.Errorf("vendor class %q, want PXEClient (else PXE clients ignore the offer)", resp.ClassIdentifier())
			}
			if resp.BootFileName != tc.wantFile || resp.BootFileNameOption() != tc.wantFile {
				t.Errorf("boot file %q / option 67 %q, want %q", resp.BootFileName, resp.BootFileNameOption(), tc.wantFile)
			}
			if got := resp.GetOneOption(dhcpv4.OptionVendorSpecificInformation) != nil; got != tc.want43 {
				t.Errorf("option 43 present %v, want %v", got, tc.want43)
			}
			if tc.name == "uuid-echoed" && !bytes.Equal(resp.GetOneOption(dhcpv4.OptionClientMachineIdentifier), uuid) {
				t.Error("option 97 (client UUID) not echoed")
			}
		})
	}
}

func TestProxyReplyRequestIsAcked(t *testing.T) {
	req := discover(t, pxeClass)
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
	resp, err := ProxyReply(req, serverIP, scriptURL)
	if err != nil || resp == nil || resp.MessageType() != dhcpv4.MessageTypeAck || resp.BootFileName != BIOSBootFile {
		t.Fatalf("REQUEST on port 4011: got %v, %v; want an ACK naming %s", resp, err, BIOSBootFile)
	}
	req.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeInform))
	if resp, _ := ProxyReply(req, serverIP, scriptURL); resp != nil {
		t.Fatalf("INFORM answered: %s", resp.Summary())
	}
}

func TestClientUUID(t *testing.T) {
	b := []byte{0, 0x4c, 0x4c, 0x45, 0x44, 0, 0x42, 0x35, 0x10, 0x80, 0x51, 0xb7, 0xc0, 0x4f, 0x4e, 0x32, 0x32}
	c := ClientOf(discover(t, pxeClass, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, b))))
	if c.UUID != "4c4c4544-0042-3510-8051-b7c04f4e3232" {
		t.Errorf("UUID %q", c.UUID)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:12:34:56": "52-54-00-12-34-56",
		"52-54-00-12-34-AB": "52-54-00-12-34-ab",
		"5254.0012.3456":    "52-54-00-12-34-56",
		"525400123456":      "52-54-00-12-34-56",
		"52:54:00:12:34":    "",
		"52:54:00:12:34:zz": "",
	} {
		got, err := NormalizeMAC(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizeMAC(%q) = %q, want an error", in, got)
			}
		} else if got != want || err != nil {
			t.Errorf("NormalizeMAC(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if u, err := NormalizeUUID("4C4C4544-0042-3510-8051-B7C04F4E3232"); err != nil || u != "4c4c4544-0042-3510-8051-b7c04f4e3232" {
		t.Errorf("NormalizeUUID: %q, %v", u, err)
	}
	for _, bad := range []string{"", "4c4c4544004235108051b7c04f4e3232", "4c4c4544-0042-3510-8051-b7c04f4e323g"} {
		if _, err := NormalizeUUID(bad); err == nil {
			t.Errorf("NormalizeUUID(%q) accepted", bad)
		}
	}
}

func answerText(t testing.TB, extra string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "root_password_hash = " + string(h) + "\n" + extra
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLookupAnswer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "52-54-00-12-34-56.txt"), answerText(t, "hostname = by-dash\n"))
	writeFile(t, filepath.Join(dir, "52:54:00:aa:bb:cc.txt"), answerText(t, "hostname = by-colon\n"))
	writeFile(t, filepath.Join(dir, "4c4c4544-0042-3510-8051-b7c04f4e3232.txt"), answerText(t, "hostname = by-uuid\n"))
	for _, tc := range []struct{ mac, uuid, host, by string }{
		{"52:54:00:12:34:56", "", "by-dash", "mac"},
		{"52-54-00-AA-BB-CC", "", "by-colon", "mac"},
		{"52-54-00-12-34-56", "4c4c4544-0042-3510-8051-b7c04f4e3232", "by-dash", "mac"}, // MAC first
		{"52:54:00:99:99:99", "4C4C4544-0042-3510-8051-B7C04F4E3232", "by-uuid", "uuid"},
	} {
		f, err := LookupAnswer(dir, tc.mac, tc.uuid)
		if err != nil || f.Answer.Hostname != tc.host || f.By != tc.by {
			t.Errorf("LookupAnswer(%q, %q) = %+v, %v; want %s by %s", tc.mac, tc.uuid, f, err, tc.host, tc.by)
		}
	}
	if _, err := LookupAnswer(dir, "52:54:00:99:99:99", "00000000-0000-0000-0000-000000000000"); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("unknown host: %v, want ErrNoAnswer", err)
	}
	writeFile(t, filepath.Join(dir, DefaultAnswer), answerText(t, "hostname = fallback\n"))
	if f, err := LookupAnswer(dir, "52:54:00:99:99:99", ""); err != nil || f.By != "default" || f.Answer.Hostname != "fallback" {
		t.Errorf("default: %+v, %v", f, err)
	}
	// A broken file is an error naming it, not a fall back to default.txt.
	writeFile(t, filepath.Join(dir, "52-54-00-00-00-01.txt"), answerText(t, "colour = blue\n"))
	if _, err := LookupAnswer(dir, "52:54:00:00:00:01", ""); err == nil || !strings.Contains(err.Error(), "52-54-00-00-00-01.txt") || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("broken answer file: %v", err)
	}
}

func TestScriptRender(t *testing.T) {
	got := Script{BaseURL: "http://192.0.2.2:8080", Cmdline: []string{"plinth.hostname=h1"}, Comment: []string{"for h1"}}.Render()
	want := "#!ipxe\n# for h1\n" +
		"kernel http://192.0.2.2:8080/vmlinuz initrd=initramfs.cpio.zst console=tty0 console=ttyS0,115200 plinth.hostname=h1\n" +
		"initrd http://192.0.2.2:8080/initramfs.cpio.zst\nboot\n"
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	if g := (Script{}).Render(); !strings.Contains(g, "kernel vmlinuz initrd=initramfs.cpio.zst") || !strings.Contains(g, "\ninitrd initramfs.cpio.zst\n") {
		t.Errorf("relative script:\n%s", g)
	}
	if c := ChainScript(scriptURL); !strings.Contains(c, "chain "+scriptURL+"?mac=${mac:hexhyp}&uuid=${uuid}") {
		t.Errorf("chain script:\n%s", c)
	}
}

func TestHostCmdline(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.txt")
	writeFile(t, f, answerText(t, "hostname = esx7\nnetwork = static\nnic = eth1\naddress = 192.0.2.10/24\ngateway = 192.0.2.1\ndns = 192.0.2.53, 192.0.2.54\n"))
	found, err := LookupAnswer(filepath.Dir(f), "", "")
	if err == nil {
		t.Fatalf("no default.txt, yet found %+v", found)
	}
	os.Rename(f, filepath.Join(filepath.Dir(f), DefaultAnswer))
	found, err = LookupAnswer(filepath.Dir(f), "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(HostCmdline(found.Answer), " ")
	want := "plinth.hostname=esx7 plinth.nic=eth1 plinth.ip=192.0.2.10/24 plinth.gw=192.0.2.1 plinth.dns=192.0.2.53,192.0.2.54"
	if got != want {
		t.Errorf("cmdline %q, want %q", got, want)
	}
}

// bundleDir makes a small fake bundle.
func bundleDir(t testing.TB) string {
	dir := t.TempDir()
	for _, f := range append([]string{KernelFile, InitrdFile}, IPXEFiles...) {
		writeFile(t, filepath.Join(dir, f), "contents of "+f)
	}
	writeFile(t, filepath.Join(dir, AnswersDir, "52-54-00-12-34-56.txt"), answerText(t, "hostname = web1\n"))
	return dir
}

func TestBundleWrite(t *testing.T) {
	src := bundleDir(t)
	out := filepath.Join(t.TempDir(), "pxe")
	b := Bundle{Kernel: filepath.Join(src, KernelFile), Initrd: filepath.Join(src, InitrdFile), IPXEDir: src}
	if err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{KernelFile, InitrdFile, ScriptFile, AnswersDir}, IPXEFiles...) {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	b.IPXEDir = t.TempDir()
	if err := b.Write(out); err == nil || !strings.Contains(err.Error(), "ipxe package") {
		t.Errorf("missing iPXE binaries: %v", err)
	}
}

func TestHTTP(t *testing.T) {
	dir := bundleDir(t)
	for _, install := range []bool{false, true} {
		s, err := NewServer(Config{Dir: dir, ServerIP: netip.MustParseAddr("192.0.2.2"), Install: install, Cmdline: []string{"panic=-1"}})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s.Handler())
		get := func(path string) string {
			resp, err := http.Get(ts.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Errorf("GET %s: %s", path, resp.Status)
			}
			return string(b)
		}
		if b := get("/boot.ipxe"); !strings.Contains(b, "chain http://192.0.2.2:8080/boot.ipxe?mac=") {
			t.Errorf("chain script:\n%s", b)
		}
		host := get("/boot.ipxe?mac=52-54-00-12-34-56&uuid=00000000-0000-0000-0000-000000000000")
		answer, _ := os.ReadFile(filepath.Join(dir, AnswersDir, "52-54-00-12-34-56.txt"))
		sum := sha256.Sum256(answer)
		for _, w := range []string{"kernel http://192.0.2.2:8080/vmlinuz initrd=initramfs.cpio.zst", "plinth.hostname=web1", "panic=-1", "(matched by mac)",
			// The answer file comes over plain http: its sha256 pins it.
			" " + installer.AnswerSHA256Key + "=" + hex.EncodeToString(sum[:])} {
			if !strings.Contains(host, w) {
				t.Errorf("host script lacks %q:\n%s", w, host)
			}
		}
		if got := strings.Contains(host, " plinth.answer=http://192.0.2.2:8080/answers/52-54-00-12-34-56.txt"); got != install {
			t.Errorf("install=%v but plinth.answer present=%v:\n%s", install, got, host)
		}
		// Without -install the host is stateless: the same file, fetched
		// by the host at every boot.
		if got := strings.Contains(host, " plinth.config=http://192.0.2.2:8080/answers/52-54-00-12-34-56.txt"); got == install {
			t.Errorf("install=%v but plinth.config present=%v:\n%s", install, got, host)
		}
		if mode := map[bool]string{false: "), stateless\n", true: "), install\n"}[install]; !strings.Contains(host, mode) {
			t.Errorf("install=%v: the script's comment does not say %q:\n%s", install, mode, host)
		}
		// The URL on the command line is one the server answers.
		if b := get("/answers/52-54-00-12-34-56.txt"); !strings.Contains(b, "hostname = web1") {
			t.Errorf("answer file named on the command line: %q", b)
		}
		if b := get("/boot.ipxe?mac=52-54-00-99-99-99"); !strings.Contains(b, "no answer file") || !strings.Contains(b, "shell") {
			t.Errorf("unknown host's script should say why:\n%s", b)
		}
		if b := get("/vmlinuz"); b != "contents of vmlinuz" {
			t.Errorf("kernel: %q", b)
		}
		if b := get("/answers/52-54-00-12-34-56.txt"); !strings.Contains(b, "hostname = web1") {
			t.Errorf("answer file: %q", b)
		}
		// Nothing else: no listing of every host's answer file, however
		// the path is spelt, no other file of the bundle's directory, no
		// link out of the answers directory.
		writeFile(t, filepath.Join(dir, "upgrade-signing.key"), "PRIVATE")
		writeFile(t, filepath.Join(dir, AnswersDir, "notes.txt"), "operator's notes")
		os.Symlink("/etc/passwd", filepath.Join(dir, AnswersDir, "52-54-00-00-00-01.txt"))
		os.Mkdir(filepath.Join(dir, AnswersDir, "52-54-00-00-00-02.txt"), 0o755)
		for _, p := range []string{"/", "/answers", "/answers/", "/answers%2F", "/answers%2f", "/answers/.", "/answers/..",
			"/answers/%2e%2e/upgrade-signing.key", "/answers%2F..%2Fupgrade-signing.key", "/upgrade-signing.key", "/%2e/upgrade-signing.key",
			"/answers/notes.txt", "/answers/52-54-00-00-00-01.txt", "/answers/52-54-00-00-00-02.txt", "//answers/", "/answers//",
			"/" + AnswersDir + "/52-54-00-12-34-56.txt/", "/boot.ipxe/../answers/"} {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
			req.URL.Opaque = p // sent as spelt
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 || bytes.Contains(b, []byte("52-54-00-12-34-56")) || bytes.Contains(b, []byte("PRIVATE")) ||
				bytes.Contains(b, []byte("root:")) || bytes.Contains(b, []byte("operator's")) {
				t.Errorf("GET %s: %s %q, want 404 and nothing", p, resp.Status, b)
			}
		}
		os.Remove(filepath.Join(dir, "upgrade-signing.key"))
		os.Remove(filepath.Join(dir, AnswersDir, "notes.txt"))
		os.Remove(filepath.Join(dir, AnswersDir, "52-54-00-00-00-01.txt"))
		os.Remove(filepath.Join(dir, AnswersDir, "52-54-00-00-00-02.txt"))
		ts.Close()
	}
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestServeTFTPAndHTTP(t *testing.T) {
	dir := bundleDir(t)
	tport := freeUDPPort(t)
	s, err := NewServer(Config{Dir: dir, ServerIP: netip.MustParseAddr("127.0.0.1"), HTTPAddr: "127.0.0.1:0",
		TFTPAddr: "127.0.0.1:" + itoa(tport), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of cancel")
		}
	})
	// Short timeouts: a request sent before the server listens is lost,
	// and the retry loop below sends another.
	c, err := tftp.NewClient(tftp.ClientTimeout(1), tftp.ClientRetransmit(1))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.Get("tftp://127.0.0.1:" + itoa(tport) + "/" + EFIBootFile)
		if err == nil {
			b, err := io.ReadAll(r)
			if err != nil || string(b) != "contents of ipxe.efi" {
				t.Fatalf("TFTP %s: %q, %v", EFIBootFile, b, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TFTP did not answer within 10s: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the server may not listen yet
	}
	for _, bad := range []string{"answers/52-54-00-12-34-56.txt", "../../etc/passwd", "nope", KernelFile, ScriptFile, "answers", "."} {
		if r, err := c.Get("tftp://127.0.0.1:" + itoa(tport) + "/" + bad); err == nil {
			b, _ := io.ReadAll(r)
			t.Errorf("TFTP served %q: %q", bad, b)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
