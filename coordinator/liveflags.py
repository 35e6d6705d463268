"""The `serve` flags of the live plane (coordinator/live.py): roles, Redis, the relay and the
burn-protocol listener, with the shared tokens they take (from a file, systemd's credentials or,
with a warning, the command line) and how strong those must be.

`add_live_arguments` puts the flags on the parser; `live_config` checks what was given and turns
it into `live.serve` keywords, raising `LiveFlagError` with the one line to print.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from coordinator import live


class LiveFlagError(ValueError):
    """A live-plane flag the user has to fix; its text is the whole message."""


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def add_live_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--role",
        choices=live.ROLES,
        default="all",
        help="all (default: rendezvous + balancer + master in one process), or one role",
    )
    serve.add_argument("--redis", metavar="URL", help="Redis URL for cross-node pub/sub")
    serve.add_argument(
        "--master-port", type=port, help="with --role master: port balancers connect to"
    )
    serve.add_argument(
        "--master-dir", type=Path, metavar="DIR", help="where the master keeps master.db"
    )
    serve.add_argument(
        "--relay-token",
        help="shared secret between balancers and masters (visible to local users in /proc: "
        "prefer --relay-token-file or the systemd credential relay-token)",
    )
    serve.add_argument(
        "--relay-token-file",
        type=Path,
        metavar="FILE",
        help="read the relay token from FILE (default: $BURNSTAND_RELAY_TOKEN_FILE, else "
        "$CREDENTIALS_DIRECTORY/relay-token when systemd's LoadCredential= provides it)",
    )
    serve.add_argument(
        "--peer-key",
        help="secret every coordinator node of a deployment signs kiosks' peer tokens with "
        "(visible to local users in /proc: prefer --peer-key-file or the systemd credential "
        "peer-key); without one, each node makes its own DATA/peer.key",
    )
    serve.add_argument(
        "--peer-key-file",
        type=Path,
        metavar="FILE",
        help="read the peer key from FILE (default: $BURNSTAND_PEER_KEY_FILE, else "
        "$CREDENTIALS_DIRECTORY/peer-key when systemd's LoadCredential= provides it)",
    )
    serve.add_argument(
        "--burn-port",
        type=port,
        help="burn-protocol TCP port (off if unset); admits clients presenting an appliance "
        "credential into the newest live session of its show",
    )
    serve.add_argument(
        "--burn-token",
        help="shared secret also admitting burn-protocol clients (any type); visible to local "
        "users in /proc: prefer --burn-token-file or the systemd credential burn-token",
    )
    serve.add_argument(
        "--burn-token-file",
        type=Path,
        metavar="FILE",
        help="read the burn token from FILE (default: $BURNSTAND_BURN_TOKEN_FILE, else "
        "$CREDENTIALS_DIRECTORY/burn-token when systemd's LoadCredential= provides it)",
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


MIN_TOKEN_BITS = 128


def token_bits(token: str) -> float:
    """An estimate of a shared token's entropy: per character, the bits of the smallest
    alphabet it fits (hex, or the character classes it uses), but no more than one bit above
    what its distinct characters allow, so words with a digit or two count as what they are."""
    if not token:
        return 0.0
    if all(c in "0123456789abcdef" for c in token) or all(c in "0123456789ABCDEF" for c in token):
        alphabet = 16
    else:
        alphabet = sum(
            size
            for present, size in (
                (any(c.islower() for c in token), 26),
                (any(c.isupper() for c in token), 26),
                (any(c.isdigit() for c in token), 10),
                (any(not c.isalnum() for c in token), 32),
            )
            if present
        )
    per_char = min(math.log2(max(alphabet, 2)), math.log2(len(set(token))) + 1)
    return len(token) * per_char


def _check_token(flag: str, token: str | None) -> None:
    if token is not None and token_bits(token) < MIN_TOKEN_BITS:
        raise LiveFlagError(
            f"{flag} is too weak to share (about {token_bits(token):.0f} bits, at least "
            f"{MIN_TOKEN_BITS} needed): use e.g. `openssl rand -hex 32` (64 hex characters)"
        )


def secret_file_env(name: str) -> str:
    """The environment variable that names the file holding secret `name` (a container's
    secrets are files it is told about by environment: BURNSTAND_BURN_TOKEN_FILE)."""
    return "BURNSTAND_" + name.upper().replace("-", "_") + "_FILE"


def _secret(args: argparse.Namespace, name: str) -> str | None:
    """A shared token from --NAME-file (or its config key), --NAME (with a warning), the file
    $BURNSTAND_NAME_FILE names, or the systemd credential NAME, in that order."""
    flag = "--" + name
    inline = getattr(args, name.replace("-", "_"))
    path: Path | None = getattr(args, name.replace("-", "_") + "_file")
    source = f"{flag}-file"
    if inline is not None and path is not None:
        raise LiveFlagError(f"give {flag} or {flag}-file, not both")
    if inline is not None:
        print(
            f"burnstand-coordinator: warning: {flag} on the command line can be read by every "
            f"local user (/proc/PID/cmdline); use {flag}-file, ${secret_file_env(name)} or "
            f"LoadCredential={name}",
            file=sys.stderr,
        )
        return str(inline)
    env = secret_file_env(name)
    if path is None and env in os.environ:
        if not os.environ[env].strip():
            raise LiveFlagError(f"${env} is set but empty: name the file holding the {name}")
        path, source = Path(os.environ[env]), f"${env}"
    if path is None:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds or not (Path(creds) / name).is_file():
            return None
        path = Path(creds) / name
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LiveFlagError(f"{source} {path}: {exc}") from None
    if not token:
        raise LiveFlagError(f"{source} {path} is empty")
    return token


def live_config(args: argparse.Namespace) -> dict[str, Any]:
    burn_token, relay_token = _secret(args, "burn-token"), _secret(args, "relay-token")
    peer_key = _secret(args, "peer-key")
    if args.role == "master" and args.master_port is None:
        raise LiveFlagError("--role master needs --master-port")
    if (burn_token or args.burn_public_display) and not args.burn_session:
        raise LiveFlagError("--burn-token and --burn-public-display need --burn-session")
    _check_token("--burn-token", burn_token)
    _check_token("--peer-key", peer_key)
    if not 0 <= args.drain_seconds <= 600:
        raise LiveFlagError("--drain-seconds must be 0..600")
    if not 0.05 <= args.expiry_check_seconds <= 3600:
        raise LiveFlagError("--expiry-check-seconds must be 0.05..3600")
    return {
        "role": args.role,
        "register_local_master": args.role == "all",
        "redis_url": args.redis,
        "master_port": args.master_port,
        "master_dir": args.master_dir,
        "relay_token": relay_token,
        "peer_key": peer_key,
        "burn_port": args.burn_port,
        "burn_token": burn_token,
        "burn_session": args.burn_session,
        "burn_public_display": args.burn_public_display,
        "drain_seconds": args.drain_seconds,
        "expiry_check_interval": args.expiry_check_seconds,
    }
