package dcui

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// goldenDir is testdata/, found before a test changes directory.
var goldenDir, _ = filepath.Abs("testdata")

func init() { lipgloss.SetColorProfile(termenv.Ascii) }

// testFP is the fingerprint of testdata/test-cert.pem, the rig's certificate.
const testFP = "56:19:B8:7B:6B:13:11:66:D1:C3:01:4B:81:2A:0D:D4:33:09:67:FF:F5:D9:C6:8B:81:50:E6:04:FD:74:D1:A3"

// harness drives a Model the way bubbletea would, running commands at once,
// against a real vmkernel (vmkerneltest) whose host facts and hardware are
// fixed, whose management network is a veth eth0 in a network namespace of
// the test's (10.0.2.15/24 on it), with a fixed TLS certificate and the
// boot log below; ticks are sent by the test, with the console's clock
// running ahead of the real one by offset.
type harness struct {
	t      *testing.T
	m      Model
	rig    *vmkerneltest.Rig
	ns     string
	offset time.Duration

	mu     sync.Mutex
	power  []string // host power requests that reached vmkernel
	agents []string // agents vmkernel restarted
}

// harnessOptions change the rig.
type harnessOptions struct {
	hardware  func() (api.Hardware, error)
	installer *installer.Env
}

var fixedHardware = api.Hardware{System: api.HostSystem{Vendor: "QEMU", Product: "Standard PC (Q35)", Serial: "SN-1234", BIOSVendor: "SeaBIOS", BIOSVersion: "1.16.2", BootMode: "bios"},
	NICs: []api.HostNIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Driver: "virtio_net", Link: true, SpeedMbps: 1000},
		{Name: "eth1", MAC: "52:54:00:12:34:57", Driver: "e1000e", Link: false}}}

func newHarness(t *testing.T, opts ...harnessOptions) *harness {
	h := &harness{t: t}
	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.hardware == nil {
		o.hardware = func() (api.Hardware, error) { return fixedHardware, nil }
	}
	h.ns = testNetNS(t)
	h.rig = vmkerneltest.Start(t, vmkerneltest.Options{
		Host: func() (api.Host, error) {
			return api.Host{Hostname: "esx-lab1", Version: "1.0.0-test", Kernel: "6.1.0-test", CPUModel: "AMD EPYC 7B13", CPUCount: 2,
				MemoryBytes: 2 << 30, Acceleration: api.Acceleration{Mode: api.AccelTCG, Reason: "/dev/kvm is kvm_pvm, which hangs stock guest kernels"},
				QEMU: "7.2.0"}, nil
		},
		Hardware:  o.hardware,
		Installer: o.installer,
		Net: &netconf.Host{Applier: &netconf.Applier{SysRoot: "/sys", ProcRoot: "/proc", ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"),
			LinkWait: 2 * time.Second, DHCPWait: time.Second}, NetNS: h.ns},
		Power: func(action, reason string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.power = append(h.power, action+": "+reason)
			return nil
		},
		SignalAgent: func(name string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.agents = append(h.agents, name)
			return nil
		},
		ApplyDelay: 10 * time.Millisecond,
	})
	lay := h.rig.Layout
	// What the init applied at boot (10.0.2.15/24 on eth0, nothing saved):
	// a rollback's way back.
	boot := &netconf.Host{Applier: &netconf.Applier{SysRoot: "/sys", ProcRoot: "/proc", RunDir: lay.Run,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), LinkWait: 2 * time.Second}, NetNS: h.ns}
	bctx, bcancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := boot.Apply(bctx, netconf.Config{NIC: "eth0", Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("10.0.2.15/24")})
	bcancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cert.pem", "key.pem"} {
		b, err := os.ReadFile(filepath.Join(goldenDir, "test-"+strings.TrimSuffix(f, ".pem")+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lay.TLSDir(), f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for i := 1; i <= 60; i++ {
		lines = append(lines, "plinth-init: boot line "+strings.Repeat("x", i%7)+" "+itoa(i))
	}
	lines[41] = "plinth-init: management network: eth0 10.0.2.15/24 (dhcp)"
	if err := os.WriteFile(lay.BootLog(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.rigVM("web01", true)
	h.rigVM("db01", false)
	d := Deps{
		Version:        "1.0.0-test",
		API:            h.rig.Client,
		Now:            func() time.Time { return time.Now().Add(h.offset) },
		ConfirmTimeout: 10 * time.Second,
		VMShutdownWait: 2 * time.Second,
	}
	h.m = New(d)
	h.run(h.m.Init())
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	return h
}

// testNetNS makes a network namespace with the NIC eth0 (a veth whose
// peer is up in the host's namespace).
func testNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a network namespace")
	}
	ns := fmt.Sprintf("plinth-dcui-%d-%d", os.Getpid()%100000, time.Now().UnixNano()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// eth0's peer stays in the host's namespace (up, for eth0's carrier),
	// so the NIC list in the namespace is eth0 alone.
	peer := fmt.Sprintf("pdc%d", time.Now().UnixNano()%1000000)
	run("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", peer).Run() })
	run("ip", "link", "set", peer, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "link", "set", "eth0", "up")
	return ns
}

