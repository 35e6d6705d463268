"""What the harness, the servers under test and the load generator say to each other.

A server under test prints exactly one line on stdout once it listens: JSON with
`"bench_ready": 1`, its `endpoints` (one per workload it serves: `echo`, `broadcast`, `idle`; each a
WebSocket URL template where `{client}` becomes the client's index, plus `hello` frames a client
sends first, e.g. an auth frame) and optionally `pids` of helper processes whose CPU and memory
count as the server's. The load generator takes a `LoadSpec` as JSON in argv and talks in lines:
it prints `READY {...}`, waits for `GO`, prints `DONE {...}`, waits for `CLOSE`; a failure is one
`ERROR {...}` line. Bench messages are ~100-byte JSON objects carrying the client index `c` and
sequence number `i`, which is how replies are matched whatever else a relay sends."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import BenchConfigError, ServerStartError

READY_KEY = "bench_ready"
WORKLOADS = ("echo", "broadcast", "idle")
MESSAGE_BYTES = 100
CLIENT_PLACEHOLDER = "{client}"


@dataclass(frozen=True)
class Endpoint:
    """Where and how a client of one workload connects."""

    url: str
    hello: tuple[str, ...] = ()

    def url_for(self, client: int) -> str:
        return self.url.replace(CLIENT_PLACEHOLDER, str(client))

    def hello_for(self, client: int) -> list[str]:
        return [frame.replace(CLIENT_PLACEHOLDER, str(client)) for frame in self.hello]


@dataclass(frozen=True)
class Ready:
    """A server's ready line, parsed."""

    endpoints: Mapping[str, Endpoint]
    extra_pids: tuple[int, ...] = ()


def ready_line(endpoints: Mapping[str, Endpoint], extra_pids: Sequence[int] = ()) -> str:
    body = {
        READY_KEY: 1,
        "endpoints": {k: {"url": e.url, "hello": list(e.hello)} for k, e in endpoints.items()},
        "pids": list(extra_pids),
    }
    return json.dumps(body, separators=(",", ":"))


def parse_ready_line(line: str) -> Ready:
    """Parse a server's first stdout line; anything else is a ServerStartError that quotes it."""
    try:
        body = json.loads(line)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get(READY_KEY) != 1:
        raise ServerStartError(f"expected a JSON ready line with {READY_KEY!r}, got {line[:200]!r}")
    raw_endpoints = body.get("endpoints")
    if not isinstance(raw_endpoints, dict) or not raw_endpoints:
        raise ServerStartError(f"ready line names no endpoints: {line[:200]!r}")
    endpoints: dict[str, Endpoint] = {}
    for workload, raw in raw_endpoints.items():
        if workload not in WORKLOADS:
            raise ServerStartError(f"unknown workload {workload!r} in ready line; know {WORKLOADS}")
        url = raw.get("url") if isinstance(raw, dict) else None
        hello = raw.get("hello", []) if isinstance(raw, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://127.0.0.1:", "ws://[::1]:")):
            raise ServerStartError(f"endpoint {workload!r} needs a loopback ws:// url, got {url!r}")
        if not isinstance(hello, list) or not all(isinstance(h, str) for h in hello):
            raise ServerStartError(f"endpoint {workload!r}: hello must be a list of strings")
        endpoints[workload] = Endpoint(url, tuple(hello))
    pids = body.get("pids", [])
    if not isinstance(pids, list) or not all(isinstance(p, int) and p > 0 for p in pids):
        raise ServerStartError(f"ready line pids must be positive integers, got {pids!r}")
    return Ready(endpoints, tuple(pids))


def make_message(client: int, seq: int) -> str:
    """A ~100-byte JSON message, shaped like a burner status update."""
    head = f'{{"c":{client},"i":{seq},"kind":"burner.status","pad":"'
    return head + "x" * max(0, MESSAGE_BYTES - len(head) - 2) + '"}'


def message_ids(text: str) -> tuple[int, int] | None:
    """(client, seq) of a bench message, or None for any other frame (join notices, acks...)."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict):
        c, i = body.get("c"), body.get("i")
        if isinstance(c, int) and isinstance(i, int):
            return c, i
    return None


@dataclass(frozen=True)
class LoadSpec:
    """One load-generator run.

    echo: `clients` connections, each sends `messages` messages one at a time (closed loop).
    broadcast: `clients` receivers plus one sender (index `clients`) that sends `messages` in
    total, at most `window` not yet delivered to every receiver; `slow` more members join the
    room and never read their sockets (their deliveries are not counted or waited for). idle:
    `clients` connections opened and held. Every mode stops at `seconds` whatever the count.
    """

    mode: str
    endpoint: Endpoint
    clients: int
    messages: int = 0
    seconds: float = 10.0
    window: int = 16
    warmup: int = 2
    connect_concurrency: int = 50
    reply_timeout_s: float = 10.0
    slow: int = 0

    def __post_init__(self) -> None:
        if self.mode not in WORKLOADS:
            raise BenchConfigError(f"load mode must be one of {WORKLOADS}, got {self.mode!r}")
        for name in ("clients", "window", "connect_concurrency"):
            if getattr(self, name) < 1:
                raise BenchConfigError(f"load spec {name} must be >= 1, got {getattr(self, name)}")
        if self.messages < 0 or self.warmup < 0 or self.slow < 0:
            raise BenchConfigError("load spec messages, warmup and slow must be >= 0")
        if self.slow and self.mode != "broadcast":
            raise BenchConfigError("slow clients exist only in the broadcast workload")
        if not 0 < self.reply_timeout_s <= 600:
            raise BenchConfigError(
                f"reply_timeout_s must be in (0, 600], got {self.reply_timeout_s}"
            )
        if not 0 < self.seconds <= 600:
            raise BenchConfigError(f"load spec seconds must be in (0, 600], got {self.seconds}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "mode": self.mode,
                "url": self.endpoint.url,
                "hello": list(self.endpoint.hello),
                "clients": self.clients,
                "messages": self.messages,
                "seconds": self.seconds,
                "window": self.window,
                "warmup": self.warmup,
                "connect_concurrency": self.connect_concurrency,
                "reply_timeout_s": self.reply_timeout_s,
                "slow": self.slow,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        try:
            raw = json.loads(text)
            return cls(
                mode=str(raw["mode"]),
                endpoint=Endpoint(str(raw["url"]), tuple(str(h) for h in raw.get("hello", []))),
                clients=int(raw["clients"]),
                messages=int(raw.get("messages", 0)),
                seconds=float(raw.get("seconds", 10.0)),
                window=int(raw.get("window", 16)),
                warmup=int(raw.get("warmup", 2)),
                connect_concurrency=int(raw.get("connect_concurrency", 50)),
                reply_timeout_s=float(raw.get("reply_timeout_s", 10.0)),
                slow=int(raw.get("slow", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchConfigError(f"malformed load spec {text[:200]!r}: {exc}") from exc


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values), max(1, math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]
