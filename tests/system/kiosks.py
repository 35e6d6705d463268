"""Kiosks for the system tests of a split deployment: the production agent (`serve`, its
`AgentLink`) with one simulated drive each, linked to a coordinator URL as a deployed kiosk is.

Each drive runs on virtual time the test holds (a `GateClock`: a burn takes no wall time, and
can be held mid-write). A visitor stands at each kiosk: when a burn finishes and the
coordinator has its result, they take the disc out and put a blank in (and the agent hears it,
as from the tray's sensor), so a queue keeps running while the shared `Budget` of blanks lasts.
The job ids of every finished burn are kept, for counting results once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from appliance.agent import Running, serve
from appliance.config import AgentConfig
from appliance.drives.simulated import SimulatedDrive
from appliance.drives.uid import drive_uid
from appliance.images.cache import ImageCache
from appliance.link import AgentLink
from tests.system.test_agent_coordinator import GateClock

SIZE = 64 * 1024
WAIT = 60.0


def image_bytes() -> bytes:
    return (hashlib.sha512(b"multihost").digest() * (SIZE // 64 + 1))[:SIZE]


def take_of(data: bytes, name: str = "fleet.iso") -> dict[str, Any]:
    return {
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "url": "https://images.invalid/" + name,  # never fetched: every kiosk has it cached
    }


@dataclass
class Budget:
    """How many more blanks the visitors put in, all kiosks together."""

    left: int


@dataclass
class Kiosk:
    name: str
    running: Running
    drive: SimulatedDrive
    clock: GateClock
    blanks: Budget
    jobs: list[str] = field(default_factory=list)  # job ids of finished burns, in order
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def uid(self) -> str:
        return self.drive.info.uid

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("drive") != self.uid:
            return
        if event["event"] == "finished":
            assert event["result"]["ok"] is True, event
            self.jobs.append(str(event["result"]["job_id"]))
            if self.blanks.left > 0:
                self.blanks.left -= 1
                self.swap()

    def swap(self) -> None:
        """The visitor takes the burned disc and puts a blank in; the tray's sensor says so."""

        async def go() -> None:
            # A visitor takes seconds: by then the coordinator has the result (acked). A blank
            # put in within the same millisecond could be reported before the result is.
            agent = self.running.agent
            async with asyncio.timeout(WAIT):
                for _ in range(100_000):
                    link = agent.link
                    assert isinstance(link, AgentLink)
                    if agent.slots[self.uid].sent_status == "MD5PASS" and link.unacked == 0:
                        break
                    await asyncio.sleep(0.01)  # the acks come on the link's timer
            await self.drive.swap_disc()
            await self.running.agent.media_changed(self.uid)

        task = asyncio.create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            await task
        await self.running.stop()


async def start_kiosk(
    root: Path, name: str, coordinator: str, credential: str, image: bytes, blanks: Budget
) -> Kiosk:
    """A kiosk named `name` linked to `coordinator`, with the take of `image` in its cache."""
    take = take_of(image)
    config = AgentConfig(
        name=name,
        coordinator_url=coordinator,
        credential=credential,
        state_dir=root / name,
        cache_dir=root / name / "cache",
        cache_size=8 * SIZE,
        socket=root / f"{name}.sock",
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    source = root / f"{name}.iso"
    await asyncio.to_thread(source.write_bytes, image)
    cache = await asyncio.to_thread(ImageCache, config.cache_dir, config.cache_size)
    await cache.add_file(source, take["sha256"], take["name"])
    entry = {k: take[k] for k in ("sha256", "md5", "size", "name", "url")} | {"notes": ""}
    await asyncio.to_thread(
        (config.state_dir / "catalog.json").write_text, json.dumps([entry]), encoding="utf-8"
    )
    path = f"sim:{name}"
    clock = GateClock()
    drive = SimulatedDrive(
        drive_uid(path), path, speed=SIZE / 4, capacity=700 * 1024 * 1024,
        capabilities=frozenset({"CDR"}), clock=clock,
    )  # fmt: skip
    # Quick reconnects, so the session's new master is found soon after it is live.
    link = functools.partial(AgentLink, backoff_initial=0.05, backoff_max=0.5, ack_interval=0.05)
    running = await serve(
        config, drives=[(drive, name)], link_factory=link, pin_factory=MockFactory()
    )
    kiosk = Kiosk(name, running, drive, clock, blanks)
    running.agent.add_listener(kiosk.on_event)
    return kiosk
