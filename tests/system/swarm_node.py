"""One kiosk of the swarm test, run in its own network namespace: the agent's real link, cache,
peer server and swarm fetch (`appliance.swarm.Sharing`), without drives (what is measured is the
image reaching the cache, verified).

`python -m tests.system.swarm_node '<json>'` with `coordinator`, `credential`, `cache`, `address`,
`port`, `share` (fetch from peers and serve, or the plain download), `mode` (`honest`, or `liar`:
claim every chunk and serve a damaged copy, `liar_file`), `sha256` and `size`. It prints one JSON
line per event: `ready` (linked, a catalog naming the take with a manifest, and the token in),
then, after a `go` line on stdin, `done` with where its bytes came from; it keeps serving until
stdin closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from appliance.config import ShareConfig
from appliance.images.cache import ImageCache
from appliance.images.sources import HttpSource
from appliance.link import AgentLink
from appliance.swarm.peer import Offer, PeerServer
from appliance.swarm.service import Sharing
from wire import swarm as sw


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(conf: dict[str, Any]) -> None:
    sha, size = conf["sha256"], conf["size"]
    base = conf["coordinator"]
    cache = ImageCache(Path(conf["cache"]), 4 * size)
    auth = {"Authorization": f"Bearer {conf['credential']}"}
    ready = asyncio.Event()
    state: dict[str, Any] = {}
    share = ShareConfig(
        fetch=conf["share"],
        serve=conf["share"],
        port=conf["port"],
        address=conf["address"],
    )
    link: AgentLink | None = None

    async def send(payload: dict[str, Any]) -> bool:
        if link is None:
            return False
        await link.send(payload)
        return True

    sharing = Sharing(share, cache, send=send, coordinator_url=base, headers_for=lambda _: auth)
    liar: PeerServer | None = None

    async def on_message(message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "catalog":
            # Sent again when the coordinator stores an image it fetched from a take's URL.
            for take in message["takes"]:
                if take["sha256"] == sha:
                    state["manifest"] = take.get("manifest")
                    state["url"] = urljoin(base + "/", take["url"])
        elif kind in ("peer_token", "peers"):
            sharing.on_message(message)
            if liar is not None and kind == "peer_token":
                liar.set_key(int(message["show"]), bytes.fromhex(message["key"]))
            if kind == "peer_token":
                state["token"] = True
        if state.get("manifest") and (state.get("token") or not conf["share"]):
            ready.set()

    ws_url = f"{base.replace('http', 'ws', 1)}/link"
    link = AgentLink(ws_url, conf["credential"], on_message=on_message)
    if conf["mode"] == "liar":
        damaged = Path(conf["liar_file"])
        liar = PeerServer(
            lambda s: Offer(damaged, size, lambda: size) if s == sha else None, port=conf["port"]
        )
        await liar.start()
    else:
        await sharing.start()
    await link.start()
    lines = await stdin_lines()
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        emit("ready")
        if conf["mode"] == "liar":
            count = sw.chunk_count(size)
            await link.send(
                {
                    "type": "have",
                    "sha256": sha,
                    "count": count,
                    "chunks": sw.encode_have(range(count), count),
                    "fetching": sw.encode_have((), count),
                    "address": f"{conf['address']}:{conf['port']}",
                    "origin_bytes": 0,
                    "peer_bytes": 0,
                }
            )
        else:
            await lines.readline()  # "go"
            url = state["url"]  # the coordinator's store: it holds the image with its manifest
            error = None
            source = None
            try:
                if conf["share"]:
                    source = await sharing.fetch(sha, size, state["manifest"], url, auth, "img")
                if source is None:
                    source = await cache.fetch(HttpSource(url, headers=auth), sha, size, "img")
            except Exception as exc:  # reported to the test, which fails on it
                error = f"{type(exc).__name__}: {exc}"
            digest = None
            if source is not None:
                digest = await asyncio.to_thread(
                    lambda: hashlib.sha256(source.path.read_bytes()).hexdigest()
                )
            progress = sharing.last
            emit(
                "done",
                ok=digest == sha,
                error=error,
                origin_bytes=progress.origin_bytes if progress else size,
                peer_bytes=progress.peer_bytes if progress else 0,
                banned=sorted(progress.banned) if progress else [],
            )
        await lines.read()  # until the test closes stdin
    finally:
        await link.close()
        await sharing.close()
        if liar is not None:
            await liar.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
