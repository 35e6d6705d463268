"""The protocol reference must name every verb, action, frame kind and close code the code knows."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from wire import agentmsg, burnproto, clientmsg, link, pubsub, relay

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _names(values: Iterable[object]) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, enum.Enum):
            out.append(str(v.value))
        else:
            out.append(str(v))
    return out


PROTOCOL_NAMES = {
    "burn protocol verb": _names(burnproto.VERBS),
    "burn protocol error code": _names(burnproto.ERROR_CODES),
    "link frame": _names(link.FRAMES),
    "link state": [s.name for s in link.State],
    "relay action": _names(relay.ACTIONS),
    "close code": _names(relay.CLOSE_CODES),
    "pub/sub action": _names(pubsub.ACTIONS),
    "agent message type": _names(agentmsg.TYPES),
    "browser command": _names(clientmsg.ACTIONS + clientmsg.PUSHES),
}


def _code_spans(text: str) -> set[str]:
    spans = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        spans.add(span.strip())
        # `QUEUE\t<md5>` documents QUEUE too; so does `4001` inside a table cell span.
        spans.update(re.split(r"[\s\\:=(){}\[\],\"]+", span))
    return spans


@pytest.mark.parametrize("kind", sorted(PROTOCOL_NAMES))
def test_every_protocol_name_is_in_the_reference(kind: str) -> None:
    spans = _code_spans((DOCS / "protocol.md").read_text(encoding="utf-8"))
    names = PROTOCOL_NAMES[kind]
    assert names, f"no {kind} names exported by wire/"
    missing = [n for n in names if n not in spans]
    assert not missing, f"docs/protocol.md does not document these {kind}s: {missing}"
