"""Property test against the served OpenAPI document, in the spirit of schemathesis.

For every operation the document lists, hypothesis generates path ids, paging parameters,
credentials of every role, and bodies that follow the operation's schema or break it in any way;
the live server must never answer 5xx, must answer only status codes the document lists for that
operation, errors must be problem JSON and successes must match the documented response schema.
The document itself must list every route the app registers, and so must docs/api.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rv_helpers import MD5, SHA, FakeClock

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.rendezvous import ENDPOINTS
from coordinator.rendezvous.endpoint import PREFIX
from coordinator.rendezvous.openapi import build
from coordinator.rendezvous.validation import validate
from coordinator.store.people import create_admin, create_appliance

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 10


class LiveServer:
    """The coordinator on a real loopback socket, its loop in a background thread."""

    def __init__(self, data: Path) -> None:
        self.clock = FakeClock()
        self.config = CoordinatorConfig(data_dir=data, clock=self.clock, port=0)
        self.app = make_app(self.config)
        self.loop = asyncio.new_event_loop()
        # No access log: its lines are written on this thread after a response went out, when
        # pytest may already have closed the test's captured output ("I/O operation on closed
        # file" tracebacks in the run's output).
        self.runner = web.AppRunner(self.app, access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def start(self) -> None:
        self.thread.start()
        self.run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.run(site.start())
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()

    def request(
        self, method: str, path: str, token: str | None = None, body: bytes | None = None
    ) -> tuple[int, str, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(  # loopback http only
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                status, ctype, raw = resp.status, resp.headers.get_content_type(), resp.read()
        except urllib.error.HTTPError as err:
            status, ctype, raw = err.code, err.headers.get_content_type(), err.read()
        if raw and not ctype.endswith("json"):
            return status, ctype, raw.decode()  # a documented non-JSON answer (CSV)
        return status, ctype, json.loads(raw) if raw else None

    def call(self, method: str, path: str, token: str | None = None, data: Any = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        status, _, out = self.request(method, PREFIX + path, token, body)
        assert status < 300, (method, path, status, out)
        return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    server = LiveServer(tmp_path_factory.mktemp("openapi") / "data")
    server.start()
    store = server.app[STORE]
    now = server.clock()
    admin = server.run(store.write(lambda c: create_admin(c, now, "test", "A", "a@example.org")))
    show = server.call("POST", "/shows", admin, {"name": "S", "asset_root": "/r"})["id"]
    sa = server.call("POST", f"/shows/{show}/admins", admin, {"name": "B", "email": "b@e.org"})
    sam = server.call(
        "POST",
        "/join",
        None,
        {"user": "b@e.org", "show": show, "duration": 9000, "secret": sa["secret"]},
    )["credential"]
    co = server.call("POST", f"/shows/{show}/contributors", sam, {"name": "C", "email": "c@e.org"})
    cleo = server.call(
        "POST",
        "/join",
        None,
        {"user": "c@e.org", "show": show, "duration": 9000, "secret": co["secret"]},
    )["credential"]
    ep = server.call("POST", f"/shows/{show}/episodes", sam, {"name": "E"})["id"]
    seq = server.call("POST", f"/episodes/{ep}/sequences", sam, {"name": "Q"})["id"]
    shot = server.call("POST", f"/sequences/{seq}/shots", cleo, {"name": "H"})["id"]
    server.call(
        "POST",
        f"/shots/{shot}/takes",
        cleo,
        {"name": "T", "size": 1, "sha256": SHA, "md5": MD5, "url": "https://h/t"},
    )
    session = server.call("POST", "/sessions", cleo, {"name": "s", "episode_id": ep})["id"]
    kiosk = server.run(store.write(lambda c: create_appliance(c, now, "test", show, "k")))
    tokens = {
        "admin": admin,
        "show_admin": sam,
        "contributor": cleo,
        "appliance": kiosk["credential"],
        "none": None,
        "bogus": "not-a-credential",
    }
    try:
        yield server, {"tokens": tokens, "session": session}
    finally:
        server.stop()


# --- strategies from JSON Schema ------------------------------------------------------------

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "anyOf" in schema:
        return st.one_of(*(from_schema(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= schema.get("maxLength", 10**6)
            )
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})), max_size=min(schema.get("maxItems", 4), 4)
        )
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        if not props:
            return st.dictionaries(st.text(max_size=5), ANY_JSON, max_size=3)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    return ANY_JSON


def _operations() -> list[tuple[str, str]]:
    ops = [(ep.method, ep.path) for ep in ENDPOINTS]
    # Removals last, so earlier operations still find the world they work on.
    return sorted(ops, key=lambda op: op[0] == "DELETE")


@pytest.mark.parametrize(("method", "path"), _operations())
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_operation_keeps_its_documented_contract(
    live: tuple[LiveServer, dict[str, Any]], method: str, path: str, data: st.DataObject
) -> None:
    server, world = live
    status, _, doc = server.request("GET", PREFIX + "/openapi.json")
    op = doc["paths"][path][method.lower()]
    url = path
    for param in op["parameters"]:
        if param["in"] != "path":
            continue
        if param["schema"]["type"] == "integer":
            value = data.draw(st.integers(1, 4) | st.integers(2**63, 2**70), label=param["name"])
        else:
            value = data.draw(
                st.just(world["session"]) | st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
            )
        url = url.replace("{" + param["name"] + "}", urllib.parse.quote(str(value), safe=""))
    query = {
        p["name"]: data.draw(st.none() | st.integers(-3, 600) | st.just("x"), label=p["name"])
        for p in op["parameters"]
        if p["in"] == "query"
    }
    query = {k: v for k, v in query.items() if v is not None}
    if query:
        url += "?" + urllib.parse.urlencode(query)
    body: bytes | None = None
    if "application/json" in op.get("requestBody", {}).get("content", {}):
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        choice = data.draw(st.sampled_from(["valid", "broken", "any", "garbage"]))
        if choice == "valid":
            body = json.dumps(data.draw(from_schema(schema))).encode()
        elif choice == "broken":
            good = data.draw(from_schema(schema))
            if good:
                key = data.draw(st.sampled_from(sorted(good)))
                good[key] = data.draw(ANY_JSON)
            body = json.dumps(good).encode()
        elif choice == "any":
            body = json.dumps(data.draw(ANY_JSON)).encode()
        else:
            body = data.draw(st.binary(max_size=20))
    token = world["tokens"][data.draw(st.sampled_from(sorted(world["tokens"])))]
    status, ctype, out = server.request(method, url, token, body)
    assert status < 500, (method, url, status, out)
    assert str(status) in op["responses"], (method, url, status, out)
    if status >= 400:
        assert ctype == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(out)
        assert out["status"] == status
    elif status != 204:
        content = op["responses"][str(status)]["content"]
        if "application/json" in content:
            validate(out, content["application/json"]["schema"])
        else:
            assert ctype in content, (method, url, ctype)


def _registered(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        raw = info.get("formatter") or info.get("path") or ""
        if not raw.startswith("/api/"):
            continue  # the dashboard's static files and the WebSockets are not REST endpoints
        out.add((route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", raw)))
    return out


def test_every_route_is_in_openapi_and_api_md(tmp_path: Path) -> None:
    app = make_app(CoordinatorConfig(data_dir=tmp_path))
    routes = _registered(app)
    assert len(routes) == len(ENDPOINTS)
    doc = build(ENDPOINTS)
    api_md = (DOCS / "api.md").read_text(encoding="utf-8")
    for method, path in routes:
        assert method.lower() in doc["paths"].get(path, {}), (method, path)
        assert f"`{method} {path}`" in api_md, f"docs/api.md does not document {method} {path}"
