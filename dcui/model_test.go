package dcui

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/netconf"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// goldenDir is testdata/, found before a test changes directory.
var goldenDir, _ = filepath.Abs("testdata")

func init() { lipgloss.SetColorProfile(termenv.Ascii) }

const testFP = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"

// harness drives a Model the way bubbletea would, running commands at once
// (ticks are sent by the test, with the fake clock).
type harness struct {
	t        *testing.T
	m        Model
	now      time.Time
	authDir  string
	saved    *netconf.Config
	applied  []netconf.Config
	applyErr error
	power    []bool
	stopped  []string
	shut     []string
	agents   int
	resets   int
	logPath  string
	runDir   string // where a pending network change is published
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), authDir: t.TempDir(), runDir: t.TempDir()}
	// The log's path shows on screen: keep it the same in every run.
	t.Chdir(t.TempDir())
	h.logPath = "boot.log"
	var lines []string
	for i := 1; i <= 60; i++ {
		lines = append(lines, "plinth-init: boot line "+strings.Repeat("x", i%7)+" "+itoa(i))
	}
	lines[41] = "plinth-init: management network: eth0 10.0.2.15/24 (dhcp)"
	os.WriteFile(h.logPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	d := Deps{
		Version: "1.0.0-test",
		AuthDir: h.authDir,
		Host: func(context.Context) (api.Host, error) {
			return api.Host{Hostname: "esx-lab1", Version: "1.0.0-test", Kernel: "6.1.0-test", CPUModel: "AMD EPYC 7B13", CPUCount: 2,
				MemoryBytes: 2 << 30, Acceleration: api.Acceleration{Mode: api.AccelTCG, Reason: "/dev/kvm is kvm_pvm, which hangs stock guest kernels"},
				QEMU: "7.2.0"}, nil
		},
		VMs: func(context.Context) ([]api.VM, error) {
			return []api.VM{
				{Spec: api.VMSpec{ID: "id1", Name: "web01"}, Runtime: api.VMRuntime{State: api.VMRunning}},
				{Spec: api.VMSpec{ID: "id2", Name: "db01"}, Runtime: api.VMRuntime{State: api.VMStopped}},
			}, nil
		},
		ShutdownVM: func(_ context.Context, id string, _ time.Duration) error { h.shut = append(h.shut, id); return nil },
		StopVM:     func(_ context.Context, id string) error { h.stopped = append(h.stopped, id); return nil },
		Hardware: func() (api.Hardware, error) {
			return api.Hardware{System: api.HostSystem{Vendor: "QEMU", Product: "Standard PC (Q35)", Serial: "SN-1234", BIOSVendor: "SeaBIOS", BIOSVersion: "1.16.2", BootMode: "bios"},
				NICs: []api.HostNIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Driver: "virtio_net", Link: true, SpeedMbps: 1000},
					{Name: "eth1", MAC: "52:54:00:12:34:57", Driver: "e1000e", Link: false}}}, nil
		},
		Fingerprint: func() string { return testFP },
		Addresses:   func() []string { return []string{"10.0.2.15"} },
		LoadNet: func() (netconf.Config, error) {
			if h.saved != nil {
				return *h.saved, nil
			}
			return netconf.Default(), nil
		},
		ApplyNet: func(_ context.Context, c netconf.Config) (netconf.Result, error) {
			h.applied = append(h.applied, c)
			if h.applyErr != nil && len(h.applied) == 1 {
				return netconf.Result{}, h.applyErr
			}
			r := netconf.Result{NIC: "eth0", Interface: "eth0", Method: c.Mode, Address: "10.0.2.15/24"}
			if c.Mode == netconf.ModeStatic {
				r.Address = c.Address.String()
			}
			return r, nil
		},
		SaveNet: func(c netconf.Config) error { h.saved = &c; return nil },
		// The real pending-change files, as vmkernel's confirm sees them.
		MarkPending:      func(c netconf.Change) error { return netconf.MarkPending(h.runDir, c) },
		SettlePending:    func() (bool, error) { return netconf.Settle(h.runDir) },
		PendingConfirmed: func() bool { return netconf.Confirmed(h.runDir) },
		TestNet: func(context.Context, netconf.Config) []netconf.Check {
			return []netconf.Check{{What: "ping gateway 10.0.2.2", OK: true, Info: "answered in 1ms"}, {What: "resolve esx-lab1", Info: "no such host"}}
		},
		Power:         func(r bool) error { h.power = append(h.power, r); return nil },
		RestartAgents: func() error { h.agents++; return nil },
		ResetConfig:   func() error { h.resets++; return nil },
		Logs:          []LogFile{{"Boot log", h.logPath}, {"vmkernel", "/nonexistent/vmkernel.log"}},
		Now:           func() time.Time { return h.now },
	}
	h.m = New(d)
	h.run(h.m.Init())
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	return h
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
	h.now = h.now.Add(d)
	h.send(tickMsg{h.now})
}

