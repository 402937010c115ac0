// Package bench is the home of Plinth's benchmarks: the commands (boot,
// poweron, api, memory), the Go benchmarks (backupbench, webbench,
// boardbench, hwbench, snapbench, run by go test -bench, never by make test) and the
// rigs they run (bootbench, powerbench, apibench, stats). Each measures against a
// floor or a peer in the same run, interleaved, with warm-ups and medians,
// and prints a section for docs/PERFORMANCE.md. Nothing here is product
// code: the test in this package fails when a product package imports a
// benchmark or the QEMU test harness (qemu-test).
package bench
