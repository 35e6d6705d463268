"""Fixtures of the burn-protocol listener tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from seed_client import SeedClient


@pytest.fixture
async def clients() -> AsyncIterator[list[SeedClient]]:
    """Seed clients a test opened; each is closed when the test ends."""
    made: list[SeedClient] = []
    yield made
    for client in made:
        client.close()
