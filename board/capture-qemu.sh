#!/bin/sh
# capture-qemu.sh [PRESET...]: (re)captures the QEMU fixture trees of board's
# tests, board/testdata/qemu-PRESET (default: q35 and pc), and rewrites their
# golden JSON. Each boots the appliance's kernel and modules (build/, from
# `make image`) under QEMU with the preset's devices and a capture init that
# cold-plugs the drivers and runs board.Capture; see
# qemu-test/cmd/plinth-capture for the presets and for capturing a machine of
# your own (-machine TYPE -- QEMU ARGS...).
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build/vmlinuz ] || [ ! -d build/modules/lib/modules ]; then
	echo "capture-qemu: build/vmlinuz or build/modules is missing: run make image first" >&2
	exit 1
fi
presets="${*:-q35 q35-iommu pc}"
for p in $presets; do
	dir="board/testdata/qemu-$p"
	rm -rf "$dir"
	go run ./qemu-test/cmd/plinth-capture -preset "$p" -o "$dir"
done
# The golden inventories name PCI devices from board/testdata/pci.ids, a small
# excerpt: a device new to the fixtures needs its lines copied there from
# /usr/share/misc/pci.ids (Debian's pci.ids package) first.
go test ./board -run TestFixtures -update
go test ./board
