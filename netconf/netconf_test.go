package netconf

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func static(addr, gw string, dns ...string) Config {
	c := Config{Mode: ModeStatic, Address: netip.MustParsePrefix(addr)}
	if gw != "" {
		c.Gateway = netip.MustParseAddr(gw)
	}
	for _, d := range dns {
		c.DNS = append(c.DNS, netip.MustParseAddr(d))
	}
	return c
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if err := static("192.0.2.10/24", "192.0.2.1", "9.9.9.9", "1.1.1.1").Validate(); err != nil {
		t.Errorf("good static: %v", err)
	}
	for _, id := range []int{0, 1, 4094} {
		if err := (Config{Mode: ModeDHCP, VLAN: id}).Validate(); err != nil {
			t.Errorf("VLAN %d: %v", id, err)
		}
	}
	for _, tc := range []struct {
		c     Config
		field string
		want  string
	}{
		{static("192.0.2.10/24", "198.51.100.1"), "gateway", "outside the subnet 192.0.2.0/24"},
		{static("192.0.2.10/24", "192.0.2.10"), "gateway", "own address"},
		{static("192.0.2.0/24", ""), "address", "network address"},
		{static("192.0.2.255/24", ""), "address", "broadcast"},
		{static("2001:db8::1/64", ""), "address", "not an IPv4"},
		{static("192.0.2.10/24", "", "9.9.9.9", "9.9.9.9"), "dns", "listed twice"},
		{Config{Mode: ModeStatic}, "address", "needs an IPv4 address"},
		{Config{Mode: "bootp"}, "mode", "neither"},
		{Config{Mode: ModeDHCP, VLAN: 4095}, "vlan", "outside 0"},
		{Config{Mode: ModeDHCP, VLAN: -1}, "vlan", "outside 0"},
		{Config{Mode: ModeDHCP, Hostname: "-bad-"}, "hostname", "not a valid host name"},
		{Config{Mode: ModeDHCP, NIC: "eth0/x"}, "nic", "not a network interface"},
		{Config{Mode: ModeDHCP, IPv6: IPv6Static}, "ipv6_address", "needs an IPv6"},
	} {
		err := tc.c.Validate()
		p, ok := err.(Problems)
		if !ok || !strings.Contains(p.Field(tc.field), tc.want) {
			t.Errorf("%+v: %v; want field %s: %q", tc.c, err, tc.field, tc.want)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	if c, ok, err := Load(dir); ok || err != nil || c.Mode != ModeDHCP {
		t.Fatalf("empty dir: %+v %v %v", c, ok, err)
	}
	c := static("192.0.2.10/24", "192.0.2.1", "9.9.9.9")
	c.NIC, c.VLAN, c.Hostname, c.Search = "eth1", 20, "esx1", []string{"lab.example"}
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	got, ok, err := Load(dir)
	if err != nil || !ok || got.Address != c.Address || got.Gateway != c.Gateway || got.VLAN != 20 || got.DNS[0] != c.DNS[0] || got.Search[0] != "lab.example" {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.Contains(string(b), `"address": "192.0.2.10/24"`) || !strings.Contains(string(b), `"version": 1`) {
		t.Errorf("file:\n%s", b)
	}
	if err := Save(dir, static("192.0.2.10/24", "10.0.0.1")); err == nil {
		t.Error("Save accepted an invalid configuration")
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte(`{"version":1,"mode":"static"}`), 0o644)
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "address") {
		t.Errorf("Load of an invalid file: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Load(dir); ok {
		t.Error("still there after Remove")
	}
}

func TestVLANInterface(t *testing.T) {
	for _, tc := range []struct {
		nic  string
		id   int
		want string
	}{
		{"eth0", 0, ""},
		{"eth0", 20, "eth0.20"},
		{"enp1s0f1", 4094, "enp1s0f1.4094"},
		{"enx0123456789a", 20, "mgmt.20"}, // 17 characters: over the kernel's 15
	} {
		if got := VLANInterface(tc.nic, tc.id); got != tc.want {
			t.Errorf("VLANInterface(%q, %d) = %q, want %q", tc.nic, tc.id, got, tc.want)
		}
	}
}