// rigVM defines a small VM on the rig (and starts it: QEMU without a disk).
func (h *harness) rigVM(name string, start bool) api.VM {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vm, err := h.rig.Client.CreateVM(ctx, api.VMSpec{Name: name, MemoryMiB: 64})
	if err != nil {
		h.t.Fatal(err)
	}
	if start {
		if vm, err = h.rig.Client.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
			h.t.Fatal(err)
		}
	}
	return vm
}

// until sends ticks (the real clock going on) until cond holds, within d.
func (h *harness) until(d time.Duration, what string, cond func() bool) {
	h.t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			h.t.Fatalf("%s: not within %v; the screen:\n%s", what, d, h.m.View())
		}
		time.Sleep(50 * time.Millisecond) // vmkernel works meanwhile; nothing to wait on here
		h.send(tickMsg{h.m.d.Now()})
	}
}

// screenUntil ticks until the console is at screen s.
func (h *harness) screenUntil(s screen, d time.Duration) {
	h.t.Helper()
	h.until(d, fmt.Sprintf("screen %d", s), func() bool { return h.m.scr == s })
}

func (h *harness) powerCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.power...)
}

func (h *harness) agentCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.agents...)
}

func itoa(i int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i/10)) + string(rune('0'+i%10)))
}

func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	nm, cmd := h.m.Update(msg)
	h.m = nm.(Model)
	h.run(cmd)
}

func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	msg := cmd()
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			h.run(c)
		}
	default:
		h.send(msg)
	}
}

var keyTypes = map[string]tea.KeyType{
	"enter": tea.KeyEnter, "esc": tea.KeyEsc, "f2": tea.KeyF2, "f12": tea.KeyF12, "up": tea.KeyUp, "down": tea.KeyDown,
	"left": tea.KeyLeft, "right": tea.KeyRight, "tab": tea.KeyTab, "backspace": tea.KeyBackspace, "space": tea.KeySpace,
	"pgup": tea.KeyPgUp, "end": tea.KeyEnd, "home": tea.KeyHome, "ctrl+u": tea.KeyCtrlU,
}

// keys sends key names (see keyTypes) or, for anything else, typed text.
func (h *harness) keys(ks ...string) {
	h.t.Helper()
	for _, k := range ks {
		if t, ok := keyTypes[k]; ok {
			h.send(tea.KeyMsg{Type: t})
			continue
		}
		for _, r := range k {
			h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
		}
	}
}

func (h *harness) advance(d time.Duration) {
	h.offset += d
	h.send(tickMsg{h.m.d.Now()})
}

// countdown is the confirm screen's seconds left, which the real clock
// moves on.
var countdown = regexp.MustCompile(`in \d+ s unless`)

// clock is a change's deadline as vmkernel says it ("not confirmed by ...").
var clock = regexp.MustCompile(`by \d\d:\d\d:\d\d\b`)

