"""What keeps the demo busy: a queue keeper that signs in like an operator and queues more discs
whenever the queue runs dry, and a simulated visitor who takes each finished disc out and puts a
blank in (now and then a bad one that fails its verify)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from demo.seed import Api, md5_of

log = logging.getLogger("demo.booth")

# Discs of the first take queued when the demo starts with an empty queue, so the dashboard
# shows the kiosk at work; at the simulated burners' speeds they keep it busy for a minute or so.
DEMO_BURNS = 12
# Seconds the simulated visitor waits before taking a finished disc out and putting a blank in.
VISITOR_PAUSE = 4.0
# Every this-many blanks the visitor puts in is a bad one that fails its verify.
BAD_DISC_EVERY = 5
# How long one operator sign-in of the demo's queue keeper lasts before it signs in afresh.
OPERATOR_SECONDS = 540


@contextlib.asynccontextmanager
async def _operator(base: str, state: dict[str, Any]) -> AsyncIterator[Any]:
    """The demo's contributor on the session's WebSocket, signed in the way a browser is (a fresh
    credential joins the session, then authenticates on the socket)."""
    person = state["contributor"]
    async with aiohttp.ClientSession() as http:
        api = Api(http, base + "/api/v1")
        entered = await api.post(
            "/join",
            None,
            {
                "user": person["email"],
                "show": state["show_id"],
                "duration": OPERATOR_SECONDS + 60,
                "secret": person["secret"],
            },
        )
        # Membership is per credential: this fresh one joins the session like a browser does.
        await api.post(f"/sessions/{state['session_id']}/join", entered["credential"], {})
        async with http.ws_connect(f"{base}/ws/{state['session_id']}") as ws:
            await ws.send_json({"action": "auth", "token": entered["credential"]})
            yield ws


async def queue_demo_burns(base: str, data: Path, state: dict[str, Any]) -> str | None:
    """Queue `DEMO_BURNS` discs of the first take when the session's queue is empty, the way an
    operator does it (sign in, the session's WebSocket, `queue`); returns the take's name, or
    None when something was queued already (a restarted demo keeps its queue)."""
    first = state["takes"][0]
    md5 = await asyncio.to_thread(md5_of, data / "images" / first["name"])
    async with _operator(base, state) as ws:
        snapshot = await _ask(ws, {"action": "snapshot"})
        if snapshot.get("result", {}).get("queue"):
            return None
        answer = await _ask(ws, {"action": "queue", "md5": md5, "count": DEMO_BURNS})
        if answer.get("status") is not True:
            raise RuntimeError(f"could not queue the demo burns: {answer.get('error')}")
    return str(first["name"])


async def keep_queue_filled(base: str, data: Path, state: dict[str, Any]) -> None:
    """Queue another `DEMO_BURNS` discs whenever the queue runs dry, so the demo keeps burning for
    as long as it runs. Each watch lasts at most `OPERATOR_SECONDS` (the credential's life), then
    signs in afresh."""
    channel = f"session.{state['session_id'].lower()}.queue"
    while True:
        empty = False
        async with _operator(base, state) as ws:
            await _ask(ws, {"action": "subscribe", "pattern": channel})
            snapshot = await _ask(ws, {"action": "snapshot"})
            empty = not snapshot.get("result", {}).get("queue")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OPERATOR_SECONDS):
                    while not empty:
                        msg = await ws.receive()
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            raise RuntimeError(f"the session socket closed: {msg.type.name}")
                        frame = json.loads(msg.data)
                        if frame.get("action") == "message" and frame.get("channel") == channel:
                            empty = frame["data"].get("length") == 0
        if empty:
            await queue_demo_burns(base, data, state)


class Visitor:
    """Plays the people at the stand: `pause` seconds after a burner hands out a disc, they take
    it and put a blank in; every `bad_every`-th blank is a bad one (a simulated drive writes it
    but its verify fails), so the dashboard shows the odd red failure."""

    def __init__(self, agent: Any, pause: float, bad_every: int = BAD_DISC_EVERY) -> None:
        self.agent, self.pause, self.bad_every = agent, pause, bad_every
        self.blanks = 0  # blanks put into simulated drives so far

    async def run(self) -> None:
        finished: asyncio.Queue[str] = asyncio.Queue()

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "finished":
                finished.put_nowait(str(event["drive"]))

        remove = self.agent.add_listener(on_event)
        swaps: set[asyncio.Task[None]] = set()
        try:
            while True:
                uid = await finished.get()
                task = asyncio.create_task(self._swap(uid), name=f"visitor-{uid}")
                swaps.add(task)
                task.add_done_callback(swaps.discard)
        finally:
            remove()
            for task in swaps:
                task.cancel()
            await asyncio.gather(*swaps, return_exceptions=True)

    async def _swap(self, uid: str) -> None:
        from appliance.drives.base import BurnError
        from appliance.drives.simulated import SimulatedDrive

        await asyncio.sleep(self.pause)  # a person looks at the disc before taking it
        slot = self.agent.slots.get(uid)
        if slot is None or slot.busy:
            return
        try:
            if isinstance(slot.drive, SimulatedDrive):
                self.blanks += 1  # only a simulated drive can be handed a bad disc
                await slot.drive.swap_disc(bad=self.blanks % self.bad_every == 0)
            else:
                await slot.drive.close_tray()  # the pseudo-drive's file is blank to cdrskin
            await self.agent.media_changed(uid)
        except BurnError as exc:
            log.warning("the demo visitor could not swap the disc drive=%s error=%s", uid, exc)


async def _ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a command and return its reply (pushes in between are skipped; bounded)."""
    await ws.send_json(frame)
    async with asyncio.timeout(30):
        for _ in range(1000):
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the session socket closed: {msg.type.name} {msg.extra}")
            reply: dict[str, Any] = json.loads(msg.data)
            if reply.get("action") == frame["action"]:
                return reply
    raise RuntimeError(f"no reply to {frame['action']}")
