// Package backupbench measures a VM's backup and restore through vmkernel's
// API against a plain qemu-img convert of the same disk (the floor), in
// BenchmarkBackupRestore:
//
//	go test -run XXX -bench . ./bench/backupbench
//
// It boots a guest under QEMU: run it under the heavy lock
// (flock /work/heavy.lock). Its figures are in docs/PERFORMANCE.md.
package backupbench
