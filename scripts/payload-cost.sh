#!/bin/bash
# payload-cost.sh: what each optional part of the QEMU payload costs in the
# image. The payload (build/payload/usr, staged by initramfs/build.sh) goes
# into the initramfs as an xz squashfs; this builds that squashfs again the
# same way (xz, BCJ x86, 1 MiB blocks) with everything, then once without
# each part: swtpm (each VM's TPM 2.0) with the libraries only it links,
# QEMU's usb-host module with libusb (USB passthrough), and the Secure Boot
# OVMF (its code against the plain build's, and Microsoft's keys). Run it
# after `make image`:
#
#	scripts/payload-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pay=build/payload/usr
[ -d "$pay" ] || { echo "payload-cost: no $pay: run make image first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

size() { # dir: the squashfs size in bytes
	mksquashfs "$1" "$work/p.sqfs" -noappend -quiet -no-progress -all-root -comp xz -Xbcj x86 -b 1M >/dev/null
	stat -c %s "$work/p.sqfs"
}
# libs_only ELF...: libraries the given ELFs link that no other payload ELF does.
libs_of() { ldd "$@" | awk '$2=="=>" && $3 ~ /^\// {print $3}' | xargs -rn1 basename | sort -u; }
libs_only() {
	local others=()
	for f in "$pay/bin/qemu-system-x86_64" "$pay/bin/qemu-img" "$pay/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so" "$pay/sbin/mke2fs" \
		"$pay/bin/swtpm" "$pay/lib/x86_64-linux-gnu/qemu/hw-usb-host.so"; do
		case " $* " in *" $f "*) ;; *) others+=("$f") ;; esac
	done
	comm -23 <(libs_of "$@") <(libs_of "${others[@]}")
}

all=$(size "$pay")
printf '%-58s %10s\n' "payload (xz squashfs)" "$all bytes"
without() { # label, then paths relative to $pay to leave out
	local label=$1
	shift
	rm -rf "$work/usr"
	cp -a "$pay" "$work/usr"
	for p in "$@"; do rm -f "$work/usr/$p"; done
	local s
	s=$(size "$work/usr")
	printf '%-58s %10s\n' "$label" "$((all - s)) bytes"
}
swtpm_libs=$(libs_only "$pay/bin/swtpm" | sed 's|^|lib/x86_64-linux-gnu/|')
usb_libs=$(libs_only "$pay/lib/x86_64-linux-gnu/qemu/hw-usb-host.so" | sed 's|^|lib/x86_64-linux-gnu/|')
# shellcheck disable=SC2086
without "swtpm and its own libraries ($(echo $swtpm_libs | xargs -n1 basename | tr '\n' ' '))" bin/swtpm $swtpm_libs
# shellcheck disable=SC2086
without "usb-host module and its own libraries ($(echo $usb_libs | xargs -n1 basename | tr '\n' ' '))" lib/x86_64-linux-gnu/qemu/hw-usb-host.so $usb_libs
without "Microsoft's keys (OVMF_VARS_4M.ms.fd)" share/OVMF/OVMF_VARS_4M.ms.fd
# The Secure Boot code against the plain build it replaced.
rm -rf "$work/usr" && cp -a "$pay" "$work/usr"
rm "$work/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
cp -L /usr/share/OVMF/OVMF_CODE_4M.fd "$work/usr/share/OVMF/"
printf '%-58s %10s\n' "Secure Boot OVMF code instead of the plain build" "$((all - $(size "$work/usr"))) bytes"
