"""One description per REST endpoint: route, handler, roles, body and responses.

Each handler module lists its endpoints; the app registers routes from these lists and the
OpenAPI document is generated from them, so a route cannot exist undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from coordinator.rendezvous.validation import Schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/api/v1"

PUBLIC = "none"


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: str  # aiohttp route under PREFIX, e.g. "/shows/{show_id:\\d+}"
    handler: Handler
    summary: str
    roles: tuple[str, ...]  # who may call it; ("none",) for public endpoints
    ok: int = 200
    body: Schema | None = None
    response: Schema | None = None
    errors: tuple[int, ...] = ()
    paged: bool = False
    tag: str = "rendezvous"
    seed_flow: str | None = None
    extra_doc: dict[str, str] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()  # OpenAPI query parameters beyond paging

    @property
    def path(self) -> str:
        """The OpenAPI path: route variables without their regular expressions."""
        return PREFIX + re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.route)

    @property
    def status_codes(self) -> tuple[int, ...]:
        codes = {self.ok, *self.errors}
        if self.roles != (PUBLIC,):
            codes |= {401, 403}
        if self.body is not None:
            codes |= {400, 422}
        if self.paged:
            codes.add(400)
        return tuple(sorted(codes))
