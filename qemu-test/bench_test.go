package qemutest

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	s := time.Second
	if got := Median([]time.Duration{3 * s, 1 * s, 2 * s}); got != 2*s {
		t.Errorf("odd median = %v", got)
	}
	if got := Median([]time.Duration{4 * s, 1 * s, 2 * s, 3 * s}); got != 2500*time.Millisecond {
		t.Errorf("even median = %v", got)
	}
	if got := Median(nil); got != 0 {
		t.Errorf("empty median = %v", got)
	}
}

func TestMedianValue(t *testing.T) {
	for in, want := range map[string]string{
		"300,100,200":      "200",
		"1.5s,500ms,2s,1s": "1.25s",
		"v1,v2,v1":         "(not numeric) v1, v2",
		"100,3s":           "(not numeric) 100, 3s",
	} {
		if got := medianValue(strings.Split(in, ",")); got != want {
			t.Errorf("medianValue(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	s := time.Second
	r := &BenchResult{
		Options:   BenchOptions{Kernel: "/nonexistent/k", Initrd: "/nonexistent/i", CPUs: 2, MemoryMiB: 1024},
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
		"| 3 | 7.00 | 12.00 |",
		"| **median** | **6.00** | **15.00** |",
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
