#!/usr/bin/env bash
# deps.sh installs what building and testing Plinth needs on Debian 12, as
# root: the Debian packages (build tools and the pinned QEMU/firmware payload
# from initramfs/packages.lock) and the Go modules. It installs only what is
# missing, so a warm machine passes through in a second.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
need=()
have() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null; }
# npm fetches the web client's pinned packages (web/package-lock.json);
# chromium drives it in the end-to-end browser tests; qemu-guest-agent and
# debootstrap give the guest agent and cloud-init tests their real peers;
# xz-utils unpacks the kernel the tests boot through its PVH entry;
# chrony (an NTP server), rsyslog with its TLS driver (a syslog server) and
# the OpenSSH client are the host settings tests' (never started as
# services: the tests run them in the foreground).
for p in npm chromium qemu-guest-agent debootstrap chrony rsyslog rsyslog-gnutls openssh-client kmod xz-utils zstd cpio e2fsprogs squashfs-tools iproute2 ca-certificates curl tmux gdisk mtools dosfstools syslinux syslinux-common xorriso grub-pc-bin systemd-boot-efi ipxe; do
	case "$p" in npm) command -v npm >/dev/null && continue ;; esac # a newer Node.js may be installed otherwise
	case "$(have "$p")" in "install ok installed"*) ;; *) need+=("$p") ;; esac
done
while read -r p v; do
	case "$p" in ''|'#'*) continue ;; esac
	[ "$(have "$p")" = "install ok installed $v" ] || need+=("$p=$v")
done < "$ROOT/initramfs/packages.lock"
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "deps: need root to install: ${need[*]}" >&2; exit 1; }
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
		{ echo "deps: apt-get install ${need[*]} failed" >&2; exit 1; }
	# Installed for the tests only: where apt started them as the
	# machine's services, stop them (chronyd would keep this clock).
	for s in chrony rsyslog; do
		case " ${need[*]} " in *" $s "*) command -v systemctl >/dev/null && systemctl disable --now "$s" >/dev/null 2>&1 || true ;; esac
	done
