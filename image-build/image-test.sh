#!/usr/bin/env bash
# `make rootfs-test`: build an appliance root filesystem with build-rootfs.sh (host arch, no
# display stack, with the coordinator), boot it in systemd-nspawn and check from inside that the
# burnstand units came up. Takes a few minutes (mmdebstrap, pip inside the chroot, one boot).
#
#   image-test.sh [WORKDIR]     (default: a new directory under /tmp, removed on success)
#
# A probe unit added to the test copy only waits (bounded) for each unit to settle, checks the
# coordinator's /api/v1/health, the agent's control socket and the kiosk page on loopback, the
# first-boot enrollment (code made on the device, agent.toml read by appliance.config, the kiosk
# pending, accepted through the API the dashboard uses, then linked online), writes one
# PASS/FAIL line per check to WORKDIR/result/report.txt and powers the container off.
# Exit status 0 only when every check passed. Needs: mmdebstrap systemd-container (Debian).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "image-test.sh: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
for tool in mmdebstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install mmdebstrap systemd-container"
done

work=${1:-$(mktemp -d /tmp/burnstand-image-test.XXXXXX)}
mkdir -p "$work"
root=$work/root
result=$work/result
rm -rf "$root" "$result"
mkdir -p "$result"

echo "image-test.sh: building $root" >&2
# The kiosk enrolls with the coordinator in the same container: show 1, made below.
BURNSTAND_SHOW_ID=1 BURNSTAND_KIOSK_NAME="image test kiosk" \
    "$here/build-rootfs.sh" "$root" --no-display --with-coordinator > "$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; die "rootfs build failed (log: $work/build.log)"; }
[ ! -e "$root/var/lib/burnstand/enrollment-code" ] \
    || die "the built image contains an enrollment code: every card must make its own"

# Test scaffolding in this copy only: an admin (whose credential the probe uses to accept the
# kiosk, as a show admin would in the dashboard) and show 1 for the kiosk to ask to join. The
# CLI makes a show only together with an appliance, hence the "seed" one.
coordinator() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        /opt/burnstand/venv/bin/burnstand-coordinator "$@" --data /var/lib/burnstand-coordinator
}
mkdir -p "$root/var/lib/burnstand-coordinator"
coordinator admin create --name "image test" --email image-test@example.org \
    > "$root/root/admin-credential"
coordinator appliance create --show "image test show" --name seed --create-show > /dev/null
chroot "$root" chown -R burnstand-coordinator:burnstand-coordinator /var/lib/burnstand-coordinator

# The probe is test scaffolding: it goes into this copy only, never into customize.sh.
cat > "$root/usr/local/sbin/burnstand-image-probe" <<'PROBE'
#!/bin/bash
set -u
out=/burnstand-result/report.txt
: > "$out"
check() { # name, then a command; records PASS/FAIL with the command's last output line
    local name=$1; shift
    local said
    if said=$("$@" 2>&1); then echo "PASS $name ${said##*$'\n'}" >> "$out"
    else echo "FAIL $name ${said##*$'\n'}" >> "$out"; fi
}
settle() { # unit: wait up to 90 s for a final state, print it, succeed only when active
    local unit=$1 state i
    for i in $(seq 1 180); do
        state=$(systemctl show -P ActiveState "$unit")
        case $state in active|failed|inactive) [ "$i" -gt 2 ] && break ;; esac
        # A unit already restarting will not settle: no need to watch it for the full 90 s.
        [ "$(systemctl show -P NRestarts "$unit")" -gt 0 ] && break
        sleep 0.5
    done
    echo "$(systemctl show -P LoadState "$unit") $state/$(systemctl show -P SubState "$unit") result=$(systemctl show -P Result "$unit")"
    [ "$state" = active ]
}
retry() { # a command, tried for up to 30 s
    local i
    for i in $(seq 1 60); do "$@" && return 0; sleep 0.5; done
    "$@"
}
for unit in burnstand-firstboot burnstand-coordinator burnstand-agent burnstand-kiosk; do
    check "loaded:$unit" test "$(systemctl show -P LoadState "$unit.service")" = loaded
    check "active:$unit" settle "$unit.service"
