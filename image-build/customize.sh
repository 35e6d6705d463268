#!/usr/bin/env bash
# Turn a Debian bookworm / Raspberry Pi OS root filesystem into a burnstand kiosk appliance.
#
#   customize.sh ROOT|--check [--source DIR] [--no-display] [--with-coordinator] [--coordinator URL]
#                     [--show ID] [--name NAME]
#
# --check only checks the settings below (and says what is wrong) without touching anything.
# ROOT is the root filesystem to change ("/" when already running inside it, as pi-gen's
# on_chroot does). For any other ROOT the script copies the burnstand source into
# ROOT/opt/burnstand/src and runs itself again inside `chroot ROOT`. Safe to run twice: every step
# checks what is already there, and an edited /etc/burnstand/agent.toml is kept.
#
#   --source DIR        burnstand checkout to install (default: the one this script is in)
#   --no-display        skip cage + Chromium and the display service (containers, headless tests)
#   --with-coordinator  also install and enable burnstand-coordinator.service (a stand-alone kiosk
#                       that is its own coordinator on 127.0.0.1:8080)
#   --coordinator URL   the coordinator the kiosk enrolls with and links to, http(s)://host[:port]
#                       (default: $BURNSTAND_COORDINATOR_URL; required, except that
#                       --with-coordinator defaults to http://127.0.0.1:8080)
#   --show ID           the id of the show the kiosk asks to join (default: $BURNSTAND_SHOW_ID;
#                       required, a positive integer)
#   --name NAME         the kiosk's name as the show admin sees it (default: $BURNSTAND_KIOSK_NAME,
#                       else "burnstand kiosk"); letters, digits, spaces and . _ - ( ) #
#
# The values go into /etc/burnstand/agent.toml (from agent.toml.in); the enrollment code itself
# is made on each card's first boot, never at build time.
# Environment: PIP_CERT (CA bundle for pip inside the chroot, copied in; default: the host's
# /etc/ssl/certs/ca-certificates.crt), PIP_INDEX_URL, http_proxy/https_proxy are passed through.
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "customize.sh: error: $*" >&2; exit 1; }
say() { echo "customize.sh: $*" >&2; }

[ $# -ge 1 ] || usage
ROOT=$1; shift
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
DISPLAY_STACK=1
WITH_COORDINATOR=0
COORDINATOR_URL=${BURNSTAND_COORDINATOR_URL:-}
SHOW_ID=${BURNSTAND_SHOW_ID:-}
KIOSK_NAME=${BURNSTAND_KIOSK_NAME:-burnstand kiosk}
while [ $# -gt 0 ]; do
    case "$1" in
        --source) [ $# -ge 2 ] || usage; SOURCE=$(cd "$2" && pwd); shift 2 ;;
        --no-display) DISPLAY_STACK=0; shift ;;
        --with-coordinator) WITH_COORDINATOR=1; shift ;;
        --coordinator) [ $# -ge 2 ] || usage; COORDINATOR_URL=$2; shift 2 ;;
        --show) [ $# -ge 2 ] || usage; SHOW_ID=$2; shift 2 ;;
        --name) [ $# -ge 2 ] || usage; KIOSK_NAME=$2; shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown option: $1" ;;
    esac
done
# The enrollment settings are checked before anything is touched: a kiosk flashed with a wrong
# URL or show would wait forever for an acceptance nobody can give.
if [ -z "$COORDINATOR_URL" ] && [ "$WITH_COORDINATOR" -eq 1 ]; then
    COORDINATOR_URL=http://127.0.0.1:8080
fi
[ -n "$COORDINATOR_URL" ] || die "no coordinator URL: set BURNSTAND_COORDINATOR_URL \
(e.g. https://burn.example.org) or pass --coordinator URL"
# Only characters that are safe inside a TOML string and a sed replacement.
url_re='^(https?|wss?)://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~/%+-]*)?$'
[[ "$COORDINATOR_URL" =~ $url_re ]] || die "coordinator URL (BURNSTAND_COORDINATOR_URL) '$COORDINATOR_URL' is \
not an http(s):// URL with a host, like https://burn.example.org or http://10.0.0.2:8080"
[ -n "$SHOW_ID" ] || die "no show id: set BURNSTAND_SHOW_ID (the number of the show the kiosk \
joins, from the dashboard's Shows list) or pass --show ID"
[[ "$SHOW_ID" =~ ^[1-9][0-9]{0,17}$ ]] || die "show id (BURNSTAND_SHOW_ID) '$SHOW_ID' is not a show \
id (a positive whole number like 3)"
name_re='^[A-Za-z0-9][A-Za-z0-9 ._()#-]{0,63}$'
[[ "$KIOSK_NAME" =~ $name_re ]] || die "kiosk name (BURNSTAND_KIOSK_NAME) \
'$KIOSK_NAME' must be 1-64 letters, digits, spaces and . _ - ( ) #, starting with a letter or digit"
[ "$ROOT" != --check ] || exit 0
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and users into $ROOT)"
[ -d "$ROOT" ] || die "$ROOT is not a directory"
[ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/appliance" ] \
    || die "$SOURCE is not a burnstand checkout (no pyproject.toml / appliance/)"

PREFIX=/opt/burnstand
HOST_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}

