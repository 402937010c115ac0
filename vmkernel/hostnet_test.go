package vmkernel_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// netDirs are temp dirs for vmkernel's management network routes.
func netDirs(t *testing.T) (state, run string) {
	t.Helper()
	return t.TempDir(), t.TempDir()
}

func TestHostNetworkSavedLivePending(t *testing.T) {
	state, run := netDirs(t)
	c := vmkerneltest.Start(t, vmkerneltest.Options{Network: vmkernel.NetworkPaths{StateDir: state, RunDir: run}}).Client
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n, err := c.HostNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Saved || n.Config.Mode != api.NetModeDHCP || n.Pending != nil {
		t.Errorf("nothing saved: got %+v", n)
	}
	host, _ := os.Hostname()
	if n.Live.Hostname != host || n.Live.Addresses == nil {
		t.Errorf("live: %+v, want hostname %q and an address list", n.Live, host)
	}

	cfg := netconf.Config{Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.10/24"),
		Gateway: netip.MustParseAddr("192.0.2.1"), DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Hostname: "esx-lab3"}
	if err := netconf.Save(state, cfg); err != nil {
		t.Fatal(err)
	}
	next := cfg
	next.Address = netip.MustParsePrefix("192.0.2.20/24")
	deadline := time.Now().Add(time.Minute).Truncate(time.Second)
	if err := netconf.MarkPending(run, netconf.Change{Config: next, Address: next.Address, Interface: "eth0", Deadline: deadline}); err != nil {
		t.Fatal(err)
	}
	n, err = c.HostNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := api.NetworkConfig{Mode: "static", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: []string{"192.0.2.53"}, Hostname: "esx-lab3"}
	if !n.Saved || n.Config.Address != want.Address || n.Config.Gateway != want.Gateway || n.Config.Mode != want.Mode ||
		strings.Join(n.Config.DNS, ",") != "192.0.2.53" || n.Config.Hostname != want.Hostname {
		t.Errorf("saved config %+v, want %+v", n.Config, want)
	}
	if p := n.Pending; p == nil || p.Address != "192.0.2.20/24" || !p.Deadline.Equal(deadline) || p.Confirmed || p.Config.Address != "192.0.2.20/24" {
		t.Errorf("pending %+v", n.Pending)
	}
}

func TestConfirmNetwork(t *testing.T) {
	state, run := netDirs(t)
	c := vmkerneltest.Start(t, vmkerneltest.Options{Network: vmkernel.NetworkPaths{StateDir: state, RunDir: run}}).Client
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conflict := func(local, want string) {
		t.Helper()
		_, err := c.ConfirmNetworkFrom(ctx, local)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Problem.Detail, want) {
			t.Errorf("confirm from %s: %v, want 409 saying %q", local, err, want)
		}
	}
	conflict("192.0.2.20", "no management network change is awaiting confirmation")

	cfg := netconf.Config{Mode: netconf.ModeStatic, Address: netip.MustParsePrefix("192.0.2.20/24"), Gateway: netip.MustParseAddr("192.0.2.1")}
	ch := netconf.Change{Config: cfg, Address: cfg.Address, Interface: "eth0", Deadline: time.Now().Add(-time.Second)}
	if err := netconf.MarkPending(run, ch); err != nil {
		t.Fatal(err)
	}
	conflict("192.0.2.20", "not confirmed in time")

	ch.Deadline = time.Now().Add(time.Minute)
	if err := netconf.MarkPending(run, ch); err != nil {
		t.Fatal(err)
	}
	conflict("10.0.2.15", "arrived on 10.0.2.15, not on the new management address 192.0.2.20")
	if _, err := c.ConfirmNetworkFrom(ctx, "not-an-ip"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("confirm from a bad address: %v, want 400", err)
	}
	if _, ok, _ := netconf.Load(state); ok {
		t.Fatal("a refused confirmation saved the configuration")
	}

	got, err := c.ConfirmNetworkFrom(ctx, "192.0.2.20")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Confirmed || got.Address != "192.0.2.20/24" {
		t.Errorf("confirmed %+v", got)
	}
	saved, ok, err := netconf.Load(state)
	if err != nil || !ok || saved.Address != cfg.Address {
		t.Errorf("saved %+v (%v, %v), want the confirmed configuration", saved, ok, err)
	}
	n, err := c.HostNetwork(ctx)
	if err != nil || n.Pending == nil || !n.Pending.Confirmed {
		t.Errorf("after confirming, pending %+v (%v), want confirmed until the console notices", n.Pending, err)
	}
	conflict("192.0.2.20", "no management network change")
	// The console notices: the API was first.
	if byAPI, err := netconf.Settle(run); !byAPI || err != nil {
		t.Errorf("Settle: %v, %v; want confirmed by the API", byAPI, err)
	}
	if _, err := os.Stat(filepath.Join(run, netconf.ConfirmedFile)); !os.IsNotExist(err) {
		t.Errorf("the confirmation file outlives Settle: %v", err)
	}
}
