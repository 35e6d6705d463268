"""Configuration of one coordinator process: a frozen value handed to ``make_app``.

Everything a test may want to vary (data directory, clock, credential limits, whether the
process offers itself as the embedded session master) lives here, so the application never reads
globals or the environment; the CLI builds one from its arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``; tests pass a fake they advance by hand."""

DB_FILENAME = "coordinator.db"


@dataclass(frozen=True)
class CoordinatorConfig:
    """How one coordinator process runs."""

    data_dir: Path
    # A postgresql:// URL (password included, never from the command line) to keep the state in
    # PostgreSQL; None = the SQLite file in data_dir.
    database: str | None = None
    # Bounds of the PostgreSQL connection pool, and how long a request waits for a connection
    # before it fails with 503 (the database is down or overloaded).
    pool_size: int = 20
    pool_timeout: float = 3.0
    host: str = "127.0.0.1"
    port: int = 8080
    # Cap on "contributor enters system" $DURATION; longer requests are capped, not refused.
    max_credential_seconds: int = 12 * 3600
    # How long before expiry the "credential about to expire" notification fires.
    expiry_warning_seconds: int = 300
    # How often the background watcher looks for credentials about to expire.
    expiry_check_interval: float = 15.0
    # How often every process looks for revoked credentials to close their open sockets.
    revocation_check_interval: float = 0.25
    # Embedded default: with no session master in the pool, register this process as one.
    register_local_master: bool = True
    local_master_capacity: int = 1000
    read_threads: int = 4
    # Reverse proxies whose X-Forwarded-For is believed (--trusted-proxy); from anyone else the
    # header is ignored and the socket's peer is the client's address.
    trusted_proxies: tuple[str, ...] = ()
    # TLS is terminated in front of this process (--behind-tls): send HSTS.
    behind_tls: bool = False
    clock: Clock = field(default=time.time)
    # Fetch the images of takes that only name an outside URL into the image store, looking for
    # them this often (seconds); None = never (the CLI's default is 10). A failed fetch is
    # retried after fetch_retry seconds, doubling up to 15 minutes.
    fetch_interval: float | None = None
    fetch_retry: float = 10.0
    # ---- live plane (coordinator/live.py) ----
    # all = embedded (rendezvous + balancer + master in one process); or one role per process.
    role: str = "all"
    # Redis URL for cross-node pub/sub; None = in-process.
    redis_url: str | None = None
    # Split mode: the port a master listens on for balancer WebSockets.
    master_port: int | None = None
    # Where this process's master keeps master.db; None = data_dir.
    master_dir: Path | None = None
    # Shared secret between balancers and masters (init token and balancer bearer); None = off.
    relay_token: str | None = None
    # Secret the peer tokens of kiosks sharing images are signed with, shared by every node of
    # a deployment (--peer-key-file); None = this node's own DATA/peer.key.
    peer_key: str | None = None
    # Burn-protocol TCP listener (off unless burn_port is set).
    burn_port: int | None = None
    burn_token: str | None = None
    burn_session: str | None = None
    burn_public_display: bool = False
    auth_timeout: float = 10.0
    client_queue_limit: int = 256
    # How long a draining node keeps answering health CLOSED before it exits.
    drain_seconds: float = 2.0
    # Masters on a shared (PostgreSQL) database: how often each writes its heartbeat, and how
    # long one may stay silent before its live sessions are moved to another.
    heartbeat_interval: float = 2.0
    failover_silence: float = 10.0
    # How often a balancer re-reads the master pool.
    discovery_interval: float = 2.0
    # Serve appliance links at /link (masters only). Off in tests that mount their own hub.
    serve_links: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def local_master_url(self) -> str:
        return f"http://{self.host}:{self.port}"
