"""Sizes read the same on every screen: decimal units, like Imager, Etcher and the disc's label."""

from __future__ import annotations

import pytest

from plumbing.units import size_text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (3 * 1024 * 1024, "3.1 MB"),  # the demo's 3 MiB image, as the kiosk says it
        (256 * 1024 * 1024, "268.4 MB"),
        (700_000_000, "700.0 MB"),  # a "700 MB" CD-R is 700 MB here too
        (4_700_000_000, "4.7 GB"),  # a "4.7 GB" DVD-R
        (2 * 10**15, "2000.0 TB"),
    ],
)
def test_sizes_are_decimal(size: int, text: str) -> None:
    assert size_text(size) == text
