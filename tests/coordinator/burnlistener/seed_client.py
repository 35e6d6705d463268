"""A burn-protocol client written from the seed text alone, shared by the listener tests.

It builds and splits the bytes by hand (tabs between fields, a blank line after each message)
instead of using `wire.burnproto`, so a mistake shared by the encoder and the listener would
still show up in the tests.
"""

from __future__ import annotations

import asyncio

TOKEN = "fleet-2026-Booth-token"
WAIT = 5.0
END = b"\r\n\r\n"


class SeedClient:
    """A 'Buntu Stand client: TAB-separated fields, messages ended by two CRLF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.seen: list[list[str]] = []

    @classmethod
    async def connect(cls, port: int) -> SeedClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, *fields: str) -> None:
        self.send_raw("\t".join(fields).encode() + END)

    async def frame(self) -> list[str]:
        async with asyncio.timeout(WAIT):
            while END not in self.buffer:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError(f"closed by server; unread {self.buffer!r}")
                self.buffer += chunk
        body, _, self.buffer = self.buffer.partition(END)
        fields = body.decode().split("\t")
        self.seen.append(fields)
        return fields

    async def expect(self, verb: str) -> list[str]:
        """The next frame with this verb; other pushes are skipped, but never an ERROR."""
        for _ in range(1000):
            fields = await self.frame()
            if fields[0] == verb:
                return fields[1:]
            assert fields[0] != "ERROR", f"unexpected {fields}"
        raise AssertionError(f"no {verb} in 1000 frames")

    async def error(self) -> list[str]:
        """The next ERROR's code and text, skipping pushes (QLIST, SLIST, NAME, STATS)."""
        for _ in range(1000):
            got = await self.frame()
            if got[0] == "ERROR":
                return got[1:]
            assert got[0] in ("QLIST", "SLIST", "NAME", "STATS"), f"unexpected {got}"
        raise AssertionError("no ERROR in 1000 frames")

    async def until(self, *fields: str) -> None:
        """Skip pushes until this exact frame arrives (never skipping an ERROR)."""
        for _ in range(1000):
            got = await self.frame()
            if got == list(fields):
                return
            assert got[0] != "ERROR", f"unexpected {got}"
        raise AssertionError(f"no {fields} in 1000 frames")

    async def closed_by_server(self) -> bool:
        async with asyncio.timeout(WAIT):
            for _ in range(1000):
                if not await self.reader.read(65536):
                    return True
        return False

    async def hello(self, kind: str, uid: str, credential: str | None = TOKEN) -> None:
        assert await self.expect("IDENT") == ["V1"]
        fields = ["ID", "V1", kind, uid] + ([credential] if credential else [])
        self.send(*fields)

    def close(self) -> None:
        self.writer.close()


async def connect(port: int, clients: list[SeedClient]) -> SeedClient:
    """A client on `port`, recorded in `clients` (the fixture closes them all at the end)."""
    client = await SeedClient.connect(port)
    clients.append(client)
    return client
