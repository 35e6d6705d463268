#!/usr/bin/env bash
# The kiosk image's initramfs is made once, at the end of the bootstrap, instead of each time a
# package asks for it (the kernel's postinst, then the trigger of every package with an initramfs
# hook): each run is mkinitramfs under qemu-user emulation, minutes of the cold build.
#
#   initramfs-once.sh defer ROOT     (mmdebstrap --essential-hook: before the kernel is installed)
#   initramfs-once.sh build ROOT     (mmdebstrap --customize-hook: after every package)
#
# `defer` diverts update-initramfs to a stand-in that does nothing; `build` takes the diversion
# back and makes the initramfs of every kernel in ROOT once.
set -euo pipefail
die() { echo "initramfs-once.sh: error: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: initramfs-once.sh defer|build ROOT"
mode=$1 root=$2
tool=/usr/sbin/update-initramfs
real=$tool.burnstand-real
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
case $mode in
    defer)
        in_root dpkg-divert --quiet --local --rename --divert "$real" --add "$tool"
        printf '#!/bin/sh\n# burnstand image build: the initramfs is made once at the end.\nexit 0\n' \
            > "$root$tool"
        chmod 0755 "$root$tool"
        ;;
    build)
        rm -f "$root$tool"
        in_root dpkg-divert --quiet --local --rename --divert "$real" --remove "$tool"
        [ -x "$root$tool" ] || die "initramfs-tools is not installed in $root"
        found=0
        for modules in "$root"/lib/modules/*; do
            [ -d "$modules" ] || continue
            version=${modules##*/}
            echo "initramfs-once.sh: the initramfs of $version" >&2
            in_root update-initramfs -c -k "$version"
            found=1
        done
        [ "$found" -eq 1 ] || die "no kernel in $root/lib/modules"
        ;;
    *) die "unknown mode $mode (defer or build)" ;;
esac
