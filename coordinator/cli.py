"""Command line of the coordinator: ``serve`` the API, ``admin create`` the first way in,
``appliance create`` to provision kiosks without the enrollment flow, and ``admin|appliance list``
and ``revoke`` to see and take back who holds a credential.

Errors a user can act on are one line on stderr and a non-zero exit; stdout carries only what a
script would capture (the new admin or appliance credential, or the tab-separated list).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator import __version__, configfile, dboption, imagecli, live
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.liveflags import LiveFlagError, add_live_arguments, live_config, port
from coordinator.liveflags import token_bits as token_bits  # tests and scripts import it from here
from coordinator.store import Store, pg
from coordinator.store.catalog import add_show
from coordinator.store.errors import StoreError
from coordinator.store.migrations import SchemaTooNew
from coordinator.store.people import (
    create_admin,
    create_appliance,
    list_admins,
    list_appliances,
    remove_admin,
    remove_appliance,
)
from coordinator.store.records import Page, Record
from coordinator.store.sql import Conn
from plumbing import logs

EXIT_USAGE = 2
EXIT_FAILED = 1


class CliError(Exception):
    """A failure to report as one line on stderr."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="burnstand-coordinator",
        description="The burnstand coordinator: the rendezvous REST API on SQLite, the live "
        "plane (dashboards' WebSockets, kiosks' links, session masters) and the dashboard. "
        "Start with `admin create` for a credential, then `serve`; `image add` puts an image "
        "file in the catalog.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the coordinator: REST API, live plane, dashboard and /metrics",
        description="Run the coordinator on DIR/coordinator.db (created if missing): the REST "
        "API under /api/v1, the dashboards' and kiosks' WebSockets, the dashboard at / and "
        "Prometheus metrics at /metrics. With no session master in the pool, this process "
        "registers itself as one. Every flag may also be a key of --config FILE.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help='TOML file with any of these flags as keys (data = "/var/lib/...", port = '
        "8080, burn_public_display = true); flags given here win (docs/deployment.md)",
    )
    serve.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="data directory holding coordinator.db",
    )
    dboption.add_arguments(serve)
    dboption.add_pool_arguments(serve)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument("--port", default=8080, type=port, help="TCP port (default: 8080)")
    serve.add_argument(
        "--behind-tls",
        action="store_true",
        help="TLS is terminated in front of this process (a reverse proxy): send HSTS and do not "
        "warn about plain HTTP on a non-loopback address",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy (its address as this process sees it, e.g. 127.0.0.1) whose "
        "X-Forwarded-For names the client for enrollment sources and rate limits; repeatable",
    )
    serve.add_argument(
        "--max-credential-hours",
        type=float,
        default=12.0,
        help="cap on the duration of credentials from /api/v1/join (default: 12)",
    )
    serve.add_argument(
        "--fetch-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often to look for takes that only name an outside URL and fetch their images "
        "into the image store, so kiosks can share them (default: 10; 0 turns fetching off)",
    )
    logs.add_arguments(serve)
    add_live_arguments(serve)

    admin = sub.add_parser(
        "admin", help="manage admins", description="Manage the coordinator's admins."
    )
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    create = admin_sub.add_parser(
        "create",
        help="create an admin and print its credential",
        description="Create an admin and print a new admin credential on stdout (and nothing "
        "else). Works whether or not the coordinator is running.",
    )
    create.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="data directory holding coordinator.db",
    )
    dboption.add_arguments(create)
    create.add_argument("--name", required=True, help="the admin's name")
    create.add_argument("--email", required=True, help="the admin's email (unique)")

    _list_and_revoke(admin_sub, "admin")

    appliance = sub.add_parser(
        "appliance", help="manage appliances", description="Provision kiosk appliances."
    )
    appliance_sub = appliance.add_subparsers(
        dest="appliance_command", required=True, metavar="ACTION"
    )
    enroll = appliance_sub.add_parser(
        "create",
        help="enroll an appliance in a show and print its credential",
        description="Enroll an appliance (kiosk) in a show and print its credential on stdout "
        "(and nothing else), for fleets provisioned without the enrollment flow. Works whether "
        "or not the coordinator is running.",
    )
    enroll.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="data directory holding coordinator.db",
    )
    dboption.add_arguments(enroll)
    enroll.add_argument("--show", required=True, help="the show's id or name")
    enroll.add_argument("--name", required=True, help="the appliance's name (unique in its show)")
    enroll.add_argument(
        "--create-show",
        action="store_true",
        help="create a show named SHOW if there is none (asset root: this coordinator's "
        "image store)",
    )
    _list_and_revoke(appliance_sub, "appliance")
    imagecli.add_arguments(sub)
    return parser


