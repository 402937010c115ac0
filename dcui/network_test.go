package dcui

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/netconf"
)

// applyStatic configures 192.0.2.10/24 on the form and applies it.
func (h *harness) applyStatic() {
	h.t.Helper()
	h.menu("Configure Management Network")
	h.m.net.form.fields[fMode].value = api.NetModeStatic
	h.m.net.form.fields[fAddr].value, h.m.net.form.fields[fMask].value = "192.0.2.10", "24"
	h.keys("enter")
	h.screenUntil(scrNetConfirm, 30*time.Second)
}

// TestNetworkConfirmedThroughAPI: a change made on the console is kept
// through the API by a request that arrived on the new address (as mgmtd
// asks vmkernel), refused from another; the console notices on its next
// tick and says so.
func TestNetworkConfirmedThroughAPI(t *testing.T) {
	h := loggedIn(t)
	h.applyStatic()
	scr := h.golden("network-confirm-api")
	if !strings.Contains(scr, "POST https://192.0.2.10/api/v1/host/network/confirm") {
		t.Errorf("the confirm screen does not say how to keep the change through the API")
	}
	ctx := context.Background()
	var e *client.Error
	if _, err := h.rig.Client.ConfirmNetworkFrom(ctx, "10.0.2.15"); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("confirm from the old address: %v, want 409", err)
	}
	h.advance(time.Second)
	h.want(scrNetConfirm)
	if _, err := h.rig.Client.ConfirmNetworkFrom(ctx, "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	h.screenUntil(scrMessage, 10*time.Second)
	scr = h.golden("network-kept-by-api")
	if !strings.Contains(scr, "Confirmed through the API from 192.0.2.10") {
		t.Errorf("the console does not say the API kept the change")
	}
	if saved, ok, _ := netconf.Load(h.rig.Layout.State); !ok || saved.Address.String() != "192.0.2.10/24" {
		t.Fatalf("saved %+v: want the change saved", saved)
	}
}

// TestNetworkRolledBackOnConsole: N rolls the change back at once; a later
// confirmation through the API is refused.
func TestNetworkRolledBackOnConsole(t *testing.T) {
	h := loggedIn(t)
	h.applyStatic()
	h.keys("n")
	h.screenUntil(scrMessage, 30*time.Second)
	if scr := h.m.View(); !strings.Contains(scr, "Rolled back on request") || !strings.Contains(h.liveAddrs(), "10.0.2.15/24") {
		t.Fatalf("after N:\n%s\neth0: %s", scr, h.liveAddrs())
	}
	var e *client.Error
	if _, err := h.rig.Client.ConfirmNetworkFrom(context.Background(), "192.0.2.10"); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("confirm after the rollback: %v, want 409", err)
	}
	if _, ok, _ := netconf.Load(h.rig.Layout.State); ok {
		t.Error("a rolled back change was saved")
	}
}
