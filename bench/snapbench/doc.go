// Package snapbench measures issue 17's snapshots and linked clones with
// real vmkernel and QEMU under TCG, each against a floor in the same run:
// BenchmarkSnapshots times, on a running guest, a snapshot with memory and
// a disk-only one through vmkernel's API against bare QEMU's own QMP
// (a snapshot-save job; a blockdev-snapshot-internal-sync transaction) on
// the same guest and disk booted the same way, a revert to the memory
// snapshot (API) against a snapshot-load job and cont, and, the VMs
// stopped, a revert to the disk-only snapshot against qemu-img snapshot -a;
// BenchmarkDeploy times a linked-clone deploy of 5 VMs from a template
// through the API (per VM) against qemu-img create -b of 5 overlays on the
// template's disk. Both interleave Plinth and the floor, discard a warm-up
// and print medians, ranges and ratios:
//
//	flock /work/heavy.lock go test -run XXX -bench . -benchtime 1x -timeout 15m ./bench/snapbench
//
// Its figures are in docs/PERFORMANCE.md.
package snapbench
