// Package webbench measures the web client in Debian's Chromium against a
// real mgmtd and vmkernel, in BenchmarkClient:
//
//	go test -run XXX -bench . ./bench/webbench
//
// Run it under the heavy lock (flock /work/heavy.lock) on a shared machine.
// Its figures are in docs/PERFORMANCE.md.
package webbench
