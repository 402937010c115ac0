#!/usr/bin/env bash
# mkimage.sh makes Plinth's boot media from the built kernel and initramfs
# (initramfs/build.sh): the USB stick / disk image build/plinth-VERSION.img
# and, with --iso, the hybrid ISO build/plinth-VERSION.iso. It runs as an
# ordinary user would: no loop devices, no mounting. Partitions are written
# with sgdisk into a sparse file, the FAT32 ESP is made in its own file with
# mkfs.vfat and filled with mtools, STATE with mke2fs, and both are copied
# into place with dd. Same inputs, same bytes: every time stamp is
# SOURCE_DATE_EPOCH (the commit's time) and every UUID, serial and hash seed
# is fixed (see docs/INSTALL.md).
#
#   installer/mkimage.sh          # build/plinth-VERSION.img
#   installer/mkimage.sh --iso    # build/plinth-VERSION.iso as well
#
# Disk image layout (GPT, 512-byte sectors):
#   MBR      syslinux's gptmbr.bin: BIOS boots the partition flagged
#            "legacy BIOS bootable" (the ESP)
#   p1 ESP   PLINTH-EFI, FAT32, 256 MiB: EFI/BOOT/BOOTX64.EFI (systemd-boot,
#            UEFI), syslinux/ (BIOS), loader/entries/plinth-0001-a.conf,
#            bank A (A/vmlinuz, A/initrd, A/VERSION) and an empty bank B
#            (upgrades write the bank not running: see package upgrade)
#   p2 STATE PLINTH-STATE, ext4, 64 MiB, empty
#
# ISO: boot/efi.img (a FAT16 ESP: systemd-boot and bank A) is the El Torito
# EFI image and a GPT partition for sticks; GRUB's El Torito image (BIOS
# CD) and boot_hybrid.img MBR (BIOS stick) boot bank A out of that same
# efi.img by loopback, so the kernel and initramfs are in the ISO once.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
STEP=start
die() { echo "mkimage: step $STEP failed: $*" >&2; STEP=reported; exit 1; }
trap 'rc=$?; [ $rc -ne 0 ] && [ "$STEP" != reported ] && echo "mkimage: step $STEP failed (exit $rc)" >&2' EXIT
step() { STEP="$1"; echo "mkimage: == $1"; }

ISO=0
[ "${1:-}" = "--iso" ] && ISO=1

step tools
for t in sgdisk mkfs.vfat mcopy mmd mke2fs syslinux dd truncate; do
	command -v "$t" >/dev/null || die "missing tool '$t' (run 'make deps': gdisk mtools dosfstools syslinux e2fsprogs)"
done
if [ "$ISO" = 1 ]; then
	for t in xorriso grub-mkimage; do
		command -v "$t" >/dev/null || die "missing tool '$t' (run 'make deps': xorriso grub-pc-bin)"
	done
fi
SDBOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
GPTMBR=/usr/lib/syslinux/mbr/gptmbr.bin
for f in "$SDBOOT" "$GPTMBR" "$BUILD/vmlinuz" "$BUILD/initramfs.cpio.zst" "$BUILD/version" "$BUILD/release"; do
	[ -f "$f" ] || die "missing $f (run 'make deps' and 'initramfs/build.sh')"
done
VERSION="$(cat "$BUILD/version")"
# The commit's time, unless the caller fixes it: every time stamp written.
: "${SOURCE_DATE_EPOCH:=$(cd "$ROOT" && git log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
export E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH"
export TZ=UTC
STAMP="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M.%S)"

# Sizes in MiB; the installer (installer/layout.go) uses the same ESP size
# and offset, so the ESP can be copied from the stick to the disk as it is.
ESP_MIB=256
STATE_MIB=64
IMG="$BUILD/plinth-$VERSION.img"
ESP="$BUILD/esp.img"
STAGE="$BUILD/media"

