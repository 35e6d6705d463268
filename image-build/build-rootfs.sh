#!/usr/bin/env bash
# Build a burnstand appliance root filesystem with mmdebstrap (Debian bookworm), customized by
# customize.sh: the same script the pi-gen stage runs, so what the tests boot here is what the
# flashed image runs.
#
#   build-rootfs.sh OUT [--arch amd64|arm64] [--mirror URL] [customize.sh options…]
#
# OUT must not exist yet (a directory is made). The default arch is the host's. arm64 on an amd64
# host needs emulation: `apt-get install qemu-user-static binfmt-support arch-test` (mmdebstrap
# then runs the arm64 binaries through binfmt; minutes instead of seconds). Where binfmt_misc is
# not mounted (containers): `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
# update-binfmts --enable qemu-aarch64`.
# Everything after the known options goes to customize.sh (--no-display, --with-coordinator…).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "build-rootfs.sh: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
OUT=$1; shift
ARCH=$(dpkg --print-architecture)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || die "--arch needs a value"; ARCH=$2; shift 2 ;;
        --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; MIRROR=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap root mode, chroot)"
[ ! -e "$OUT" ] || die "$OUT already exists; pick a new path"
case "$ARCH" in
    "$(dpkg --print-architecture)") ;;
    arm64|armhf)
        [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || [ -e /proc/sys/fs/binfmt_misc/qemu-arm ] \
            || die "building $ARCH here needs qemu-user-static + binfmt-support (none registered)"
        command -v arch-test >/dev/null || die "building $ARCH here needs arch-test" ;;
    *) die "unsupported --arch $ARCH (amd64, arm64, armhf)" ;;
esac

command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"

packages=systemd,systemd-sysv,dbus,udev,python3,python3-venv,ca-certificates,curl,cdrskin,xorriso,eject
display=1
for opt in "${extra[@]+"${extra[@]}"}"; do [ "$opt" != --no-display ] || display=0; done
[ "$display" -eq 0 ] || packages+=,cage,chromium,fonts-dejavu-core

# Hook arguments travel through mmdebstrap's `sh -c`: quote each one.
hook="$(printf '%q' "$here/customize.sh") \"\$1\""
for opt in "${extra[@]+"${extra[@]}"}"; do hook+=" $(printf '%q' "$opt")"; done

mmdebstrap --variant=apt --architectures="$ARCH" --include="$packages" \
    --customize-hook="$hook" \
    bookworm "$OUT" "$MIRROR"
echo "build-rootfs.sh: root filesystem ready in $OUT" >&2
