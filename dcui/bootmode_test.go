package dcui

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
)

// The home screen says where a host's configuration comes from when it is
// not installed: stateless (from the PXE server, at every boot) or live.
func TestHomeBootMode(t *testing.T) {
	for _, c := range []struct {
		golden string
		mode   api.BootMode
		want   []string
	}{
		{"home-stateless", api.BootMode{Mode: api.BootStateless, Source: "http://10.231.5.2:8080/answers/52-54-00-50-58-45.txt"},
			[]string{"STATELESS - configuration from the network at every boot", "from http://10.231.5.2:8080/answers/52-54-00-50-58-45.txt"}},
		{"home-live", api.BootMode{Mode: api.BootLive, Reason: "no stateless configuration: GET http://10.231.5.2:8080/answers/52-54-00-50-58-45.txt: 404 Not Found"},
			[]string{"LIVE - configuration in RAM, LOST at power-off", "404 Not Found"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			h := newHarness(t)
			h.bootMode(c.mode)
			scr := h.golden(c.golden)
			for _, w := range c.want {
				if !strings.Contains(scr, w) {
					t.Errorf("home screen lacks %q:\n%s", w, scr)
				}
			}
		})
	}
	h := newHarness(t)
	h.bootMode(api.BootMode{Mode: api.BootInstalled})
	if scr := h.m.View(); strings.Contains(scr, "Mode:") {
		t.Errorf("an installed host's home screen shows a mode:\n%s", scr)
	}
}

// The home screen shows the boot bank and, loudly, an upgrade that was
// rolled back and why.
func TestHomeUpgradeRolledBack(t *testing.T) {
	h := newHarness(t)
	h.m.facts.upgrade = &api.UpgradeStatus{Supported: true, Version: "1.1", Active: "B",
		Banks: []api.Bank{{Name: "A", State: api.BankFailed, Version: "1.2-broken"}, {Name: "B", State: api.BankActive, Version: "1.1"}},
		Last: &api.UpgradeResult{Result: api.UpgradeRolledBack, ToVersion: "1.2-broken", Bank: "A",
			Reason: "it was booted 3 times and never came up far enough to mark itself good (kernel or init failure)"}}
	scr := h.golden("home-upgrade-rolled-back")
	for _, w := range []string{"Boot bank:  B (bank A: 1.2-broken, failed)", "UPGRADE ROLLED BACK: 1.2-broken did not come up", "booted 3 times"} {
		if !strings.Contains(scr, w) {
			t.Errorf("home screen lacks %q:\n%s", w, scr)
		}
	}
}

// bootMode is what the init decided at boot, as vmkernel reads it; the
// home screen is refreshed.
func (h *harness) bootMode(m api.BootMode) {
	h.t.Helper()
	b, _ := json.Marshal(m)
	if err := os.WriteFile(h.rig.Layout.BootModeFile(), b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.run(h.m.refresh())
}

// The home screen says what is wrong with the management network, as
// vmkernel's record of the last apply has it (its keeper keeps asking DHCP
// meanwhile).
func TestHomeNetworkProblem(t *testing.T) {
	h := newHarness(t)
	const problem = "DHCP on eth0: no DHCP server answered: no matching response packet received; asking again"
	record := func(p string) {
		b, _ := json.Marshal(netconf.Applied{Config: netconf.Default(), Result: netconf.Result{NIC: "eth0", Interface: "eth0", Method: "dhcp"}, Problem: p})
		if err := os.WriteFile(filepath.Join(h.rig.Layout.Run, netconf.AppliedFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		h.run(h.m.refresh())
	}
	record(problem)
	scr := h.golden("home-network-problem")
	for _, w := range []string{"NETWORK PROBLEM: DHCP on eth0: no DHCP server answered", "asking again"} {
		if !strings.Contains(scr, w) {
			t.Errorf("home screen lacks %q:\n%s", w, scr)
		}
	}
	record("")
	if scr := h.m.View(); strings.Contains(scr, "NETWORK PROBLEM") {
		t.Errorf("the problem stays on the home screen once solved:\n%s", scr)
	}
}
