"""Test doubles for pub/sub: a subscriber that records frames and lets a test wait for them."""

from __future__ import annotations

import asyncio
from typing import Any

from wire.pubsub import Message, parse_message


class Inbox:
    """A subscriber like a client's send queue: ``deliver`` appends, never blocks."""

    def __init__(self, name: str = "inbox") -> None:
        self.name = name
        self.frames: list[str] = []
        self._arrived = asyncio.Event()

    def deliver(self, text: str) -> None:
        self.frames.append(text)
        self._arrived.set()

    @property
    def messages(self) -> list[Message]:
        return [parse_message(f) for f in self.frames]

    def data(self) -> list[Any]:
        return [m.data for m in self.messages]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Message]:
        """Wait until at least ``count`` frames arrived (bounded by ``within`` seconds)."""
        async with asyncio.timeout(within):
            while len(self.frames) < count:  # each pass waits for one more delivery
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages

    def __repr__(self) -> str:
        return f"Inbox({self.name!r}, {len(self.frames)} frames)"
