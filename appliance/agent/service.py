"""Running the agent: `serve` starts an agent with its control socket (and metrics), `run` is
`burnstand-agent run`, which serves until SIGINT/SIGTERM and keeps systemd informed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.agent.core import Agent
from appliance.config import AgentConfig
from appliance.control import ControlServer
from appliance.metrics import AgentMetrics, start_server

log = logging.getLogger("appliance.agent")


@dataclass
class Running:
    """An agent serving its control socket; `stop()` ends both."""

    agent: Agent
    server: ControlServer
    extra: list[asyncio.Task[Any]] = field(default_factory=list)
    metrics: web.AppRunner | None = None

    async def stop(self) -> None:
        for task in self.extra:
            task.cancel()
        await asyncio.gather(*self.extra, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.cleanup()
        await self.server.close()
        await self.agent.close()


async def serve(config: AgentConfig, *, socket: Path | None = None, **agent_args: Any) -> Running:
    """Start an agent and its control socket (the kiosk can connect once this returns)."""
    agent = Agent(config, **agent_args)
    await agent.start()
    server = ControlServer(agent, socket or config.socket, file_burner=agent)
    try:
        await server.start()
    except BaseException:
        await agent.close()
        raise
    running = Running(agent, server)
    if config.metrics_port is not None:
        try:
            running.metrics = await start_server(AgentMetrics(agent), config.metrics_port)
        except BaseException:
            await running.stop()
            raise
    return running


async def run(config: AgentConfig, *, socket: Path | None = None) -> None:
    """`burnstand-agent run`: serve until SIGINT/SIGTERM, telling systemd how it goes."""
    from plumbing import sdnotify

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await serve(config, socket=socket)
    running.extra.append(asyncio.create_task(sdnotify.watchdog_loop(lambda: True)))
    try:
        sdnotify.ready(f"{len(running.agent.slots)} drive(s)")
    except sdnotify.NotifyError as exc:
        log.warning("cannot notify systemd error=%s", exc)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(sdnotify.NotifyError):
            sdnotify.stopping()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await running.stop()
