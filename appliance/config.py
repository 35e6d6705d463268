"""The agent's TOML configuration, checked at the edge so a typo fails at start with one clear line.

`load_config(path)` reads an `agent.toml` and returns a frozen `AgentConfig`; every value it does
not like raises `ConfigError` naming the file, the table and the key, e.g.
"agent.toml: [cache] size: must be a positive size like '20G'". Unknown keys are errors too, so a
misspelt `[drives] dicover = true` is caught instead of silently ignored. docs/agent.md lists every
key with an example. Nothing here touches a drive, the network or GPIO: the agent does that.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

DEFAULT_STATE_DIR: Final = Path("/var/lib/burnstand")
DEFAULT_CACHE_DIR: Final = Path("/var/cache/burnstand/images")
DEFAULT_CACHE_SIZE: Final = 20 * 1000**3
DEFAULT_SOCKET: Final = Path("/run/burnstand/agent.sock")
OPTICAL_CAPS: Final = ("CDR", "DVDR", "BDR")
SIM_KINDS: Final = ("optical", "block")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


class ConfigError(Exception):
    """A config value the agent cannot run with; the message names the file, table and key."""


@dataclass(frozen=True)
class SimulatedDriveConfig:
    name: str
    path: str  # a stable made-up path ("sim:left"): the drive's uid and LED key derive from it
    kind: str  # "optical" | "block"
    speed: float  # bytes per second
    capacity: int | None
    capabilities: frozenset[str]


@dataclass(frozen=True)
class OpticalDriveConfig:
    """A burner named explicitly: /dev/srN, or a `stdio:FILE` pseudo-drive for demos and tests."""

    path: str
    name: str
    run_as: str | None = None


@dataclass(frozen=True)
class LedPins:
    drives: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    link: int | None = None
    eject_buttons: Mapping[str, int] = field(default_factory=dict)


DEFAULT_PEER_PORT: Final = 8765


@dataclass(frozen=True)
class ShareConfig:
    """`[share]`: fetching images from the other kiosks of the show, and serving them ours.
    Off by default: turn it on only on a LAN the kiosks of one show share (docs/agent.md)."""

    fetch: bool = False  # fetch chunks from peers (and tell the tracker what we hold)
    serve: bool = False  # run the peer server
    port: int = DEFAULT_PEER_PORT
    bind: str = "0.0.0.0"  # noqa: S104 - the LAN is where the other kiosks are
    address: str | None = None  # the host other kiosks reach us at; None = found out
    max_uploads: int = 4
    upload_rate: int | None = None  # bytes a second for all uploads together; None = unlimited
    window: int = 8  # chunks fetched ahead of the one being written (memory: window x 4 MiB)
    stall: float = 20.0  # seconds without a byte before a source is given up on for a chunk


@dataclass(frozen=True)
class AgentConfig:
    name: str = "burnstand kiosk"
    coordinator_url: str | None = None  # base URL, http(s)://host:port; None = offline only
    credential: str | None = None
    session: str | None = None
    show: int | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    cache_size: int = DEFAULT_CACHE_SIZE
    # Seconds a download may go without a byte before it is resumed (RETRIES times, then failed).
    download_timeout: float = 30.0
    simulated: tuple[SimulatedDriveConfig, ...] = ()
    optical: tuple[OpticalDriveConfig, ...] = ()
    discover: bool = False
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    leds: LedPins = field(default_factory=LedPins)
    socket: Path = DEFAULT_SOCKET
    # Prometheus metrics on 127.0.0.1:metrics_port (appliance/metrics.py); None = not served.
    metrics_port: int | None = None
    kiosk_pin: str | None = None
    # The language the kiosk speaks to a visitor until they pick another (a shipped one).
    kiosk_language: str = "en"
    # Used only while there is no credential: the kiosk asks the coordinator to be accepted.
    enrollment_code: str | None = None
    share: ShareConfig = field(default_factory=ShareConfig)

    @property
    def link_url(self) -> str | None:
        """The WebSocket URL of the coordinator's `/link` endpoint."""
        if self.coordinator_url is None:
            return None
        parts = urlsplit(self.coordinator_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        if not path.endswith("/link"):
            path += "/link"
        return f"{scheme}://{parts.netloc}{path}"


def transport_is_safe(url: str) -> bool:
    """TLS, or plain HTTP that never leaves this machine (the demo, a local coordinator)."""
    parts = urlsplit(url)
    if parts.scheme in ("https", "wss"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_size(value: object) -> int:
    """Bytes from 1500, "700M", "4.7G", "20GiB"; decimal units unless spelt with an i."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("not positive")
        return value
    if not isinstance(value, str) or not (m := _SIZE.match(value)):
        raise ValueError("not a size")
    unit = (m.group(2) or "").lower()
    binary = "i" in unit
    letter = unit[:1] if unit not in ("b", "") else ""
    base = (1024 ** " kmgt".index(letter)) if binary else _UNITS[letter]
    size = int(float(m.group(1)) * base)
    if size <= 0:
        raise ValueError("not positive")
    return size


class _Reader:
    """Takes values out of one TOML table, turning every problem into a ConfigError."""

    def __init__(self, file: str, table: str, data: object) -> None:
        self.file = file
        self.table = table
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{table}] must be a table")
        self.data: dict[str, Any] = dict(data)
        self.seen: set[str] = set()

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.file}: [{self.table}] {key}: {why}")

    def get(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def string(self, key: str, default: str | None = None, *, empty: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(key, "must be a non-empty string")
        return value.strip()

    def text(self, key: str, default: str) -> str:
        value = self.string(key)
        return default if value is None else value

    def path(self, key: str, default: Path) -> Path:
        value = self.string(key)
        return default if value is None else Path(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def size(self, key: str, default: int | None, example: str) -> int | None:
        value = self.get(key)
        if value is None:
            return default
        try:
            return parse_size(value)
        except ValueError:
            raise self.fail(key, f"must be a positive size like '{example}'") from None

    def pin(self, key: str, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 27:
            raise self.fail(key, f"{value!r} is not a BCM GPIO pin number (0-27)")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a list of device paths")
        return tuple(value)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise self.fail(extra[0], "unknown key (see docs/agent.md)")


_TABLES: Final = ("agent", "coordinator", "cache", "drives", "leds", "kiosk", "share")


def load_config(path: Path) -> AgentConfig:
    """Read and check an agent.toml; ConfigError for anything unreadable or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_config(text, path.name)


def parse_config(text: str, file: str = "agent.toml") -> AgentConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{file}: [{key}]: unknown table (known: {', '.join(_TABLES)})")

    agent = _Reader(file, "agent", data.get("agent", {}))
    name = agent.text("name", "burnstand kiosk")
    state_dir = agent.path("state_dir", DEFAULT_STATE_DIR)
    socket = agent.path("socket", DEFAULT_SOCKET)
    metrics_port = agent.get("metrics_port")
    if metrics_port is not None and (
        not isinstance(metrics_port, int)
        or isinstance(metrics_port, bool)
        or not 0 < metrics_port < 65536
    ):
        raise agent.fail("metrics_port", "must be a port number, 1..65535")
    agent.done()

    coord = _Reader(file, "coordinator", data.get("coordinator", {}))
    url = coord.string("url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise coord.fail("url", "must be an http(s):// or ws(s):// URL with a host")
    credential = coord.string("credential")
    credential_file = coord.string("credential_file")
    if credential is not None and credential_file is not None:
        raise coord.fail("credential_file", "give credential or credential_file, not both")
    if credential_file is not None:
        try:
            credential = Path(credential_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise coord.fail("credential_file", f"cannot read it: {exc.strerror}") from exc
        if not credential:
            raise coord.fail("credential_file", "the file is empty")
    session = coord.string("session")
    show = coord.get("show")
    if show is not None and (not isinstance(show, int) or isinstance(show, bool) or show <= 0):
        raise coord.fail("show", "must be a show id (a positive integer)")
    if url is not None and credential is None:
        credential = _saved_credential(coord, state_dir)
    enrollment_code = _enrollment_code(coord)
    if url is not None and credential is None and enrollment_code is None:
        raise coord.fail(
            "credential", "is needed when url is set (or enrollment_code_file and show, to enroll)"
        )
    if enrollment_code is not None and credential is None and show is None:
        raise coord.fail("show", "is needed to enroll: the id of the show to join")
    insecure = coord.boolean("insecure_transport", False)
    if url is not None and not insecure and not transport_is_safe(url):
        raise coord.fail(
            "url",
            f"{urlsplit(url).scheme}:// to {urlsplit(url).hostname} would send the kiosk's "
            "credential unencrypted; use https:// (or wss://), or set insecure_transport = true "
            "on a network you trust",
        )
    coord.done()

    cache = _Reader(file, "cache", data.get("cache", {}))
    cache_dir = cache.path("dir", DEFAULT_CACHE_DIR)
    cache_size = cache.size("size", DEFAULT_CACHE_SIZE, "20G") or DEFAULT_CACHE_SIZE
    download_timeout = cache.get("download_timeout")
    if download_timeout is None:
        download_timeout = 30.0
    elif (
        not isinstance(download_timeout, int | float)
        or isinstance(download_timeout, bool)
        or not 0 < download_timeout <= 3600
    ):
        raise cache.fail("download_timeout", "must be a number of seconds, above 0 and up to 3600")
    cache.done()

    drives = _Reader(file, "drives", data.get("drives", {}))
    discover = drives.boolean("discover", False)
    allow = drives.strings("allow")
    deny = drives.strings("deny") or ()
    simulated = _simulated(file, drives.get("simulated"))
    optical = _optical(file, drives.get("optical"))
    drives.done()
    paths = [d.path for d in simulated] + [d.path for d in optical]
    for p in paths:
        if paths.count(p) > 1:
            raise ConfigError(f"{file}: [drives] path: {p!r} is used by two drives")

    leds = _leds(file, data.get("leds", {}))

    kiosk = _Reader(file, "kiosk", data.get("kiosk", {}))
    pin = kiosk.string("pin")
    if pin is not None and not pin.isdigit():
        raise kiosk.fail("pin", "must be digits only (it is typed on a keypad)")
    kiosk.string("socket")  # the kiosk's own key; accepted so one file serves both
    language = kiosk.text("language", "en")
    if language not in KIOSK_LANGUAGES:
        raise kiosk.fail(
            "language", f"{language!r} is not a kiosk language ({', '.join(KIOSK_LANGUAGES)})"
        )
    kiosk.done()

    share = _share(file, data.get("share", {}))

    return AgentConfig(
        name=name,
        coordinator_url=url,
        credential=credential,
        session=session,
        show=show,
        state_dir=state_dir,
        cache_dir=cache_dir,
        cache_size=cache_size,
        download_timeout=float(download_timeout),
        simulated=simulated,
        optical=optical,
        discover=discover,
        allow=allow,
        deny=deny,
        leds=leds,
        socket=socket,
        metrics_port=metrics_port,
        kiosk_pin=pin,
        kiosk_language=language,
        enrollment_code=enrollment_code,
        share=share,
    )


def _share(file: str, data: object) -> ShareConfig:
    table = _Reader(file, "share", data)
    enabled = table.boolean("enabled", False)
    serve = table.boolean("serve", enabled)
    port = table.get("port")
    if port is None:
        port = DEFAULT_PEER_PORT
    elif not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise table.fail("port", "must be a port number, 1..65535")
    uploads = table.get("max_uploads")
    if uploads is None:
        uploads = 4
    elif not isinstance(uploads, int) or isinstance(uploads, bool) or not 0 < uploads <= 64:
        raise table.fail("max_uploads", "must be a number of uploads, 1..64")
    rate = table.size("upload_rate", None, "5M")
    address = table.string("address")
    bind = table.text("bind", "0.0.0.0")  # noqa: S104 - see ShareConfig
    table.done()
    return ShareConfig(
        fetch=enabled,
        serve=enabled and serve,
        port=port,
        bind=bind,
        address=address,
        max_uploads=uploads,
        upload_rate=rate,
    )


# The languages the kiosk ships complete catalogs for (appliance/kiosk/locale).
KIOSK_LANGUAGES: Final = ("en", "de", "es")

SAVED_CREDENTIAL: Final = "credential"
"""The file in `state_dir` where an enrolled kiosk keeps the credential it was handed."""


def _saved_credential(coord: _Reader, state_dir: Path) -> str | None:
    path = state_dir / SAVED_CREDENTIAL
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise coord.fail("credential", f"cannot read the saved {path}: {exc.strerror}") from exc
    return text or None


_CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def normalize_enrollment_code(text: str) -> str | None:
    """``abcd-2345`` → ``ABCD2345``; None when it is not 8 characters of the code alphabet."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != 8 or any(c not in _CODE_ALPHABET for c in code):
        return None
    return code


def _enrollment_code(coord: _Reader) -> str | None:
    """The code from `enrollment_code` or `enrollment_code_file` (the image writes the file)."""
    code = coord.string("enrollment_code")
    code_file = coord.string("enrollment_code_file")
    key = "enrollment_code"
    if code is not None and code_file is not None:
        raise coord.fail("enrollment_code_file", "give enrollment_code or its file, not both")
    if code_file is not None:
        key = "enrollment_code_file"
        try:
            code = Path(code_file).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            # First boot makes the file; until then (or once enrolled) there is nothing to use.
            return None
        except OSError as exc:
            raise coord.fail(key, f"cannot read it: {exc.strerror}") from exc
        if not code:
            return None
    if code is None:
        return None
    normal = normalize_enrollment_code(code)
    if normal is None:
        raise coord.fail(key, "must be 8 letters and digits like ABCD-2345 (no 0, O, 1 or I)")
    return normal


def _entries(file: str, table: str, value: object) -> list[_Reader]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{file}: [[{table}]] must be an array of tables")
    return [_Reader(file, f"{table}[{i}]", item) for i, item in enumerate(value)]


def _simulated(file: str, value: object) -> tuple[SimulatedDriveConfig, ...]:
    out = []
    for i, r in enumerate(_entries(file, "drives.simulated", value)):
        name = r.text("name", f"Simulated {i + 1}")
        path = r.text("path", f"sim:{i}")
        kind = r.text("kind", "optical")
        if kind not in SIM_KINDS:
            raise r.fail("kind", f"must be one of {', '.join(SIM_KINDS)}")
        speed = r.size("speed", 20_000_000, "20M") or 20_000_000
        capacity = r.size("capacity", 4_700_000_000 if kind == "optical" else None, "4.7G")
        caps_value = r.get("capabilities")
        if caps_value is None:
            caps = frozenset(OPTICAL_CAPS) if kind == "optical" else frozenset({"BLOCK"})
        else:
            known = (*OPTICAL_CAPS, "BLOCK")
            if (
                not isinstance(caps_value, list)
                or not caps_value
                or not all(c in known for c in caps_value)
            ):
                raise r.fail("capabilities", f"must be a list drawn from {', '.join(known)}")
            caps = frozenset(caps_value)
        r.done()
        out.append(SimulatedDriveConfig(name, path, kind, float(speed), capacity, caps))
    return tuple(out)


def _optical(file: str, value: object) -> tuple[OpticalDriveConfig, ...]:
    out = []
    for r in _entries(file, "drives.optical", value):
        path = r.string("path")
        if path is None or not (path.startswith("stdio:") or path.startswith("/dev/")):
            raise r.fail("path", "must be /dev/srN or stdio:FILE")
        name = r.text("name", path)
        run_as = r.string("run_as")
        r.done()
        out.append(OpticalDriveConfig(path, name, run_as))
    return tuple(out)


def _leds(file: str, value: object) -> LedPins:
    r = _Reader(file, "leds", value)
    link_pin = r.get("link")
    link = None if link_pin is None else r.pin("link", link_pin)
    used: dict[int, str] = {} if link is None else {link: "link"}

    def claim(key: str, pin: int) -> None:
        if pin in used:
            raise r.fail(key, f"GPIO{pin} is already used by {used[pin]}")
        used[pin] = key

    drives: dict[str, tuple[int, int]] = {}
    raw_drives = r.get("drives") or {}
    if not isinstance(raw_drives, dict):
        raise r.fail("drives", "must be a table of drive path = [green, red]")
    for path, pair in raw_drives.items():
        key = f"drives.{path!r}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise r.fail(key, "must be [green, red] pin numbers")
        green, red = r.pin(key, pair[0]), r.pin(key, pair[1])
        claim(key, green)
        claim(key, red)
        drives[path] = (green, red)
    buttons: dict[str, int] = {}
    raw_buttons = r.get("eject_buttons") or {}
    if not isinstance(raw_buttons, dict):
        raise r.fail("eject_buttons", "must be a table of drive path = pin")
    for path, pin in raw_buttons.items():
        key = f"eject_buttons.{path!r}"
        claim(key, r.pin(key, pin))
        buttons[path] = pin
    r.done()
    return LedPins(drives, link, buttons)