fi
# The test rig's QEMU (what boots the appliance under TCG in make run, the
# end-to-end tests and the benchmarks) is Debian's newer one from
# trixie-backports, unpacked under build/cache/rig-qemu with the libraries
# it was built against (trixie's, its C library among them) and run through
# their own dynamic loader, so nothing of it touches the system. The
# appliance's VMs run nested on its TCG emulation of AMD's SVM: 7.2's
# froze the appliance every few nested guest starts; 10.0's
# (bookworm-backports) lost it to a triple fault or a panic on a corrupted
# stack in about one nested-guest test of four, and stalled nested guests
# now and then. 10.0 sets and clears the vCPU's pending-interrupt bits at
# VMRUN and #VMEXIT with plain read-modify-writes, outside the lock every
# other thread holds when it raises an interrupt on that vCPU (an IPI, a
# timer): a raced interrupt is lost, or one already taken is raised again.
# QEMU's developers made them atomic after 10.1 ("add cpu_test_interrupt()/
# cpu_set_interrupt() helpers and use them tree wide", qemu-devel, August
# 2025, where Paolo Bonzini names helper_vmrun's); 11.1 loses the
# appliance far less (docs/PERFORMANCE.md). README, "The two commands". The system's QEMU stays as it is: the image's payload is
# taken from it (initramfs/packages.lock). apt fetches with a list, a state
# and an (empty) package status of its own, so it fetches the whole
# closure, checking Debian's signatures as it does for the system.
RIG_QEMU_VERSION="1:11.1.3+ds-2~bpo13+1"
RIG="$ROOT/build/cache/rig-qemu"
fetch_rig() {
	echo "deps: fetching the test rig's QEMU from trixie-backports"
	rm -rf "$RIG.tmp" && mkdir -p "$RIG.tmp/lists/partial" "$RIG.tmp/cache/archives/partial" "$RIG.tmp/root" || return 1
	: >"$RIG.tmp/status"
	local suite
	for suite in trixie trixie-updates trixie-backports; do
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main"
	done >"$RIG.tmp/sources.list"
	local apt=(apt-get -q -o Dir::Etc::SourceList="$RIG.tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o Dir::State::Lists="$RIG.tmp/lists" -o Dir::Cache="$RIG.tmp/cache" -o Dir::State::status="$RIG.tmp/status"
		-o Debug::NoLocking=1 -o APT::Install-Recommends=false)
	"${apt[@]}" --error-on=any update >/dev/null || { echo "deps: apt-get update of trixie-backports failed" >&2; return 1; }
	# The pinned version; once backports has moved on, its newest.
	"${apt[@]}" -y -t trixie-backports install --download-only "qemu-system-x86=$RIG_QEMU_VERSION" >/dev/null 2>&1 ||
		{ echo "deps: QEMU $RIG_QEMU_VERSION is no longer in trixie-backports; taking its newest" >&2
		"${apt[@]}" -y -t trixie-backports install --download-only qemu-system-x86 >/dev/null; } ||
		{ echo "deps: downloading QEMU from trixie-backports failed" >&2; return 1; }
	local d
	for d in "$RIG.tmp"/cache/archives/*.deb; do dpkg-deb -x "$d" "$RIG.tmp/root" || return 1; done
	rm -rf "$RIG.tmp"/root/usr/share/{doc,man,locale,lintian}
	# Its own loader, libraries, modules, ROMs and SeaBIOS, then the
	# system's ROMs.
	cat >"$RIG.tmp/qemu-system-x86_64" <<-'EOF'
		#!/bin/sh
		d="$(dirname "$(readlink -f "$0")")/root"
		QEMU_MODULE_DIR="$d/usr/lib/x86_64-linux-gnu/qemu" exec "$d/usr/lib64/ld-linux-x86-64.so.2" \
			--library-path "$d/usr/lib/x86_64-linux-gnu" --argv0 "$0" "$d/usr/bin/qemu-system-x86_64" \
			-L "$d/usr/share/qemu" -L "$d/usr/share/seabios" -L /usr/share/qemu "$@"
	EOF
	chmod +x "$RIG.tmp/qemu-system-x86_64"
	"$RIG.tmp/qemu-system-x86_64" --version >/dev/null || { echo "deps: the rig QEMU does not run" >&2; return 1; }
	echo "$RIG_QEMU_VERSION" >"$RIG.tmp/pinned"
	rm -rf "$RIG.tmp/lists" "$RIG.tmp/cache" "$RIG" && mv "$RIG.tmp" "$RIG" || return 1
	"$RIG/qemu-system-x86_64" --version | head -1 | sed 's/^/deps: rig: /'
}
# Fetched again when the pin moves. Without it the tests still run, on the
# system's QEMU, and say so.
if { [ ! -x "$RIG/qemu-system-x86_64" ] || [ "$(cat "$RIG/pinned" 2>/dev/null)" != "$RIG_QEMU_VERSION" ]; } && ! fetch_rig; then
	rm -rf "$RIG.tmp"
	if [ -x "$RIG/qemu-system-x86_64" ]; then
		echo "deps: WARNING: could not fetch the rig QEMU $RIG_QEMU_VERSION; the appliance is booted with the one already here, $("$RIG/qemu-system-x86_64" --version | head -1)" >&2
	else
		echo "deps: WARNING: no rig QEMU; the appliance is booted with the system's $(qemu-system-x86_64 --version | head -1), whose nested KVM freezes the appliance now and then" >&2
	fi
fi
command -v go >/dev/null || { echo "deps: Go is not installed (need Go 1.26 at /usr/local/go or on PATH)" >&2; exit 1; }
(cd "$ROOT" && go mod download) || { echo "deps: go mod download failed" >&2; exit 1; }
echo "deps: ok"
