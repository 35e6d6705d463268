"""Who is on the other end of a loopback TCP connection: the owner of the client's socket.

The kiosk page on 127.0.0.1:8081 drives the kiosk (and its operator screen once unlocked), and
every local user can reach a loopback port. The touchscreen's browser runs as its own user
(`burnstand-display`), so the server asks the kernel which user owns the client end of each
connection (`/proc/self/net/tcp` and `tcp6`, which list the owner's uid of every socket in this
network namespace) and serves only that user.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

PROC_NET = Path("/proc/self/net")

Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _address(field: str) -> Address:
    """``0100007F:1F91`` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host order."""
    host, _, port = field.partition(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in the machine's order: little-endian on x86 and ARM.
    flipped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(flipped)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(port, 16)


def socket_owner(client: Address, server: Address, proc_net: Path = PROC_NET) -> int | None:
    """The uid owning the socket bound to ``client`` and connected to ``server``, if any."""
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8:
                continue
            if _address(fields[1]) == client and _address(fields[2]) == server:
                return int(fields[7])
    return None


def parse(host: str, port: int) -> Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, port
