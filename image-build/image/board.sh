#!/usr/bin/env bash
# What a Debian root file system needs to boot as a flashed card (pi-gen does the same for
# Raspberry Pi OS its own way, so this is not part of customize.sh): the file systems found by
# label, DHCP on Ethernet, names and the clock, the root grown to the card on first boot, and the
# Raspberry Pi firmware partition's files (raspi-firmware's own hook writes config.txt and
# cmdline.txt from /etc/default/raspi-firmware).
#
#   board.sh ROOT BOOT_LABEL ROOT_LABEL
#
# Runs on the build host; the few commands that must run inside the image go through chroot
# (emulated). Leaves the firmware partition's files in ROOT/boot/firmware.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "board.sh: error: $*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: board.sh ROOT BOOT_LABEL ROOT_LABEL"
root=$1 boot_label=$2 root_label=$3
[ -x "$root/bin/sh" ] || die "$root is not a root file system"

echo burnstand > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	burnstand
::1		localhost ip6-localhost ip6-loopback
HOSTS
cat > "$root/etc/fstab" <<FSTAB
# The card's two partitions, by label (the same on every card made from this image).
LABEL=$root_label	/	ext4	defaults,noatime	0	1
LABEL=$boot_label	/boot/firmware	vfat	defaults,umask=0077	0	2
FSTAB
install -d "$root/boot/firmware"

# Ethernet by DHCP (net.ifnames=0 on the kernel command line: the first port is eth0 on a Pi,
# the virtio NIC in QEMU is too).
cat > "$root/etc/systemd/network/50-burnstand-wired.network" <<'NET'
[Match]
Name=eth* en*

[Network]
DHCP=yes
NET

# Grow the root partition and its file system to the whole card, once it is flashed: the image
# is kept small so it writes fast. Safe on every boot (growpart says NOCHANGE once done).
install -D -m 0755 "$here/grow-root" "$root/usr/local/sbin/burnstand-grow-root"
install -D -m 0644 "$here/burnstand-grow-root.service" \
    "$root/usr/local/lib/systemd/system/burnstand-grow-root.service"

# The Pi's firmware: boot logs and the emergency shell on the screen (the last console), the
# serial console on the GPIO header's UART (ttyS1 on a Pi 3/4 with the upstream kernel).
cat > "$root/etc/default/raspi-firmware" <<FIRMWARE
# Read by raspi-firmware's kernel hook, which writes /boot/firmware/config.txt and cmdline.txt.
ROOTPART="LABEL=$root_label"
CONSOLES="ttyS1,115200 tty0"
FIRMWARE

# The hooks below read /dev/null and /proc: lend them for this step only.
mounted=()
trap 'for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}"; done' EXIT
for fs in proc dev; do
    if ! mountpoint -q "$root/$fs"; then
        mkdir -p "$root/$fs"
        if [ $fs = proc ]; then mount -t proc proc "$root/proc"; else mount --bind /dev "$root/dev"; fi
        mounted+=("$root/$fs")
    fi
done
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 sh -eu -c '
systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    burnstand-grow-root.service
# What raspi-firmware'"'"'s postinst copies, then its kernel hook (config.txt, cmdline.txt, the
# kernel, its initrd and the Pi device trees).
cp /usr/lib/raspi-firmware/* /boot/firmware/
DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
'
for f in config.txt cmdline.txt start4.elf fixup4.dat bcm2711-rpi-4-b.dtb; do
    [ -s "$root/boot/firmware/$f" ] || die "the firmware partition has no $f"
done
ls "$root"/boot/firmware/vmlinuz-* "$root"/boot/firmware/initrd.img-* > /dev/null \
    || die "the firmware partition has no kernel or initrd"
grep -q "root=LABEL=$root_label" "$root/boot/firmware/cmdline.txt" \
    || die "cmdline.txt does not find the root by label: $(cat "$root/boot/firmware/cmdline.txt")"
