"""Logging the way every burnstand daemon does it: one event a line, its fields as key=value
(or one JSON object a line for log shippers), chosen by `--log-level` and `--log-format`.

The fields are what the code passes as `extra=` (``log.info("image stored", extra={"size":
...})``); the standard attributes of a log record are not repeated. A value with spaces, quotes
or an equals sign is quoted, so a line always splits back into the same fields. Standard library
only: this sits below both the coordinator and the appliance.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from plumbing.logargs import FORMATS, LEVELS, add_arguments

__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "TextFormatter",
    "add_arguments",
    "fields",
    "setup",
]

# Every attribute a plain LogRecord has: anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def _quoted(value: object) -> str:
    text = str(value)
    if text and not any(ch.isspace() or ch in '"=' for ch in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-12-07T15:30:00.123Z INFO coordinator.images image stored size=3000000 ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={_quoted(v)}" for k, v in fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + _quoted(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's events to `stream` (stderr) in `fmt`, from `level` up."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
