package dcui

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/netconf"
)

// applyStatic configures 192.0.2.10/24 on the form and applies it.
func (h *harness) applyStatic() {
	h.t.Helper()
	h.menu("Configure Management Network")
	h.m.net.fields[fMode].value = netconf.ModeStatic
	h.m.net.fields[fAddr].value, h.m.net.fields[fMask].value = "192.0.2.10", "24"
	h.keys("enter")
	h.want(scrNetConfirm)
}

// TestNetworkConfirmedThroughAPI: the change awaiting confirmation is
// published in the run directory; vmkernel's confirm (netconf.Confirm, for
// a request that arrived on the new address) keeps it, and the console
// notices on its next tick, saves it and says so.
func TestNetworkConfirmedThroughAPI(t *testing.T) {
	h := loggedIn(t)
	state := t.TempDir()
	h.applyStatic()
	scr := h.golden("network-confirm-api")
	if !strings.Contains(scr, "POST https://192.0.2.10/api/v1/host/network/confirm") {
		t.Errorf("the confirm screen does not say how to keep the change through the API")
	}
	ch, confirmed, ok, err := netconf.ReadPending(h.runDir, h.now)
	if err != nil || !ok || confirmed || ch.Address.String() != "192.0.2.10/24" || !ch.Deadline.Equal(h.now.Add(time.Minute)) ||
		ch.Config.Address.String() != "192.0.2.10/24" {
		t.Fatalf("published change %+v (confirmed %v, ok %v, %v)", ch, confirmed, ok, err)
	}
	// From the old address: refused, and nothing changes.
	if _, err := netconf.Confirm(h.runDir, state, netip.MustParseAddr("10.0.2.15"), h.now); !errors.Is(err, netconf.ErrWrongAddress) {
		t.Fatalf("confirm from the old address: %v, want ErrWrongAddress", err)
	}
	h.advance(time.Second)
	h.want(scrNetConfirm)
	if _, err := netconf.Confirm(h.runDir, state, netip.MustParseAddr("192.0.2.10"), h.now); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Second)
	h.want(scrMessage)
	scr = h.golden("network-kept-by-api")
	if !strings.Contains(scr, "Confirmed through the API from 192.0.2.10") {
		t.Errorf("the console does not say the API kept the change")
	}
	if h.saved == nil || h.saved.Address.String() != "192.0.2.10/24" || len(h.applied) != 1 {
		t.Fatalf("saved %+v, applied %+v: want the change saved and no rollback", h.saved, h.applied)
	}
	for _, f := range []string{netconf.PendingFile, netconf.ConfirmedFile} {
		if _, err := os.Stat(filepath.Join(h.runDir, f)); !os.IsNotExist(err) {
			t.Errorf("%s is left behind: %v", f, err)
		}
	}
}

// TestNetworkConfirmRaces: the API confirming just before the deadline
// wins over the rollback; the console rolling back wins over a later
// confirm, which is refused.
func TestNetworkConfirmRaces(t *testing.T) {
	h := loggedIn(t)
	state := t.TempDir()
	h.applyStatic()
	if _, err := netconf.Confirm(h.runDir, state, netip.MustParseAddr("192.0.2.10"), h.now.Add(59*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The deadline's tick comes before the console looked.
	h.now = h.now.Add(time.Minute)
	h.send(tickMsg{h.now})
	h.want(scrMessage)
	if !strings.Contains(h.m.View(), "Confirmed through the API") || len(h.applied) != 1 || h.saved == nil {
		t.Fatalf("applied %+v, saved %v:\n%s", h.applied, h.saved, h.m.View())
	}

	h.keys("enter")
	h.saved = nil
	h.applyStatic()
	h.keys("n")
	h.want(scrMessage)
	if len(h.applied) != 3 || h.saved != nil {
		t.Fatalf("applied %+v, saved %v: want the rollback", h.applied, h.saved)
	}
	if _, err := netconf.Confirm(h.runDir, state, netip.MustParseAddr("192.0.2.10"), h.now); !errors.Is(err, netconf.ErrNothingPending) {
		t.Errorf("confirm after the rollback: %v, want ErrNothingPending", err)
	}
}

// TestNetworkPendingNotPublished: when the change cannot be published, the
// confirm screen says only the console can keep it.
func TestNetworkPendingNotPublished(t *testing.T) {
	h := loggedIn(t)
	h.m.d.MarkPending = func(netconf.Change) error { return errors.New("read-only file system") }
	h.applyStatic()
	if scr := h.m.View(); !strings.Contains(scr, "The API cannot keep this change (read-only file system)") || strings.Contains(scr, "POST https://") {
		t.Errorf("confirm screen:\n%s", scr)
	}
	h.keys("y")
	h.want(scrMessage)
	if h.saved == nil {
		t.Error("kept on the console but not saved")
	}
}
