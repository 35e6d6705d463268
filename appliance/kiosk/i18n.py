"""The kiosk speaks the visitor's language: gettext over the Babel catalogs in `locale/`.

Every string the kiosk shows goes through `_` (or `ngettext` for counts). English is the source
language; each other shipped language has a `locale/<code>.po` catalog, kept with Babel
(`python -m appliance.kiosk.i18n` brings the catalogs up to date with the source, new strings
untranslated) and compiled in memory into `gettext.GNUTranslations` when a language is chosen,
so no compiled file can fall behind its source. A string asked for that the catalog lacks is
shown in English and remembered in `missing()`, which the tests check stays empty.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from appliance.control import WHY_NOT_OFFERED
from wire import failures

LOCALE_DIR: Final = Path(__file__).parent / "locale"
SOURCE: Final = "en"
# Shipped languages, each named in its own language (what the language button shows).
LANGUAGES: Final[dict[str, str]] = {"en": "English", "de": "Deutsch", "es": "Español"}
KEYWORDS: Final = {"_": None, "N_": None, "ngettext": (1, 2)}


class UnknownLanguage(ValueError):
    """A language code the kiosk ships no catalog for."""


class _Missing(gettext.NullTranslations):
    """The fallback of a catalog: answers in English and notes what the catalog lacked."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def gettext(self, message: str) -> str:
        self.seen.add(message)
        return message

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        self.seen.add(msgid1)
        return msgid1 if n == 1 else msgid2


_missing = _Missing()
_current: gettext.NullTranslations = gettext.NullTranslations()
_language = SOURCE


def checked(code: str) -> str:
    """`code` if the kiosk ships it, else `UnknownLanguage` naming the ones it does."""
    if code not in LANGUAGES:
        raise UnknownLanguage(
            f"no kiosk language {code!r}; shipped: {', '.join(sorted(LANGUAGES))}"
        )
    return code


def catalog_path(code: str) -> Path:
    return LOCALE_DIR / f"{code}.po"


def load_catalog(code: str) -> Catalog:
    with catalog_path(code).open("rb") as f:
        return read_po(f, locale=code, domain="kiosk")


def translations(code: str) -> gettext.NullTranslations:
    """The compiled translations of a shipped language (English: the source strings)."""
    if checked(code) == SOURCE:
        return gettext.NullTranslations()
    compiled = io.BytesIO()
    write_mo(compiled, load_catalog(code), use_fuzzy=False)
    compiled.seek(0)
    found = gettext.GNUTranslations(compiled)
    found.add_fallback(_missing)
    return found


def set_language(code: str) -> None:
    """Speak `code` from now on (a shipped language, else `UnknownLanguage`)."""
    global _current, _language
    _current, _language = translations(code), code


def language() -> str:
    return _language


def next_language(code: str) -> str:
    """The language the language button offers after `code` (round the shipped ones)."""
    codes = list(LANGUAGES)
    return codes[(codes.index(code) + 1) % len(codes)] if code in LANGUAGES else SOURCE


def _(message: str) -> str:
    return _current.gettext(message)


def N_(message: str) -> str:
    """Marks a string for the catalogs where it is defined; `_` translates it where shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.ngettext(singular, plural, n)


def missing() -> set[str]:
    """Strings shown in English since the start because a catalog lacked them."""
    return set(_missing.seen)


def messages() -> Iterator[tuple[str | tuple[str, ...], int | None]]:
    """Every message of the kiosk's source (and the failure sentences and media-sense reasons
    it shows), as
    (msgid or (singular, plural), line) pairs."""
    for _file, line, message, _comments, _ctx in extract_from_dir(
        Path(__file__).parent, keywords=KEYWORDS, comment_tags=("i18n:",)
    ):
        yield message, line
    for sentence in failures.SENTENCES.values():
        yield sentence, None
    for reason in WHY_NOT_OFFERED.values():
        yield reason, None


def update_catalogs() -> None:
    """Bring every shipped catalog up to date with the source: new strings are added
    untranslated, strings gone from the source are dropped."""
    template = Catalog(domain="kiosk")
    for message, _line in messages():
        template.add(message)
    for code in LANGUAGES:
        if code == SOURCE:
            continue
        path = catalog_path(code)
        catalog = load_catalog(code) if path.exists() else Catalog(locale=code, domain="kiosk")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.project, catalog.version = "burnstand kiosk", "1"
        catalog.fuzzy = False  # the header; an untranslated string stays empty, not fuzzy
        out = io.BytesIO()  # written whole, so a failure leaves the old catalog in place
        write_po(out, catalog, width=100, sort_output=True)
        path.write_bytes(out.getvalue())


if __name__ == "__main__":
    update_catalogs()