// golden compares the screen with testdata/NAME.golden (rewritten with -update).
func (h *harness) golden(name string) string {
	h.t.Helper()
	got := h.m.View()
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
	if err := auth.Verify(h.authDir, api.RootUser, "Correct-Horse-9"); err != nil {
		t.Fatalf("the password was not stored: %v", err)
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
func loggedIn(t *testing.T) *harness {
	h := newHarness(t)
	if err := auth.SetPassword(h.authDir, api.RootUser, "Correct-Horse-9"); err != nil {
		t.Fatal(err)
	}
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'r'}}) // refresh: the password is set now
	h.keys("alt2")
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
			h.m.menuSel = i
			h.keys("enter")
			return
		}
	}
	h.t.Fatalf("no menu item %q", item)
}

func TestChangePasswordAndLockdown(t *testing.T) {
	h := loggedIn(t)
	h.menu("Change Root Password")
	h.golden("change-password")
	h.keys("New-Secret-77", "enter", "New-Secret-77", "enter")
	h.want(scrMessage)
	if err := auth.Verify(h.authDir, api.RootUser, "New-Secret-77"); err != nil {
		t.Fatal(err)
	}
	h.keys("enter")
	h.want(scrMenu)
	h.menu("Lockdown Mode")
	h.golden("lockdown-off")
	h.keys("enter")
	if on, _ := auth.Lockdown(h.authDir); !on {
		t.Fatal("lockdown not turned on")
	}
	h.golden("lockdown-on")
	h.keys("enter")
	if on, _ := auth.Lockdown(h.authDir); on {
		t.Fatal("lockdown not turned off")
	}
	h.keys("esc")
	h.want(scrMenu)
}

func TestConfigureNetworkCommitConfirmed(t *testing.T) {
	h := loggedIn(t)
	h.menu("Configure Management Network")
	h.want(scrNet)
	h.golden("network-dhcp")
	// eth0, VLAN 20, static with a gateway outside the subnet and a DNS twice.
	h.keys("right", "down", "20", "down", "right", "down", "192.0.2.10", "down", "255.255.255.0", "down", "198.51.100.1",
		"down", "down", "9.9.9.9, 9.9.9.9", "down", "down", "esx-lab2", "enter")
	h.want(scrNet)
	scr := h.golden("network-invalid")
	for _, want := range []string{"Default gateway: 198.51.100.1 is outside the subnet 192.0.2.0/24", "DNS servers: 9.9.9.9 is listed twice"} {
		if !strings.Contains(scr, want) {
			t.Errorf("problem %q not shown", want)
		}
	}
	if len(h.applied) != 0 {
		t.Fatal("an invalid configuration was applied")
	}
	// Fix the gateway and DNS: up to the gateway row.
	h.m.net.focus = fGW
	h.keys("ctrl+u", "192.0.2.1")
	h.m.net.focus = fDNS
	h.keys("ctrl+u", "9.9.9.9, 1.1.1.1", "enter")
	h.want(scrNetConfirm)
	h.golden("network-confirm")
	want := netconf.Config{NIC: "eth0", VLAN: 20, Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.10/24"),
		Gateway: netip.MustParseAddr("192.0.2.1"), IPv6: netconf.IPv6Auto,
		DNS: []netip.Addr{netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("1.1.1.1")}, Hostname: "esx-lab2"}
	if len(h.applied) != 1 || !equalConfig(h.applied[0], want) {
		t.Fatalf("applied %+v, want %+v", h.applied, want)
	}
	// Not confirmed in time: rolled back to the previous (DHCP) by itself.
	h.advance(30 * time.Second)
	h.want(scrNetConfirm)
	h.advance(31 * time.Second)
	h.want(scrMessage)
	if len(h.applied) != 2 || h.applied[1].Mode != netconf.ModeDHCP || h.saved != nil {
		t.Fatalf("no rollback: applied %+v, saved %v", h.applied, h.saved)
	}
	h.golden("network-rolled-back")
	// Again, and kept this time.
	h.keys("enter")
	h.menu("Configure Management Network")
	h.m.net.fields[fMode].value = netconf.ModeStatic
	h.m.net.fields[fAddr].value, h.m.net.fields[fMask].value = "192.0.2.10", "24"
	h.keys("enter")
	h.want(scrNetConfirm)
	h.keys("y")
	h.want(scrMessage)
	if h.saved == nil || h.saved.Address.String() != "192.0.2.10/24" {
		t.Fatalf("kept configuration not saved: %+v", h.saved)
	}
	h.golden("network-kept")
	// The form shows the saved configuration next time.
	h.keys("enter")
	h.menu("Configure Management Network")
	if h.m.net.fields[fAddr].value != "192.0.2.10" || h.m.net.fields[fMask].value != "255.255.255.0" {
		t.Errorf("form does not show the saved configuration: %+v", h.m.net.fields)
	}
	h.keys("esc")
	h.want(scrMenu)
}