done
# sd_notify end to end under the agent's own sandbox: systemd must see READY=1 (the start
# returns) and keep receiving WATCHDOG=1 (WatchdogTimestamp moves twice).
watchdog_moves() {
    local first last i moves=0
    first=$(systemctl show -P WatchdogTimestampMonotonic burnstand-notify-probe.service)
    for i in $(seq 1 60); do
        last=$(systemctl show -P WatchdogTimestampMonotonic burnstand-notify-probe.service)
        if [ "$last" != "$first" ]; then moves=$((moves + 1)); first=$last; fi
        [ "$moves" -ge 2 ] && break
        sleep 0.5
    done
    echo "watchdog pings seen by systemd: $moves, state $(systemctl show -P ActiveState burnstand-notify-probe.service)"
    [ "$moves" -ge 2 ]
}
check "notify-ready" timeout 60 systemctl start burnstand-notify-probe.service
check "notify-watchdog" watchdog_moves
py=/opt/burnstand/venv/bin/python
check "enrollment-code" grep -E -x '[A-HJ-NP-Z2-9]{8}' /var/lib/burnstand/enrollment-code
# The file the image wrote, read by the agent's own config loader as the agent's user.
check "agent-config-enrollment" runuser -u burnstand -- $py -c '
from pathlib import Path
from appliance.config import load_config
c = load_config(Path("/etc/burnstand/agent.toml"))
ok = c.coordinator_url == "http://127.0.0.1:8080" and c.show == 1 and c.enrollment_code
print(f"url={c.coordinator_url} show={c.show} name={c.name!r} code set={bool(c.enrollment_code)}")
raise SystemExit(0 if ok else 1)'
# What the touchscreen shows, read the way the kiosk reads it, as the kiosk's user and groups.
check "kiosk-sees-code" setpriv --reuid=burnstand-kiosk --regid=burnstand-kiosk --init-groups \
    $py -c '
