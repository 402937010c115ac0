#!/usr/bin/env bash
# build.sh makes the Plinth image: build/vmlinuz and build/initramfs.cpio.zst,
# plus build/size-report.txt. Every step is named; a failure says which step
# failed and why. Downloads are cached under build/cache and reused.
#
#   initramfs/build.sh            # build what is missing or stale
#   initramfs/build.sh --next     # after a build: the same system as version
#                                 # VERSION-next in build/next (initramfs and
#                                 # signed upgrade image), for upgrade tests
#
# Steps: kernel (fetch the pinned Debian package, check its sha256, unpack),
# modules (copy the listed modules and their dependencies, regenerate
# modules.dep/alias for that subset, pack them into a squashfs image), payload (QEMU, qemu-img, their libraries,
# the TCG plugin and guest firmware from the pinned Debian packages), userland
# (u-root commands and Plinth's own in one busybox binary, via mkuimage),
# compress (zstd), report.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
CACHE="$BUILD/cache"
STEP="start"

die() { echo "build: step $STEP failed: $*" >&2; STEP=reported; exit 1; }
trap 'rc=$?; [ $rc -ne 0 ] && [ "$STEP" != reported ] && echo "build: step $STEP failed (exit $rc)" >&2' EXIT
step() { STEP="$1"; echo "build: == $1"; }

NEXT=0
[ "${1:-}" = "--next" ] && NEXT=1

step tools
for t in go apt-get dpkg-deb dpkg-query depmod modprobe zstd sha256sum cpio ldd mksquashfs; do
	command -v "$t" >/dev/null || die "missing tool '$t' (run 'make deps' as root, or apt-get install kmod zstd cpio squashfs-tools)"
done
mkdir -p "$CACHE"

# shellcheck source=kernel.lock
. "$ROOT/initramfs/kernel.lock"
MODS="$BUILD/modules"
OUT="$BUILD"
if [ "$NEXT" = 1 ]; then
	for f in "$BUILD/version" "$BUILD/release" "$BUILD/vmlinuz" "$BUILD/payload.cpio" "$MODS/lib/modules" "$BUILD/modules.sqfs"; do
		[ -e "$f" ] || die "--next builds on a finished build: $f is missing (run initramfs/build.sh first)"
	done
	OUT="$BUILD/next"
	rm -rf "$OUT" # its version file is written last: make's sign of a finished --next
	mkdir -p "$OUT"
fi

DEB="$CACHE/${KERNEL_PACKAGE}_${KERNEL_VERSION}_amd64.deb"
KROOT="$BUILD/kroot"

if [ "$NEXT" = 0 ]; then # kernel, modules and payload: --next reuses them

step kernel
if [ -f "$DEB" ] && ! echo "$KERNEL_SHA256  $DEB" | sha256sum -c --quiet - 2>/dev/null; then
	echo "build: cached $DEB has the wrong sha256; fetching it again"
	rm -f "$DEB"
fi
if [ ! -f "$DEB" ]; then
	fetch() { (cd "$CACHE" && apt-get download -q "$KERNEL_PACKAGE=$KERNEL_VERSION" 2>&1 | grep -v 'unsandboxed') ; }
	if ! fetch || [ ! -f "$DEB" ]; then
		echo "build: apt-get download failed; running apt-get update and trying again"
		apt-get update -q >/dev/null || die "apt-get update failed"
		fetch || true
	fi
	[ -f "$DEB" ] || die "could not download $KERNEL_PACKAGE=$KERNEL_VERSION from Debian's archive (is it still published? see initramfs/kernel.lock)"
fi
GOT="$(sha256sum "$DEB" | cut -d' ' -f1)"
[ "$GOT" = "$KERNEL_SHA256" ] || die "bad checksum for $DEB: got $GOT, initramfs/kernel.lock says $KERNEL_SHA256"
if [ ! -f "$KROOT/.unpacked-$KERNEL_SHA256" ]; then
	rm -rf "$KROOT"
	dpkg-deb -x "$DEB" "$KROOT" || die "dpkg-deb could not unpack $DEB"
	KVER="$(ls "$KROOT/lib/modules")"
	depmod -b "$KROOT" "$KVER" || die "depmod on the full module tree failed"
	touch "$KROOT/.unpacked-$KERNEL_SHA256"
fi
KVER="$(ls "$KROOT/lib/modules")"
cp "$KROOT/boot/vmlinuz-$KVER" "$BUILD/vmlinuz"
echo "$KVER" > "$BUILD/kernel-release"