// golden compares the screen with testdata/NAME.golden (rewritten with -update).
func (h *harness) golden(name string) string {
	h.t.Helper()
	got := countdown.ReplaceAllString(h.m.View(), "in NN s unless")
	got = clock.ReplaceAllString(got, "by HH:MM:SS")
	for i, l := range strings.Split(got, "\n") {
		if w := lipgloss.Width(l); w > h.m.w {
			h.t.Errorf("%s: line %d is %d columns wide, wider than %d: %q", name, i+1, w, h.m.w, l)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != h.m.h {
		h.t.Errorf("%s: %d lines, want %d", name, n, h.m.h)
	}
	path := filepath.Join(goldenDir, name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("%v (run go test ./dcui -update to create it)", err)
	}
	if string(want) != got+"\n" {
		h.t.Errorf("screen %s differs from %s (go test ./dcui -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
	return got
}

func (h *harness) want(s screen) {
	h.t.Helper()
	if h.m.scr != s {
		h.t.Fatalf("screen %d, want %d:\n%s", h.m.scr, s, h.m.View())
	}
}

func TestFirstBootSetsPassword(t *testing.T) {
	h := newHarness(t)
	scr := h.golden("home-first-boot")
	for _, want := range []string{"esx-lab1", "2 x AMD EPYC 7B13", "2.0 GiB", "https://10.0.2.15/", "1 running, 2 total", "TCG", "kvm_pvm", "FIRST BOOT", "F2", "F12", testFP[:48]} {
		if !strings.Contains(scr, want) {
			t.Errorf("home screen lacks %q", want)
		}
	}
	h.keys("f2")
	h.want(scrSetPassword)
	h.keys("short", "enter")
	h.golden("set-password-weak")
	h.keys("ctrl+u", "Correct-Horse-9", "enter", "Correct-Horse-8", "enter")
	if !strings.Contains(h.m.View(), "differ") {
		t.Errorf("mismatch not reported:\n%s", h.m.View())
	}
	h.keys("Correct-Horse-9", "tab", "Correct-Horse-9")
	h.golden("set-password-filled")
	h.keys("enter")
	h.want(scrMenu)
	if err := h.rig.Client.VerifyPassword(context.Background(), "Correct-Horse-9"); err != nil {
		t.Fatalf("the password was not set through the API: %v", err)
	}
	h.golden("menu")
	// Esc logs out; F2 now asks for the password.
	h.keys("esc")
	h.want(scrHome)
	h.golden("home")
	h.keys("f2")
	h.want(scrLogin)
	h.keys("wrong-Password1", "enter")
	h.golden("login-wrong")
	h.keys("Correct-Horse-9", "enter")
	h.want(scrMenu)
}

// loggedIn returns a harness at the menu with the password set.
func loggedIn(t *testing.T, opts ...harnessOptions) *harness {
	h := newHarness(t, opts...)
	if err := h.rig.Client.SetPassword(context.Background(), "Correct-Horse-9"); err != nil {
		t.Fatal(err)
	}
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'r'}})            // refresh: the password is set now
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'2'}, Alt: true}) // Esc 2 = F2
	h.want(scrLogin)
	h.keys("Correct-Horse-9", "enter")
	h.want(scrMenu)
	return h
}

func (h *harness) menu(item string) {
	h.t.Helper()
	for i, it := range menuItems {
		if it == item {
			h.m.menu.sel = i
			h.keys("enter")
			return
		}
	}
	h.t.Fatalf("no menu item %q", item)
}

func TestChangePasswordAndLockdown(t *testing.T) {
	h := loggedIn(t)
	ctx := context.Background()
	h.menu("Change Root Password")
	h.golden("change-password")
	h.keys("New-Secret-77", "enter", "New-Secret-77", "enter")
	h.want(scrMessage)
	if err := h.rig.Client.VerifyPassword(ctx, "New-Secret-77"); err != nil {
		t.Fatal(err)
	}
	h.keys("enter")
	h.want(scrMenu)
	h.menu("Lockdown Mode")
	h.golden("lockdown-off")
	h.keys("enter")
	if st, _ := h.rig.Client.Lockdown(ctx); !st.Enabled {
		t.Fatal("lockdown not turned on")
	}
	h.golden("lockdown-on")
	h.keys("enter")
	if st, _ := h.rig.Client.Lockdown(ctx); st.Enabled {
		t.Fatal("lockdown not turned off")
	}
	h.keys("esc")
	h.want(scrMenu)
}

