"""`burnstand-coordinator image add`: a file on disk to a burnable take in one command.

It hashes the file once (size, SHA-256 and the MD5 the burn protocol names images by), unpacks a
compressed one with the image store's own decoders to declare what it unpacks to, creates
the take under a shot (`--shot`, no URL: the take is pending until its upload ends) or checks
the file against an existing take (`--take`), and uploads it to the coordinator's image store
with a progress bar on stderr. The upload is resumable (`Content-Range`): a broken connection is
retried from the offset the coordinator reports, and a later run of the same command goes on
where the last one stopped. stdout holds only the take as JSON, for scripts.

This talks to a running coordinator over HTTP (a blocking client: a CLI has no event loop to
keep free); the credential comes from a file or the environment, never the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from plumbing.units import size_text

if TYPE_CHECKING:
    from coordinator.images.contents import Contents

CREDENTIAL_ENV = "BURNSTAND_CREDENTIAL"
CREDENTIAL_FILE_ENV = "BURNSTAND_CREDENTIAL_FILE"
COORDINATOR_ENV = "BURNSTAND_COORDINATOR"
HASH_BLOCK = 1 << 20
SEND_BLOCK = 256 * 1024
ATTEMPTS = 5
TIMEOUT = 60.0


class ImageCliError(Exception):
    """A failure to print as one line on stderr."""


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    md5: str


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser(
        "image", help="add images to the catalog", description="Add images to the catalog."
    )
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    add = image_sub.add_parser(
        "add",
        help="hash a file, create or check its take, upload it (resumable)",
        description="Hash FILE (size, SHA-256, MD5), create its take under --shot (or check it "
        "against --take), and upload it to the coordinator's image store with a progress "
        "bar; a broken upload resumes where it stopped. Prints the take as JSON.",
    )
    add.add_argument("file", type=Path, metavar="FILE", help="the image file")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--take", type=int, metavar="ID", help="upload the image of this take")
    which.add_argument("--shot", type=int, metavar="ID", help="create a take under this shot")
    add.add_argument("--name", help="with --shot: the take's name (default: FILE's name)")
    add.add_argument("--notes", default="", help="with --shot: notes shown with the image")
    add.add_argument(
        "--coordinator",
        default=os.environ.get(COORDINATOR_ENV, "http://127.0.0.1:8080"),
        metavar="URL",
        help=f"the coordinator's base URL (default: ${COORDINATOR_ENV} or http://127.0.0.1:8080)",
    )
    add.add_argument(
        "--credential-file",
        type=Path,
        metavar="PATH",
        help=f"file holding a contributor's credential (default: ${CREDENTIAL_FILE_ENV}, "
        f"else ${CREDENTIAL_ENV} holds the credential itself)",
    )
    add.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.name is not None and args.shot is None:
        raise ImageCliError("--name goes with --shot (a take's name is set when it is created)")
    api = Api(args.coordinator, _credential(args.credential_file))
    path: Path = args.file
    if not path.is_file():
        raise ImageCliError(f"{path}: not a file")
    progress = Progress(sys.stderr, quiet=args.quiet)
    digests = hash_file(path, progress)
    unpacked = unpacked_image(path, progress)
    if args.shot is not None:
        body: dict[str, Any] = {
            "name": args.name or path.name,
            "size": digests.size,
            "sha256": digests.sha256,
            "md5": digests.md5,
        }
        if unpacked is not None:
            # Declared with the take, so the image store refuses an upload that unpacks to
            # anything else, and kiosks check the unpacked stream while they write it.
            body["extracted_size"] = unpacked.extracted_size
            body["extracted_sha256"] = unpacked.extracted_sha256
        if args.notes:
            body["notes"] = args.notes
        take = api.call("POST", f"/shots/{args.shot}/takes", body)
        take_id = int(take["id"])
        progress.note(f"created take {take_id} {take['name']!r} under shot {args.shot}")
    else:
        take_id = args.take
    status = api.call("GET", f"/takes/{take_id}/image/upload")
    if (status["size"], status["sha256"]) != (digests.size, digests.sha256):
        raise ImageCliError(
            f"{path} is not the image of take {take_id} {status['name']!r}: the file has "
            f"{digests.size} bytes, SHA-256 {digests.sha256}; the take has {status['size']} "
            f"bytes, SHA-256 {status['sha256']}"
        )
    if status["present"]:
        progress.note(f"take {take_id} already has its image; nothing to upload")
    else:
        status = upload(api, take_id, path, digests, int(status["offset"]), progress)
    out = {**status, "md5": digests.md5}
    if unpacked is not None:
        out["extracted_size"] = unpacked.extracted_size
        out["extracted_sha256"] = unpacked.extracted_sha256
    print(json.dumps(out, indent=2))
    return 0


def unpacked_image(path: Path, progress: Progress) -> Contents | None:
    """What a compressed file unpacks to (the image store's own decoding, so both agree), or
    None for a raw image. A file that does not unpack to one sound image stops here, before
    anything is created or sent."""
    from coordinator.images.contents import NotAnImage, inspect

    try:
        found = inspect(path, on_piece=lambda done: progress.show_open("unpacking", done))
    except NotAnImage as exc:
        progress.done()
        raise ImageCliError(f"{path} is not a burnable image: {exc}") from None
    progress.done()
    if found is not None:
        progress.note(
            f"{found.encoding} image: unpacks to {size_text(found.extracted_size)}, "
            f"SHA-256 {found.extracted_sha256}"
        )
    return found


def _credential(path: Path | None) -> str:
    file = path or (
        Path(os.environ[CREDENTIAL_FILE_ENV]) if CREDENTIAL_FILE_ENV in os.environ else None
    )
    if file is not None:
        try:
            token = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImageCliError(f"cannot read the credential file {file}: {exc.strerror}") from None
        if not token:
            raise ImageCliError(f"the credential file {file} is empty")
        return token
    token = os.environ.get(CREDENTIAL_ENV, "").strip()
    if not token:
        raise ImageCliError(
            f"no credential: give --credential-file, or set ${CREDENTIAL_FILE_ENV} or "
            f"${CREDENTIAL_ENV}"
        )
    return token


def hash_file(path: Path, progress: Progress) -> Digests:
    total = path.stat().st_size
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    done = 0
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            sha.update(block)
            md5.update(block)
            done += len(block)
            progress.show("hashing", done, total)
    progress.done()
    if done == 0:
        raise ImageCliError(f"{path} is empty")
    return Digests(done, sha.hexdigest(), md5.hexdigest())


def upload(
    api: Api, take_id: int, path: Path, digests: Digests, offset: int, progress: Progress
) -> dict[str, Any]:
    """Send the image from `offset`; on a broken connection ask where to go on and retry."""
    last = ""
    for attempt in range(ATTEMPTS):
        if offset:
            progress.note(f"resuming at byte {offset} of {digests.size}")
        base = offset

        def sent(n: int, base: int = base) -> None:
            progress.show("uploading", base + n, digests.size)

        try:
            with path.open("rb") as f:
                f.seek(offset)
                reply = api.put_range(
                    f"/takes/{take_id}/image",
                    f,
                    offset,
                    digests.size,
                    sent,
                )
            progress.done()
            if reply.get("present"):
                return reply
            offset = int(reply["offset"])
        except (OSError, http.client.HTTPException) as exc:
            progress.done()
            last = str(exc) or type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                time.sleep(min(8.0, 0.5 * 2**attempt))  # back off before asking again
            offset = int(api.call("GET", f"/takes/{take_id}/image/upload")["offset"])
    raise ImageCliError(f"upload of {path} did not finish after {ATTEMPTS} tries: {last}")


class Api:
    """A few calls to the coordinator's REST API; problems become one-line `ImageCliError`s."""

    def __init__(self, base: str, token: str) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageCliError(f"--coordinator must be an http(s):// URL, got {base!r}")
        self.parts = parts
        self.prefix = parts.path.rstrip("/") + "/api/v1"
        self.token = token

    def _conn(self) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self.parts.scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(self.parts.hostname or "", self.parts.port, timeout=TIMEOUT)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = self._conn()
        try:
            headers = self._headers()
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                conn.request(method, self.prefix + path, body=data, headers=headers)
                resp = conn.getresponse()
                return _answer(method, path, resp)
            except OSError as exc:
                raise ImageCliError(
                    f"cannot reach the coordinator at {self.parts.geturl()}: {exc.strerror or exc}"
                ) from None
        finally:
            conn.close()

    def put_range(
        self, path: str, f: BinaryIO, start: int, size: int, sent: Callable[[int], None]
    ) -> dict[str, Any]:
        conn = self._conn()
        try:
            conn.putrequest("PUT", self.prefix + path)
            for key, value in self._headers().items():
                conn.putheader(key, value)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(size - start))
            conn.putheader("Content-Range", f"bytes {start}-{size - 1}/{size}")
            conn.endheaders()
            done = 0
            while block := f.read(SEND_BLOCK):
                conn.send(block)
                done += len(block)
                sent(done)
            return _answer("PUT", path, conn.getresponse())
        finally:
            conn.close()