step modules
rm -rf "$MODS"
mkdir -p "$MODS/lib/modules/$KVER"
want=$(grep -v '^#' "$ROOT/initramfs/modules.txt" | tr -s ' \n' '\n' | sed '/^$/d')
files=""
for m in $want; do
	out="$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1)" || die "module '$m' (initramfs/modules.txt) is not in kernel $KVER: $out"
	files="$files $(echo "$out" | awk '$1=="insmod"{print $2}')"
done
for f in $(echo "$files" | tr ' ' '\n' | sort -u); do
	rel="${f#"$KROOT"/}"
	mkdir -p "$MODS/$(dirname "$rel")"
	cp "$f" "$MODS/$rel"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
	[ -f "$KROOT/lib/modules/$KVER/$f" ] && cp "$KROOT/lib/modules/$KVER/$f" "$MODS/lib/modules/$KVER/"
done
depmod -b "$MODS" "$KVER" || die "depmod for the module subset failed"
echo "build: $(find "$MODS" -name '*.ko' | wc -l) modules"
# The modules travel as a squashfs image (xz, x86 BCJ filter) that the init
# mounts on /lib/modules/RELEASE, not as 24 MB of files the kernel unpacks
# from the initramfs at every boot: only the modules a machine loads are
# ever decompressed. loop and squashfs themselves, needed to mount it, are
# in the initramfs as plain files (/plinth/early).
MODIMG="$BUILD/modules.sqfs"
mksquashfs "$MODS/lib/modules/$KVER" "$MODIMG" -noappend -quiet -no-progress \
	-all-root -comp xz -Xbcj x86 >/dev/null || die "mksquashfs of the modules failed"
EARLY="$BUILD/early-modules"
rm -rf "$EARLY" && mkdir -p "$EARLY"
for m in loop squashfs; do
	out="$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1)" || die "module '$m': $out"
	deps="$(echo "$out" | awk '$1=="insmod"{print $2}')"
	[ "$(echo "$deps" | wc -l)" = 1 ] || die "early module $m has dependencies ($deps): the init loads it alone"
	cp "$deps" "$EARLY/$m.ko"
done

step payload
# The VM payload comes from the build host's Debian packages at the pinned
# versions (packages.lock); install them if missing, refuse other versions.
missing=""
while read -r pkg ver; do
	case "$pkg" in ''|'#'*) continue ;; esac
	have="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
	if [ "$have" != "$ver" ]; then missing="$missing $pkg=$ver"; fi
done < "$ROOT/initramfs/packages.lock"
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "packages not installed at the pinned versions:$missing (run as root, or apt-get install them)"
	echo "build: installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; } ||
		die "apt-get install$missing failed (see initramfs/packages.lock)"