def _list_and_revoke(actions: Any, kind: str) -> None:
    listing = actions.add_parser(
        "list",
        help=f"list the {kind}s, one per line: id, tab, "
        + ("name, tab, email" if kind == "admin" else "show id, tab, name"),
        description=f"Print every {kind} as tab-separated fields on stdout.",
    )
    listing.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="data directory holding coordinator.db",
    )
    dboption.add_arguments(listing)
    revoke = actions.add_parser(
        "revoke",
        help=f"remove an {kind} and revoke every credential of it",
        description=f"Remove the {kind} with this id: its credentials are refused at once and "
        "a running coordinator closes the connections opened with them within a second. "
        + (
            "The last admin cannot be removed."
            if kind == "admin"
            else "Enroll the kiosk again to bring it back."
        ),
    )
    revoke.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help="data directory holding coordinator.db",
    )
    dboption.add_arguments(revoke)
    revoke.add_argument("id", type=int, help=f"the {kind}'s id (see `{kind} list`)")


def _live_config(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return live_config(args)
    except LiveFlagError as exc:
        raise CliError(str(exc)) from None


def _trusted_proxies(values: list[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise CliError(f"--trusted-proxy needs an IP address, got {value!r}") from None
    return tuple(out)


def plain_http_warning(host: str, behind_tls: bool) -> str | None:
    """What to tell an operator who serves plain HTTP beyond this machine, or None."""
    if behind_tls or _is_loopback(host):
        return None
    return (
        f"serving plain HTTP on {host}: credentials, secrets and appliance links cross the "
        "network unencrypted and can be read or taken over by anyone on the path; put a TLS "
        "reverse proxy in front (docs/deployment.md) and pass --behind-tls, or listen on "
        "127.0.0.1"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve beyond this machine


def _serve(args: argparse.Namespace, database: str | None) -> int:
    logs.setup(args.log_level, args.log_format)
    pool_size, pool_timeout = dboption.pool_bounds(args)
    config = CoordinatorConfig(
        data_dir=args.data,
        database=database,
        pool_size=pool_size,
        pool_timeout=pool_timeout,
        host=args.host,
        port=args.port,
        max_credential_seconds=max(1, int(args.max_credential_hours * 3600)),
        trusted_proxies=_trusted_proxies(args.trusted_proxy),
        behind_tls=args.behind_tls,
        fetch_interval=args.fetch_interval if args.fetch_interval > 0 else None,
        **_live_config(args),
    )
    warning = plain_http_warning(args.host, args.behind_tls)
    if warning:
        print(f"burnstand-coordinator: warning: {warning}", file=sys.stderr, flush=True)
    app = make_app(config)

    def ready(_message: str) -> None:
        # Printed once the socket is bound, so a supervisor (or a test) can wait for this line.
        print(
            f"burnstand-coordinator {__version__} listening on http://{args.host}:{args.port} "
            f"(data: {pg.redact(database) if database else config.db_path})",
            file=sys.stderr,
            flush=True,
        )

    try:
        live.serve(app, args.host, args.port, ready)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    return 0


def _store(data: Path, database: str | None) -> Store:
    """The store a one-shot command works on: the SQLite file in --data, or PostgreSQL."""
    return Store(database or data / "coordinator.db", read_threads=1, pool_size=2, data_dir=data)


async def _admin_create(data: Path, database: str | None, name: str, email: str) -> str:
    store = _store(data, database)
    await store.open()
    try:
        return await store.write(lambda c: create_admin(c, time.time(), "cli", name, email))
    finally:
        await store.close()


IMAGE_STORE_ROOT = "/api/v1/images/"


def provision_appliance(conn: Conn, now: float, show: str, name: str, create_show: bool) -> Record:
    """Find the show by id, then by name (or create it), and enroll an appliance in it."""
    row = None
    if show.isdigit():
        row = conn.execute("SELECT id FROM shows WHERE id = ?", (int(show),)).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM shows WHERE name = ? COLLATE NOCASE", (show,)).fetchone()
    created = False
    if row is not None:
        show_id = int(row[0])
    elif create_show:
        show_id = add_show(conn, now, "cli", {"name": show, "asset_root": IMAGE_STORE_ROOT})["id"]
        created = True
    else:
        raise CliError(f"no show with id or name {show!r} (add --create-show to create it)")
    return {**create_appliance(conn, now, "cli", show_id, name), "show_created": created}


async def _appliance_create(
    data: Path, database: str | None, show: str, name: str, create_show: bool
) -> Record:
    store = _store(data, database)
    await store.open()
    try:
        now = time.time()
        return await store.write(lambda c: provision_appliance(c, now, show, name, create_show))
    finally:
        await store.close()


async def _on_store(data: Path, database: str | None, write: bool, fn: Any) -> Any:
    if database is None and not (data / "coordinator.db").is_file():
        raise CliError(f"{data}: no coordinator.db here (is --data the serve data directory?)")
    store = _store(data, database)
    await store.open()
    try:
        return await (store.write(fn) if write else store.read(fn))
    finally:
        await store.close()


_ALL = Page(limit=2**31, offset=0)


def _list_or_revoke(
    kind: str, action: str, data: Path, database: str | None, target: int | None
) -> str:
    """What `admin|appliance list|revoke` prints on stdout."""
    if action == "list":
        lister = list_admins if kind == "admin" else lambda c, p: list_appliances(c, None, p)
        items = asyncio.run(_on_store(data, database, False, lambda c: lister(c, _ALL)))["items"]
        fields = ("id", "name", "email") if kind == "admin" else ("id", "show_id", "name")
        return "\n".join("\t".join(str(item[f]) for f in fields) for item in items)
    assert target is not None  # noqa: S101  # argparse requires it for revoke
    now = time.time()
    if kind == "admin":
        asyncio.run(_on_store(data, database, True, lambda c: remove_admin(c, now, "cli", target)))
    else:
        asyncio.run(
            _on_store(data, database, True, lambda c: remove_appliance(c, now, "cli", target))
        )
    print(
        f"burnstand-coordinator: {kind} {target} removed; its credentials are revoked",
        file=sys.stderr,
    )
    return ""


def _check_appliance(show: str, name: str) -> None:
    if not show.strip():
        raise CliError("--show must not be empty")
    if not name.strip() or len(name.strip()) > 200:
        raise CliError("--name must be 1 to 200 characters")


def _check_person(name: str, email: str) -> None:
    if not name.strip():
        raise CliError("--name must not be empty")
    if "@" not in email or any(ch.isspace() for ch in email) or len(email) > 254:
        raise CliError(f"--email is not an email address: {email!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        configfile.apply(parser, words)
    except configfile.ConfigFileError as exc:
        for line in exc.lines:
            print(f"burnstand-coordinator: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(words)
    try:
        database = dboption.resolve(args) if args.command != "image" else None
        if args.command == "serve":
            return _serve(args, database)
        if args.command == "image":
            return imagecli.run(args)
        sub_action = getattr(args, f"{args.command}_command", None)
        if sub_action in ("list", "revoke"):
            out = _list_or_revoke(
                args.command, sub_action, args.data, database, getattr(args, "id", None)
            )
            if out:
                print(out)
            return 0
        if args.command == "appliance":
            _check_appliance(args.show, args.name)
            enrolled = asyncio.run(
                _appliance_create(
                    args.data, database, args.show.strip(), args.name.strip(), args.create_show
                )
            )
            if enrolled["show_created"]:
                print(
                    f"burnstand-coordinator: created show {args.show.strip()!r} "
                    f"(id {enrolled['show_id']})",
                    file=sys.stderr,
                )
            token = enrolled["credential"]
        else:
            _check_person(args.name, args.email)
            token = asyncio.run(
                _admin_create(args.data, database, args.name.strip(), args.email.strip())
            )
    except (CliError, imagecli.ImageCliError, dboption.DatabaseOptionError) as exc:
        print(f"burnstand-coordinator: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        print(f"burnstand-coordinator: error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    except (pg.DatabaseRefused, pg.DatabaseUnavailable) as exc:
        print(f"burnstand-coordinator: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except SchemaTooNew as exc:
        where = pg.redact(database) if database else args.data
        print(f"burnstand-coordinator: error: {where}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as exc:
        print(f"burnstand-coordinator: error: {args.data}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
