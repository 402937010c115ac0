package netconf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPendingChangeSettledOnce(t *testing.T) {
	run, state := t.TempDir(), t.TempDir()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	cfg := Config{Mode: ModeStatic, Address: netip.MustParsePrefix("192.0.2.20/24")}
	ch := Change{Config: cfg, Address: cfg.Address, Interface: "eth0", Deadline: now.Add(time.Minute)}
	to := netip.MustParseAddr("192.0.2.20")

	if _, err := Confirm(run, state, to, now); !errors.Is(err, ErrNothingPending) {
		t.Errorf("nothing pending: %v", err)
	}
	// The console settles first (keeps or rolls back): the API is too late.
	if err := MarkPending(run, ch); err != nil {
		t.Fatal(err)
	}
	if got, confirmed, ok, err := ReadPending(run, now); !ok || confirmed || err != nil || got.Address != ch.Address {
		t.Errorf("ReadPending: %+v %v %v %v", got, confirmed, ok, err)
	}
	if _, _, ok, _ := ReadPending(run, now.Add(time.Minute)); ok {
		t.Error("a change past its deadline is reported pending")
	}
	if byAPI, err := Settle(run); byAPI || err != nil {
		t.Errorf("Settle: %v %v", byAPI, err)
	}
	if _, err := Confirm(run, state, to, now); !errors.Is(err, ErrNothingPending) {
		t.Errorf("confirm after the console settled: %v", err)
	}
	// The API first: the console learns it.
	MarkPending(run, ch)
	var ae *AddressError
	if _, err := Confirm(run, state, netip.MustParseAddr("::ffff:10.0.2.15"), now); !errors.As(err, &ae) ||
		!strings.Contains(err.Error(), "arrived on 10.0.2.15, not on the new management address 192.0.2.20") {
		t.Errorf("confirm from another address: %v", err)
	}
	if _, err := Confirm(run, state, to, now.Add(time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("confirm at the deadline: %v", err)
	}
	if _, err := Confirm(run, state, netip.MustParseAddr("::ffff:192.0.2.20"), now); err != nil {
		t.Fatal(err)
	}
	if saved, ok, err := Load(state); !ok || err != nil || saved.Address != cfg.Address {
		t.Errorf("saved %+v %v %v", saved, ok, err)
	}
	if !Confirmed(run) {
		t.Error("Confirmed: false")
	}
	if _, confirmed, ok, _ := ReadPending(run, now); !ok || !confirmed {
		t.Error("ReadPending does not report the confirmation")
	}
	if byAPI, err := Settle(run); !byAPI || err != nil {
		t.Errorf("Settle after the API: %v %v", byAPI, err)
	}
	if Confirmed(run) {
		t.Error("the confirmation outlives Settle")
	}
	// A new change does not inherit an old confirmation.
	MarkPending(run, ch)
	Confirm(run, state, to, now)
	MarkPending(run, ch)
	if Confirmed(run) {
		t.Error("a new change starts confirmed")
	}
}

func TestParseResolvConf(t *testing.T) {
	ns, search := parseResolvConf(strings.NewReader("# written by Plinth\nnameserver 10.0.2.3\nnameserver 2001:db8::53\n; x\nsearch lab.example example.org\n"))
	if strings.Join(ns, ",") != "10.0.2.3,2001:db8::53" || strings.Join(search, ",") != "lab.example,example.org" {
		t.Errorf("ns %v search %v", ns, search)
	}
}
