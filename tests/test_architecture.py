"""docs/architecture.md names real code: every module, class and function of "One burn, end to end"
exists, so a newcomer following it never lands on a name that was renamed away."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
OURS = ("wire.", "plumbing.", "coordinator.", "appliance.", "demo.")


def burn_path() -> str:
    text = DOC.read_text()
    start = text.index("## One burn, end to end")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def python_names() -> list[str]:
    names = re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", burn_path())
    return sorted({n for n in names if n.startswith(OURS)})


def js_names() -> list[tuple[str, str, str]]:
    found = re.findall(r"`([A-Z]\w*)\.(\w+)` \(`(coordinator/web/\w+\.js)`\)", burn_path())
    return sorted(set(found))


def resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_burn_path_names_every_step() -> None:
    assert len(python_names()) >= 20
    assert len(js_names()) == 2


@pytest.mark.parametrize("dotted", python_names())
def test_each_named_python_module_and_function_exists(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ModuleNotFoundError, AttributeError) as exc:
        pytest.fail(f"docs/architecture.md names {dotted}, which does not exist ({exc})")


@pytest.mark.parametrize(("cls", "method", "path"), js_names())
def test_each_named_dashboard_function_exists(cls: str, method: str, path: str) -> None:
    source = (ROOT / path).read_text()
    assert re.search(rf"\bclass {cls}\b", source), f"{path} has no class {cls}"
    assert re.search(rf"^\s+(?:async )?{method}\(", source, re.M), f"{cls} has no {method}()"
