"""Command line of the coordinator: ``serve`` the API, ``admin create`` the first way in,
``appliance create`` to provision kiosks without the enrollment flow.

Errors a user can act on are one line on stderr and a non-zero exit; stdout carries only what a
script would capture (the new admin or appliance credential).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator import __version__, configfile, imagecli, live
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.errors import Problem
from coordinator.store import Store
from coordinator.store.catalog import add_show
from coordinator.store.migrations import SchemaTooNew
from coordinator.store.people import create_admin, create_appliance
from coordinator.store.records import Record
from plumbing import logs

EXIT_USAGE = 2
EXIT_FAILED = 1


class CliError(Exception):
    """A failure to report as one line on stderr."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


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
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument("--port", default=8080, type=_port, help="TCP port (default: 8080)")
    serve.add_argument(
        "--max-credential-hours",
        type=float,
        default=12.0,
        help="cap on the duration of credentials from /api/v1/join (default: 12)",
    )
    logs.add_arguments(serve)
    _live_arguments(serve)

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
    create.add_argument("--name", required=True, help="the admin's name")
    create.add_argument("--email", required=True, help="the admin's email (unique)")

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
    enroll.add_argument("--show", required=True, help="the show's id or name")
    enroll.add_argument("--name", required=True, help="the appliance's name (unique in its show)")
    enroll.add_argument(
        "--create-show",
        action="store_true",
        help="create a show named SHOW if there is none (asset root: this coordinator's "
        "image store)",
    )
    imagecli.add_arguments(sub)
    return parser


# --- live plane (coordinator/live.py): roles, Redis, relay and burn-protocol flags ---


def _live_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--role",
        choices=live.ROLES,
        default="all",
        help="all (default: rendezvous + balancer + master in one process), or one role",
    )
    serve.add_argument("--redis", metavar="URL", help="Redis URL for cross-node pub/sub")
    serve.add_argument(
        "--master-port", type=_port, help="with --role master: port balancers connect to"
    )
    serve.add_argument(
        "--master-dir", type=Path, metavar="DIR", help="where the master keeps master.db"
    )
    serve.add_argument("--relay-token", help="shared secret between balancers and masters")
    serve.add_argument(
        "--burn-port",
        type=_port,
        help="burn-protocol TCP port (off if unset); admits clients presenting an appliance "
        "credential into the newest live session of its show",
    )
    serve.add_argument(
        "--burn-token", help="shared secret also admitting burn-protocol clients (any type)"
    )
    serve.add_argument(
        "--burn-session", help="session --burn-token and --burn-public-display admit into"
    )
    serve.add_argument(
        "--burn-public-display",
        action="store_true",
        help="let DISPLAY clients watch --burn-session without a credential",
    )
    serve.add_argument(
        "--expiry-check-seconds",
        type=float,
        default=15.0,
        help="how often to look for credentials about to expire (default: 15)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=2.0,
        help="on SIGTERM, answer health CLOSED this long before exiting (default: 2)",
    )


def _live_config(args: argparse.Namespace) -> dict[str, Any]:
    if args.role == "master" and args.master_port is None:
        raise CliError("--role master needs --master-port")
    if (args.burn_token or args.burn_public_display) and not args.burn_session:
        raise CliError("--burn-token and --burn-public-display need --burn-session")
    if not 0 <= args.drain_seconds <= 600:
        raise CliError("--drain-seconds must be 0..600")
    if not 0.05 <= args.expiry_check_seconds <= 3600:
        raise CliError("--expiry-check-seconds must be 0.05..3600")
    return {
        "role": args.role,
        "register_local_master": args.role == "all",
        "redis_url": args.redis,
        "master_port": args.master_port,
        "master_dir": args.master_dir,
        "relay_token": args.relay_token,
        "burn_port": args.burn_port,
        "burn_token": args.burn_token,
        "burn_session": args.burn_session,
        "burn_public_display": args.burn_public_display,
        "drain_seconds": args.drain_seconds,
        "expiry_check_interval": args.expiry_check_seconds,
    }


# --- end live plane ---


def _serve(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    config = CoordinatorConfig(
        data_dir=args.data,
        host=args.host,
        port=args.port,
        max_credential_seconds=max(1, int(args.max_credential_hours * 3600)),
        **_live_config(args),
    )
    app = make_app(config)

    def ready(_message: str) -> None:
        # Printed once the socket is bound, so a supervisor (or a test) can wait for this line.
        print(
            f"burnstand-coordinator {__version__} listening on http://{args.host}:{args.port} "
            f"(data: {config.db_path})",
            file=sys.stderr,
            flush=True,
        )

    try:
        live.serve(app, args.host, args.port, ready)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    return 0


async def _admin_create(data: Path, name: str, email: str) -> str:
    store = Store(data / "coordinator.db", read_threads=1)
    await store.open()
    try:
        return await store.write(lambda c: create_admin(c, time.time(), "cli", name, email))
    finally:
        await store.close()


IMAGE_STORE_ROOT = "/api/v1/images/"


def provision_appliance(
    conn: sqlite3.Connection, now: float, show: str, name: str, create_show: bool
) -> Record:
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


async def _appliance_create(data: Path, show: str, name: str, create_show: bool) -> Record:
    store = Store(data / "coordinator.db", read_threads=1)
    await store.open()
    try:
        now = time.time()
        return await store.write(lambda c: provision_appliance(c, now, show, name, create_show))
    finally:
        await store.close()


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
        if args.command == "serve":
            return _serve(args)
        if args.command == "image":
            return imagecli.run(args)
        if args.command == "appliance":
            _check_appliance(args.show, args.name)
            enrolled = asyncio.run(
                _appliance_create(args.data, args.show.strip(), args.name.strip(), args.create_show)
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
            token = asyncio.run(_admin_create(args.data, args.name.strip(), args.email.strip()))
    except (CliError, imagecli.ImageCliError) as exc:
        print(f"burnstand-coordinator: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Problem as exc:
        print(f"burnstand-coordinator: error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, SchemaTooNew, OSError) as exc:
        print(f"burnstand-coordinator: error: {args.data}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
