package api_test

import (
	"testing"

	"github.com/plinth/plinth/api"
)

func TestParseNetmask(t *testing.T) {
	for in, want := range map[string]int{"255.255.255.0": 24, "24": 24, "/16": 16, "255.255.255.252": 30, "255.0.0.0": 8} {
		if got, err := api.ParseNetmask(in); err != nil || got != want {
			t.Errorf("api.ParseNetmask(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"255.0.255.0", "33", "0", "0.0.0.0", "x"} {
		if _, err := api.ParseNetmask(bad); err == nil {
			t.Errorf("api.ParseNetmask(%q) accepted", bad)
		}
	}
	if api.NetmaskString(24) != "255.255.255.0" || api.NetmaskString(32) != "255.255.255.255" {
		t.Error("api.NetmaskString")
	}
}
