package bootbench

import (
	"strings"
	"testing"
	"time"
)

func TestMarkdown(t *testing.T) {
	s := time.Second
	r := &Result{
		Options:   Options{Kernel: "/nonexistent/k", Initrd: "/nonexistent/i", CPUs: 2, MemoryMiB: 1024},
		Floor:     []time.Duration{5 * s, 6 * s, 7 * s},
		Appliance: []time.Duration{15 * s, 18 * s, 12 * s},
		Ready: []map[string]string{{"boot_ms": "100", "api_ms": "1000", "mode": "live"},
			{"boot_ms": "300", "api_ms": "3000", "mode": "live"}, {"boot_ms": "200", "api_ms": "2000", "mode": "live"}},
		FloorUptime: []string{"1500", "1700", "1600"},
	}
	r.Accel.Mode, r.Accel.Reason = "tcg", "test"
	var b strings.Builder
	r.Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| 3 | 7.00 | 12.00 | - | - |",
		"`go run ./bench/boot -n 3`",
		"| **median** | **6.00** | **15.00** | **0.00** | **0.00** |",
		"Appliance − floor (medians): **9.00 s**; appliance / floor: **2.50×**",
		"| boot | 200 | 200 |",
		"| api | 2000 | 1800 |",
		"about 13000 ms (wall median minus the last moment)",
		"marker 1600 ms after its kernel started; 4400 ms of its wall time",
		"Other keys of the ready line: mode=live.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}