step esp-files
rm -rf "$STAGE"
mkdir -p "$STAGE/EFI/BOOT" "$STAGE/loader/entries" "$STAGE/syslinux" "$STAGE/A" "$STAGE/B" "$STAGE/plinth"
cp "$SDBOOT" "$STAGE/EFI/BOOT/BOOTX64.EFI"
cp "$BUILD/vmlinuz" "$STAGE/A/vmlinuz"
cp "$BUILD/initramfs.cpio.zst" "$STAGE/A/initrd"
echo "$VERSION" > "$STAGE/A/VERSION"
# console=ttyS0 last: the serial port is /dev/console, where the init's
# lines and the ready line go; tty0 (the monitor) shows the kernel's too.
# panic=10: a kernel panic (an upgrade whose init dies) reboots, so boot
# counting can fall back to the other bank instead of the host hanging.
CMDLINE="console=tty0 console=ttyS0,115200 panic=10"
# systemd-boot boots the highest generation whose entry is not out of
# tries (upgrades add plinth-0002-b+3.conf and so on).
cat > "$STAGE/loader/loader.conf" <<CONF
default plinth-*
timeout 2
console-mode keep
editor no
CONF
cat > "$STAGE/loader/entries/plinth-0001-a.conf" <<CONF
title   Plinth $VERSION (bank A)
linux   /A/vmlinuz
initrd  /A/initrd
options $CMDLINE plinth.bank=A
CONF
cat > "$STAGE/syslinux/syslinux.cfg" <<CONF
SERIAL 0 115200
DEFAULT A
PROMPT 0
TIMEOUT 20
LABEL A
  MENU LABEL Plinth $VERSION (bank A)
  LINUX /A/vmlinuz
  INITRD /A/initrd
  APPEND $CMDLINE plinth.bank=A
CONF
printf 'version=%s\nbank=A\n' "$VERSION" > "$STAGE/plinth/media"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

step esp
# makeesp FILE MIB TYPE: a FAT file system labelled PLINTH-EFI holding the
# staged files. --invariant: no clock or random values (the volume serial
# is then always 1234-ABCD).
makeesp() {
	rm -f "$1"
	truncate -s "$2M" "$1"
	mkfs.vfat -F "$3" -n PLINTH-EFI --invariant "$1" >/dev/null || die "mkfs.vfat failed"
	(cd "$STAGE" && for d in $(find . -mindepth 1 -type d | sort); do
		mmd -i "$1" "::${d#./}" || exit 1
	done
	for f in $(find . -type f | sort); do
		mcopy -o -m -i "$1" "$f" "::${f#./}" || exit 1
	done) || die "mcopy into $1 failed"
}
makeesp "$ESP" "$ESP_MIB" 32

step state
STATEIMG="$BUILD/state.img"
rm -f "$STATEIMG"
truncate -s "${STATE_MIB}M" "$STATEIMG"
mke2fs -q -F -t ext4 -L PLINTH-STATE -U 504c4e54-0000-4000-8000-000000000002 \
	-E hash_seed=504c4e54-0000-4000-8000-000000000003,lazy_itable_init=0,lazy_journal_init=0 \
	-m 0 "$STATEIMG" >/dev/null || die "mke2fs STATE failed"

step disk
rm -f "$IMG"
TOTAL_MIB=$((1 + ESP_MIB + STATE_MIB + 1))
truncate -s "${TOTAL_MIB}M" "$IMG"
# sgdisk: fixed disk and partition GUIDs; partition 1 gets attribute bit 2
# (legacy BIOS bootable), which gptmbr.bin looks for.
sgdisk -o \
	-n 1:2048:+${ESP_MIB}M -t 1:ef00 -c 1:PLINTH-EFI -u 1:504C4E54-0000-4000-8000-0000000000E1 -A 1:set:2 \
	-n 2:0:+${STATE_MIB}M -t 2:8300 -c 2:PLINTH-STATE -u 2:504C4E54-0000-4000-8000-0000000000E2 \
	-U 504C4E54-0000-4000-8000-000000000001 "$IMG" >/dev/null || die "sgdisk failed"
dd if="$GPTMBR" of="$IMG" bs=440 count=1 conv=notrunc status=none
dd if="$ESP" of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
# BIOS: ldlinux.sys and ldlinux.c32 into /syslinux, the ESP's boot sector
# patched to load them; --offset: the file system starts at sector 2048,
# which the boot sector must know.
syslinux --offset $((2048 * 512)) --directory /syslinux --install "$IMG" || die "syslinux --install failed"
dd if="$STATEIMG" of="$IMG" bs=1M seek=$((1 + ESP_MIB)) conv=notrunc,sparse status=none
rm -f "$STATEIMG"
echo "mkimage: $IMG ($(du -m --apparent-size "$IMG" | cut -f1) MiB, $(du -m "$IMG" | cut -f1) MiB allocated)"

