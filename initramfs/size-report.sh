#!/usr/bin/env bash
# size-report.sh BUILD_DIR prints the image's size per part: raw bytes, and
# what the part costs compressed in the image (the Go userland is measured
# zstd -19 on its own, as the initramfs is compressed; the modules and the VM
# payload are xz squashfs images, which the initramfs carries as they are).
# It also writes BUILD_DIR/size-report.tsv (part, bytes in the image), which
# qemu-test's TestImageBudget checks against the 32 MiB budget and compares
# with initramfs/size-baseline.tsv to name what grew.
set -euo pipefail
B="$1"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && cpio -id --quiet < "$B/initramfs.cpio")
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
row() { printf "%-34s %9s %9s\n" "$1" "$2" "$3"; }
part() { # name, paths (relative to the unpacked initramfs)...
	local name="$1"; shift
	local raw z
	raw=$(cd "$tmp" && du -cbs "$@" | tail -1 | cut -f1)
	z=$(cd "$tmp" && tar -cf - "$@" | zstd -q -19 -T0 -c | wc -c)
	row "$name" "$(mib "$raw")" "$(mib "$z")"
	PART_Z=$z
}
row "part" "raw MiB" "in image"
tsv="$B/size-report.tsv"; : > "$tsv"
put() { printf "%s\t%s\n" "$1" "$2" >> "$tsv"; }
k=$(stat -c %s "$B/vmlinuz")
row "kernel (vmlinuz)" "$(mib "$k")" "$(mib "$k")"; put kernel "$k"
m=$(stat -c %s "$B/payload-root/plinth/modules.sqfs")
mraw=$(du -cbs "$B/modules/lib/modules" | tail -1 | cut -f1)
row "modules, as modules.sqfs (xz)" "$(mib "$mraw")" "$(mib "$m")"; put modules.sqfs "$m"
part "Go userland (busybox)" bbin bin; put userland "$PART_Z"; bb=$PART_Z
qraw=$(du -cbs "$B/payload/usr/bin" "$B/payload/usr/lib/x86_64-linux-gnu" | tail -1 | cut -f1)
fraw=$(du -cbs "$B/payload/usr/share" "$B/payload/usr/lib/ipxe" | tail -1 | cut -f1)
sq=$(stat -c %s "$B/payload-root/plinth/payload.sqfs")
row "QEMU + libraries" "$(mib "$qraw")" "-"
row "firmware" "$(mib "$fraw")" "-"
row "  both, as payload.sqfs (xz)" "-" "$(mib "$sq")"; put payload.sqfs "$sq"
c=$(stat -c %s "$B/initramfs.cpio"); z=$(stat -c %s "$B/initramfs.cpio.zst")
row "initramfs (cpio, zstd)" "$(mib "$c")" "$(mib "$z")"
row "image (kernel + initramfs)" "-" "$(mib $((k + z)))"
put "rest of the initramfs" $((z - m - sq - bb)); put initramfs "$z"; put image $((k + z))