fi
# Debian's separate qemu-system-x86_64-microvm binary is left out: it is a
# second 7.7 MB build of the same emulator, and qemu-system-x86_64 runs the
# microvm machine type itself (-M microvm, with bios-microvm.bin below).
#
# The payload is not unpacked into the initramfs: it goes into a squashfs image
# (xz with the x86 BCJ filter) that the init mounts read-only on /usr. The
# kernel then unpacks 15 MB of already-compressed bytes instead of 57 MB of
# QEMU, libraries and firmware at every boot, and QEMU's pages are decompressed
# only when a VM starts. Paths stay the host's: Debian's QEMU finds firmware by
# absolute path (--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu)
# and the libraries in /usr/lib/x86_64-linux-gnu, which ld.so searches by default.
PAY="$BUILD/payload"
rm -rf "$PAY" "$BUILD/payload-root"
mkdir -p "$PAY/usr/lib/x86_64-linux-gnu" "$BUILD/payload-root/lib64" "$BUILD/payload-root/plinth/early"
cp "$MODIMG" "$BUILD/payload-root/plinth/modules.sqfs"
cp "$EARLY"/*.ko "$BUILD/payload-root/plinth/early/"
put() { # host-path [path-in-payload]
	local src="$1" dst="$PAY${2:-$1}"
	[ -e "$src" ] || die "payload file $src is missing (is its package installed? see initramfs/packages.lock)"
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
}
elves=(/usr/bin/qemu-system-x86_64 /usr/bin/qemu-img /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
	/usr/sbin/mke2fs # mke2fs: plinth-install formats STATE and the datastore
	/usr/lib/x86_64-linux-gnu/qemu/hw-usb-host.so # usb-host, a QEMU module (libusb): USB passthrough
	/usr/bin/swtpm) # each VM's TPM 2.0, run by vmkernel as the VM's user
for f in "${elves[@]}"; do
	put "$f"
	# The TCG accelerator is a plugin QEMU dlopen()s, listed above by hand;
	# everything an ELF links against comes from ldd.
	libs="$(ldd "$f")" || die "ldd $f failed"
	for lib in $(echo "$libs" | awk '$2=="=>" && $3 ~ /^\// {print $3}'); do
		put "$lib" "/usr/lib/x86_64-linux-gnu/$(basename "$lib")"
	done
done
interp=/lib64/ld-linux-x86-64.so.2
cp -L "$interp" "$BUILD/payload-root/lib64/" || die "no $interp"
# QEMU's -vnc loads its default keymap at start (a VM with a screen does not
# start without it); noVNC sends scancodes, so en-us is the only one needed.
put /usr/share/qemu/keymaps/en-us
for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin multiboot_dma.bin pvh.bin qboot.rom bios-microvm.bin; do
	put "/usr/share/qemu/$f"
done
# Only the firmware of devices a VM spec can ask for (vmkernel/qemu): the
# std VGA and the two NIC models (virtio-net, e1000e) with their PXE ROMs.
for f in bios-256k.bin vgabios-stdvga.bin; do
	put "/usr/share/seabios/$f"
done
for f in efi-e1000e.rom efi-virtio.rom; do
	put "/usr/lib/ipxe/qemu/$f"
done
# One UEFI firmware for both kinds (vmkernel/runner): the Secure Boot build,
# with empty variables (Secure Boot off) or Microsoft's keys enrolled.
put /usr/share/OVMF/OVMF_CODE_4M.secboot.fd
put /usr/share/OVMF/OVMF_VARS_4M.fd
put /usr/share/OVMF/OVMF_VARS_4M.ms.fd
# The PCI ID database: vendor, device and class names in the hardware
# inventory (board.ParsePCIIDs), without the subsystem and programming
# interface lines (two tabs deep) and comments it does not read.
[ -e /usr/share/misc/pci.ids ] || die "payload file /usr/share/misc/pci.ids is missing (see initramfs/packages.lock)"
mkdir -p "$PAY/usr/share/misc"
grep -v -e '^		' -e '^#' -e '^$' /usr/share/misc/pci.ids >"$PAY/usr/share/misc/pci.ids" || die "pci.ids filter failed"
mksquashfs "$PAY/usr" "$BUILD/payload-root/plinth/payload.sqfs" -noappend -quiet -no-progress \
	-all-root -comp xz -Xbcj x86 -b 1M >/dev/null || die "mksquashfs failed"
(cd "$BUILD/payload-root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) > "$BUILD/payload.cpio" ||
	die "cpio of the payload failed"

fi # NEXT = 0

step signing-key
# Upgrade images are signed with an ed25519 key whose public half goes into
# the binaries (upgrade.PublicKey). Releases set PLINTH_SIGNING_KEY; a
# development build makes its own key once and keeps it in build/keys.
KEY="${PLINTH_SIGNING_KEY:-$BUILD/keys/upgrade-signing.key}"
if [ ! -f "$KEY" ]; then
	[ -z "${PLINTH_SIGNING_KEY:-}" ] || die "PLINTH_SIGNING_KEY=$KEY does not exist"
	echo "build: no signing key: making a development key in $KEY"
fi
PUBKEY="$(cd "$ROOT" && go run ./upgrade/cmd/plinth-bundle pubkey -key "$KEY" -create)" || die "plinth-bundle pubkey failed"

step web
# The web client mgmtd serves, built from web/src and the npm packages pinned
# in web/package-lock.json into web/dist, which mgmtd embeds.
(cd "$ROOT" && go run ./web/cmd/plinth-webbuild) || die "the web client did not build"

step userland
# RELEASE is the monotonic release number upgrade images carry (api.Release):
# the commit count, so every later commit's build is a later release; --next
# is one more, as the release after this build.
if [ "$NEXT" = 1 ]; then
	VERSION="$(cat "$BUILD/version")-next"
	RELEASE="$(( $(cat "$BUILD/release") + 1 ))"
else
	VERSION="$(cd "$ROOT" && git describe --always --dirty --tags 2>/dev/null || echo dev)"
	RELEASE="$(cd "$ROOT" && git rev-list --count HEAD 2>/dev/null || echo 1)"
fi
[ "$NEXT" = 1 ] || echo "$VERSION" > "$OUT/version"
echo "$RELEASE" > "$OUT/release"
UROOT=github.com/u-root/u-root/cmds/core
cmds=()
for c in ls cat cp mv rm ln mkdir echo ip ps dmesg mount umount ping \
	hostname kill free df du grep more tail head uname sync poweroff shutdown \
	insmod rmmod lsmod lsdrivers wget netstat dd find chmod date uptime sleep \
	touch tee wc xargs sort tr which readlink realpath pidof hexdump strings \
	cpio gzip tar md5sum shasum dhclient pci blkid gpt mknod stty tty time true false; do
	cmds+=("$UROOT/$c")
done
# The shell is mvdan.cc/sh's gosh (same name, no line editor): u-root's gosh
# needs knz/bubbline, which does not compile against the bubbles v1 the DCUI
# uses (generic key.Matches under bubbline's go 1.13 language version).
cmds+=(mvdan.cc/sh/v3/cmd/gosh)
cmds+=(./initramfs/cmd/plinth-init ./vmkernel/cmd/vmkernel ./mgmtd/cmd/mgmtd ./board/cmd/plinth-hw ./initramfs/cmd/modprobe ./dcui/cmd/dcui)
cmds+=(./installer/cmd/plinth-install ./installer/cmd/plinth-pxe)
# gobusybox compiles the busybox in GOPATH mode, and GOPATH-mode binaries get
# Go 1.20's GODEBUG defaults (old ServeMux patterns, weaker TLS defaults). The
# last -X wins, so this gives the busybox the defaults of the Go that builds it,
# except container-aware GOMAXPROCS: the appliance is no container, and a Go
# runtime that reads cpu.cfs_quota_us keeps u-root's cgroup v1 cpu hierarchy
# open, so the init cannot hand the cpu controller to cgroup v2 (VM CPU weight
# and caps).
GODEBUG_LD="-X=runtime.godebugDefault=httpmuxgo121=0,containermaxprocs=0,updatemaxprocs=0"
CPIO="$OUT/initramfs.cpio"
# gobusybox passes "go build -a", which compiles every package again, the
# standard library too, in every build (60 s here, twice in make test: the
# image and --next); -a=false, given after it, lets Go's build cache answer
# for what has not changed (its entries are keyed by content, and -trimpath,
# which gobusybox also sets, keeps the temporary source path out of them):
# 10 s with a warm cache.
(cd "$ROOT" && GOFLAGS=-mod=mod go run github.com/u-root/mkuimage/cmd/mkuimage \
	-initcmd=plinth-init -defaultsh=gosh \
	-go-extra-args=-a=false -go-extra-args="-ldflags=-s -w -buildid= $GODEBUG_LD -X github.com/plinth/plinth/api.Version=$VERSION -X github.com/plinth/plinth/api.Release=$RELEASE -X github.com/plinth/plinth/upgrade.PublicKey=$PUBKEY" \
	-o "$CPIO" "${cmds[@]}") > "$BUILD/mkuimage.log" 2>&1 || { tail -30 "$BUILD/mkuimage.log" >&2; die "mkuimage failed (full log: build/mkuimage.log)"; }

step compress
# The kernel unpacks concatenated cpio archives one after the other.
cat "$BUILD/payload.cpio" >> "$CPIO"
zstd -q -f -T0 -19 "$CPIO" -o "$OUT/initramfs.cpio.zst" || die "zstd failed"
if [ "$NEXT" = 1 ]; then
	rm -f "$CPIO"
	(cd "$ROOT" && go run ./upgrade/cmd/plinth-bundle make -key "$KEY" -version "$VERSION" -release "$RELEASE" \
		-kernel "$BUILD/vmlinuz" -initrd "$OUT/initramfs.cpio.zst" -o "$OUT/plinth-$VERSION.upgrade") ||
		die "plinth-bundle make failed"
	echo "$VERSION" > "$OUT/version"
	echo "build: $OUT/plinth-$VERSION.upgrade"
	STEP=done
	exit 0
fi

step report
"$ROOT/initramfs/size-report.sh" "$BUILD" > "$BUILD/size-report.txt" || die "size report failed"
cat "$BUILD/size-report.txt"
STEP=done