step upgrade-bundle
# The same system as a signed upgrade image for hosts already installed
# (plinth host upgrade FILE), signed with the key whose public half the
# build put into the binaries (initramfs/build.sh, step signing-key).
KEY="${PLINTH_SIGNING_KEY:-$BUILD/keys/upgrade-signing.key}"
(cd "$ROOT" && go run ./upgrade/cmd/plinth-bundle make -key "$KEY" -version "$VERSION" -release "$(cat "$BUILD/release")" \
	-kernel "$BUILD/vmlinuz" -initrd "$BUILD/initramfs.cpio.zst" -created "$SOURCE_DATE_EPOCH" \
	-o "$BUILD/plinth-$VERSION.upgrade") || die "plinth-bundle make failed"

if [ "$ISO" = 1 ]; then
	step iso
	ISOFILE="$BUILD/plinth-$VERSION.iso"
	ISOROOT="$BUILD/iso-root"
	rm -rf "$ISOROOT"
	mkdir -p "$ISOROOT/boot/grub" "$ISOROOT/plinth"
	cp "$STAGE/plinth/media" "$ISOROOT/plinth/media"
	# The ISO's ESP holds only what UEFI needs (no syslinux, no bank B), in
	# FAT16 sized to fit. OVMF cannot read ISO 9660, so bank A lives in it;
	# to keep the kernel and initramfs in the ISO once, BIOS reads them from
	# it too: GRUB (El Torito, no emulation) mounts efi.img with loopback.
	ISOESP="$BUILD/iso-esp.img"
	rm -rf "$STAGE/syslinux" "$STAGE/B"
	kib=$(du -s --block-size=1K --apparent-size "$STAGE" | cut -f1)
	makeesp "$ISOESP" $(( (kib * 105 / 100 + 2048) / 1024 )) 16
	mv "$ISOESP" "$ISOROOT/boot/efi.img"
	cat > "$BUILD/iso-grub.cfg" <<CONF
search --no-floppy --file /boot/efi.img --set=root
loopback esp /boot/efi.img
serial --unit=0 --speed=115200
terminal_output console serial
echo 'Plinth $VERSION: loading bank A'
linux (esp)/A/vmlinuz $CMDLINE plinth.bank=A
initrd (esp)/A/initrd
boot
CONF
	# -c: the configuration is built into the core image, which needs no
	# other file from the ISO.
	grub-mkimage -O i386-pc-eltorito -p /boot/grub -c "$BUILD/iso-grub.cfg" -o "$ISOROOT/boot/grub/eltorito.img" \
		biosdisk iso9660 fat part_msdos part_gpt loopback search search_fs_file linux normal echo serial terminal ||
		die "grub-mkimage failed"
	rm -f "$BUILD/iso-grub.cfg"
	find "$ISOROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	rm -f "$ISOFILE"
	# BIOS: GRUB's El Torito image; from a stick, GRUB's boot_hybrid.img as
	# the MBR loads the same core image (--grub2-boot-info patches where).
	# UEFI: the small ESP as the El Torito EFI image, a file inside the ISO
	# 9660 tree (OVMF reads an image whose size does not fit El Torito's
	# 16-bit field up to the end of the ISO 9660 volume, so it must lie
	# within it), and a GPT partition pointing at it for sticks.
	xorriso -as mkisofs -quiet -o "$ISOFILE" -V PLINTH \
		--modification-date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S00)" \
		-b boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
		--grub2-boot-info --grub2-mbr /usr/lib/grub/i386-pc/boot_hybrid.img \
		-eltorito-alt-boot -e boot/efi.img -no-emul-boot -isohybrid-gpt-basdat \
		-r -J "$ISOROOT" 2>&1 | grep -v -e '^xorriso : NOTE' -e 'RockRidge filesystem manipulator' || true
	[ -s "$ISOFILE" ] || die "xorriso made no ISO"
	echo "mkimage: $ISOFILE ($(du -m --apparent-size "$ISOFILE" | cut -f1) MiB)"
fi
STEP=done
