"""Kiosks in a room: link state with since when, burners grouped by box, the disc cache, restart.

A dashboard groups burners by the kiosk (appliance) they sit in and shows each kiosk's link
(`online`, `reconnecting` while the link waits within its grace period, `offline since …`) and
what its image cache holds. The room keeps that per kiosk, announces every change on
`session.<id>.kiosk.<n>`, includes it in `snapshot`, and the master writes it to `master.db`, so
"offline since" is still right after the master restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from coordinator.master import ImageInfo, LinkState, Master, Room, RoomError
from coordinator.master.room import BadRequest

IMG, OTHER = "ab" * 16, "cd" * 16
UID1, UID2, UID3 = "1" * 32, "2" * 32, "3" * 32
CHANNEL = "session.booth.kiosk.7"


class Wall:
    """A hand-driven wall clock (Unix seconds)."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def kiosk_changes(room: Room) -> list[Mapping[str, object]]:
    return [c.data for c in room.drain().changes if c.channel == CHANNEL]


def hello(room: Room, images: tuple[str, ...] = (IMG,), burners: tuple[str, ...] = (UID1,)) -> None:
    room.kiosk_hello(
        7,
        name="Hall B kiosk",
        version="1.4.0",
        burners=burners,
        images=images,
        cache_used=3_145_728,
        cache_max=20_000_000_000,
    )


def test_link_drop_resume_and_end_are_announced_with_since() -> None:
    wall = Wall()
    room = Room("Booth", wall=wall)
    room.learn_image(ImageInfo(IMG, "ubuntu-26.04.iso", 3_145_728))
    hello(room, images=(IMG, OTHER))
    [online] = kiosk_changes(room)
    assert online == {
        "id": 7,
        "name": "Hall B kiosk",
        "version": "1.4.0",
        "link": "online",
        "since": wall.now,
        "burners": [UID1],
        # Names and sizes where the catalog knows the image; the md5 alone otherwise.
        "images": [
            {"md5": IMG, "name": "ubuntu-26.04.iso", "size": 3_145_728},
            {"md5": OTHER, "name": None, "size": None},
        ],
        "cache_used": 3_145_728,
        "cache_max": 20_000_000_000,
    }

    wall.now += 30
    room.kiosk_link(7, LinkState.RECONNECTING)
    [dropped] = kiosk_changes(room)
    assert (dropped["link"], dropped["since"]) == ("reconnecting", wall.now)

    wall.now += 5
    room.kiosk_link(7, LinkState.ONLINE)
    [back] = kiosk_changes(room)
    assert (back["link"], back["since"]) == ("online", wall.now)

    # Saying the same state again changes nothing and announces nothing.
    room.kiosk_link(7, LinkState.ONLINE)
    assert kiosk_changes(room) == []

    wall.now += 120
    ended_at = wall.now
    room.kiosk_link(7, LinkState.OFFLINE)
    [gone] = kiosk_changes(room)
    assert (gone["link"], gone["since"]) == ("offline", ended_at)
    # An offline kiosk still lists its burners, so its group keeps them on the wall.
    assert gone["burners"] == [UID1]
    kiosks: list[dict[str, object]] = room.snapshot()["kiosks"]  # type: ignore[assignment]
    [kiosk] = kiosks
    assert kiosk["link"] == "offline"
    assert kiosk["since"] == ended_at


