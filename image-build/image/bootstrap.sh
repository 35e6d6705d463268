#!/usr/bin/env bash
# The cached Debian part of the kiosk image: an arm64 bookworm root file system made by
# mmdebstrap from image-build/image/packages, kept as a tarball keyed on everything that decides
# its contents (suite, architecture, components, mirror, package list). A rebuild after a change
# to burnstand reuses it; a change to the package list makes a new one.
#
#   bootstrap.sh CACHE_DIR          prints the path of the tarball (made when missing)
#
# The cold bootstrap runs every maintainer script under qemu-user, so it does as little emulated
# work as gives the same system: no manual pages, info pages or translated messages are unpacked
# (each package's copyright stays), dpkg's fsyncs are skipped (eatmydata: the tarball is written
# at the end, a crash means starting over anyway), and the initramfs is made once at the end
# (initramfs-once.sh) instead of again for each package that asks. Each line of mmdebstrap's log
# carries the time since the start, so the slow steps show in a build log.
#
# Environment: MIRROR (default http://deb.debian.org/debian), SOURCE_DATE_EPOCH.
# The tarball is written under a temporary name and renamed when complete, so an interrupted or
# failed bootstrap (a full disk, a network error) never leaves a tarball that looks cached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "bootstrap.sh: error: $*" >&2; exit 1; }

cache=${1:?usage: bootstrap.sh CACHE_DIR}
SUITE=bookworm
ARCH=arm64
COMPONENTS=main,non-free-firmware
MIRROR=${MIRROR:-http://deb.debian.org/debian}

packages=$(grep -v -e '^#' -e '^[[:space:]]*$' "$here/packages" | LC_ALL=C sort -u | paste -sd, -)
[ -n "$packages" ] || die "$here/packages lists no package"
options=(--mode=root --variant=apt --architectures="$ARCH" --components="$COMPONENTS"
    --include="$packages" --format=tar --verbose
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata
    --essential-hook="bash '$here/initramfs-once.sh' defer \"\$1\""
    --customize-hook="bash '$here/initramfs-once.sh' build \"\$1\"")
# The key covers everything that decides the tarball's contents: the options above (with the
# hook script's own text) as well as the package list.
key=$( (printf 'suite=%s\nmirror=%s\n' "$SUITE" "$MIRROR"; printf '%s\n' "${options[@]}"
    cat "$here/initramfs-once.sh") | sed "s|$here|image|g" | sha256sum | cut -c1-16)
tarball=$cache/bootstrap-$SUITE-$ARCH-$key.tar
if [ -s "$tarball" ]; then
    echo "bootstrap.sh: cached $tarball" >&2
    echo "$tarball"
    exit 0
fi
mkdir -p "$cache"
partial=$tarball.partial.$$
trap 'rm -f "$partial"' EXIT
echo "bootstrap.sh: mmdebstrap $SUITE $ARCH (emulated: many minutes) -> $tarball" >&2
# Root mode: the maintainer scripts run in a chroot (raspi-firmware's then skip their check for a
# mounted /boot/firmware; the image build writes that partition itself).
printf -v began '%(%s)T' -1
mmdebstrap "${options[@]}" "$SUITE" "$partial" "$MIRROR" 2>&1 \
    | while IFS= read -r line; do
        printf -v now '%(%s)T' -1
        now=$((now - began))
        printf '[%02d:%02d] %s\n' $((now / 60)) $((now % 60)) "$line"
    done >&2
mv "$partial" "$tarball"
trap - EXIT
echo "$tarball"
