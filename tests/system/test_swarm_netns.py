"""Kiosks of a show sharing an image on a venue LAN: each kiosk in its own network namespace on a
bridge the test makes, the coordinator behind a 40 Mbit/s `tc` link (tests/system/swarmnet.py).

Four kiosks (one of them serving damaged chunks) fetch one take at once with sharing on: every
honest kiosk ends with the image's exact SHA-256 in its cache, each of them banned the liar, and
the coordinator sent at most 1.5 times the image (without sharing it would be three times). The
take is 64 MiB here (`BURNSTAND_SWARM_MIB` changes it) so the run fits CI; the 8-kiosk, 256 MiB
figures against the same kiosks without sharing come from `make bench` (bench/bench_swarm.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.system.swarmnet import Venue, make_image, netns_available

MiB = 1024 * 1024
SIZE = int(os.environ.get("BURNSTAND_SWARM_MIB", "64")) * MiB
KIOSKS = 4


@pytest.fixture(scope="module")
def why_not() -> str | None:
    return netns_available()


async def test_kiosks_share_an_image_and_ban_a_liar(tmp_path: Path, why_not: str | None) -> None:
    if why_not is not None:
        pytest.skip(why_not)
    image = make_image(tmp_path / "images", SIZE)
    async with Venue(tmp_path / "venue", image, KIOSKS) as venue:
        shared = await venue.round(share=True, liar=True)
    assert len(shared.done) == KIOSKS - 1
    for kiosk in shared.done:
        assert kiosk["error"] is None
        assert kiosk["ok"], kiosk
    # The liar claims every chunk: whoever asked it banned it, and nobody banned an honest kiosk.
    assert all(set(kiosk["banned"]) <= {shared.liar} for kiosk in shared.done), shared.done
    assert any(kiosk["banned"] == [shared.liar] for kiosk in shared.done), shared.done
    ratio = shared.coordinator_bytes / SIZE
    print(
        f"swarm: {KIOSKS} kiosks, {SIZE // MiB} MiB, coordinator sent {ratio:.2f}x the image "
        f"(no sharing: {KIOSKS - 1}x), all verified after {shared.seconds:.1f} s"
    )
    for kiosk in shared.done:
        print(
            f"  kiosk: {kiosk['origin_bytes'] // MiB} MiB from the coordinator, "
            f"{kiosk['peer_bytes'] // MiB} MiB from peers"
        )
    assert ratio <= 1.5
    assert sum(k["peer_bytes"] for k in shared.done) > 0


async def test_kiosks_share_a_take_the_coordinator_fetched_from_its_url(
    tmp_path: Path, why_not: str | None
) -> None:
    """The issue's own case: the take names only an outside URL. The coordinator fetches it once
    (the kiosks cannot reach that host at all here), gives it its manifest, sends the kiosks the
    new catalog, and they share it with the coordinator as their origin."""
    if why_not is not None:
        pytest.skip(why_not)
    size = SIZE // 2
    image = make_image(tmp_path / "images", size, seed=21)
    async with Venue(tmp_path / "venue", image, KIOSKS - 1, outside=True) as venue:
        shared = await venue.round(share=True, liar=False)
        fetched = await asyncio.to_thread(venue.outside_requests)
    print(
        f"swarm from a URL: {KIOSKS - 1} kiosks, {size // MiB} MiB, outside host asked "
        f"{len(fetched)}x, coordinator sent {shared.coordinator_bytes / size:.2f}x the image, "
        f"all verified after {shared.seconds:.1f} s"
    )
    assert fetched == [f"GET {image.path.name} -"]  # once, whole
    assert len(shared.done) == KIOSKS - 1
    for kiosk in shared.done:
        assert kiosk["ok"], kiosk
    assert shared.coordinator_bytes / size <= 1.5
    assert sum(k["peer_bytes"] for k in shared.done) > 0