def test_the_cache_list_follows_each_hello_and_a_moved_drive_leaves_its_old_box() -> None:
    room = Room("booth", wall=Wall())
    hello(room, images=(IMG,), burners=(UID1, UID2))
    room.drain()
    hello(room, images=(OTHER,), burners=(UID1, UID2))
    [changed] = kiosk_changes(room)
    assert [i["md5"] for i in changed["images"]] == [OTHER]  # type: ignore[attr-defined]

    room.kiosk_drive_gone(7, UID2)
    [after] = kiosk_changes(room)
    assert after["burners"] == [UID1]

    # UID1 turns up in kiosk 8: it is no longer kiosk 7's.
    room.kiosk_hello(8, name="Hall C", version="1.4.0", burners=(UID1,), images=())
    changes = {c.channel: c.data for c in room.drain().changes}
    assert changes[CHANNEL]["burners"] == []
    assert changes["session.booth.kiosk.8"]["burners"] == [UID1]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"burners": ("not-a-uid",)}, "uid"),
        ({"images": ("xyz",)}, "md5"),
        ({"cache_used": -1}, "cache_used"),
        ({"cache_max": "20G"}, "cache_max"),
        ({"name": "two\nlines"}, "name"),
        ({"version": "v" * 65}, "version"),
    ],
)
def test_a_bad_hello_is_refused_with_the_reason_and_changes_nothing(
    fields: dict[str, object], text: str
) -> None:
    room = Room("booth", wall=Wall())
    hello(room)
    room.drain()
    args: dict[str, object] = {
        "name": "Hall B kiosk",
        "version": "1.4.0",
        "burners": (UID3,),
        "images": (OTHER,),
    } | fields
    with pytest.raises(BadRequest, match=text):
        room.kiosk_hello(7, **args)  # type: ignore[arg-type]
    assert room.drain().changes == []
    kiosk = room.kiosks[7]
    assert (kiosk.burners, kiosk.images, kiosk.name) == ((UID1,), (IMG,), "Hall B kiosk")


@pytest.mark.parametrize("kiosk_id", [-1, "7", True, 1.5])
def test_a_bad_kiosk_id_is_refused(kiosk_id: object) -> None:
    room = Room("booth", wall=Wall())
    with pytest.raises(RoomError, match="kiosk id"):
        room.kiosk_link(kiosk_id, LinkState.ONLINE)  # type: ignore[arg-type]
    with pytest.raises(RoomError, match="kiosk id"):
        room.kiosk_drive_gone(kiosk_id, UID1)  # type: ignore[arg-type]
    assert room.kiosks == {}
    assert room.drain().changes == []


def test_an_unknown_link_state_is_refused() -> None:
    room = Room("booth", wall=Wall())
    with pytest.raises(RoomError, match="link state"):
        room.kiosk_link(7, "flapping")  # type: ignore[arg-type]
    assert room.kiosks == {}


async def test_offline_since_survives_a_master_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wall = Wall()
    changes: list[tuple[str, Mapping[str, object]]] = []
    master = Master(data, wall=wall, on_change=lambda c, d: changes.append((c, d)))
    await master.open()
    await master.load("Booth")
    await master.kiosk_hello(
        "booth", 7, name="Hall B kiosk", version="1.4.0", burners=(UID1,), images=(IMG,)
    )
    await master.kiosk_hello(
        "booth", 9, name="Hall C kiosk", version="1.3.9", burners=(UID2,), images=()
    )
    wall.now += 60
    went_at = wall.now
    master.kiosk_link("booth", 7, LinkState.OFFLINE)
    assert changes[-1] == (CHANNEL, changes[-1][1])
    assert changes[-1][1]["link"] == "offline"
    await master.close()

    wall.now += 3600
    again = Master(data, wall=wall)
    await again.open()
    try:
        room = await again.load("booth")
        seven, nine = room.kiosks[7], room.kiosks[9]
        assert (seven.link, seven.since) == (LinkState.OFFLINE, went_at)
        assert (seven.name, seven.version, seven.burners, seven.images) == (
            "Hall B kiosk",
            "1.4.0",
            (UID1,),
            (IMG,),
        )
        # Kiosk 9 was online when the master stopped; its link died with that process, so it
        # is offline from the restart on, until its agent links again.
        assert (nine.link, nine.since) == (LinkState.OFFLINE, wall.now)
        kiosks = room.snapshot()["kiosks"]
        assert [k["id"] for k in kiosks] == [7, 9]  # type: ignore[attr-defined]
    finally:
        await again.close()


async def test_a_refused_kiosk_report_reaches_the_caller(tmp_path: Path) -> None:
    master = Master(tmp_path / "data", wall=Wall())
    await master.open()
    try:
        await master.load("booth")
        with pytest.raises(RoomError, match="uid"):
            await master.kiosk_hello(
                "booth", 7, name="k", version="1", burners=("nope",), images=()
            )
        with pytest.raises(RoomError, match="not loaded"):
            master.kiosk_link("elsewhere", 7, LinkState.ONLINE)
        room = master.room("booth")
        assert room is not None
        assert room.kiosks == {}
    finally:
        await master.close()
