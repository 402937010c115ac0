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
command -v go >/dev/null || { echo "deps: Go is not installed (need Go 1.26 at /usr/local/go or on PATH)" >&2; exit 1; }
(cd "$ROOT" && go mod download) || { echo "deps: go mod download failed" >&2; exit 1; }
echo "deps: ok"