func equalConfig(a, b netconf.Config) bool {
	if len(a.DNS) != len(b.DNS) {
		return false
	}
	for i := range a.DNS {
		if a.DNS[i] != b.DNS[i] {
			return false
		}
	}
	a.DNS, b.DNS = nil, nil
	a.Search, b.Search = nil, nil
	return a.NIC == b.NIC && a.VLAN == b.VLAN && a.Mode == b.Mode && a.Address == b.Address && a.Gateway == b.Gateway && a.Hostname == b.Hostname && a.IPv6 == b.IPv6
}

func TestFailedApplyRollsBack(t *testing.T) {
	h := loggedIn(t)
	h.applyErr = errors.New("VLAN 20 on eth0: operation not supported")
	h.menu("Configure Management Network")
	h.m.net.fields[fVLAN].value = "20"
	h.keys("enter")
	h.want(scrMessage)
	if len(h.applied) != 2 || h.applied[1].VLAN != 0 {
		t.Fatalf("applied %+v, want the change then the rollback", h.applied)
	}
	h.golden("network-apply-failed")
}

func TestRestartRestoreTestNetwork(t *testing.T) {
	h := loggedIn(t)
	h.saved = &netconf.Config{Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.10/24"), Gateway: netip.MustParseAddr("192.0.2.1")}
	h.menu("Restart Management Network")
	h.golden("network-restart")
	h.keys("enter")
	h.want(scrMessage)
	if len(h.applied) != 1 || h.applied[0].Address.String() != "192.0.2.10/24" {
		t.Fatalf("restart applied %+v", h.applied)
	}
	h.keys("enter")
	h.menu("Network Restore Options")
	h.golden("network-restore")
	h.keys("enter")
	h.want(scrNetConfirm)
	if h.applied[1].Mode != netconf.ModeDHCP || h.applied[1].NIC != "" {
		t.Fatalf("restore applied %+v", h.applied[1])
	}
	h.keys("y")
	h.keys("enter")
	h.menu("Test Management Network")
	h.golden("network-test")
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
	f, _ := os.OpenFile(h.logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("plinth-init: a brand new line\n")
	f.Close()
	h.advance(time.Second)
	if !strings.Contains(h.m.View(), "a brand new line") {
		t.Errorf("new line not followed:\n%s", h.m.View())
	}
	h.keys("esc", "down", "enter")
	if !strings.Contains(h.m.View(), "Cannot read /nonexistent/vmkernel.log") {
		t.Errorf("missing log not reported:\n%s", h.m.View())
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
	if h.agents != 1 {
		t.Fatal("agents not restarted")
	}
	h.keys("enter")
	h.menu("Troubleshooting Options")
	h.keys("down", "enter")
	h.want(scrMessage) // no shell in tests
	h.keys("esc", "esc")
	h.menu("Reset System Configuration")
	h.keys("reset", "enter")
	h.golden("reset-refused")
	if h.resets != 0 {
		t.Fatal("reset without the typed confirmation")
	}
	h.keys("ctrl+u", "RESET", "enter")
	if h.resets != 1 || len(h.power) != 1 || !h.power[0] {
		t.Fatalf("reset %d, power %v; want a reset and a restart", h.resets, h.power)
	}
}

func TestShutdownListsVMs(t *testing.T) {
	h := newHarness(t)
	auth.SetPassword(h.authDir, api.RootUser, "Correct-Horse-9")
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
	if len(h.shut) != 1 || h.shut[0] != "id1" || len(h.power) != 1 || !h.power[0] {
		t.Fatalf("shut %v power %v", h.shut, h.power)
	}
	h.keys("enter")
	h.keys("f12")
	h.want(scrPower)
	h.keys("up", "space", "down", "enter") // untick, shut down: VMs stopped hard
	if len(h.stopped) != 1 || len(h.power) != 2 || h.power[1] {
		t.Fatalf("stopped %v power %v", h.stopped, h.power)
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
	n := 0
	h.m.d.VMs = func(context.Context) ([]api.VM, error) {
		n++
		return make([]api.VM, n), nil
	}
	h.advance(5 * time.Second)
	if !strings.Contains(h.m.View(), "0 running, 1 total") {
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
	if h.m.menuSel != 3 {
		t.Errorf("menu selection %d after jjj, want 3", h.m.menuSel)
	}
}

func TestInstallToDisk(t *testing.T) {
	h := loggedIn(t)
	// Without the installer the item says so.
	h.menu("Install Plinth to Disk")
	if h.want(scrMessage); !strings.Contains(h.m.View(), "not present") {
		t.Fatalf("no installer:\n%s", h.m.View())
	}
	h.keys("esc")

	var installed []string
	h.m.d.InstallTargets = func(context.Context) ([]api.InstallCandidate, error) {
		return []api.InstallCandidate{
			{Disk: api.HostDisk{Name: "sda", SizeBytes: 512 << 20, Model: "USB stick"}, BootMedium: true, Refused: "the boot medium"},
			{Disk: api.HostDisk{Name: "vdb", SizeBytes: 4 << 30, Model: "QEMU disk"}},
			{Disk: api.HostDisk{Name: "nvme0n1", SizeBytes: 8 << 30, Model: "NVMe"}, Warnings: []string{"holds data: partition DATA (ext4)"}},
		}, nil
	}
	fail := true
	h.m.d.Install = func(_ context.Context, disk string, overwrite bool, progress func(api.InstallProgress)) error {
		installed = append(installed, fmt.Sprintf("%s overwrite=%v", disk, overwrite))
		progress(api.InstallProgress{Step: "copy boot partition", Done: 50, Total: 100})
		if fail {
			return errors.New("writing the partition table: input/output error")
		}
		return nil
	}
	h.menu("Install Plinth to Disk")
	h.want(scrInstall)
	h.golden("install-pick")
	// The cursor starts on the first eligible disk; the boot medium is refused.
	h.keys("up", "enter")
	if h.want(scrInstall); !strings.Contains(h.m.View(), "sda cannot be a target") {
		t.Fatalf("boot medium chosen:\n%s", h.m.View())
	}
	h.keys("down", "down", "enter")
	h.want(scrInstallConfirm)
	h.golden("install-confirm")
	h.keys("vdb", "enter") // the wrong name
	if len(installed) != 0 || !strings.Contains(h.m.View(), "Type nvme0n1 to confirm") {
		t.Fatalf("installed without the typed name: %v\n%s", installed, h.m.View())
	}
	h.keys("ctrl+u", "nvme0n1", "enter")
	if h.want(scrMessage); len(installed) != 1 || installed[0] != "nvme0n1 overwrite=true" || !strings.Contains(h.m.View(), "FAILED: writing the partition table") {
		t.Fatalf("failed install: %v\n%s", installed, h.m.View())
	}
	h.keys("esc")
	fail = false
	h.menu("Install Plinth to Disk")
	h.keys("enter", "vdb", "enter")
	if h.want(scrMessage); len(installed) != 2 || installed[1] != "vdb overwrite=false" || !strings.Contains(h.m.View(), "Plinth is installed on vdb") {
		t.Fatalf("install: %v\n%s", installed, h.m.View())
	}
}
