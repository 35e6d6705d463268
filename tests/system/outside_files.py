"""The "outside" host of a take's URL for the swarm test: an aiohttp file server (ranges through
`FileResponse`) run in the coordinator's namespace on its loopback, so only the coordinator can
reach it. `python -m tests.system.outside_files DIR PORT` serves DIR's files at `/<name>` on
127.0.0.1:PORT and prints one line per request (`<method> <name> <Range or ->`) to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def make_app(root: Path) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        print(f"{request.method} {name} {request.headers.get('Range', '-')}", flush=True)
        path = root / name
        if "/" in name or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    return app


if __name__ == "__main__":
    web.run_app(make_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), print=None)