# ---------------------------------------------------------------------------------------------
# Outside the target: copy the source in, then run this script again inside the chroot.
# ---------------------------------------------------------------------------------------------
if [ "$(cd "$ROOT" && pwd -P)" != / ]; then
    ROOT=$(cd "$ROOT" && pwd -P)
    [ -x "$ROOT/bin/sh" ] || die "$ROOT has no /bin/sh: not a root filesystem"
    say "copying $SOURCE into $ROOT$PREFIX/src"
    rm -rf "$ROOT$PREFIX/src"
    mkdir -p "$ROOT$PREFIX/src"
    # Only what a build and the units need: no venv, no caches, no git history.
    (cd "$SOURCE" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - \
        pyproject.toml README.md requirements wire plumbing coordinator appliance systemd image-build docs) \
        | tar -C "$ROOT$PREFIX/src" -xf -

    cleanup=()
    on_exit() {
        local i
        for ((i = ${#cleanup[@]} - 1; i >= 0; i--)); do eval "${cleanup[$i]}" || true; done
    }
    trap on_exit EXIT
    for fs in proc sys dev; do
        if ! mountpoint -q "$ROOT/$fs"; then
            mkdir -p "$ROOT/$fs"
            case $fs in
                proc) mount -t proc proc "$ROOT/proc" ;;
                sys) mount -t sysfs sysfs "$ROOT/sys" ;;
                dev) mount --bind /dev "$ROOT/dev" ;;
            esac
            cleanup+=("umount -l '$ROOT/$fs'")
        fi
    done
    # Name resolution for apt and pip inside, only for the build (the image keeps its own).
    if [ ! -s "$ROOT/etc/resolv.conf" ] && [ ! -L "$ROOT/etc/resolv.conf" ]; then
        cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
        cleanup+=("rm -f '$ROOT/etc/resolv.conf'")
    fi
    ca_inside=""
    if [ -f "$HOST_CA" ]; then
        ca_inside=/tmp/burnstand-build-ca.crt
        cp "$HOST_CA" "$ROOT$ca_inside"
        cleanup+=("rm -f '$ROOT$ca_inside'")
    fi
    args=(/)
    [ "$DISPLAY_STACK" -eq 1 ] || args+=(--no-display)
    [ "$WITH_COORDINATOR" -eq 0 ] || args+=(--with-coordinator)
    args+=(--coordinator "$COORDINATOR_URL" --show "$SHOW_ID" --name "$KIOSK_NAME")
    env_in=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive BURNSTAND_IMAGE_BUILD=1)
    [ -z "$ca_inside" ] || env_in+=(PIP_CERT="$ca_inside")
    # SOURCE_DATE_EPOCH: the .pyc files pip writes are then hash-checked, not dated.
    for var in PIP_INDEX_URL PIP_DEFAULT_TIMEOUT http_proxy https_proxy no_proxy SOURCE_DATE_EPOCH; do
        [ -z "${!var:-}" ] || env_in+=("$var=${!var}")
    done
    say "running inside chroot $ROOT"
    chroot "$ROOT" /usr/bin/env -i "${env_in[@]}" \
        bash "$PREFIX/src/image-build/customize.sh" "${args[@]}"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Inside the target.
