"""The agent's shared state, and the link as the agent needs it.

`AgentBase` holds what every part of the agent reads: the config, the drive slots, the catalog,
the journal, cache, LEDs, link and listeners, plus the few helpers all parts use (spawning a
guarded task, emitting a kiosk event). The burn supervision (`appliance.agent.burns`), the link
side (`appliance.agent.uplink`) and the control-facing agent (`appliance.agent.core`) build on it;
the methods one part calls on another are declared here for the type checker only.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from appliance import __version__
from appliance.agent.catalog import Take
from appliance.agent.slot import Slot
from appliance.config import AgentConfig
from appliance.control import AgentStatus, BurnAccepted, ControlError, DriveView, Listeners
from appliance.drives.base import Drive
from appliance.images.cache import ImageCache
from appliance.journal import Journal
from appliance.leds import Panel
from appliance.swarm.service import Sharing

if TYPE_CHECKING:
    from appliance.burn.job import JobProgress, JobResult, JobStateChanged

log = logging.getLogger("appliance.agent")


# --- the link, as the agent needs it ------------------------------------------------------------


class LinkState(enum.StrEnum):
    """Mirrors appliance.link.LinkState so the agent works (offline) without that module."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"
    PENDING = "pending"
    # Enrollment refused for good (rejected by a show admin, or the code was spent).
    REJECTED = "rejected"


class Link(Protocol):
    @property
    def state(self) -> Any: ...

    async def start(self) -> None: ...

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def close(self, *, formal: bool = True) -> None: ...


LinkFactory = Callable[..., Link]
"""Called like `AgentLink(url, credential, on_message=..., on_state=..., session=...)`."""


# --- the state every part of the agent shares ---------------------------------------------------


class AgentBase:
    def __init__(
        self,
        config: AgentConfig,
        *,
        drives: list[tuple[Drive, str]] | None = None,
        link_factory: LinkFactory | None = None,
        pin_factory: Any = None,
        enroll_interval: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.config = config
        # (first, longest) seconds between enrollment polls; tests shorten them.
        self._enroll_interval = enroll_interval
        self.version = __version__
        self._extra_drives = list(drives or [])
        self._link_factory = link_factory
        self._pin_factory = pin_factory
        self.slots: dict[str, Slot] = {}
        self.catalog: dict[str, Take] = {}
        # What the last hello said of the cache (md5s held, bytes used): the room dispatches
        # by it and the dashboard shows it, so a change is announced at once.
        self._sent_cache: tuple[frozenset[str], int] | None = None
        self.link: Link | None = None
        self.journal: Journal | None = None
        self.cache: ImageCache | None = None
        self.sharing: Sharing | None = None  # sharing images with the show's kiosks ([share])
        self.panel: Panel | None = None
        self._listeners = Listeners()
        self._credential: str | None = None  # sent to the coordinator's image store
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report_lock = asyncio.Lock()
        self._link_state = LinkState.OFFLINE
        self._closing = False

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("agent task failed task=%s", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _slot(self, uid: str) -> Slot:
        slot = self.slots.get(uid)
        if slot is None:
            raise ControlError("not-found", f"no drive {uid!r} on this kiosk")
        return slot

    def _status_now(self) -> AgentStatus:
        cache = self.cache
        return {
            "version": self.version,
            "link": self._link_state.value,
            "coordinator": self.config.coordinator_url or "",
            "cache_used": cache.used_bytes if cache is not None else 0,
            "cache_max": self.config.cache_size,
            "drives": len(self.slots),
            "language": self.config.kiosk_language,
        }

    # ---- events -------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        self._listeners.emit(event)

    def _emit_drive(self, slot: Slot) -> None:
        self._emit({"event": "drive", "drive": slot.view()})

    if TYPE_CHECKING:
        # What one part of the agent calls on another; each is defined in the part named.

        # appliance.agent.core
        async def eject(self, drive: str) -> None: ...
        async def _refresh(self, slot: Slot) -> None: ...
        async def name(self, drive: str, name: str) -> DriveView: ...

        # appliance.agent.burns
        def _on_job_event(
            self, slot: Slot, event: JobProgress | JobStateChanged | JobResult
        ) -> None: ...
        async def start_burn(self, take: Take, drive: str) -> BurnAccepted: ...
        async def cancel(self, drive: str) -> None: ...

        # appliance.agent.uplink
        async def _connect(self) -> None: ...
        async def _send_online(self, payload: dict[str, Any]) -> bool: ...
        async def _send_hello(self) -> None: ...
        async def _send_status(self, slot: Slot) -> None: ...
        async def _cache_changed(self) -> None: ...
        async def report_results(self) -> int: ...
