"""Show-scoped peer tokens: one secret per deployment, from which each show's key is derived
(`wire.swarm.show_key`). A kiosk is sent its show's key (to check the tokens others present)
and a token of its own (to present), which lasts `wire.swarm.TOKEN_SECONDS` and is renewed
while the kiosk uses it.

The secret is the configured peer key (`--peer-key-file`, shared by every node of a deployment
like the relay token, so a token one node signed is good at a kiosk linked to another), else
the node's own `DIR/peer.key` (made on first use, 0600), which is enough for one node.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from wire import agentmsg as am
from wire import swarm as sw

KEY_FILENAME = "peer.key"
RENEW_BEFORE = sw.TOKEN_SECONDS / 2  # a token this close to expiry is replaced on next use


def _load_or_make(path: Path) -> bytes:
    """The secret in `path`, made (atomically, owner-only) when there is none (worker thread)."""
    with contextlib.suppress(FileNotFoundError):
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # another process that made one first wins; use its secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


class PeerKeys:
    """Issues the peer tokens of every show from the coordinator's one secret."""

    def __init__(
        self,
        path: Path,
        *,
        shared: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.clock = clock
        self._secret: bytes | None = None if shared is None else shared.encode()

    def load(self) -> None:
        """Read (or make) the secret; a file read, so call it off the loop."""
        if self._secret is None:
            self._secret = _load_or_make(self.path)

    def issue(self, show: int, appliance: int) -> am.PeerToken:
        if self._secret is None:
            raise RuntimeError("PeerKeys.load() first")
        key = sw.show_key(self._secret, show)
        expires = int(self.clock()) + sw.TOKEN_SECONDS
        token = sw.issue_token(key, show, appliance, expires)
        return am.PeerToken(show, token, key.hex(), expires)

    def due(self, token: am.PeerToken | None) -> bool:
        """Whether a kiosk holding `token` should be sent a fresh one."""
        return token is None or token.expires - self.clock() < RENEW_BEFORE