# ---------------------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
SRC=$PREFIX/src
if [ "$SOURCE" != "$SRC" ]; then
    # Run on a live system from a checkout elsewhere: install that checkout.
    rm -rf "$SRC"
    mkdir -p "$SRC"
    (cd "$SOURCE" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - \
        pyproject.toml README.md requirements wire plumbing coordinator appliance systemd image-build docs) \
        | tar -C "$SRC" -xf -
fi

packages=(systemd systemd-sysv dbus udev python3 python3-venv ca-certificates curl
    cdrskin xorriso eject)
[ "$DISPLAY_STACK" -eq 0 ] || packages+=(cage chromium fonts-dejavu-core)
missing=()
for pkg in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ] \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    apt-get clean
fi

say "users and groups"
install -D -m 0644 "$SRC/systemd/sysusers.d/burnstand.conf" /usr/lib/sysusers.d/burnstand.conf
systemd-sysusers burnstand.conf
if [ "$WITH_COORDINATOR" -eq 1 ]; then
    install -D -m 0644 "$SRC/systemd/sysusers.d/burnstand-coordinator.conf" \
        /usr/lib/sysusers.d/burnstand-coordinator.conf
    systemd-sysusers burnstand-coordinator.conf
fi
# Debian has no rule giving /dev/gpiochip* to group gpio (Raspberry Pi OS does); harmless twice.
install -D -m 0644 /dev/stdin /etc/udev/rules.d/60-burnstand-gpio.rules <<'RULES'
# burnstand: the agent drives the LEDs and reads the button as group gpio, not root.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
RULES

say "virtual environment in $PREFIX/venv"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
# Exactly the versions of the runtime lock, hash-checked, then burnstand itself.
PIP_NO_CACHE_DIR=1 bash "$SRC/requirements/install" "$PREFIX/venv" "$SRC/requirements/runtime.txt"
install -D -m 0755 "$SRC/image-build/files/burnstand-enrollment-code" \
    "$PREFIX/libexec/burnstand-enrollment-code"

say "configuration"
if [ ! -e /etc/burnstand/agent.toml ]; then
    install -d -m 0755 /etc/burnstand
    # The values were checked above: none holds a | & \ or quote that sed or TOML would read.
    sed -e "s|@COORDINATOR_URL@|$COORDINATOR_URL|g" -e "s|@SHOW_ID@|$SHOW_ID|g" \
        -e "s|@KIOSK_NAME@|$KIOSK_NAME|g" "$SRC/image-build/agent.toml.in" \
        > /etc/burnstand/agent.toml.new
    if grep -n '@[A-Z_]*@' /etc/burnstand/agent.toml.new >&2; then
        rm -f /etc/burnstand/agent.toml.new
        die "agent.toml.in has a placeholder customize.sh does not fill (line above)"
    fi
    chmod 0640 /etc/burnstand/agent.toml.new
    mv /etc/burnstand/agent.toml.new /etc/burnstand/agent.toml
fi
# It may hold the operator PIN and an inline credential: readable by the agent and the kiosk
# (group burnstand) only, also when an older image left it world-readable.
chown root:burnstand /etc/burnstand/agent.toml
chmod 0640 /etc/burnstand/agent.toml

say "systemd units"
unit_dir=/usr/local/lib/systemd/system
install -d "$unit_dir"
units=(burnstand-firstboot.service burnstand-system-disk.service burnstand-agent.service burnstand-kiosk.service)
[ "$DISPLAY_STACK" -eq 0 ] || units+=(burnstand-kiosk-display.service)
[ "$WITH_COORDINATOR" -eq 0 ] || units+=(burnstand-coordinator.service)
for unit in "${units[@]}"; do
    install -m 0644 "$SRC/systemd/$unit" "$unit_dir/$unit"
done
systemctl enable "${units[@]}"
if [ "$DISPLAY_STACK" -eq 1 ]; then
    systemctl set-default graphical.target
else
    systemctl set-default multi-user.target
fi

# The machine id is made on first boot, so every flashed card gets its own.
# Only in an image being built (the outer run and pi-gen's stage say so): emptying it on a
# running system would break that system.
if [ "${BURNSTAND_IMAGE_BUILD:-0}" = 1 ] && [ -s /etc/machine-id ]; then : > /etc/machine-id; fi
say "done"
