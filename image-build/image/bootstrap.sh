#!/usr/bin/env bash
# The cached Debian part of the kiosk image: an arm64 bookworm root file system made by
# mmdebstrap from image-build/image/packages, kept as a tarball keyed on everything that decides
# its contents (suite, architecture, components, mirror, package list). A rebuild after a change
# to burnstand reuses it; a change to the package list makes a new one.
#
#   bootstrap.sh CACHE_DIR          prints the path of the tarball (made when missing)
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
key=$(printf 'suite=%s\narch=%s\ncomponents=%s\nmirror=%s\nvariant=apt\npackages=%s\n' \
    "$SUITE" "$ARCH" "$COMPONENTS" "$MIRROR" "$packages" | sha256sum | cut -c1-16)
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
mmdebstrap --mode=root --variant=apt --architectures="$ARCH" --components="$COMPONENTS" \
    --include="$packages" --format=tar \
    "$SUITE" "$partial" "$MIRROR" >&2
mv "$partial" "$tarball"
trap - EXIT
echo "$tarball"
