"""The kiosk as a web page: `python -m appliance.kiosk.serve`, textual-serve with no internet.

The touchscreen shows the kiosk in a browser pointed at this server; each browser connection
starts its own `burnstand-kiosk` process (the Textual app) talking to the agent's control socket,
so a page reload is a fresh kiosk and the agent never notices. textual-serve ships its own
JavaScript, CSS and Roboto Mono font, but its page also links the font's stylesheet from Google
Fonts; a kiosk is often offline, and a stylesheet link that hangs on a blackholed network holds
up the page, so this server swaps that link for an `@font-face` on the bundled copy of the same
font. Everything the page loads then comes from this server.

With `--display-user NAME` the page, its files and its WebSocket answer only connections whose
client socket belongs to that user (the touchscreen's browser): any other local user gets 403,
so nobody logged in over SSH can drive the kiosk or its operator screen through it.
"""

from __future__ import annotations

import argparse
import asyncio
import pwd
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.server import Server

from appliance import __version__
from appliance.control import DEFAULT_SOCKET
from appliance.kiosk.peer import parse, socket_owner

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# The one thing textual-serve's page fetches from outside: Google Fonts' Roboto Mono stylesheet.
CDN_FONT_CSS = "https://fonts.googleapis.com/css?family=Roboto%20Mono"
_CDN_LINK = re.compile(r'<link\s+rel="stylesheet"\s+href="' + re.escape(CDN_FONT_CSS) + r'"\s*/>')
LOCAL_FONT = (
    "<style>@font-face {{font-family: 'Roboto Mono'; "
    "src: url('{static}fonts/RobotoMono-VariableFont_wght.ttf') format('truetype');}}</style>"
)


class OfflineServer(Server):
    """textual-serve's server with the page's one outside reference replaced by a local one,
    and, given ``allowed_uids``, served only to clients whose socket those users own."""

    allowed_uids: frozenset[int] | None = None

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self.allowed_uids is not None:
            app.middlewares.append(_only_users(self.allowed_uids))
        return app

    async def handle_index(self, request: web.Request) -> Any:
        response = await super().handle_index(request)
        if not isinstance(response, web.Response) or response.text is None:
            return response  # pragma: no cover - the template always renders to text
        static = request.app.router["static"].url_for(filename="/").path.rstrip("/") + "/"
        text = _CDN_LINK.sub(LOCAL_FONT.format(static=static), response.text)
        # Should a release respell the link, still no request may leave for the font CDN.
        text = text.replace(CDN_FONT_CSS, "")
        return web.Response(text=text, content_type="text/html")


def _only_users(allowed: frozenset[int]) -> Any:
    @web.middleware
    async def only_users(request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        uid = None
        if isinstance(peer, tuple) and isinstance(local, tuple):
            client, server = parse(peer[0], peer[1]), parse(local[0], local[1])
            uid = await asyncio.to_thread(socket_owner, client, server)
        if uid is None or uid not in allowed:
            return web.Response(status=403, text="this page is for the kiosk's own screen\n")
        response: web.StreamResponse = await handler(request)
        return response

    return only_users


def kiosk_command(
    socket: Path | None, python: str = sys.executable, config: Path | None = None
) -> str:
    """The shell command textual-serve runs per connection (it starts it through a shell)."""
    argv = [python, "-m", "appliance.kiosk.app"]
    if config is not None:
        argv += ["--config", str(config)]
    if socket is not None:
        argv += ["--socket", str(socket)]
    return shlex.join(argv)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m appliance.kiosk.serve",
        description="Serve the kiosk touchscreen app as a web page (textual-serve).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--socket",
        type=Path,
        help=f"agent control socket (default: the config's, else {DEFAULT_SOCKET})",
    )
    p.add_argument(
        "--config", type=Path, help="the kiosk's TOML file ([kiosk] pin, socket), passed on"
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    p.add_argument("--title", default="burnstand", help="page title (%(default)s)")
    p.add_argument(
        "--display-user",
        action="append",
        metavar="USER",
        help="serve only connections made by this local user (the touchscreen's browser); "
        "repeatable; default: anyone who can reach the address",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"kiosk-serve: --port must be 1..65535, not {args.port}", file=sys.stderr)
        return 2
    socket = args.socket if args.socket is not None or args.config else DEFAULT_SOCKET
    server = OfflineServer(
        kiosk_command(socket, config=args.config), host=args.host, port=args.port, title=args.title
    )
    if args.display_user:
        try:
            server.allowed_uids = frozenset(pwd.getpwnam(u).pw_uid for u in args.display_user)
        except KeyError as exc:
            print(f"kiosk-serve: --display-user: no such user {exc}", file=sys.stderr)
            return 2
    try:
        server.serve()
    except OSError as exc:
        print(f"kiosk-serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
