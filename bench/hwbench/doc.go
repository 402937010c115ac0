// Package hwbench measures issue 18's guest hardware with real vmkernel
// and QEMU: BenchmarkHotplug times a disk and a NIC plugged into a running
// guest through vmkernel's API until the guest sees each, against the
// floor, bare QEMU's own QMP (blockdev-add/netdev_add and device_add) into
// the same guest booted the same way; BenchmarkKSM the memory KSM saves
// with N identical idle guests (1, 2, 4) started through vmkernel, against
// the same guests as bare QEMU processes. Each interleaves Plinth and the
// floor in one run, discards a warm-up and prints medians and ratios:
//
//	flock /work/heavy.lock go test -run XXX -bench . -benchtime 1x -timeout 15m ./bench/hwbench
//
// BenchmarkKSM turns the host's KSM on at a faster pace and puts its
// settings back (unmerging) at the end. Its figures are in
// docs/PERFORMANCE.md.
package hwbench
