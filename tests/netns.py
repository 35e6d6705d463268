"""Hosts for a test: network namespaces on one bridge, made by the test and removed after.

`lan(["db", "m1", …])` creates one namespace per host, each with a veth into a bridge on a /24
of 10.0.0.0/8 that no interface of this machine uses yet (picked at random, checked), with the
bridge holding ``.1`` so the test process itself reaches every host. Everything is deleted on
exit, whatever happened. Needs root and iproute2.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, or no iproute2)."""


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


@dataclass
class Lan:
    subnet: str  # "10.A.B"
    bridge: str
    namespaces: dict[str, str] = field(default_factory=dict)  # host -> namespace name
    addresses: dict[str, str] = field(default_factory=dict)  # host -> IPv4 address

    def ip(self, host: str) -> str:
        return self.addresses[host]

    def run_on(self, host: str) -> tuple[str, ...]:
        """The prefix that runs a command on ``host``."""
        return ("ip", "netns", "exec", self.namespaces[host])


def _free_subnet() -> str:
    used = subprocess.run(
        ["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    routes = subprocess.run(
        ["ip", "-4", "route"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    for _ in range(100):
        subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f" {subnet}." not in used and f"{subnet}." not in routes:
            return subnet
    raise NetnsUnavailable("no free 10.x.y.0/24 found")


@contextmanager
def lan(hosts: Sequence[str]) -> Iterator[Lan]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise NetnsUnavailable("network namespaces need root and iproute2")
    tag = secrets.token_hex(3)
    net = Lan(_free_subnet(), f"br{tag}")
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("addr", "add", f"{net.subnet}.1/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for number, host in enumerate(hosts, start=2):
            ns, outer, inner = f"t{tag}{host}", f"v{tag}{number}", f"p{tag}{number}"
            _ip("netns", "add", ns)
            net.namespaces[host] = ns
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", net.bridge, "up")
            address = f"{net.subnet}.{number}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            net.addresses[host] = address
        yield net
    finally:
        for ns in net.namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", net.bridge], check=False, capture_output=True)
