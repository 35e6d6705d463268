"""What the dashboard's browser tests run against: real coordinator processes and fake burners.

`Process` runs one coordinator command (`python -m demo` or `burnstand-coordinator
serve`) in a subprocess and waits for the line it prints once its socket is bound. `Rest` is a
tiny client of the rendezvous API for the setup steps a test does not drive through the page.
`FakeBurner` is a burner of the burn protocol (seed 004) on a thread with plain sockets: it
identifies itself with the fleet token, reports capabilities, burns the image it is sent in
steps of 10 % (the pace of a simulated drive), verifies, opens its tray when told to, and
reconnects by itself when the coordinator goes away, as a kiosk would. `KioskFleet` runs
simulated kiosks (appliances): each holds a real agent link (`appliance.link.AgentLink`) to the
coordinator's `/link` through a loopback proxy whose TCP connection a test can cut while both
ends stay up, and says `hello` with its drives and cached images whenever the link is online.
`enroll_kiosk` gets a kiosk its appliance credential the way a real one does: it asks to
enroll, the show admin accepts, the kiosk's poll carries the credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from appliance.link import AgentLink, LinkState
from wire import burnproto as bp

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
IDLE_EVERY = 10.0  # a burner that is not burning says so this often (seed 004)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """One coordinator subprocess whose output is read line by line on a thread."""

    def __init__(self, argv: list[str], ready: str, log: Path) -> None:
        self.argv = argv
        self.ready = ready
        self.log = log
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.wait_for(self.ready)
        except AssertionError:
            self.stop()  # a process that never came up is reaped, not left to a later test
            self.proc.wait(timeout=5)
            raise

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with self.proc.stdout, self.log.open("a", encoding="utf-8") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                self.lines.put(line)
        self.lines.put("")  # end of output

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first output line holding `text`; fails if the process ends or times out first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; see {self.log}") from None
            if line == "":
                raise AssertionError(
                    f"{self.argv[0]} exited before printing {text!r}; see {self.log}"
                )
            if text in line:
                return line

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def demo(data: Path, port: int, *, kiosk: bool = False) -> Process:
    """The README's demo on `data` (seeded on the first run); most tests bring their own burners
    and run it without its simulated kiosk."""
    argv = [sys.executable, "-m", "demo", "--data", str(data), "--port", str(port)]
    if not kiosk:
        argv.append("--no-kiosk")
    return Process(argv, "is running.", data.parent / f"demo-{port}.log")


def serve(data: Path, port: int, *extra: str) -> Process:
    argv = [
        str(VENV_BIN / "burnstand-coordinator"),
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--drain-seconds",
        "0",
        *extra,
    ]
    return Process(argv, "listening on", data.parent / f"serve-{port}.log")


class Rest:
    """Blocking calls to the rendezvous API for test setup."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + "/api/v1"

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None
        return json.loads(raw) if raw else None

    def join(self, person: dict[str, str], show: int, duration: int = 3600) -> str:
        body = {"user": person["email"], "secret": person["secret"], "show": show}
        cred = self.call("POST", "/join", body={**body, "duration": duration})
        return str(cred["credential"])


