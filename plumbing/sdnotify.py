"""Tell systemd how a service is doing, with no dependency beyond the standard library.

A unit with `Type=notify` waits for `READY=1` before it counts as started, and one with
`WatchdogSec=` restarts the service when `WATCHDOG=1` stops arriving. systemd hands the service an
AF_UNIX datagram socket in `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
`@`) and the watchdog period in `$WATCHDOG_USEC` (meant for the process in `$WATCHDOG_PID`, when
set). Every function here reads the environment when called and does nothing when the variable is
absent, so the agent and the coordinator run unchanged outside systemd. `watchdog_loop` is the
asyncio task a daemon starts next to its main loop: it pings at half the period while the daemon's
own health check passes, and stops pinging when it fails, so systemd restarts a wedged process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

__all__ = [
    "NotifyError",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
    "watchdog_loop",
]

log = logging.getLogger(__name__)

# The datagram is one message; systemd reads at most a page of state per datagram, so anything
# longer would be cut off silently on the other side. Refuse it here instead.
_MAX_MESSAGE = 4096


class NotifyError(Exception):
    """`$NOTIFY_SOCKET` or `$WATCHDOG_USEC` is malformed, or systemd could not be reached."""


def _address() -> str | bytes | None:
    raw = os.environ.get("NOTIFY_SOCKET")
    if not raw:
        return None
    if raw.startswith("@"):
        # Abstract namespace: the kernel wants a leading NUL byte instead of the '@'.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    raise NotifyError(
        f"NOTIFY_SOCKET={raw!r} is neither an absolute path nor an abstract '@name' socket"
    )


def notify(*states: str) -> bool:
    """Send `states` (``"READY=1"``, ``"STATUS=…"``…) to systemd in one datagram.

    Returns False without sending when there is no `$NOTIFY_SOCKET` (not under systemd), True
    once the datagram is sent. Raises NotifyError for a malformed state, a malformed socket
    address, or a socket that does not accept the datagram. The send never blocks.
    """
    if not states:
        raise NotifyError("notify() needs at least one state such as 'READY=1'")
    for state in states:
        if "=" not in state or "\n" in state:
            raise NotifyError(f"not a KEY=VALUE notify state on one line: {state!r}")
    address = _address()
    if address is None:
        return False
    message = "\n".join(states).encode()
    if len(message) > _MAX_MESSAGE:
        raise NotifyError(f"notify message of {len(message)} bytes exceeds {_MAX_MESSAGE}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(message, address)
        except OSError as exc:
            shown = os.environ.get("NOTIFY_SOCKET", "")
            raise NotifyError(f"cannot notify systemd at {shown!r}: {exc.strerror}") from exc
    return True


def ready(text: str | None = None) -> bool:
    """Tell systemd the service is up (and optionally what it is doing)."""
    return notify("READY=1", f"STATUS={text}") if text else notify("READY=1")


def status(text: str) -> bool:
    """Set the one-line status `systemctl status` shows for the unit."""
    return notify(f"STATUS={text}")


def stopping(text: str | None = None) -> bool:
    """Tell systemd the service is shutting down on purpose, so a slow exit is not a failure."""
    return notify("STOPPING=1", f"STATUS={text}") if text else notify("STOPPING=1")


def watchdog() -> bool:
    """One keep-alive ping for `WatchdogSec=`."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """The watchdog period in seconds that systemd expects pings within, or None when off.

    None when `$WATCHDOG_USEC` is absent, or when `$WATCHDOG_PID` names another process (a
    child that inherited the environment must not ping on its parent's behalf).
    """
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            raise NotifyError(f"WATCHDOG_PID={pid!r} is not a process id") from None
    try:
        usec = int(raw)
    except ValueError:
        raise NotifyError(f"WATCHDOG_USEC={raw!r} is not a number of microseconds") from None
    if usec <= 0:
        raise NotifyError(f"WATCHDOG_USEC={raw!r} must be positive")
    return usec / 1_000_000


async def watchdog_loop(is_healthy: Callable[[], bool], *, interval: float | None = None) -> None:
    """Ping the watchdog at half its period for as long as the task runs and `is_healthy()` holds.

    Returns at once when the watchdog is off. A failed health check skips that ping (logged) so
    that, if the daemon stays unhealthy, systemd's watchdog restarts it; the loop itself only
    ends when cancelled. `interval` overrides `$WATCHDOG_USEC` (seconds, the full period).
    """
    period = watchdog_interval() if interval is None else interval
    if period is None:
        return
    if period <= 0:
        raise NotifyError(f"watchdog interval must be positive, got {period}")
    half = period / 2
    was_healthy = True
    while True:
        healthy = is_healthy()
        if healthy:
            try:
                watchdog()
            except NotifyError as exc:
                # Keep trying: a missed ping costs nothing if the next one gets through.
                log.warning("watchdog ping failed", extra={"error": str(exc)})
        elif was_healthy:
            log.warning("health check failed; withholding watchdog pings")
        was_healthy = healthy
        await asyncio.sleep(half)
