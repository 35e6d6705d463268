"""`burnstand-coordinator serve --config coordinator.toml`: every `serve` flag as a key.

The keys are the flags' names with underscores (`--max-credential-hours 4` is
`max_credential_hours = 4`, `--burn-public-display` is `burn_public_display = true`), read from
the parser itself, so a flag added to `serve` is a key at once. Each value goes through the same
check as on the command line (the flag's type and choices); every bad key is reported, one line
each, and nothing starts. Flags given on the command line win over the file.
"""

from __future__ import annotations

import argparse
import difflib
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NOT_KEYS = {"help", "config", "version"}


class ConfigFileError(Exception):
    """The file's problems, one per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in NOT_KEYS and a.option_strings}


def _value(action: argparse.Action, raw: Any) -> tuple[Any, str | None]:
    """The value as the flag would have it, or the reason it is refused."""
    flag = action.option_strings[-1]
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(raw, bool):
            return None, f"must be true or false (the flag {flag})"
        return raw, None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None, f"must be a string or a number, not {type(raw).__name__}"
    convert = action.type if callable(action.type) else str
    try:
        value = convert(str(raw)) if convert is not str else str(raw)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        return None, str(exc) or f"not a valid value for {flag}"
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        return None, f"must be one of {choices}, not {raw!r}"
    return value, None


def load(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The checked values of `path` for `parser` (the `serve` subparser)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError([f"{path}: not valid TOML: {exc}"]) from None
    actions = _actions(parser)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in data.items():
        action = actions.get(key)
        if action is None:
            near = difflib.get_close_matches(key, list(actions), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{path}: unknown key {key!r}{hint}")
            continue
        value, why = _value(action, raw)
        if why is not None:
            problems.append(f"{path}: {key}: {why}")
        else:
            values[key] = value
    if problems:
        raise ConfigFileError(problems)
    return values


def serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `serve` subparser of the coordinator's command line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices["serve"]
            return found
    raise LookupError("the command line has no serve command")


def apply(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """If `argv` runs `serve --config FILE`, make the file's values the flags' defaults (so the
    command line still wins) and let its keys stand in for required flags."""
    if not argv or argv[0] != "serve":
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(list(argv[1:]))
    if known.config is None:
        return
    serve = serve_parser(parser)
    values = load(known.config, serve)
    for action in _actions(serve).values():
        if action.dest in values:
            action.required = False
    serve.set_defaults(**values)