from pathlib import Path
from appliance.kiosk.enrollment import read_enrollment_code
code = read_enrollment_code(Path("/var/lib/burnstand"))
print(f"kiosk shows {code}")
shown = code.split()[0] if code else ""  # "ABCD-2345 · confirm: three word phrase"
raise SystemExit(0 if shown and open("/var/lib/burnstand/enrollment-code").read().strip() == shown.replace("-", "") else 1)'
agent_link() {
    /opt/burnstand/venv/bin/burnstand-agent status --json 2>/dev/null \
        | $py -c 'import json, sys; print(json.load(sys.stdin)["status"]["link"])'
}
wait_link() { # the agent's link state, waited for up to 60 s
    local want=$1 now="" i
    for i in $(seq 1 120); do
        now=$(agent_link) && [ "$now" = "$want" ] && { echo "agent link: $now"; return 0; }
        sleep 0.5
    done
    echo "agent link: ${now:-?} (waited for $want)"
    return 1
}
accept_kiosk() { # what the show admin's Accept button does, for this kiosk's code only
    local admin shown list id
    admin=$(cat /root/admin-credential)
    shown=$(sed 's/^\(....\)\(....\)$/\1-\2/' /var/lib/burnstand/enrollment-code)
    list=$(curl -fsS --max-time 5 -H "Authorization: Bearer $admin" \
        http://127.0.0.1:8080/api/v1/shows/1/enrollments) || return 1
    id=$(printf '%s' "$list" | $py -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(next(e["id"] for e in items if e["code"] == sys.argv[1] and e["name"] == "image test kiosk"))
' "$shown") || { echo "no pending kiosk with code $shown: $list"; return 1; }
    curl -fsS --max-time 5 -X POST -H "Authorization: Bearer $admin" \
        "http://127.0.0.1:8080/api/v1/shows/1/enrollments/$id/accept" > /dev/null || return 1
    echo "accepted enrollment $id ($shown)"
}
check "coordinator-health" retry curl -fsS --max-time 5 http://127.0.0.1:8080/api/v1/health
check "agent-control-socket" retry /opt/burnstand/venv/bin/python -c \
    'import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect("/run/burnstand/agent.sock"); print("connected")'
# The page answers only the touchscreen browser's user (burnstand-display), so ask as that user;
# any other local user gets 403.
check "kiosk-page" retry setpriv --reuid=burnstand-display --regid=burnstand-display --init-groups \
    sh -c 'curl -fsS --max-time 5 http://127.0.0.1:8081/ | grep -c -i "<html"'
check "kiosk-page-refuses-others" sh -c \
    'test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://127.0.0.1:8081/)" = 403'
check "enrollment-pending" wait_link pending
check "enrollment-accepted" accept_kiosk
check "link-online-after-accept" wait_link online
check "credential-saved" test -s /var/lib/burnstand/credential
check "kiosk-hides-spent-code" setpriv --reuid=burnstand-kiosk --regid=burnstand-kiosk \
    --init-groups $py -c '
from pathlib import Path
from appliance.kiosk.enrollment import read_enrollment_code
code = read_enrollment_code(Path("/var/lib/burnstand"))
print(f"kiosk shows {code}")
raise SystemExit(0 if code is None else 1)'
for unit in burnstand-coordinator burnstand-agent burnstand-kiosk; do
    check "still-active:$unit" systemctl is-active "$unit.service"
done
for unit in burnstand-coordinator burnstand-agent burnstand-kiosk; do
    journalctl -b -u "$unit.service" --no-pager -n 30 > "/burnstand-result/$unit.log" 2>&1
done
systemctl --failed --no-legend > /burnstand-result/failed-units.txt 2>&1
echo done >> /burnstand-result/finished
systemctl poweroff --no-block
PROBE
chmod 0755 "$root/usr/local/sbin/burnstand-image-probe"
# The agent's unit with only the program swapped for plumbing.sdnotify's own helpers, a short
# watchdog, and no runtime directory of its own (that one belongs to the agent).
notify_program="import asyncio; from plumbing import sdnotify; sdnotify.ready('probe'); asyncio.run(sdnotify.watchdog_loop(lambda: True))"
sed -e "s|^ExecStart=.*|ExecStart=/opt/burnstand/venv/bin/python -c \"$notify_program\"|" \
    -e 's|^WatchdogSec=.*|WatchdogSec=2|' -e '/^RuntimeDirectory/d' -e '/^\[Install\]/,$d' \
    "$root/usr/local/lib/systemd/system/burnstand-agent.service" \
    > "$root/etc/systemd/system/burnstand-notify-probe.service"
cat > "$root/etc/systemd/system/burnstand-image-probe.service" <<'UNIT'
[Unit]
Description=burnstand image test probe
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/burnstand-image-probe
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../burnstand-image-probe.service \
    "$root/etc/systemd/system/multi-user.target.wants/burnstand-image-probe.service"
# The probe powers off; the timeout only bounds a boot that hangs.
echo "image-test.sh: booting with systemd-nspawn" >&2
set +e
timeout 600 systemd-nspawn -q -b --register=no --keep-unit --console=pipe \
    --bind="$result:/burnstand-result" -D "$root" < /dev/null > "$work/boot.log" 2>&1
boot_rc=$?
set -e
[ -e "$result/finished" ] || {
    tail -n 40 "$work/boot.log" >&2
    die "the container did not finish the probe (nspawn exit $boot_rc, log: $work/boot.log)"
}
cat "$result/report.txt"
if grep -q '^FAIL' "$result/report.txt"; then
    echo "image-test.sh: FAILED; unit logs in $result/" >&2
    exit 1
fi
echo "image-test.sh: all checks passed" >&2
rm -rf "$work"
