// Package boardbench measures board.Read, the hardware inventory vmkernel
// gathers on every GET /v1/host/hardware, in BenchmarkRead:
//
//	go test -run XXX -bench . -benchmem -count 5 ./bench/boardbench
//
// Its figures are in docs/PERFORMANCE.md.
package boardbench
