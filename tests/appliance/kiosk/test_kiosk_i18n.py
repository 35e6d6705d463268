"""The kiosk speaks the visitor's language: every string it shows has a translation in each
shipped catalog, the attract screen's language button switches, and the agent's config sets
the language a visitor is greeted in."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator

import pytest
from babel.messages.catalog import Message
from kiosk_helpers import LEFT, PIN, Agent, screen_text, wait_for
from textual.pilot import Pilot

from appliance.config import KIOSK_LANGUAGES, ConfigError, parse_config
from appliance.drives.base import Phase
from appliance.kiosk import i18n
from appliance.kiosk.app import KioskApp
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.pick_image import PickImageScreen
from appliance.kiosk.screens.progress import ProgressScreen
from appliance.kiosk.screens.result import ResultScreen

TRANSLATED = [code for code in i18n.LANGUAGES if code != i18n.SOURCE]


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_shipped_languages_are_the_ones_the_config_accepts() -> None:
    assert set(i18n.LANGUAGES) == set(KIOSK_LANGUAGES)
    for code in TRANSLATED:
        assert i18n.catalog_path(code).is_file()


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_kiosk_string_is_translated_in_the_catalog(code: str) -> None:
    catalog = i18n.load_catalog(code)
    source = list(i18n.messages())
    assert len(source) > 50  # the extraction found the kiosk's strings
    for msgid, line in source:
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entry: Message | None = catalog.get(key)
        where = f"{code}.po, {msgid!r} (line {line})"
        assert entry is not None, f"missing from {where}: run python -m appliance.kiosk.i18n"
        assert not entry.fuzzy, f"fuzzy in {where}"
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert all(forms), f"untranslated in {where}"
        for form in forms:
            # A translation names the same {fields} as its source, or .format() breaks.
            assert _fields(form) == _fields(key), f"{where}: {form!r}"


def test_an_unknown_language_is_refused_with_the_shipped_ones() -> None:
    with pytest.raises(i18n.UnknownLanguage, match="shipped: de, en, es"):
        i18n.set_language("fr")
    with pytest.raises(ConfigError, match=r"\[kiosk\] language: 'fr' is not a kiosk language"):
        parse_config('[kiosk]\nlanguage = "fr"\n')
    assert parse_config('[kiosk]\nlanguage = "de"\n').kiosk_language == "de"


@pytest.fixture
async def kiosk(agent: Agent) -> AsyncIterator[tuple[KioskApp, Pilot[None]]]:
    app = KioskApp(agent.path, pin=PIN)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "the kiosk")
        yield app, pilot


async def test_the_language_button_goes_round_the_shipped_languages(
    kiosk: tuple[KioskApp, Pilot[None]],
) -> None:
    app, pilot = kiosk
    assert "Tap to start" in screen_text(pilot)
    for shown, offers in (("Zum Starten tippen", "Español"), ("Toca para empezar", "English")):
        await pilot.click("#language")
        await wait_for(pilot, lambda s=shown: s in screen_text(pilot), shown)  # type: ignore[misc]
        assert offers in screen_text(pilot).splitlines()
    await pilot.click("#language")
    await wait_for(pilot, lambda: "Tap to start" in screen_text(pilot), "English again")
    assert isinstance(app.screen, AttractScreen)


async def test_the_agent_sets_the_default_and_the_next_visitor_gets_it_back(agent: Agent) -> None:
    agent.handler.language = "es"
    app = KioskApp(agent.path, pin=PIN)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "Toca para empezar" in screen_text(pilot), "Spanish")
        await pilot.click("#language")  # this visitor reads English
        await wait_for(pilot, lambda: "Tap to start" in screen_text(pilot), "English")
        agent.handler.fail_next(LEFT, "verify-mismatch", "sector 9 differs", phase=Phase.VERIFY)
        await pilot.click("#start")
        await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen), "images")
        await pilot.click("#image-2")
        await pilot.click("#drive-0")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), "progress")
        await agent.handler.advance(300.0)
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
        assert "The disc did not read back correctly." in screen_text(pilot)
        await pilot.click("#done")
        await wait_for(pilot, lambda: "Toca para empezar" in screen_text(pilot), "Spanish again")


async def _texts(agent: Agent, code: str) -> list[str]:
    """What the attract, image list and failed-result screens show in language `code`."""
    agent.handler.language = code
    agent.handler.load_media(LEFT)
    app = KioskApp(agent.path, pin=PIN)
    shown: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "connect")
        await wait_for(pilot, lambda: i18n.language() == code, code)
        shown += screen_text(pilot).splitlines()
        agent.handler.fail_next(LEFT, "verify-mismatch", "sector 9 differs", phase=Phase.VERIFY)
        await pilot.click("#start")
        await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen), "images")
        shown += screen_text(pilot).splitlines()
        await pilot.click("#image-2")
        await pilot.click("#drive-0")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), "progress")
        shown += screen_text(pilot).splitlines()
        await agent.handler.advance(300.0)
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
        shown += screen_text(pilot).splitlines()
    return shown


@pytest.mark.parametrize("code", TRANSLATED)
async def test_no_english_is_left_on_the_visitors_screens(agent: Agent, code: str) -> None:
    english = set(await _texts(agent, "en"))
    translated = await _texts(agent, code)
    # What is the same in every language: names from the catalog and the drives, and numbers.
    data = {"Burnstand", "Details"}
    for image in agent.handler.catalog:
        data |= {image["name"], image["notes"]}
    for drive in agent.handler.drive_list:
        data.add(drive.name)
    same = [
        line
        for line in translated
        if line in english and line not in data and re.search(r"[A-Za-z]{3}", line)
    ]
    assert same == [], f"shown in English on the {code} kiosk"
    assert i18n.missing() == set(), "strings shown without a translation in a shipped catalog"
