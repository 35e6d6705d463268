#!/usr/bin/env bash
# `make image`: the flashable kiosk image, dist/burnstand-kiosk-VERSION-arm64.img.xz with its
# .img.xz.sha256 and .bmap, built from Debian bookworm arm64 packages only (no Raspberry Pi OS
# archive): the cached mmdebstrap bootstrap (image/bootstrap.sh), the board setup
# (image/board.sh: fstab by label, network, root grown on first boot, raspi-firmware's
# config.txt/cmdline.txt), then customize.sh (the same burnstand stage pi-gen runs: the app from
# requirements/runtime.txt), then a FAT firmware partition and an ext4 root made from files
# (mkfs.vfat + mcopy, mkfs.ext4 -d, sfdisk on a file: no loop partitions, no device-mapper).
#
#   build-image.sh [--out DIR] [--work DIR] [--bootstrap TARBALL] [customize.sh options…]
#
# Environment: BURNSTAND_COORDINATOR_URL and BURNSTAND_SHOW_ID (required, as for customize.sh;
# a card can still take other settings from burnstand-agent.toml on its boot partition),
# BURNSTAND_KIOSK_NAME, SOURCE_DATE_EPOCH (default: the time of the last commit; every file
# time, the file system ids and the partition table follow it, so two builds of one commit give
# the same bytes), BURNSTAND_IMAGE_CACHE (bootstrap tarballs; default
# /var/cache/burnstand-image-build), MIRROR, XZ_OPT (default -3 -T2), BINFMT_MISC (where
# binfmt_misc is mounted, default /proc/sys/fs/binfmt_misc).
# --bootstrap uses a root tarball of your own instead of the cached Debian bootstrap.
# Nothing lands in --out (default: dist/) unless the whole build succeeded: the files are made in
# --work (default: a new directory under /var/tmp, removed at the end) and moved in at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
die() { echo "build-image.sh: error: $*" >&2; exit 1; }
say() { printf 'build-image.sh: [%02d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

out=$src/dist
work=""
bootstrap=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
        --work) [ $# -ge 2 ] || die "--work needs a directory"; work=$2; shift 2 ;;
        --bootstrap) [ $# -ge 2 ] || die "--bootstrap needs a tarball"; bootstrap=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done

# --- before any work: every tool, emulation, and the kiosk's settings ---------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (chroot, file ownership inside the image)"
missing=()
need() { command -v "$1" > /dev/null || missing+=("$2"); }
need mmdebstrap mmdebstrap
need mkfs.ext4 e2fsprogs
need debugfs e2fsprogs
need mkfs.vfat dosfstools
need mcopy mtools
need sfdisk fdisk
need xz xz-utils
need bmaptool bmap-tools
if [ "$(dpkg --print-architecture)" != arm64 ]; then
    need qemu-aarch64-static qemu-user-static
fi
[ ${#missing[@]} -eq 0 ] || die "missing tools; install them with: apt-get install \
$(printf '%s\n' "${missing[@]}" | sort -u | paste -sd' ' -)"
if [ "$(dpkg --print-architecture)" != arm64 ]; then
    binfmt=${BINFMT_MISC:-/proc/sys/fs/binfmt_misc}
    [ -e "$binfmt/status" ] || die "binfmt_misc is not mounted, so arm64 programs cannot run \
here: mount -t binfmt_misc binfmt_misc $binfmt (then: update-binfmts --enable qemu-aarch64)"
    [ -e "$binfmt/qemu-aarch64" ] && head -n 1 "$binfmt/qemu-aarch64" | grep -qx enabled \
        || die "no arm64 emulation registered in binfmt_misc: apt-get install qemu-user-static \
binfmt-support && update-binfmts --enable qemu-aarch64"
fi
bash "$here/customize.sh" --check "${extra[@]+"${extra[@]}"}"
[ -z "$bootstrap" ] || [ -s "$bootstrap" ] || die "--bootstrap $bootstrap: no such tarball"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/pyproject.toml" | head -n 1)
[ -n "$version" ] || die "no version in $src/pyproject.toml"
name=burnstand-kiosk-$version-arm64
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2> /dev/null) \
        || die "set SOURCE_DATE_EPOCH (not a git checkout, no commit time to take)"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH '$SOURCE_DATE_EPOCH' is not a number"
export SOURCE_DATE_EPOCH
# Ids the same for every build of one version (the disk id is what cmdline.txt would name by
# PARTUUID; the root is found by label instead).
seed=$(printf 'burnstand-kiosk %s' "$version" | sha256sum)
uuid=$(echo "$seed" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
disk_id=0x${seed:0:8}
fat_id=${seed:8:8}
BOOT_LABEL=BSBOOT
ROOT_LABEL=burnstand-root

# --- the work directory: removed whatever happens, and nothing half-made reaches --out ---------
made_work=0
if [ -z "$work" ]; then
    work=$(mktemp -d /var/tmp/burnstand-image.XXXXXX)
    made_work=1
fi
mkdir -p "$work" "$out"
work=$(cd "$work" && pwd -P)
root=$work/root
partials=()
cleanup() {
    local rc=$? p
    for p in "${partials[@]+"${partials[@]}"}"; do rm -f "$p"; done
    for fs in dev sys proc; do ! mountpoint -q "$root/$fs" 2> /dev/null || umount -l "$root/$fs"; done
    if [ "$made_work" -eq 1 ]; then rm -rf "$work"; else rm -rf "$root" "$work/parts" "$work/$name".*; fi
    [ "$rc" -eq 0 ] || say "failed (exit $rc); nothing was written to $out"
}
trap cleanup EXIT
# Interrupted (Ctrl-C, a CI timeout): still clean up.
trap 'exit 130' INT
trap 'exit 143' TERM HUP
start=$(date +%s)

# --- 1. Debian: the cached bootstrap ----------------------------------------------------------
if [ -z "$bootstrap" ]; then
    bootstrap=$(bash "$here/image/bootstrap.sh" "${BURNSTAND_IMAGE_CACHE:-/var/cache/burnstand-image-build}")
fi
say "unpacking $bootstrap"
rm -rf "$root" && mkdir -p "$root"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$bootstrap" -C "$root" \
    || die "unpacking the bootstrap into $work failed (is that disk full?)"

# --- 2. the board, 3. burnstand itself (customize.sh, the pi-gen stage's script) ---------------
say "board setup (fstab, network, firmware partition)"
bash "$here/image/board.sh" "$root" "$BOOT_LABEL" "$ROOT_LABEL"
say "customize.sh (emulated pip install from the lock: minutes)"
# customize.sh lends the chroot the host's resolv.conf for pip, and takes it back.
rm -f "$root/etc/resolv.conf"
BURNSTAND_IMAGE_BUILD=1 bash "$here/customize.sh" "$root" "${extra[@]+"${extra[@]}"}"
# On the card systemd-resolved's stub answers names (networkd tells it the DHCP servers).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# --- 4. leave out what differs between builds and is not needed on the card -------------------
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/ldconfig/aux-cache \
    "$root"/root/.cache "$root"/tmp/* "$root"/var/tmp/* "$root"/etc/*- "$root"/var/log/journal/*
find "$root/opt/burnstand/src" -name __pycache__ -prune -exec rm -rf {} +
parts=$work/parts
rm -rf "$parts" && mkdir -p "$parts/firmware"
mv "$root"/boot/firmware/* "$parts/firmware/"
# Every time newer than the commit becomes the commit's (mmdebstrap leaves the packages' own);
# the copied checkout gets the commit's time throughout, as its files' times differ by clone.
find "$root/opt/burnstand/src" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
find "$root" "$parts/firmware" -newermt "@$SOURCE_DATE_EPOCH" -print0 \
    | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"

# --- 5. the partitions, from files ------------------------------------------------------------
fat_mib=256
fat=$parts/firmware.img
truncate -s "${fat_mib}M" "$fat"
mkfs.vfat -F 32 -n "$BOOT_LABEL" -i "$fat_id" --invariant "$fat" > /dev/null
mcopy -Q -s -m -i "$fat" "$parts/firmware/"* ::/ || die "the firmware files do not fit in ${fat_mib} MiB"

used_mib=$(du -s -B1M "$root" | cut -f1)
# Room for the journal, the inode tables and first-boot writes; the card's free space comes
# from growing the root on first boot.
root_mib=$(( (used_mib * 12 / 10 + 200 + 63) / 64 * 64 ))
ext4=$parts/root.img
say "root file system: ${used_mib} MiB of files in a ${root_mib} MiB ext4"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L "$ROOT_LABEL" -U "$uuid" -T default \
    -E "hash_seed=$uuid,root_owner=0:0" -d "$root" "$ext4" "${root_mib}M" \
    || die "mkfs.ext4 could not make the root file system (is $work full?)"
# mkfs.ext4 -d copies each file's change and access times, which are when this build wrote and
# read it: set them to the commit's time so the root's bytes do not depend on when it was built.
(cd "$root" && find . -mindepth 1 -printf '%P\n') \
    | awk -v t="@$SOURCE_DATE_EPOCH" 'index($0, "\"") { bad = 1 }
        { printf "sif \"/%s\" ctime %s\nsif \"/%s\" atime %s\n", $0, t, $0, t }
        END { printf "sif / ctime %s\nsif / atime %s\n", t, t; exit bad }' > "$parts/ctime.cmds" \
    || die "a file name in the image holds a double quote; debugfs cannot set its time"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$parts/ctime.cmds" "$ext4" > /dev/null 2> "$parts/debugfs.log"
! grep -v '^debugfs ' "$parts/debugfs.log" | grep -q . \
    || die "debugfs could not set the file times: $(grep -v '^debugfs ' "$parts/debugfs.log" | head -n 3)"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH e2fsck -fn "$ext4" > "$parts/fsck.log" 2>&1 \
    || die "the root file system does not check clean: $(tail -n 3 "$parts/fsck.log")"

# MBR (every Pi's firmware reads it): the FAT partition first (type 0x0c), at 4 MiB.
img=$work/$name.img
first_mib=4
rm -f "$img"
truncate -s "$((first_mib + fat_mib + root_mib))M" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" <<TABLE
label: dos
label-id: $disk_id
unit: sectors

start=$((first_mib * 2048)), size=$((fat_mib * 2048)), type=c, bootable
start=$(((first_mib + fat_mib) * 2048)), size=$((root_mib * 2048)), type=83
TABLE
dd if="$fat" of="$img" bs=1M seek="$first_mib" conv=notrunc,sparse status=none
dd if="$ext4" of="$img" bs=1M seek="$((first_mib + fat_mib))" conv=notrunc,sparse status=none
rm -rf "$parts"

# --- 6. the artifacts, moved into --out only when all three are complete ----------------------
say "compressing $(du -h --apparent-size "$img" | cut -f1) image with xz ${XZ_OPT:--3 -T2}"
bmaptool -q create -o "$work/$name.bmap" "$img"
xz ${XZ_OPT:--3 -T2} -c "$img" > "$work/$name.img.xz" || die "xz failed (is $work full?)"
(cd "$work" && sha256sum "$name.img.xz" > "$name.img.xz.sha256")
for f in "$name.bmap" "$name.img.xz.sha256" "$name.img.xz"; do
    partials+=("$out/.$f.partial")
    cp "$work/$f" "$out/.$f.partial" || die "copying $f to $out failed (is it full?)"
done
for f in "$name.bmap" "$name.img.xz.sha256" "$name.img.xz"; do
    mv "$out/.$f.partial" "$out/$f"
done
partials=()
say "done in $(( $(date +%s) - start )) s: $out/$name.img.xz ($(du -h "$out/$name.img.xz" | cut -f1)," \
    "image $(du -h --apparent-size "$img" | cut -f1))"
cat "$out/$name.img.xz.sha256"
