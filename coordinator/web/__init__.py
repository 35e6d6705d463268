"""The operators' dashboard: static files served by the coordinator itself at `/`.

The dashboard is plain HTML, CSS and ES modules shipped in this package (no build step, nothing
fetched from a CDN); everything it shows comes from the rendezvous REST API and the client
WebSocket `/ws/<session>`. `setup(app)` serves `index.html` at `/` and the assets under
`/static/`, each with its exact content type, an ETag so browsers revalidate cheaply
(`Cache-Control: no-cache`, since asset names carry no version), and a Content-Security-Policy
that only allows this origin, so a compromised catalog entry cannot load foreign script.
The files are read once when the app is built; they are a few dozen KiB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

# Next to this module, so the package data globs (*.html, *.css, *.js) ship them.
STATIC_DIR = Path(__file__).parent
STATIC_PREFIX = "/static/"

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Same origin only; `ws:`/`wss:` to this host are covered by 'self' in CSP Level 3 browsers.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the dashboard, held in memory with what its response needs."""

    body: bytes
    content_type: str
    etag: str


def load_assets(folder: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file of `folder` by name; files of unknown type are not served."""
    assets: dict[str, Asset] = {}
    for path in sorted(folder.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:20]
        assets[path.name] = Asset(body, content_type, f'"{digest}"')
    return assets


def _respond(request: web.Request, asset: Asset) -> web.Response:
    headers = {
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


def setup(app: web.Application) -> None:
    """Serve the dashboard: `GET /` and `GET /static/<file>` (HEAD too)."""
    assets = load_assets()

    async def index(request: web.Request) -> web.Response:
        return _respond(request, assets["index.html"])

    async def static(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(text="no such dashboard file")
        return _respond(request, asset)

    app.router.add_get("/", index)
    app.router.add_get(STATIC_PREFIX + "{name}", static)
