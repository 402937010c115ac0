package apibench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs the whole benchmark at a small scale: real vmkernel,
// real mgmtd over HTTPS, both loops, the report.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{VMs: 20, Rate: 50, Duration: 400 * time.Millisecond, Runs: 1, Workers: 2, Cold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mgmtd) != 1 || len(res.Direct) != 1 || res.Mgmtd[0].Sent < 15 || res.Mgmtd[0].Errors != 0 ||
		res.Mgmtd[0].P50 <= 0 || res.MaxRPS[0] <= 0 || res.Bytes < 20*100 || len(res.Cold) != 3 || len(res.DirectWarm) != 3 {
		t.Fatalf("result %+v", res)
	}
	var b strings.Builder
	res.Markdown(&b)
	for _, want := range []string{"with 20 VMs over HTTPS", "| p99 (ms, median of runs) |", "closed-loop requests/s", "Target (p99 under 20 ms at 50 requests/s", "| mgmtd (HTTPS, token, proxy) | ", "cold: after a change"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
