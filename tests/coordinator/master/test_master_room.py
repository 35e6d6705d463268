"""The room as a user of the burn queue sees it: dispatch choices, queue commands, names, errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from coordinator.master import (
    CredentialExpiring,
    DispatchPolicy,
    ImageInfo,
    MemberKind,
    Room,
    SessionClosed,
    Superseded,
)
from coordinator.master.room import BurnerRecord, RoomSuspended, UnknownImage
from wire import burnproto as bp

DVD = bp.Capability.BURNDVDR
COMMON = "c0" * 16
RARE = "d0" * 16
OTHER = "e0" * 16


def uid(n: int) -> str:
    return f"{n:032x}"


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Harness:
    room: Room
    sent: dict[str, list[object]] = field(default_factory=dict)
    changes: list[tuple[str, object]] = field(default_factory=list)

    def pump(self) -> None:
        effects = self.room.drain()
        for out in effects.outbound:
            self.sent.setdefault(out.recipient, []).append(out.payload)
        self.changes.extend((c.channel, c.data) for c in effects.changes)

    def take(self, member: str) -> list[object]:
        self.pump()
        return self.sent.pop(member, [])

    def burner(
        self,
        n: int,
        images: tuple[str, ...],
        status: bp.StatusKind = bp.StatusKind.IDLE,
        caps: tuple[bp.Capability, ...] = (DVD,),
    ) -> str:
        member = f"b{n}"
        self.room.join(member, MemberKind.BURNER, uid=uid(n))
        self.room.handle(member, bp.Cap(caps, images))
        self.room.handle(member, bp.Status(bp.StatusValue(status)))
        return member

    def command(self, name: str = "cmd") -> str:
        self.room.join(name, MemberKind.COMMAND)
        return name

    def display(self, name: str = "disp") -> str:
        self.room.join(name, MemberKind.DISPLAY)
        return name


def burns(payloads: list[object]) -> list[str]:
    return [p.md5 for p in payloads if isinstance(p, bp.Burn)]


def errors(payloads: list[object]) -> list[str]:
    return [p.code for p in payloads if isinstance(p, bp.Error)]


def record(n: int, **stats: float) -> BurnerRecord:
    return BurnerRecord(session_id="s", uid=uid(n), **stats)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, *records: BurnerRecord, policy: DispatchPolicy | None = None) -> Harness:
    return Harness(Room("S", policy=policy, clock=clock, wall=clock, burners=records))


def test_rare_image_goes_to_the_reliable_burner_not_the_first_one(clock: FakeClock) -> None:
    # Burner 1 sorts first but failed a third of its discs; burner 2 never failed.
    h = make(clock, record(1, burned=10, failed=5), record(2, burned=10))
    h.burner(1, (RARE, COMMON))
    h.burner(2, (RARE, COMMON))
    for n in range(3, 7):
        h.burner(n, (COMMON,))
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(RARE))
    assert burns(h.take("b2")) == [RARE]
    assert burns(h.take("b1")) == []


def test_rare_image_among_equally_reliable_goes_to_the_fastest(clock: FakeClock) -> None:
    slow = record(1, burned=4, speed_total=40e6, speed_samples=4)  # 10 MB/s
    fast = record(2, burned=4, speed_total=80e6, speed_samples=4)  # 20 MB/s
    h = make(clock, slow, fast)
    h.burner(1, (RARE,))
    h.burner(2, (RARE,))
    for n in range(3, 7):
        h.burner(n, (COMMON,))
    h.room.handle(h.command(), bp.Queue(RARE))
    assert burns(h.take("b2")) == [RARE]


def test_flaky_burner_gets_only_common_images(clock: FakeClock) -> None:
    flaky = record(1, burned=5, failed=3, recent_failures=3)
    h = make(clock, flaky, record(2, burned=5))
    h.burner(1, (RARE, COMMON))
    h.burner(2, (RARE, COMMON), status=bp.StatusKind.EMPTY)  # reliable one has no disc in
    for n in range(3, 6):
        h.burner(n, (COMMON,), status=bp.StatusKind.EMPTY)
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(RARE))
    assert burns(h.take("b1")) == []  # only 2 of 5 hold it: rare, not for the flaky box
    assert h.room.queue == ((RARE, 1),)
    h.room.handle(cmd, bp.Queue(COMMON))
    assert burns(h.take("b1")) == [COMMON]  # the rare one waits, the common one is burned
    assert h.room.queue == ((RARE, 1),)
    # The reliable box gets a blank disc: the rare image goes there.
    h.room.handle("b2", bp.Status(bp.StatusValue(bp.StatusKind.AVAIL)))
    assert burns(h.take("b2")) == [RARE]
    assert not h.room.queue


def test_failed_verifies_requeue_at_head_and_make_a_burner_flaky(clock: FakeClock) -> None:
    h = make(clock, policy=DispatchPolicy(flaky_after=2))
    b1 = h.burner(1, (RARE, COMMON))
    h.burner(2, (RARE,), status=bp.StatusKind.EMPTY)
    for n in range(3, 6):
        h.burner(n, (COMMON,), status=bp.StatusKind.EMPTY)
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(RARE))
    h.room.handle(cmd, bp.Queue(COMMON))
    assert burns(h.take(b1)) == [RARE]

    def report(*kinds: bp.StatusKind) -> None:
        for kind in kinds:
            h.room.handle(b1, bp.Status(bp.StatusValue(kind)))

    # First failure: the disc is requeued first and retried.
    report(bp.StatusKind.MD5FAIL, bp.StatusKind.AVAIL)
    assert burns(h.take(b1)) == [RARE]
    # Second failure: b1 is flaky now, so the rare image waits and b1 burns the common one.
    report(bp.StatusKind.MD5FAIL, bp.StatusKind.AVAIL)
    assert burns(h.take(b1)) == [COMMON]
    assert h.room.queue == ((RARE, 1),)
    assert h.room.stats()[uid(1)]["failed"] == 2
    assert h.room.stats()[uid(1)]["recent_failures"] == 2
    # A verified disc clears the mark: the rare image is b1's again.
    report(bp.StatusKind.MD5PASS, bp.StatusKind.TRAYOPEN, bp.StatusKind.AVAIL)
    assert burns(h.take(b1)) == [RARE]
    assert h.room.stats()[uid(1)]["recent_failures"] == 0


def test_common_image_spares_the_burner_holding_rare_images(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (RARE, COMMON))  # uid 1 sorts first, so only the policy can make it wait
    h.burner(2, (COMMON,))
    h.burner(3, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    assert burns(h.take("b1")) == []
    assert burns(h.take("b2")) == [COMMON]


def test_image_needs_a_capable_burner(clock: FakeClock) -> None:
    h = make(clock)
    h.room.learn_image(ImageInfo(OTHER, "dvd.iso", 2_000_000_000))  # fits a DVD, not a CD
    h.burner(1, (OTHER,), caps=(bp.Capability.BURNCDR,))
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(OTHER))
    assert burns(h.take("b1")) == []
    h.burner(2, (OTHER,), caps=(DVD,))
    assert burns(h.take("b2")) == [OTHER]


def test_queue_count_dispatches_one_disc_per_burner(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,))
    h.burner(2, (COMMON,))
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(COMMON, 3))
    assert bp.QOk() in h.take(cmd)
    assert burns(h.take("b1")) == [COMMON]
    assert burns(h.take("b2")) == [COMMON]
    assert h.room.queue_list() == bp.QList((COMMON,))


def test_qclear_empties_the_queue_and_tells_displays(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,), status=bp.StatusKind.EMPTY)
    disp = h.display()
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(COMMON, 2))
    h.take(disp)
    h.room.handle(cmd, bp.QClear())
    assert h.take(cmd)[-1] == bp.QOk()
    assert h.take(disp) == [bp.QList(())]
    assert h.room.queue == ()
    assert ("session.s.queue", {"queue": [], "length": 0}) in h.changes
    h.room.handle(cmd, bp.QReport())
    assert h.take(cmd) == [bp.QList(())]


def test_name_is_given_to_every_display_and_shows_in_slist(clock: FakeClock) -> None:
    h = make(clock)
    b = h.burner(1, (COMMON,))
    disp, cmd = h.display(), h.command()
    h.pump()
    h.sent.clear()
    h.room.handle(cmd, bp.Name(uid(1), "Booth 1 = left"))
    assert h.take(disp) == [bp.Name(uid(1), "Booth 1 = left")]
    assert h.take(cmd) == [bp.Name(uid(1), "Booth 1 = left")]
    assert h.take(b) == []
    h.room.handle(disp, bp.SReport())
    entry = h.take(disp)[0].entries[0]  # type: ignore[attr-defined]
    assert (entry.uid, entry.name, str(entry.status)) == (uid(1), "Booth 1 = left", "IDLE")
    assert any(ch == f"session.s.burner.{uid(1)}.status" for ch, _ in h.changes)


def test_name_of_unknown_burner_or_bad_name_is_refused(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,))
    cmd = h.command()
    h.room.handle(cmd, bp.Name(uid(9), "ghost"))
    h.room.handle(cmd, bp.Name(uid(1), "two\r\nlines"))
    assert errors(h.take(cmd)) == ["UNKNOWN_CLIENT", "BAD_ENTRY"]
    assert h.room.burners[uid(1)].name == ""


def test_queue_of_unknown_image_or_overfull_queue_is_refused(clock: FakeClock) -> None:
    h = make(clock, policy=DispatchPolicy(max_queue=5))
    h.burner(1, (COMMON,), status=bp.StatusKind.EMPTY)
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(OTHER))
    h.room.handle(cmd, bp.Queue(COMMON, 4))
    h.room.handle(cmd, bp.Queue(COMMON, 2))
    assert errors(h.take(cmd)) == ["UNKNOWN_IMAGE", "BAD_NUMBER"]
    assert h.room.queue == ((COMMON, 4),)
    with pytest.raises(UnknownImage):
        h.room.queue_image(OTHER)


def test_verbs_outside_a_members_role_are_not_allowed(clock: FakeClock) -> None:
    h = make(clock)
    b = h.burner(1, (COMMON,))
    disp = h.display()
    browser = "web"
    h.room.join(browser, MemberKind.BROWSER)
    h.room.handle(disp, bp.Queue(COMMON))
    h.room.handle(browser, bp.QClear())
    h.room.handle(b, bp.QReport())
    h.room.handle(disp, bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
    assert errors(h.take(disp)) == ["NOT_ALLOWED", "NOT_ALLOWED"]
    assert errors(h.take(browser)) == ["NOT_ALLOWED"]
    assert errors(h.take(b)) == ["NOT_ALLOWED"]
    assert h.room.queue == ()
    operator = "op"
    h.room.join(operator, MemberKind.BROWSER, commands=True)
    h.room.handle(operator, bp.Queue(COMMON))
    assert burns(h.take(b)) == [COMMON]


def test_burner_leaving_mid_burn_requeues_at_head_for_another(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON, RARE))
    cmd = h.command()
    h.room.handle(cmd, bp.Queue(COMMON))
    h.room.handle(cmd, bp.Queue(RARE))
    assert burns(h.take("b1")) == [COMMON]
    h.room.handle("b1", bp.Status(bp.StatusValue.progress(40)))
    h.room.leave("b1")
    assert h.room.queue == ((COMMON, 1), (RARE, 1))
    h.burner(2, (COMMON, RARE))
    assert burns(h.take("b2")) == [COMMON]


def test_same_burner_reconnecting_supersedes_the_old_connection(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    h.take("b1")
    h.room.join("b1-again", MemberKind.BURNER, uid=uid(1))
    assert h.take("b1") == [Superseded(uid(1))]
    assert "b1" not in h.room.members
    assert h.room.burners[uid(1)].job == COMMON  # the box is still burning it
    assert h.room.queue == ()


def test_mean_speed_uses_image_size_and_burn_time(clock: FakeClock) -> None:
    h = make(clock)
    h.room.learn_image(ImageInfo(COMMON, "x.iso", 1_000_000_000))
    h.burner(1, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    clock.t += 100.0
    h.room.handle("b1", bp.Status(bp.StatusValue(bp.StatusKind.MD5PASS)))
    assert h.room.stats()[uid(1)] == {
        "burned": 1,
        "failed": 0,
        "cancelled": 0,
        "recent_failures": 0,
        "mean_speed": 10_000_000.0,
    }
    h.pump()
    stats = [data for ch, data in h.changes if ch == "session.s.stats"]
    assert stats[-1] == {
        "uid": uid(1),
        "burner": h.room.stats()[uid(1)],
        "totals": {"burned": 1, "failed": 0},
        "at": clock.t,  # when it was counted, for the history chart
        # What metrics label the burn by: its result, its kiosk (none: a TCP burner), its medium.
        "result": "passed",
        "kiosk": None,
        "media": "DVDR",
    }


def test_a_repeated_result_is_counted_once(clock: FakeClock) -> None:
    h = make(clock)
    b = h.burner(1, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    for kind in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5PASS, bp.StatusKind.TRAYOPEN):
        h.room.handle(b, bp.Status(bp.StatusValue(kind)))
    h.room.handle(b, bp.Status(bp.StatusValue(bp.StatusKind.MD5FAIL)))
    assert (h.room.stats()[uid(1)]["burned"], h.room.stats()[uid(1)]["failed"]) == (1, 0)


def test_credential_expiry_reaches_only_its_members(clock: FakeClock) -> None:
    h = make(clock)
    h.room.join("k1", MemberKind.BURNER, uid=uid(1), credential_id="cred-a")
    h.room.join("k2", MemberKind.BURNER, uid=uid(2), credential_id="cred-a")
    h.room.join("web", MemberKind.BROWSER, credential_id="cred-b")
    h.pump()
    h.sent.clear()
    assert h.room.notify_expiry("cred-a", 1_800_000_000.0) == 2
    assert h.take("k1") == [CredentialExpiring("cred-a", 1_800_000_000.0)]
    assert h.take("k2") == [CredentialExpiring("cred-a", 1_800_000_000.0)]
    assert h.take("web") == []


def test_suspended_room_removes_members_and_refuses_joins(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    h.room.suspend()
    assert h.take("b1")[-1] == SessionClosed("s", "suspended")
    assert h.room.members == {}
    assert h.room.queue == ((COMMON, 1),)  # the burn in flight is not lost
    with pytest.raises(RoomSuspended):
        h.room.join("late", MemberKind.DISPLAY)
    h.room.resume()
    h.room.join("late", MemberKind.DISPLAY)
    assert "late" in h.room.members


def test_open_naming_a_burner_opens_that_burners_tray_only(clock: FakeClock) -> None:
    h = make(clock)
    b1, b2 = h.burner(1, (COMMON,)), h.burner(2, (COMMON,))
    cmd = h.command()
    h.pump()
    h.sent.clear()
    h.room.handle(cmd, bp.Open(uid(2)))
    assert [p for p in h.take(b2) if isinstance(p, bp.Open)] == [bp.Open()]
    assert [p for p in h.take(b1) if isinstance(p, bp.Open)] == []


def test_askcapab_over_a_large_catalog_still_fits_one_frame(clock: FakeClock) -> None:
    # Kiosks may burn every take of the show: 3,000 images do not fit one 64 KiB CAP, so the
    # answer names as many as fit instead of being a frame nobody can send.
    images = tuple(f"{n:032x}" for n in range(3000))
    h = make(clock)
    h.burner(1, images)
    display = h.display()
    h.room.handle(display, bp.AskCapab())
    [cap] = h.take(display)
    assert isinstance(cap, bp.Cap)
    assert cap.capabilities == (DVD,)
    assert cap.images == images[: len(cap.images)]
    assert len(cap.images) > 1500
    assert len(bp.encode(cap)) <= bp.MAX_FRAME


def test_a_burn_protocol_md5fail_reads_as_a_disc_that_did_not_verify(clock: FakeClock) -> None:
    h = make(clock)
    h.burner(1, (COMMON,))
    h.room.handle(h.command(), bp.Queue(COMMON))
    h.room.handle("b1", bp.Status(bp.StatusValue(bp.StatusKind.MD5FAIL)))
    h.pump()
    status = [d for ch, d in h.changes if ch == f"session.s.burner.{uid(1)}.status"][-1]
    assert isinstance(status, dict)
    assert status["failure"] == {
        "reason": "verify-mismatch",
        "sentence": "The disc did not read back correctly. Take another blank and try again.",
        "detail": "",
        "at": clock.t,
    }
