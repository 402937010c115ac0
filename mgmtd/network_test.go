package mgmtd_test

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestConfirmNetworkFromNewAddress confirms a console's network change
// through mgmtd: refused when the request arrives on another address than
// the change's, kept (and saved) when it arrives on it. mgmtd listens on
// 127.0.0.1, so that is the "new address" that works.
func TestConfirmNetworkFromNewAddress(t *testing.T) {
	state, run := t.TempDir(), t.TempDir()
	vmk := vmkerneltest.Start(t, vmkerneltest.Options{Network: vmkernel.NetworkPaths{StateDir: state, RunDir: run}})
	r := startMgmtd(t, t.TempDir(), vmk.Socket, nil)
	c := loggedIn(t, r)
	ctx := deadline(t)

	conflict := func(want string) {
		t.Helper()
		_, err := c.ConfirmNetwork(ctx)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Problem.Detail, want) {
			t.Errorf("confirm: %v, want 409 saying %q", err, want)
		}
	}
	conflict("no management network change is awaiting confirmation")

	other := netconf.Config{Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.20/24")}
	if err := netconf.MarkPending(run, netconf.Change{Config: other, Address: other.Address, Deadline: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	n, err := c.HostNetwork(ctx)
	if err != nil || n.Pending == nil || n.Pending.Address != "192.0.2.20/24" {
		t.Fatalf("GET host/network: pending %+v, %v", n.Pending, err)
	}
	conflict("the request arrived on 127.0.0.1, not on the new management address 192.0.2.20")
	if _, ok, _ := netconf.Load(state); ok {
		t.Fatal("a refused confirmation saved the configuration")
	}

	// As if DHCP had answered 127.0.0.1 (no host may be configured with it).
	here := netconf.Config{Mode: netconf.ModeDHCP, Hostname: "esx-api"}
	if err := netconf.MarkPending(run, netconf.Change{Config: here, Address: netip.MustParsePrefix("127.0.0.1/8"), Deadline: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ch, err := c.ConfirmNetwork(ctx)
	if err != nil || !ch.Confirmed || ch.Address != "127.0.0.1/8" {
		t.Fatalf("confirm from 127.0.0.1: %+v, %v", ch, err)
	}
	if saved, ok, err := netconf.Load(state); !ok || err != nil || saved.Hostname != "esx-api" {
		t.Errorf("saved %+v (%v, %v), want the confirmed configuration", saved, ok, err)
	}
	if !netconf.Confirmed(run) {
		t.Error("the console cannot see the confirmation")
	}
	n, err = c.HostNetwork(ctx)
	if err != nil || !n.Saved || n.Config.Hostname != "esx-api" || n.Pending == nil || !n.Pending.Confirmed {
		t.Errorf("GET host/network after confirming: %+v, %v", n, err)
	}
}
