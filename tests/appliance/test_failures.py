"""Every way a burn can fail has one plain sentence a visitor or operator can act on."""

from __future__ import annotations

import pytest

from appliance import agent
from appliance.drives import base
from wire import failures


def _codes() -> set[str]:
    seen: set[str] = set()
    todo: list[type[base.BurnError]] = [base.BurnError]
    while todo:  # bounded: the error classes form a finite tree
        cls = todo.pop()
        seen.add(cls.code)
        todo.extend(cls.__subclasses__())
    return seen | {agent.FETCH_FAILED}


@pytest.mark.parametrize("code", sorted(_codes()))
def test_every_failure_code_has_its_own_sentence(code: str) -> None:
    text = failures.SENTENCES.get(code)
    assert text, f"no sentence for failure {code!r} in wire/failures.py"
    # What happened, then what to do: two short sentences, no tool jargon.
    assert text.count(". ") == 1, text
    assert text.endswith("."), text
    assert len(text) <= 100, text


def test_an_unknown_code_gets_the_general_sentence() -> None:
    assert failures.sentence("no-such-code") == failures.SENTENCES[failures.UNKNOWN]
    assert failures.sentence(None) == failures.SENTENCES[failures.UNKNOWN]
    assert failures.sentence("no-media").startswith("There is no blank disc")