class FakeBurner(threading.Thread):
    """A burn-protocol burner on its own thread, reconnecting until `stop()`."""

    STEP = 0.15  # seconds per 10 % of simulated burning

    def __init__(self, port: int, token: str, uid: str, images: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.token = token
        self.uid = uid
        self.images = images
        self.stopping = threading.Event()
        self.tray_opened = threading.Event()
        self.failing = threading.Event()  # while set, every burn fails its verify (MD5FAIL)
        self.burned: list[str] = []
        self.connections = 0
        self._sock: socket.socket | None = None

    def send(self, message: bp.Message) -> None:
        assert self._sock is not None
        self._sock.sendall(bp.encode(message))

    def run(self) -> None:
        # Bounded: about a minute of reconnect attempts covers any restart in the tests.
        for _ in range(600):
            if self.stopping.is_set():
                return
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.settimeout(0.1)
                    self._sock = sock
                    self.connections += 1
                    self._serve(sock)
            except OSError:
                pass
            self.stopping.wait(0.1)  # reconnect backoff of the fake kiosk

    def _serve(self, sock: socket.socket) -> None:
        decoder = bp.Decoder()
        job: str | None = None
        percent = 0
        idle_due = time.monotonic() + IDLE_EVERY
        while not self.stopping.is_set():
            try:
                data = sock.recv(65536)
                if not data:
                    return
                events = decoder.feed(data)
            except TimeoutError:
                events = []
            for event in events:
                if isinstance(event, bp.Ident):
                    self.send(bp.Id(bp.ClientType.BURNER, self.uid, self.token))
                    self.send(bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
                elif isinstance(event, bp.Capab):
                    self.send(bp.Cap((bp.Capability.BURNCDR, bp.Capability.BURNDVDR), self.images))
                elif isinstance(event, bp.Burn):
                    job, percent = event.md5, 0
                    self.send(bp.Status(bp.StatusValue.progress(0)))
                elif isinstance(event, bp.Open):
                    self.tray_opened.set()
                    self.send(bp.Status(bp.StatusValue(bp.StatusKind.TRAYOPEN)))
            if job is None and time.monotonic() >= idle_due:
                idle_due = time.monotonic() + IDLE_EVERY
                self.send(bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
            if job is not None:
                self.stopping.wait(self.STEP)  # the simulated drive's writing pace
                percent += 10
                self.send(bp.Status(bp.StatusValue.progress(percent)))
                if percent >= 100:
                    ok = not self.failing.is_set()
                    kind = bp.StatusKind.MD5PASS if ok else bp.StatusKind.MD5FAIL
                    self.send(bp.Status(bp.StatusValue(kind)))
                    if ok:
                        self.burned.append(job)
                    job = None
                    # The result stands until the next idle report, a full period later.
                    idle_due = time.monotonic() + IDLE_EVERY

    def stop(self) -> None:
        self.stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


def enroll_kiosk(rest: Rest, admin_token: str, show: int, code: str, name: str) -> str:
    """An appliance credential for a new kiosk, through enrollment and the show admin's accept."""
    asked = rest.call("POST", "/enroll", body={"code": code, "name": name, "show": show})
    pending = rest.call("GET", f"/shows/{show}/enrollments", admin_token)["items"]
    [entry] = [e for e in pending if e["code"] == code]
    rest.call("POST", f"/shows/{show}/enrollments/{entry['id']}/accept", admin_token, {})
    got = rest.call("POST", "/enroll/poll", body={"poll_token": asked["poll_token"]})
    return str(got["credential"])


class _Proxy:
    """A loopback TCP proxy whose connections can be cut; while `blocked`, new ones are refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blocked = False
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        for _ in range(10_000_000):  # bounded: far more chunks than a test moves
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


class FakeKiosk:
    """What one simulated kiosk says: its drive, its cache, its software version."""

    def __init__(self, credential: str, uid: str, images: tuple[str, ...], version: str) -> None:
        self.credential = credential
        self.uid = uid
        self.images = images
        self.version = version
        self.proxy: _Proxy | None = None
        self.link: AgentLink | None = None
        self.sending: set[asyncio.Task[None]] = set()

    def hello(self) -> dict[str, Any]:
        # EMPTY: no blank disc in the tray, so the room never sends these drives a burn.
        drive = {
            "uid": self.uid,
            "name": "tray",
            "capabilities": ["BURNDVDR"],
            "images": list(self.images),
            "status": "EMPTY",
        }
        appliance = {"name": "kiosk", "version": self.version, "cache_used": 3 << 20}
        return {"type": "hello", "appliance": appliance | {"cache_max": 1 << 30}, "drives": [drive]}


class KioskFleet(threading.Thread):
    """Simulated kiosks on one asyncio loop in a thread, driven by the test with blocking calls."""

    def __init__(self, port: int, session: str, kiosks: list[FakeKiosk]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.session = session
        self.kiosks = kiosks
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._quit: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._quit = asyncio.Event()
        for kiosk in self.kiosks:
            await self._start(kiosk)
        self._ready.set()
        await self._quit.wait()
        for kiosk in self.kiosks:
            if kiosk.link is not None:
                await kiosk.link.close()
            if kiosk.proxy is not None:
                await kiosk.proxy.close()

    async def _start(self, kiosk: FakeKiosk) -> None:
        proxy = _Proxy(self.port)
        await proxy.start()
        kiosk.proxy = proxy

        async def ignore(payload: dict[str, Any]) -> None:
            return None

        def on_state(state: LinkState) -> None:
            # After every (re)connect the agent says its whole state, as the real one does.
            if state is LinkState.ONLINE and kiosk.link is not None:
                task = asyncio.ensure_future(kiosk.link.send(kiosk.hello()))
                kiosk.sending.add(task)
                task.add_done_callback(kiosk.sending.discard)

        kiosk.link = AgentLink(
            f"ws://127.0.0.1:{proxy.port}/link",
            kiosk.credential,
            on_message=ignore,
            on_state=on_state,
            session=self.session,
            backoff_initial=0.1,
            backoff_max=0.5,
            ack_interval=0.2,
        )
        await kiosk.link.start()

    def begin(self) -> None:
        self.start()
        if not self._ready.wait(START_TIMEOUT):
            raise AssertionError("the simulated kiosks did not start")

    def _call(self, fn: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(START_TIMEOUT)

    def cut(self, kiosk: FakeKiosk) -> None:
        """Kill the kiosk's TCP connection and keep it from reconnecting (both ends stay up)."""

        async def cut() -> None:
            assert kiosk.proxy is not None
            kiosk.proxy.blocked = True
            kiosk.proxy.cut()

        self._call(cut)

    def restore(self, kiosk: FakeKiosk) -> None:
        async def restore() -> None:
            assert kiosk.proxy is not None
            kiosk.proxy.blocked = False

        self._call(restore)

    def stop_agent(self, kiosk: FakeKiosk) -> None:
        """The kiosk's agent stops: it says goodbye on the link (a formal disconnect)."""

        async def stop() -> None:
            assert kiosk.link is not None
            await kiosk.link.close()

        self._call(stop)

    def stop(self) -> None:
        if self.loop is not None and self._quit is not None:
            self.loop.call_soon_threadsafe(self._quit.set)
        self.join(timeout=15)