def _answer(method: str, path: str, resp: http.client.HTTPResponse) -> dict[str, Any]:
    raw = resp.read()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if resp.status >= 400:
        detail = data.get("detail") if isinstance(data, dict) else None
        raise ImageCliError(f"{method} {path}: {resp.status} {detail or resp.reason}")
    if not isinstance(data, dict):
        raise ImageCliError(f"{method} {path}: the coordinator answered {raw[:80]!r}")
    return data


class Progress:
    """A progress bar on a terminal; nothing but the notes when stderr is not one."""

    WIDTH = 30

    def __init__(self, out: Any, *, quiet: bool) -> None:
        self.out = out
        self.bar = not quiet and out.isatty()
        self.drawn = False

    def show(self, what: str, done: int, total: int) -> None:
        if not self.bar or total <= 0:
            return
        filled = self.WIDTH * done // total
        line = (
            f"\r{what:9} [{'#' * filled}{' ' * (self.WIDTH - filled)}] {100 * done // total:3d}% "
            f"{size_text(done)} of {size_text(total)}"
        )
        self.out.write(line)
        self.out.flush()
        self.drawn = True

    def show_open(self, what: str, done: int) -> None:
        """Progress with no known end (an image being unpacked): the bytes so far."""
        if not self.bar:
            return
        self.out.write(f"\r{what:9} {size_text(done)}")
        self.out.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = False

    def note(self, text: str) -> None:
        self.done()
        print(f"burnstand-coordinator: {text}", file=self.out, flush=True)
