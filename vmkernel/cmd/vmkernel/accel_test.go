package main

import (
	"testing"

	"github.com/plinth/plinth/api"
)

func TestChooseAccel(t *testing.T) {
	kvm := api.Acceleration{Mode: api.AccelKVM, Reason: "kvm: kvm_intel"}
	tcg := api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: kvm_pvm"}
	for _, c := range []struct {
		detected api.Acceleration
		flag     string
		want     string // mode, or "" for an error
	}{
		{kvm, "auto", api.AccelKVM},
		{tcg, "auto", api.AccelTCG},
		{kvm, "tcg", api.AccelTCG},
		{tcg, "tcg", api.AccelTCG},
		{kvm, "kvm", api.AccelKVM},
		{tcg, "kvm", ""},
		{kvm, "hvf", ""},
	} {
		got, err := chooseAccel(c.detected, c.flag)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s detected, -accel %s: no error", c.detected.Mode, c.flag)
			}
			continue
		}
		if err != nil || got.Mode != c.want || got.Reason == "" {
			t.Errorf("%s detected, -accel %s: %+v, %v; want %s", c.detected.Mode, c.flag, got, err, c.want)
		}
	}
}
