"""Operator commands with no burn-protocol verb: cancel a burn, "common images only", reorder.

Driven through the transport-free `Room` (what dispatch and statistics do) and through the
`Master` over a real SQLite file (what survives a restart, and how refusals reach a member).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coordinator.master import CancelBurn, ImageInfo, Master, MemberKind, Payload, Room
from coordinator.master.room import (
    CANCEL_GRACE,
    BadRequest,
    NotAllowed,
    UnknownClient,
    UnknownImage,
)
from wire import burnproto as bp

DVD = bp.Capability.BURNDVDR
COMMON = "c0" * 16
RARE = "d0" * 16
OTHER = "e0" * 16


def uid(n: int) -> str:
    return f"{n:032x}"


def st(kind: bp.StatusKind) -> bp.Status:
    return bp.Status(bp.StatusValue(kind))


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Harness:
    room: Room
    sent: dict[str, list[object]] = field(default_factory=dict)

    def take(self, member: str) -> list[object]:
        for out in self.room.drain().outbound:
            self.sent.setdefault(out.recipient, []).append(out.payload)
        return self.sent.pop(member, [])

    def burner(self, n: int, images: tuple[str, ...], *, cancels: bool = True) -> str:
        member = f"b{n}"
        self.room.join(member, MemberKind.BURNER, uid=uid(n), cancels=cancels)
        self.room.handle(member, bp.Cap((DVD,), images))
        self.room.handle(member, st(bp.StatusKind.IDLE))
        return member


def burns(payloads: list[object]) -> list[str]:
    return [p.md5 for p in payloads if isinstance(p, bp.Burn)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h(clock: FakeClock) -> Harness:
    return Harness(Room("S", clock=clock))


# ---- cancel ----------------------------------------------------------------------------------


def test_cancel_tells_the_burner_and_counts_cancelled_not_failed(h: Harness) -> None:
    b1 = h.burner(1, (COMMON,))
    h.room.queue_image(COMMON, 2)
    assert burns(h.take(b1)) == [COMMON]
    h.room.handle(
        b1, st(bp.StatusKind.PROGRESS) if False else bp.Status(bp.StatusValue.progress(40))
    )

    assert h.room.cancel(uid(1)) == COMMON
    assert h.take(b1) == [CancelBurn(uid(1), COMMON)]
    stats = h.room.stats()[uid(1)]
    assert (stats["burned"], stats["failed"], stats["cancelled"]) == (0, 0, 1)
    # The cancelled disc is dropped, not requeued: only the second one still waits.
    assert h.room.queue == ((COMMON, 1),)
    assert h.room.burners[uid(1)].job is None

    # The box stops and reports the failed result of the stopped burn: not counted again, and
    # the burner is not given the next disc before that result is in.
    h.room.handle(b1, st(bp.StatusKind.IDLE))
    assert burns(h.take(b1)) == []
    h.room.handle(b1, st(bp.StatusKind.MD5FAIL))
    stats = h.room.stats()[uid(1)]
    assert (stats["failed"], stats["recent_failures"], stats["cancelled"]) == (0, 0, 1)
    h.room.handle(b1, st(bp.StatusKind.IDLE))
    assert burns(h.take(b1)) == [COMMON]


def test_a_burner_that_sends_no_result_after_cancel_is_freed_after_the_grace(
    h: Harness, clock: FakeClock
) -> None:
    b1 = h.burner(1, (COMMON,))
    h.room.queue_image(COMMON, 2)
    h.take(b1)
    h.room.cancel(uid(1))
    h.room.handle(b1, st(bp.StatusKind.IDLE))
    assert burns(h.take(b1)) == []
    clock.t += CANCEL_GRACE + 1
    h.room.handle(b1, st(bp.StatusKind.IDLE))
    assert burns(h.take(b1)) == [COMMON]


def test_cancel_on_a_tcp_burner_is_refused_and_changes_nothing(h: Harness) -> None:
    b1 = h.burner(1, (COMMON,), cancels=False)
    h.room.queue_image(COMMON)
    h.take(b1)
    with pytest.raises(NotAllowed, match="no verb to stop a burn"):
        h.room.cancel(uid(1))
    assert h.room.burners[uid(1)].job == COMMON
    assert h.room.stats()[uid(1)]["cancelled"] == 0
    assert h.take(b1) == []


def test_cancel_refusals_are_typed(h: Harness) -> None:
    h.burner(1, (COMMON,))
    with pytest.raises(NotAllowed, match="not burning"):
        h.room.cancel(uid(1))
    with pytest.raises(UnknownClient):
        h.room.cancel(uid(9))
    with pytest.raises(BadRequest):
        h.room.cancel("not-a-uid")


def test_a_burner_leaving_after_cancel_does_not_requeue_the_cancelled_image(h: Harness) -> None:
    b1 = h.burner(1, (COMMON,))
    h.room.queue_image(COMMON)
    h.take(b1)
    h.room.cancel(uid(1))
    h.room.leave(b1)
    assert h.room.queue == ()


# ---- common images only ------------------------------------------------------------------------


def test_common_only_burner_gets_common_images_only(h: Harness) -> None:
    # Burner 1 is the only one holding RARE; all three hold COMMON.
    b1 = h.burner(1, (RARE, COMMON))
    b2 = h.burner(2, (COMMON,))
    h.burner(3, (COMMON,))
    h.room.set_common_only(uid(1), True)
    assert h.room.snapshot()["burners"][0]["common_only"] is True  # type: ignore[index]
    h.room.queue_image(RARE)
    assert burns(h.take(b1)) == []
    assert h.room.queue == ((RARE, 1),)
    h.room.queue_image(COMMON)
    # The common disc is burned meanwhile (by a box that holds no rare image).
    assert burns(h.take(b2)) == [COMMON]
    # Unmarking it lets the rare image through at once.
    h.room.set_common_only(uid(1), False)
    assert burns(h.take(b1)) == [RARE]
    assert h.room.burners[uid(1)].common_only is False


def test_common_only_refuses_an_unknown_burner(h: Harness) -> None:
    with pytest.raises(UnknownClient):
        h.room.set_common_only(uid(4), True)


# ---- reorder ------------------------------------------------------------------------------------


def test_reorder_moves_a_run_and_merges_neighbours(h: Harness) -> None:
    h.burner(1, (COMMON, RARE, OTHER))
    h.room.handle("b1", st(bp.StatusKind.EMPTY))  # no blank disc: nothing is dispatched
    h.room.queue_image(COMMON, 2)
    h.room.queue_image(RARE, 1)
    h.room.queue_image(OTHER, 3)
    h.room.reorder(OTHER, 0)
    assert h.room.queue == ((OTHER, 3), (COMMON, 2), (RARE, 1))
    h.room.reorder(COMMON, 99)  # past the end: last
    assert h.room.queue == ((OTHER, 3), (RARE, 1), (COMMON, 2))
    h.room.queue_image(OTHER)
    h.room.reorder(OTHER, 2)  # the first OTHER run lands next to the last one and merges
    assert h.room.queue == ((RARE, 1), (COMMON, 2), (OTHER, 4))
    # The next ready burner takes the new head.
    h.room.handle("b1", st(bp.StatusKind.AVAIL))
    assert burns(h.take("b1")) == [RARE]


def test_reorder_refusals_are_typed_and_leave_the_queue(h: Harness) -> None:
    h.burner(1, (COMMON,))
    h.room.handle("b1", st(bp.StatusKind.EMPTY))
    h.room.queue_image(COMMON, 2)
    with pytest.raises(UnknownImage):
        h.room.reorder(RARE, 0)
    with pytest.raises(BadRequest):
        h.room.reorder(COMMON, -1)
    with pytest.raises(BadRequest):
        h.room.reorder("xyz", 0)
    assert h.room.queue == ((COMMON, 2),)


# ---- through the Master, over a real master.db -----------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.items: list[Payload] = []

    def __call__(self, payload: Payload) -> None:
        self.items.append(payload)


async def _master(data: Path) -> Master:
    master = Master(data)
    await master.open()
    await master.load("booth")
    return master


async def test_cancelled_count_and_common_only_survive_a_restart(tmp_path: Path) -> None:
    master = await _master(tmp_path)
    box, desk = Inbox(), Inbox()
    master.join("booth", "b1", MemberKind.BURNER, box, uid=uid(1), cancels=True)
    master.join("booth", "c1", MemberKind.COMMAND, desk)
    await master.handle("booth", "b1", bp.Cap((DVD,), (COMMON,)))
    await master.handle("booth", "b1", st(bp.StatusKind.IDLE))
    await master.handle("booth", "c1", bp.Queue(COMMON))
    master.cancel("booth", "c1", uid(1))
    master.set_common_only("booth", "c1", uid(1), True)
    assert CancelBurn(uid(1), COMMON) in box.items
    assert not [p for p in desk.items if isinstance(p, bp.Error)]
    await master.close()

    again = await _master(tmp_path)
    room = again.room("booth")
    assert room is not None
    assert room.stats()[uid(1)]["cancelled"] == 1
    assert room.burners[uid(1)].common_only is True
    # The cancelled burn is not "in flight" after the restart: nothing comes back to the queue.
    assert room.queue == ()
    await again.close()


async def test_master_refuses_commands_to_members_who_may_not_command(tmp_path: Path) -> None:
    master = await _master(tmp_path)
    display, desk = Inbox(), Inbox()
    master.join("booth", "d1", MemberKind.DISPLAY, display)
    master.join("booth", "c1", MemberKind.COMMAND, desk)
    master.set_common_only("booth", "d1", uid(1), True)
    master.cancel("booth", "c1", uid(1))
    assert [
        (p.code, "common_only" in p.text) for p in display.items if isinstance(p, bp.Error)
    ] == [(bp.ErrorCode.NOT_ALLOWED.value, True)]
    assert [p.code for p in desk.items if isinstance(p, bp.Error)] == [
        bp.ErrorCode.UNKNOWN_CLIENT.value
    ]
    await master.close()


# ---- what screens show of a burner ---------------------------------------------------------


def test_a_burning_burner_names_its_image_and_burners_keep_their_order(h: Harness) -> None:
    """Dashboards show the image's name on a burning card, not a digest, and list burners in
    the same order on every run (by name, then uid), whatever order they joined in."""
    h.room.learn_image(ImageInfo(COMMON, "ubuntu-26.04-desktop-amd64.iso", 10))
    for n, name in ((3, "b left"), (1, "c right"), (2, "a middle")):
        h.burner(n, (COMMON,))
        h.room.set_name(uid(n), name)
    h.room.drain()
    h.room.queue_image(COMMON)
    changes = h.room.drain().changes
    burning = [c.data for c in changes if c.data.get("job") == COMMON]
    assert burning
    assert burning[-1]["image"] == "ubuntu-26.04-desktop-amd64.iso"
    burners = h.room.snapshot()["burners"]
    assert [b["name"] for b in burners] == ["a middle", "b left", "c right"]  # type: ignore[index,union-attr]
    idle = [b for b in burners if b["job"] is None]  # type: ignore[index,union-attr]
    assert all(b["image"] is None for b in idle)  # type: ignore[index]
