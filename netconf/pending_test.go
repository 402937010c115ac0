package netconf

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPendingRecord(t *testing.T) {
	run := t.TempDir()
	if _, ok, err := LoadPending(run); ok || err != nil {
		t.Fatalf("nothing recorded: %v %v", ok, err)
	}
	cfg := Config{Mode: ModeStatic, Address: netip.MustParsePrefix("192.0.2.20/24")}
	ch := Change{ID: 3, Config: cfg, Address: cfg.Address, Interface: "eth0",
		Deadline: time.Date(2026, 11, 25, 9, 1, 0, 0, time.UTC), Previous: Default()}
	if err := SavePending(run, ch); err != nil {
		t.Fatal(err)
	}
	got, ok, err := LoadPending(run)
	if !ok || err != nil || got.ID != 3 || got.Address != ch.Address || !got.Deadline.Equal(ch.Deadline) || got.Previous.Mode != ModeDHCP {
		t.Errorf("LoadPending: %+v %v %v", got, ok, err)
	}
	if err := ClearPending(run); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := LoadPending(run); ok {
		t.Error("the record outlives ClearPending")
	}
	if err := ClearPending(run); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
}

func TestParseResolvConf(t *testing.T) {
	ns, search := parseResolvConf(strings.NewReader("# written by Plinth\nnameserver 10.0.2.3\nnameserver 2001:db8::53\n; x\nsearch lab.example example.org\n"))
	if strings.Join(ns, ",") != "10.0.2.3,2001:db8::53" || strings.Join(search, ",") != "lab.example,example.org" {
		t.Errorf("ns %v search %v", ns, search)
	}
}
