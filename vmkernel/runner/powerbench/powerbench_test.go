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
		Options: Options{Kernel: "vmlinuz", Accel: api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"}, MemoryMiB: 256, ListVMs: 1000},
		Date:    time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		Floor:   []time.Duration{30 * ms, 32 * ms, 31 * ms},
		Plinth:  []time.Duration{33 * ms, 40 * ms, 36 * ms},
		Define:  700 * ms,
		List:    []time.Duration{7 * ms, 8 * ms, 25 * ms},
	}
	var b strings.Builder
	r.Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| **median** | **31.0** | **36.0** |",
		"Plinth / floor: **1.16×** (target ≤ 1.2×: met)",
		"| 2 | 32.0 | 40.0 |",
		"Median: **8.0 ms** (target < 20.0 ms: met)",
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
