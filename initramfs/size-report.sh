#!/usr/bin/env bash
# size-report.sh BUILD_DIR prints the image's size per part: raw bytes and what
# the part costs zstd-compressed on its own (the same -19 the image uses).
set -euo pipefail
B="$1"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && cpio -id --quiet < "$B/initramfs.cpio")
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
part() { # name, paths...
	local name="$1"; shift
	local paths=() p
	for p in "$@"; do [ -e "$tmp/$p" ] && paths+=("$p"); done
	[ ${#paths[@]} -gt 0 ] || { printf "%-24s %9s %9s\n" "$name" "-" "-"; return; }
	local raw z
	raw=$(cd "$tmp" && du -cbs "${paths[@]}" | tail -1 | cut -f1)
	z=$(cd "$tmp" && tar -cf - "${paths[@]}" | zstd -q -19 -T0 -c | wc -c)
	printf "%-24s %9s %9s\n" "$name" "$(mib "$raw")" "$(mib "$z")"
	rm -rf "${paths[@]/#/$tmp/}"
}
printf "%-24s %9s %9s\n" "part" "raw MiB" "zstd MiB"
k=$(stat -c %s "$B/vmlinuz")
printf "%-24s %9s %9s\n" "kernel (vmlinuz)" "$(mib "$k")" "$(mib "$k")"
part "modules" lib/modules
part "Go userland (busybox)" bbin bin
part "QEMU + libraries" usr/bin usr/lib/x86_64-linux-gnu/qemu lib lib64 usr/lib/x86_64-linux-gnu
part "firmware" usr/share/qemu usr/share/seabios usr/share/OVMF usr/lib/ipxe
rest=$(cd "$tmp" && du -sb . | cut -f1)
printf "%-24s %9s %9s\n" "other (dirs, etc)" "$(mib "$rest")" "-"
c=$(stat -c %s "$B/initramfs.cpio"); z=$(stat -c %s "$B/initramfs.cpio.zst")
printf "%-24s %9s %9s\n" "initramfs total" "$(mib "$c")" "$(mib "$z")"
printf "%-24s %9s %9s\n" "image (kernel+initramfs)" "-" "$(mib $((k + z)))"
