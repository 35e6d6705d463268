"""The `--log-level` / `--log-format` options every burnstand daemon takes (plumbing.logs sets
logging up from them). Apart from `logs` so that a command line can offer them without importing
`logging`: `burnstand-agent burn` builds the `run` command's options too, before its first event.
"""

from __future__ import annotations

import argparse

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", choices=LEVELS, default="info", help="least severe events logged (info)"
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text: one event a line with key=value fields; json: one JSON object a line",
    )