// liveAddrs are eth0's IPv4 addresses in the test's namespace.
func (h *harness) liveAddrs() string {
	out, _ := exec.Command("ip", "-n", h.ns, "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	return string(out)
}

func TestConfigureNetworkCommitConfirmed(t *testing.T) {
	h := loggedIn(t)
	h.menu("Configure Management Network")
	h.want(scrNet)
	h.golden("network-dhcp")
	// eth0, VLAN 20, static with a gateway outside the subnet and a DNS
	// twice: the API refuses it, naming the fields, before applying.
	h.keys("right", "down", "20", "down", "right", "down", "192.0.2.10", "down", "255.255.255.0", "down", "198.51.100.1",
		"down", "down", "9.9.9.9, 9.9.9.9", "down", "down", "esx-lab2", "enter")
	h.want(scrNet)
	scr := h.golden("network-invalid")
	for _, want := range []string{"Default gateway: 198.51.100.1 is outside the subnet 192.0.2.0/24", "DNS servers: 9.9.9.9 is listed twice"} {
		if !strings.Contains(scr, want) {
			t.Errorf("problem %q not shown", want)
		}
	}
	if n, _ := h.rig.Client.HostNetwork(context.Background()); n.Pending != nil || n.LastChange != nil {
		t.Fatal("an invalid configuration was applied")
	}
	// Fix the gateway and DNS; no VLAN (this kernel may have none).
	h.m.net.form.focus = fVLAN
	h.keys("ctrl+u")
	h.m.net.form.focus = fGW
	h.keys("ctrl+u", "192.0.2.1")
	h.m.net.form.focus = fDNS
	h.keys("ctrl+u", "9.9.9.9, 1.1.1.1", "enter")
	h.screenUntil(scrNetConfirm, 30*time.Second)
	h.golden("network-confirm")
	n, _ := h.rig.Client.HostNetwork(context.Background())
	if p := n.Pending; p == nil || p.Config.NIC != "eth0" || p.Config.Address != "192.0.2.10/24" || p.Config.Gateway != "192.0.2.1" ||
		strings.Join(p.Config.DNS, ",") != "9.9.9.9,1.1.1.1" || p.Config.Hostname != "esx-lab2" || !strings.Contains(h.liveAddrs(), "192.0.2.10/24") {
		t.Fatalf("pending %+v; eth0: %s", n.Pending, h.liveAddrs())
	}
	// Not confirmed in time (10 s here): rolled back by vmkernel.
	h.screenUntil(scrMessage, 30*time.Second)
	if a := h.liveAddrs(); !strings.Contains(a, "10.0.2.15/24") || strings.Contains(a, "192.0.2.10") {
		t.Fatalf("no rollback: eth0 has %s", a)
	}
	h.golden("network-rolled-back")
	// Again, and kept this time.
	h.keys("enter")
	h.menu("Configure Management Network")
	h.m.net.form.fields[fMode].value = api.NetModeStatic
	h.m.net.form.fields[fAddr].value, h.m.net.form.fields[fMask].value = "192.0.2.10", "24"
	h.keys("enter")
	h.screenUntil(scrNetConfirm, 30*time.Second)
	h.keys("y")
	h.screenUntil(scrMessage, 30*time.Second)
	if saved, ok, _ := netconf.Load(h.rig.Layout.State); !ok || saved.Address.String() != "192.0.2.10/24" {
		t.Fatalf("kept configuration not saved: %+v", saved)
	}
	h.golden("network-kept")
	// The form shows the saved configuration next time.
	h.keys("enter")
	h.menu("Configure Management Network")
	if h.m.net.form.fields[fAddr].value != "192.0.2.10" || h.m.net.form.fields[fMask].value != "255.255.255.0" {
		t.Errorf("form does not show the saved configuration: %+v", h.m.net.form.fields)
	}
	h.keys("esc")
	h.want(scrMenu)
}

// A change that fails to apply (eth1 is in the inventory but not on this
// host) is rolled back, and the console says why.
func TestFailedApplyRollsBack(t *testing.T) {
	h := loggedIn(t)
	h.menu("Configure Management Network")
	h.keys("right", "right") // eth1
	h.keys("enter")
	h.screenUntil(scrMessage, 30*time.Second)
	if scr := h.golden("network-apply-failed"); !strings.Contains(scr, "failed to apply") || !strings.Contains(scr, "eth1") {
		t.Errorf("the failure is not explained")
	}
	if a := h.liveAddrs(); !strings.Contains(a, "10.0.2.15/24") {
		t.Errorf("eth0 lost its address: %s", a)
	}
}

func TestRestartRestoreTestNetwork(t *testing.T) {
	h := loggedIn(t)
	cfg := netconf.Config{NIC: "eth0", Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.10/24"), Gateway: netip.MustParseAddr("192.0.2.1")}
	if err := netconf.Save(h.rig.Layout.State, cfg); err != nil {
		t.Fatal(err)
	}
	h.menu("Restart Management Network")
	h.golden("network-restart")
	h.keys("enter")
	h.screenUntil(scrMessage, 30*time.Second)
	if a := h.liveAddrs(); !strings.Contains(a, "192.0.2.10/24") || !strings.Contains(h.m.View(), "192.0.2.10/24 on eth0") {
		t.Fatalf("restart: eth0 has %s\n%s", a, h.m.View())
	}
	h.keys("enter")
	h.menu("Network Restore Options")
	h.golden("network-restore")
	// DHCP: nobody answers in this namespace, so the restore fails and is
	// rolled back to the static address.
	h.keys("enter")
	h.screenUntil(scrMessage, 60*time.Second)
	if scr := h.m.View(); !strings.Contains(scr, "Rolled Back") || !strings.Contains(scr, "DHCP") || !strings.Contains(h.liveAddrs(), "192.0.2.10/24") {
		t.Errorf("restore without a DHCP server:\n%s\neth0: %s", scr, h.liveAddrs())
	}
	h.keys("enter")
	h.menu("Test Management Network")
	h.until(20*time.Second, "the test's lines", func() bool { return h.m.net.checks != nil })
	if scr := h.m.View(); !strings.Contains(scr, "ping gateway 192.0.2.1") || !strings.Contains(scr, "FAILED") {
		t.Errorf("test screen:\n%s", scr)
	}
	h.keys("esc")
	h.want(scrMenu)
}

func TestLogs(t *testing.T) {
	h := loggedIn(t)
	h.menu("View System Logs")
	h.golden("logs-pick")
	h.keys("enter")
	h.want(scrLogView)
	h.golden("logs-boot-end")
	h.keys("/", "management network", "enter")
	scr := h.golden("logs-search")
	if !strings.Contains(scr, "*plinth-init: management network") {
		t.Errorf("search did not find the line")
	}
	h.keys("home")
	h.golden("logs-top")
	// Following: new lines appear once back at the end.
	h.keys("end")
	f, _ := os.OpenFile(h.rig.Layout.BootLog(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("plinth-init: a brand new line\n")
	f.Close()
	h.advance(time.Second)
	if !strings.Contains(h.m.View(), "a brand new line") {
		t.Errorf("new line not followed:\n%s", h.m.View())
	}
	h.keys("esc", "down", "enter")
	if !strings.Contains(h.m.View(), "(the log is empty)") {
		t.Errorf("a log not written yet:\n%s", h.m.View())
	}
	h.keys("esc", "esc")
	h.want(scrMenu)
}

func TestSupportTroubleshootingReset(t *testing.T) {
	h := loggedIn(t)
	h.menu("View Support Information")
	scr := h.golden("support")
	for _, want := range []string{"SN-1234", "SeaBIOS 1.16.2", "1.0.0-test", testFP[48:]} {
		if !strings.Contains(scr, want) {
			t.Errorf("support information lacks %q", want)
		}
	}
	h.keys("esc")
	h.menu("Troubleshooting Options")
	h.golden("troubleshooting")
	h.keys("enter")
	h.until(5*time.Second, "mgmtd restarted", func() bool { return len(h.agentCalls()) == 1 })
	h.keys("enter")
	h.menu("Troubleshooting Options")
	h.keys("down", "enter")
	h.want(scrMessage) // no shell in tests
	h.keys("esc", "esc")
	h.menu("Reset System Configuration")
	h.keys("reset", "enter")
	h.golden("reset-refused")
	if st, _ := h.rig.Client.PasswordStatus(context.Background()); !st.Set {
		t.Fatal("reset without the typed confirmation")
	}
	h.keys("ctrl+u", "RESET", "enter")
	h.until(10*time.Second, "the restart after the reset", func() bool { return len(h.powerCalls()) == 1 })
	if st, _ := h.rig.Client.PasswordStatus(context.Background()); st.Set || h.powerCalls()[0] != "reboot: configuration reset" {
		t.Fatalf("after the reset: password %+v, power %v", st, h.powerCalls())
	}
}

func TestShutdownListsVMs(t *testing.T) {
	h := newHarness(t)
	h.rig.Client.SetPassword(context.Background(), "Correct-Horse-9")
	h.keys("r", "f12")
	h.want(scrLogin)
	h.golden("login-power")
	h.keys("Correct-Horse-9", "enter")
	h.want(scrPower)
	scr := h.golden("power")
	if !strings.Contains(scr, "web01") || strings.Contains(scr, "db01") {
		t.Errorf("power screen must list the running VM web01 only")
	}
	h.keys("down", "enter") // restart, VMs shut down gracefully first
	if p := h.powerCalls(); len(p) != 1 || !strings.HasPrefix(p[0], "reboot: ") {
		t.Fatalf("power %v", p)
	}
	if vms, _ := h.rig.Client.ListVMs(context.Background()); vms[0].Runtime.State == api.VMRunning || vms[1].Runtime.State == api.VMRunning {
		t.Errorf("a VM still runs after the restart's shutdown: %+v", vms)
	}
	h.keys("enter")
	h.rigVM("web02", true)
	h.keys("r", "f12")
	h.want(scrPower)
	h.keys("up", "space", "down", "enter") // untick, shut down: VMs stopped hard
	if p := h.powerCalls(); len(p) != 2 || !strings.HasPrefix(p[1], "shutdown: ") {
		t.Fatalf("power %v", p)
	}
}

func TestIdleLogout(t *testing.T) {
	h := loggedIn(t)
	h.advance(9 * time.Minute)
	h.want(scrMenu)
	h.advance(61 * time.Second)
	h.want(scrHome)
	h.golden("home-logged-out")
	h.keys("f2")
	h.want(scrLogin)
}

func TestHomeRefreshesAndQR(t *testing.T) {
	h := newHarness(t)
	h.rigVM("web02", false)
	h.advance(5 * time.Second)
	if !strings.Contains(h.m.View(), "1 running, 3 total") {
		t.Errorf("not refreshed:\n%s", h.m.View())
	}
	if strings.Contains(h.m.View(), "Scan to open") {
		t.Error("QR code at 80x24")
	}
	h.send(tea.WindowSizeMsg{Width: 140, Height: 45})
	h.golden("home-qr-140x45")
	if !strings.Contains(h.m.View(), "Scan to open") {
		t.Error("no QR code at 140x45")
	}
	// A serial line reports no size: 80x24.
	h.send(tea.WindowSizeMsg{})
	if h.m.w != 80 || h.m.h != 24 {
		t.Errorf("size %dx%d", h.m.w, h.m.h)
	}
}

func TestTypedAheadKeysOneByOne(t *testing.T) {
	h := loggedIn(t)
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("jjj")})
	if h.m.menu.sel != 3 {
		t.Errorf("menu selection %d after jjj, want 3", h.m.menu.sel)
	}
}

func TestInstallToDisk(t *testing.T) {
	h := loggedIn(t)
	// Without the installer the item says so.
	h.menu("Install Plinth to Disk")
	if h.want(scrMessage); !strings.Contains(h.m.View(), "not present") {
		t.Fatalf("no installer:\n%s", h.m.View())
	}

	// With one, on the captured QEMU q35 machine (nothing here is written:
	// its /dev is an empty directory, so the install fails at its start).
	root := board.FixtureRoot("../board/testdata/qemu-q35", "")
	env := installer.Env{Sys: root.Sys, Proc: root.Proc, Dev: t.TempDir(), StateDir: t.TempDir()}
	h = loggedIn(t, harnessOptions{hardware: func() (api.Hardware, error) { return board.Read(root) }, installer: &env})
	h.menu("Install Plinth to Disk")
	h.want(scrInstall)
	h.until(10*time.Second, "the disks", func() bool { return h.m.inst.loaded })
	h.golden("install-pick")
	var disk string
	for _, c := range h.m.inst.cands {
		if eligible(c) {
			disk = c.Disk.Name
			break
		}
	}
	if disk == "" {
		t.Fatalf("no eligible disk in %+v", h.m.inst.cands)
	}
	h.keys("enter")
	h.want(scrInstallConfirm)
	h.golden("install-confirm")
	h.keys("wrong", "enter") // the wrong name
	if !strings.Contains(h.m.View(), "Type "+disk+" to confirm") {
		t.Fatalf("installed without the typed name:\n%s", h.m.View())
	}
	h.keys("ctrl+u", disk, "enter")
	h.screenUntil(scrMessage, 30*time.Second)
	if !strings.Contains(h.m.View(), "FAILED") {
		t.Fatalf("install on the fixture:\n%s", h.m.View())
	}
}
