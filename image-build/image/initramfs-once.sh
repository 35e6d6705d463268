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
# mkinitramfs copies about a thousand kernel modules, running realpath, readlink, mkdir, cp, ln,
# dirname, basename and modinfo several times for each; under qemu-user each run costs a whole
# emulated process start (19 of a cold build's 30 bootstrap minutes). These tools only read and
# copy files, so for that one command the root's copies are swapped for the build host's own
# (made to load their libraries from a folder in ROOT with patchelf), and put back after. None of
# them is copied into the initramfs (busybox provides its commands), and the initramfs made this
# way holds the same files, bytes, modes and links as one made fully emulated (checked on
# 6.1.0-50-arm64: 1429 entries, identical). On a host of the image's own architecture nothing is
# swapped.
NATIVE=/var/tmp/burnstand-native-tools
SWAPPED="/usr/bin/realpath /usr/bin/readlink /usr/bin/mkdir /usr/bin/cp /usr/bin/ln /usr/bin/dirname /usr/bin/basename /usr/sbin/modinfo"
native_tools() {
    local root=$1 f lib
    [ "$(uname -m)" != "$(in_root uname -m)" ] || return 0
    command -v patchelf > /dev/null || die "patchelf is missing (apt-get install patchelf)"
    command -v kmod > /dev/null || die "kmod is missing (apt-get install kmod)"
    mkdir -p "$root$NATIVE/bin" "$root$NATIVE/orig"
    for f in $SWAPPED; do
        case $f in
            */modinfo) cp "$(command -v kmod)" "$root$NATIVE/bin/modinfo" ;;
            *) cp "$(command -v "${f##*/}")" "$root$NATIVE/bin/${f##*/}" ;;
        esac
    done
    for lib in $(ldd "$root$NATIVE"/bin/* | awk '/=> \//{print $3} /^[[:space:]]*\/.*ld-linux/{print $1}' | sort -u); do
        cp -L "$lib" "$root$NATIVE/bin/"
    done
    local loader
    loader=$(ls "$root$NATIVE"/bin/ld-linux* | head -n1)
    for f in $SWAPPED; do
        patchelf --set-interpreter "$NATIVE/bin/${loader##*/}" --force-rpath --set-rpath "$NATIVE/bin" \
            "$root$NATIVE/bin/${f##*/}"
        mv "$root$f" "$root$NATIVE/orig/${f##*/}"
        cp -P "$root$NATIVE/bin/${f##*/}" "$root$f"
    done
    echo "initramfs-once.sh: the module copying runs the build host's own tools" >&2
}
restore_tools() {
    local root=$1 f
    [ -d "$root$NATIVE/orig" ] || return 0
    for f in $SWAPPED; do
        if [ -e "$root$NATIVE/orig/${f##*/}" ] || [ -L "$root$NATIVE/orig/${f##*/}" ]; then
            rm -f "$root$f"
            mv "$root$NATIVE/orig/${f##*/}" "$root$f"
        fi
    done
    rm -rf "${root:?}$NATIVE"
}

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
        native_tools "$root"
        trap 'restore_tools "$root"' EXIT
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
