package drivers

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/plinth/plinth/internal/testenv"
)

const aliasFixture = `# Aliases extracted from modules themselves.
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias cpu:type:x86,ven*fam*mod*:feature:*00C2* kvm_amd
alias acpi*:PNP0C0C:* button
`

func TestMatch(t *testing.T) {
	al, err := ParseAliases(strings.NewReader(aliasFixture))
	if err != nil {
		t.Fatal(err)
	}
	mods, un := Match(al, []string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
		"virtio:d00000001v00001AF4",
		"pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00",
		"cpu:type:x86,ven0002fam0017mod0031:feature:,0000,0001,00C2,00E1",
		"acpi:PNP0C0C:",
		"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
	})
	want := []string{"button", "e1000e", "kvm_amd", "virtio_net", "virtio_pci"}
	if !reflect.DeepEqual(mods, want) {
		t.Errorf("modules = %v, want %v", mods, want)
	}
	if len(un) != 1 || !strings.HasPrefix(un[0], "pci:v00008086d00002922") {
		t.Errorf("unmatched = %v, want the AHCI controller only", un)
	}
}

// TestMatchAgreesWithTheGlobs: Match's look at an alias's literal start
// first gives what matching every glob gives, for patterns with a
// wildcard first, escapes and classes, and for Aliases made by hand.
func TestMatchAgreesWithTheGlobs(t *testing.T) {
	al, err := ParseAliases(strings.NewReader(aliasFixture + `alias *:PNP0A03:* pcieport
alias usb:v05ACp12[0-9]*d*dc*dsc*dp*ic*isc*ip*in* apple_usb
alias of:N*T*Cfoo\*bar* escaped
alias platform:i8042 i8042
alias platform:i8042* i8042_prefix
`))
	if err != nil {
		t.Fatal(err)
	}
	modaliases := []string{
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
		"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00",
		"acpi:PNP0A03:",
		"acpi:PNP0C0C:",
		"usb:v05ACp1234d0100dc00dsc00dp00ic08isc06ip50in00",
		"usb:v05ACp13A4d0100dc00dsc00dp00ic08isc06ip50in00",
		"of:NxTyCfoo*bar",
		"of:NxTyCfooXbar",
		"platform:i8042",
		"platform:i8042x",
		"",
	}
	byHand := make([]Alias, len(al))
	for i, a := range al {
		byHand[i] = Alias{Pattern: a.Pattern, Module: a.Module}
	}
	for _, ma := range modaliases {
		var want []string
		for _, a := range al {
			if ok, _ := path.Match(a.Pattern, ma); ok && !slices.Contains(want, a.Module) {
				want = append(want, a.Module)
			}
		}
		sort.Strings(want)
		for name, aliases := range map[string][]Alias{"parsed": al, "by hand": byHand} {
			got, _ := Match(aliases, []string{ma})
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s aliases, %q: Match = %v, the globs say %v", name, ma, got, want)
			}
		}
	}
}

func TestParseAliasesNamesBadLine(t *testing.T) {
	_, err := ParseAliases(strings.NewReader("alias a b\nbogus line\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want it to name line 2", err)
	}
}

func TestDevicesFromFixtureTree(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "devices", "pci0000:00", "0000:00:02.0")
	must(t, os.MkdirAll(dev, 0o755))
	must(t, os.WriteFile(filepath.Join(dev, "modalias"), []byte("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n"), 0o644))
	drv := filepath.Join(root, "bus", "pci", "drivers", "virtio-pci")
	must(t, os.MkdirAll(drv, 0o755))
	must(t, os.Symlink(drv, filepath.Join(dev, "driver")))
	must(t, os.MkdirAll(filepath.Join(root, "bus", "pci", "devices"), 0o755))
	must(t, os.Symlink(dev, filepath.Join(root, "bus", "pci", "devices", "0000:00:02.0")))
	cpu := filepath.Join(root, "devices", "system", "cpu")
	must(t, os.MkdirAll(cpu, 0o755))
	must(t, os.WriteFile(filepath.Join(cpu, "modalias"), []byte("cpu:type:x86,ven0002fam0017mod0031:feature:,00C2\n"), 0o644))

	got, err := Devices(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Driver != "virtio-pci" || got[0].Path != "bus/pci/devices/0000:00:02.0" || !strings.HasPrefix(got[1].Modalias, "cpu:") {
		t.Errorf("Devices = %+v", got)
	}
}

func TestDevicesLive(t *testing.T) {
	if _, err := os.Stat("/sys/bus"); err != nil {
		testenv.Unmet(t, "no sysfs")
	}
	got, err := Devices("/sys")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no devices with a modalias on this machine")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	al, err := ParseAliases(strings.NewReader("alias rtnl-link-bridge bridge\nalias fs-ext4 ext4\nalias virtio:d00000001v* virtio_net\n"))
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]string{"bridge": "b.ko", "ext4": "e.ko", "virtio_net": "v.ko", "kvm_amd": "k.ko"}
	for in, want := range map[string]string{"rtnl-link-bridge": "bridge", "fs-ext4": "ext4", "kvm-amd": "kvm_amd",
		"virtio:d00000001v00001AF4": "virtio_net", "net-pf-99": ""} {
		if got := strings.Join(Resolve(al, mods, in), " "); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModulePaths(t *testing.T) {
	got, err := ModulePaths(strings.NewReader("kernel/net/bridge/bridge.ko: kernel/net/llc/llc.ko\nkernel/arch/x86/kvm/kvm-amd.ko.xz:\n"))
	if err != nil || got["bridge"] != "kernel/net/bridge/bridge.ko" || got["kvm_amd"] != "kernel/arch/x86/kvm/kvm-amd.ko.xz" || len(got) != 2 {
		t.Errorf("ModulePaths = %v, %v", got, err)
	}
}
