package powerbench

import (
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestMarkdown(t *testing.T) {
	ms := time.Millisecond
	r := &Result{
		Options:  Options{Kernel: "vmlinuz", Accel: api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"}, MemoryMiB: 256, ListVMs: 1000},
		Date:     time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		Floor:    []time.Duration{30 * ms, 32 * ms, 31 * ms},
		Plinth:   []time.Duration{33 * ms, 40 * ms, 36 * ms},
		Define:   700 * ms,
		List:     []time.Duration{7 * ms, 8 * ms, 25 * ms},
		ListCold: []time.Duration{17 * ms, 18 * ms, 35 * ms},
	}
	var b strings.Builder
	r.Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| **median** | **31.0** | **36.0** |",
		"Plinth / floor: **1.16×** (target ≤ 1.2×: met)",
		"| 2 | 32.0 | 40.0 |",
		"Medians: cold **18.0 ms** (target < 20.0 ms: met), warm **8.0 ms** (met)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	r.Plinth = []time.Duration{40 * ms, 40 * ms, 40 * ms}
	b.Reset()
	r.Markdown(&b)
	if !strings.Contains(b.String(), "**1.29×** (target ≤ 1.2×: NOT met)") {
		t.Errorf("a missed target not said:\n%s", b.String())
	}
}

func TestMarkdownLibvirt(t *testing.T) {
	ms := time.Millisecond
	r := &Result{
		Options:        Options{Kernel: "vmlinuz", Accel: api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"}, MemoryMiB: 256},
		Date:           time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		Floor:          []time.Duration{30 * ms, 32 * ms, 31 * ms},
		Plinth:         []time.Duration{33 * ms, 40 * ms, 36 * ms},
		Libvirt:        []time.Duration{800 * ms, 900 * ms, 850 * ms},
		LibvirtVersion: "libvirtd 9.0.0, QEMU 7.2.22",
	}
	var b strings.Builder
	r.Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"(`go run ./bench/poweron -n 3 -libvirt`)",
		"| run | floor (ms) | Plinth (ms) | libvirt (ms) |",
		"| 2 | 32.0 | 40.0 | 900.0 |",
		"| **median** | **31.0** | **36.0** | **850.0** |",
		"libvirtd 9.0.0, QEMU 7.2.22.",
		"Plinth / floor: **1.16×** (target ≤ 1.2×: met)",
		"Plinth / libvirt (medians): **0.04×**, libvirt / Plinth **23.6×** (target ≤ 0.5×: met)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	r.Libvirt = []time.Duration{60 * ms, 70 * ms, 65 * ms}
	b.Reset()
	r.Markdown(&b)
	if !strings.Contains(b.String(), "**0.55×**, libvirt / Plinth **1.8×** (target ≤ 0.5×: NOT met)") {
		t.Errorf("a missed libvirt target not said:\n%s", b.String())
	}
}
