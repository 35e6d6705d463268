"""The kiosk's side of enrollment: ask the coordinator with the one-time code, wait to be accepted.

`Enrollment.run()` posts the code, the kiosk's name and its show to `POST /api/v1/enroll`, then
polls `POST /api/v1/enroll/poll` with the poll token it got, every `interval_min` seconds growing
to `interval_max`, until a show admin decides. Acceptance returns the appliance credential, which
`save_credential` writes to the agent's state directory (mode 0600, written whole or not at all)
so the next start needs no enrollment. A rejection, or a code the coordinator calls spent, raises
`EnrollmentRefused` with the coordinator's own words; outages and rate limits are waited out.
Both loops are bounded by `max_attempts`.

The coordinator binds a pending request to its first asker's poll token, so with a `state_dir`
the token is kept there (mode 0600) and a restarted agent asks with it and keeps its request;
the confirmation phrase derived from it is written next to it for the kiosk's screen, where
the admin compares it with the one the dashboard shows before accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiohttp

from wire.enrollment import confirmation_phrase

log = logging.getLogger(__name__)

ENROLL_PATH: Final = "/api/v1/enroll"
POLL_PATH: Final = "/api/v1/enroll/poll"
POLL_TOKEN_FILE: Final = "enrollment-poll"  # noqa: S105  # a file name, not a secret
PHRASE_FILE: Final = "enrollment-phrase"
REQUEST_TIMEOUT: Final = 15.0

_jitter = random.SystemRandom()


class EnrollmentRefused(Exception):
    """The coordinator will not enroll this kiosk with this code (rejected, spent, unknown show)."""


class EnrollmentGaveUp(Exception):
    """The bounded number of attempts ran out without a decision."""


class _Retry(Exception):
    """A transient failure (no coordinator, 5xx, 429): wait and try again."""


def _api_base(url: str) -> str:
    """The coordinator's http(s) base from the configured URL (which may be ws(s)://…/link)."""
    scheme, sep, rest = url.partition("://")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    base = f"{scheme}{sep}{rest}".rstrip("/")
    return base.removesuffix("/link")


class Enrollment:
    def __init__(
        self,
        url: str,
        code: str,
        name: str,
        show: int | str,
        *,
        on_pending: Callable[[], None] | None = None,
        state_dir: Path | None = None,
        interval_min: float = 5.0,
        interval_max: float = 30.0,
        max_attempts: int = 200_000,
    ) -> None:
        if not 0 < interval_min <= interval_max:
            raise ValueError("enrollment polling needs 0 < interval_min <= interval_max")
        self.base = _api_base(url)
        self.code = code
        self.name = name
        self.show = show
        self._on_pending = on_pending
        self._state_dir = state_dir
        self._interval_min = interval_min
        self._interval_max = interval_max
        self._max_attempts = max_attempts

    async def run(self) -> str:
        """Enroll and wait; returns the appliance credential once a show admin accepts."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            delay = self._interval_min
            token: str | None = None
            saved = await asyncio.to_thread(self._load_token)
            for _ in range(self._max_attempts):
                try:
                    if token is None:
                        token = await self._ask(http, saved)
                        saved = token
                        await asyncio.to_thread(self._keep_token, token)
                        log.info("enrollment pending", extra={"code": self._shown})
                        if self._on_pending is not None:
                            self._on_pending()
                    else:
                        answer = await self._post(http, POLL_PATH, {"poll_token": token})
                        if answer is None:
                            # The request is gone (its show was removed): ask anew.
                            token = saved = None
                            continue
                        credential = self._decided(answer)
                        if credential is not None:
                            await asyncio.to_thread(self._forget_token)
                            return credential
                except _Retry as exc:
                    log.warning("enrollment: coordinator not reachable", extra={"error": str(exc)})
                await asyncio.sleep(_jitter.uniform(delay * 0.8, delay))
                delay = min(delay * 1.5, self._interval_max)
        raise EnrollmentGaveUp(f"no decision on enrollment {self._shown} after bounded polling")

    @property
    def _shown(self) -> str:
        return f"{self.code[:4]}-{self.code[4:]}"

    async def _ask(self, http: aiohttp.ClientSession, saved: str | None) -> str:
        body: dict[str, Any] = {"code": self.code, "name": self.name, "show": self.show}
        if saved is not None:
            body["poll_token"] = saved  # the same kiosk asking again keeps its request
        answer = await self._post(http, ENROLL_PATH, body)
        if answer is None or not isinstance(answer.get("poll_token"), str):
            raise EnrollmentRefused(f"enrollment {self._shown}: the coordinator sent no poll token")
        return str(answer["poll_token"])

    def _load_token(self) -> str | None:
        if self._state_dir is None:
            return None
        try:
            return (self._state_dir / POLL_TOKEN_FILE).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _keep_token(self, token: str) -> None:
        if self._state_dir is None:
            return
        save_credential(self._state_dir, token, POLL_TOKEN_FILE)
        phrase = self._state_dir / PHRASE_FILE
        phrase.write_text(confirmation_phrase(token) + "\n", encoding="utf-8")
        phrase.chmod(0o644)  # the kiosk (another user) shows it; it is no secret

    def _forget_token(self) -> None:
        if self._state_dir is None:
            return
        for name in (POLL_TOKEN_FILE, PHRASE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self._state_dir / name).unlink()

    def _decided(self, answer: dict[str, Any]) -> str | None:
        status = answer.get("status")
        if status == "accepted" and isinstance(answer.get("credential"), str):
            log.info("enrollment accepted", extra={"code": self._shown})
            return str(answer["credential"])
        if status == "rejected":
            raise EnrollmentRefused(
                f"a show admin rejected enrollment {self._shown}; the kiosk needs a new code"
            )
        if status != "pending":
            raise EnrollmentRefused(f"enrollment {self._shown}: unexpected answer {answer!r}")
        return None

    async def _post(
        self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The JSON answer; None for 404 on a poll; `_Retry` or `EnrollmentRefused` otherwise."""
        try:
            async with http.post(self.base + path, json=body) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _Retry(str(exc) or type(exc).__name__) from exc
        detail = data.get("detail") if isinstance(data, dict) else None
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}: {detail or ''}")
        if status == 404 and path == POLL_PATH:
            return None
        if status >= 400 or not isinstance(data, dict):
            raise EnrollmentRefused(f"enrollment {self._shown} refused (HTTP {status}): {detail}")
        return data


def save_credential(state_dir: Path, credential: str, filename: str = "credential") -> Path:
    """Write a secret readable by the agent's user only; a crash leaves no half file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / filename
    tmp = path.with_name(f".{filename}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old leftover keeps its mode otherwise
        os.write(fd, (credential + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
