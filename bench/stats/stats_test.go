package stats

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
		if got := MedianValue(strings.Split(in, ",")); got != want {
			t.Errorf("MedianValue(%s) = %q, want %q", in, got, want)
		}
	}
}
