"""The room's queue and its dispatch: which queued image goes to which ready burner.

Dispatch keeps rare images (held by few burners) for the reliable, fast burners and gives a
burner that failed its last verifies, or that an operator marked "common images only", only
common ones."""

from __future__ import annotations

from coordinator.master.room.base import RoomBase
from coordinator.master.room.errors import BadRequest, QueueFull, UnknownImage
from coordinator.master.room.values import CANCEL_GRACE, Burner, Run
from wire import burnproto as bp


class Dispatch(RoomBase):
    # ---- the queue -----------------------------------------------------------------------------

    def queue_image(self, md5: str, count: int = 1) -> None:
        try:
            md5 = bp.Queue(md5, count).md5  # the same checks as on the wire
        except bp.ProtocolError as exc:
            raise BadRequest(exc.text, exc.code) from None
        if not self.knows_image(md5):
            raise UnknownImage(f"no burner holds and no catalog lists image {md5}")
        if self.queued + count > self.policy.max_queue:
            raise QueueFull(
                f"the queue holds at most {self.policy.max_queue} discs; "
                f"{self.queued} are waiting, {count} more do not fit"
            )
        if self._queue and self._queue[-1].md5 == md5:
            self._queue[-1].count += count
        else:
            self._queue.append(Run(md5, count))
        self._queue_changed()
        self._dispatch()

    def clear_queue(self) -> None:
        self._queue.clear()
        self._queue_changed()

    def reorder(self, md5: str, position: int) -> None:
        """Move the first run of image `md5` in the queue to run index `position` (0 is next);
        a position past the end moves it last. Neighbouring runs of one image merge."""
        try:
            md5 = bp.Queue(md5, 1).md5  # the same md5 checks as on the wire
        except bp.ProtocolError as exc:
            raise BadRequest(exc.text, exc.code) from None
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise BadRequest(
                f"position must be an integer >= 0, got {position!r}", bp.ErrorCode.BAD_NUMBER
            )
        at = next((i for i, run in enumerate(self._queue) if run.md5 == md5), None)
        if at is None:
            raise UnknownImage(f"image {md5} is not in the queue")
        run = self._queue.pop(at)
        self._queue.insert(min(position, len(self._queue)), run)
        merged: list[Run] = []
        for item in self._queue:
            if merged and merged[-1].md5 == item.md5:
                merged[-1].count += item.count
            else:
                merged.append(item)
        self._queue = merged
        self._queue_changed()
        self._dispatch()

    # ---- dispatch ----------------------------------------------------------------------------

    def _can_burn(self, burner: Burner, md5: str) -> bool:
        if md5 not in burner.images:
            return False
        info = self._images.get(md5)
        needed = info.required_media() if info is not None else frozenset(bp.Capability)
        return bool(burner.capabilities & needed)

    def _flaky(self, burner: Burner) -> bool:
        """Kept to common images: failed its last verifies, or an operator said so."""
        return burner.common_only or burner.stats.recent_failures >= self.policy.flaky_after

    def is_common(self, md5: str) -> bool:
        """More than `common_share` of the connected burners can burn this image."""
        connected = [b for b in self._burners.values() if b.connected]
        if not connected:
            return False
        holders = sum(1 for b in connected if self._can_burn(b, md5))
        return holders > self.policy.common_share * len(connected)

    def _dispatch(self) -> None:
        if self.suspended or not self._queue:
            return
        now = self._clock()
        for b in self._burners.values():
            if b.cancelling is not None and now - b.cancelled_at > CANCEL_GRACE:
                b.cancelling = None  # no result came for the cancelled burn: free it anyway
        ready = [b for b in self._burners.values() if b.ready]
        if not ready:
            return
        common: dict[str, bool] = {}

        def is_rare(md5: str) -> bool:
            if md5 not in common:
                common[md5] = self.is_common(md5)
            return not common[md5]

        held_rare: dict[str, int] = {}

        def rare_held(b: Burner) -> int:
            if b.uid not in held_rare:
                held_rare[b.uid] = sum(1 for m in b.images if is_rare(m))
            return held_rare[b.uid]

        def rare_key(b: Burner) -> _Key:
            # Few boxes hold it: give it to the most reliable, then the fastest.
            return (0, *_reliability_key(b))

        def common_key(b: Burner) -> _Key:
            # Anyone can; keep the boxes that hold rare images free for those.
            return (rare_held(b), *_reliability_key(b))

        started = False
        for run in list(self._queue):
            while run.count > 0 and ready:
                candidates = [b for b in ready if self._can_burn(b, run.md5)]
                key = common_key
                if is_rare(run.md5):
                    candidates = [b for b in candidates if not self._flaky(b)]
                    key = rare_key
                if not candidates:
                    break
                best = min(candidates, key=key)
                ready.remove(best)
                run.count -= 1
                self._start(best, run.md5)
                started = True
            if run.count == 0:
                self._queue.remove(run)
            if not ready:
                break
        if started:
            self._queue_changed()

    def _start(self, burner: Burner, md5: str) -> None:
        if burner.member_id is None:  # only ready, hence connected, burners get here
            return
        burner.job = md5
        burner.job_started = self._clock()
        burner.rested = False
        self._send(burner.member_id, bp.Burn(md5))
        self._burner_changed(burner)


_Key = tuple[int, int, float, float, str]


def _reliability_key(burner: Burner) -> tuple[int, float, float, str]:
    s = burner.stats
    return (s.recent_failures, s.failure_rate, -(s.mean_speed or 0.0), burner.uid)
