package apibench

import (
	"fmt"
	"io"
	"slices"
	"time"
)

func medianD(ls []Load, f func(Load) time.Duration) time.Duration {
	v := make([]time.Duration, 0, len(ls))
	for _, l := range ls {
		v = append(v, f(l))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func medianOf(ds []time.Duration) time.Duration {
	v := slices.Clone(ds)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func medianF(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func errorsOf(ls []Load) (sent, errs int) {
	for _, l := range ls {
		sent += l.Sent
		errs += l.Errors
	}
	return
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// Pass reports whether the targets hold: p99 under 20 ms at the rate, no errors.
func (r *Result) Pass() bool {
	_, errs := errorsOf(r.Mgmtd)
	return errs == 0 && medianD(r.Mgmtd, func(l Load) time.Duration { return l.P99 }) < 20*time.Millisecond
}

// Markdown writes the section for docs/PERFORMANCE.md.
func (r *Result) Markdown(w io.Writer) {
	p50 := func(l Load) time.Duration { return l.P50 }
	p99 := func(l Load) time.Duration { return l.P99 }
	mx := func(l Load) time.Duration { return l.Max }
	sent, errs := errorsOf(r.Mgmtd)
	dsent, derrs := errorsOf(r.Direct)
	enc := "gzip, as Go's client, browsers and Python's requests ask for it"
	if r.Identity {
		enc = "uncompressed, as curl without --compressed asks for it"
	}
	fmt.Fprintf(w, "## `GET /api/v1/vms` with %d VMs over HTTPS (mgmtd), answers %s\n\n", r.VMs, enc)
	fmt.Fprintf(w, "- %d runs; each: %s open loop at %d requests/s on %d kept-alive connections "+
		"(latency from when each request was due), then %s closed loop on the same %d connections. "+
		"One answer is %d bytes of JSON. The peer is the same listing from vmkernel over its unix socket "+
		"(no TLS, no token, no proxy), measured in the same runs.\n\n",
		r.Runs, r.Duration, r.Rate, r.Workers, r.Duration, r.Workers, r.Bytes)
	fmt.Fprintln(w, "| | mgmtd (HTTPS, token, proxy) | vmkernel direct | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, row := range []struct {
		name string
		f    func(Load) time.Duration
	}{{"p50 (ms, median of runs)", p50}, {"p99 (ms, median of runs)", p99}, {"max (ms, median of runs)", mx}} {
		a, b := medianD(r.Mgmtd, row.f), medianD(r.Direct, row.f)
		fmt.Fprintf(w, "| %s | %s | %s | %.2fx |\n", row.name, ms(a), ms(b), float64(a)/float64(max(b, 1)))
	}
	a, b := medianF(r.MaxRPS), medianF(r.DirectMaxRPS)
	fmt.Fprintf(w, "| closed-loop requests/s (median) | %.0f | %.0f | %.2fx |\n", a, b, a/max(b, 1))
	fmt.Fprintf(w, "| errors | %d of %d | %d of %d | |\n\n", errs, sent, derrs, dsent)
	verdict := "met"
	if !r.Pass() {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "Target (p99 under 20 ms at %d requests/s, no errors): %s.\n", r.Rate, verdict)
	if len(r.Cold) > 0 {
		fmt.Fprintf(w, "\nThe load above is answered from vmkernel's list cache (the encoded answer, kept while no VM changes). "+
			"Single requests, %d each, alternating paths: *cold* right after one VM's spec changed (vmkernel encodes the list afresh), "+
			"*warm* the request after it (from the cache):\n\n", len(r.Cold))
		fmt.Fprintln(w, "| median (ms) | cold: after a change | warm: from the cache |")
		fmt.Fprintln(w, "|---|---|---|")
		fmt.Fprintf(w, "| mgmtd (HTTPS, token, proxy) | %s | %s |\n", ms(medianOf(r.Cold)), ms(medianOf(r.Warm)))
		fmt.Fprintf(w, "| vmkernel direct | %s | %s |\n", ms(medianOf(r.DirectCold)), ms(medianOf(r.DirectWarm)))
	}
}
