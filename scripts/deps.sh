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
# chrony (an NTP server), rsyslog with its TLS driver (a syslog server) and
# the OpenSSH client are the host settings tests' (never started as
# services: the tests run them in the foreground).
for p in npm chromium qemu-guest-agent debootstrap chrony rsyslog rsyslog-gnutls openssh-client kmod zstd cpio e2fsprogs squashfs-tools iproute2 ca-certificates curl tmux gdisk mtools dosfstools syslinux syslinux-common xorriso grub-pc-bin systemd-boot-efi ipxe; do
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
# bookworm-backports, unpacked under build/cache/rig-qemu: QEMU 7.2's TCG
# emulation of AMD's SVM, on which the appliance's VMs run nested, freezes
# or corrupts the appliance every few nested guest starts (README, "The two
# commands"). The system's QEMU stays as it is: the image's payload is taken
# from it (initramfs/packages.lock). apt fetches with a list and a state of
# its own, checking Debian's signatures as it does for the system.
RIG_QEMU_VERSION="1:10.0.2+ds-2+deb13u1~bpo12+1"
RIG_SEABIOS_VERSION="1.16.3-2~bpo12+1" # QEMU 10 with bookworm's SeaBIOS 1.16.2 takes 30 s to reach the kernel
RIG="$ROOT/build/cache/rig-qemu"
fetch_rig() {
	echo "deps: fetching the test rig's QEMU from bookworm-backports"
	rm -rf "$RIG.tmp" && mkdir -p "$RIG.tmp/lists/partial" "$RIG.tmp/cache/archives/partial" "$RIG.tmp/debs" || return 1
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >"$RIG.tmp/sources.list"
	local apt=(apt-get -q -o Dir::Etc::SourceList="$RIG.tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o Dir::State::Lists="$RIG.tmp/lists" -o Dir::Cache="$RIG.tmp/cache")
	"${apt[@]}" --error-on=any update >/dev/null || { echo "deps: apt-get update of bookworm-backports failed" >&2; return 1; }
	# The pinned versions; once backports has moved on, its newest.
	(cd "$RIG.tmp/debs" && { "${apt[@]}" download "qemu-system-x86=$RIG_QEMU_VERSION" "qemu-system-data=$RIG_QEMU_VERSION" "seabios=$RIG_SEABIOS_VERSION" >/dev/null 2>&1 ||
		{ echo "deps: QEMU $RIG_QEMU_VERSION or SeaBIOS $RIG_SEABIOS_VERSION is no longer in bookworm-backports; taking its newest" >&2
		"${apt[@]}" download qemu-system-x86/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports >/dev/null; }; }) ||
		{ echo "deps: downloading QEMU from bookworm-backports failed" >&2; return 1; }
	for d in "$RIG.tmp"/debs/*.deb; do dpkg-deb -x "$d" "$RIG.tmp/root" || return 1; done
	# Its libraries come from bookworm itself; install those missing.
	local libs=() p
	for p in $(dpkg-deb -f "$RIG.tmp"/debs/qemu-system-x86_*.deb Depends | tr ',' '\n' | sed -n 's/^ *\(lib[^ ]*\).*/\1/p'); do
		case "$(have "$p")" in "install ok installed"*) ;; *) libs+=("$p") ;; esac
	done
	if [ ${#libs[@]} -gt 0 ]; then
		echo "deps: installing the rig QEMU's libraries ${libs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${libs[@]}" >/dev/null ||
			{ echo "deps: apt-get install ${libs[*]} failed" >&2; return 1; }
	fi
	# Its own ROMs and SeaBIOS first, then the system's (iPXE).
	cat >"$RIG.tmp/qemu-system-x86_64" <<-'EOF'
		#!/bin/sh
		d="$(dirname "$(readlink -f "$0")")/root"
		exec "$d/usr/bin/qemu-system-x86_64" -L "$d/usr/share/qemu" -L "$d/usr/share/seabios" -L /usr/share/qemu "$@"
	EOF
	chmod +x "$RIG.tmp/qemu-system-x86_64"
	"$RIG.tmp/qemu-system-x86_64" --version >/dev/null || { echo "deps: the rig QEMU does not run" >&2; return 1; }
	rm -rf "$RIG.tmp/lists" "$RIG.tmp/cache" "$RIG.tmp/debs" "$RIG" && mv "$RIG.tmp" "$RIG" || return 1
	"$RIG/qemu-system-x86_64" --version | head -1 | sed 's/^/deps: rig: /'
}
# Without it the tests still run, on the system's QEMU, and say so.
if [ ! -x "$RIG/qemu-system-x86_64" ] && ! fetch_rig; then
	rm -rf "$RIG.tmp"
	echo "deps: WARNING: no rig QEMU; the appliance is booted with the system's $(qemu-system-x86_64 --version | head -1), whose nested KVM freezes the appliance now and then" >&2
fi
command -v go >/dev/null || { echo "deps: Go is not installed (need Go 1.26 at /usr/local/go or on PATH)" >&2; exit 1; }
(cd "$ROOT" && go mod download) || { echo "deps: go mod download failed" >&2; exit 1; }
echo "deps: ok"
