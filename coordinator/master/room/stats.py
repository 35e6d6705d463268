"""A room's statistics: each burner's passes, failures and cancels, the session's totals, the
history ticks the store keeps per minute and hour, and the result ids already counted (so a
result replayed after a drop counts once)."""

from __future__ import annotations

from coordinator.master import channels
from coordinator.master.room.base import RoomBase
from coordinator.master.room.effects import HistoryTick
from coordinator.master.room.values import JOBS_KEPT, Burner, media_name
from wire import burnproto as bp
from wire import failures


class Statistics(RoomBase):
    def stats(self) -> dict[str, dict[str, object]]:
        return {uid: b.stats.as_dict() for uid, b in sorted(self._burners.items())}

    def totals(self) -> dict[str, int]:
        return {
            "burned": sum(b.stats.burned for b in self._burners.values()),
            "failed": sum(b.stats.failed for b in self._burners.values()),
        }

    def counted(self, uid: str, job: str) -> bool:
        """Whether burner `uid`'s result `job` has been counted already."""
        burner = self._burners.get(uid)
        return burner is not None and job in burner.jobs

    def reporting(self, uid: str, reason: str | None, detail: str) -> None:
        """The next result of burner `uid` failed for `reason` (a `wire.failures` code), the
        tool saying `detail`; a burn-protocol MD5FAIL, which says nothing more, is a verify
        that did not match."""
        burner = self._burners.get(uid)
        if burner is not None:
            burner.reporting = (reason, detail)

    def note_job(self, uid: str, job: str) -> None:
        """Remember that result `job` of burner `uid` was counted (see `Burner.jobs`)."""
        burner = self._burners.get(uid)
        if burner is None or job in burner.jobs:
            return
        burner.jobs = (*burner.jobs, job)[-JOBS_KEPT:]
        self._dirty_burners.add(uid)

    def _finished(self, burner: Burner, *, passed: bool) -> None:
        stats = burner.stats
        job, started = burner.job, burner.job_started
        burner.job = burner.job_started = None
        at = self._wall()
        reason, detail = burner.reporting or ("verify-mismatch", "")
        burner.failure = None
        if not passed:
            burner.failure = {
                "reason": reason or failures.UNKNOWN,
                "sentence": failures.sentence(reason),
                "detail": detail,
                "at": at,
            }
        if passed:
            stats.burned += 1
            stats.recent_failures = 0
            info = self._images.get(job) if job else None
            if info is not None and started is not None:
                elapsed = self._clock() - started
                if elapsed > 0 and info.size > 0:
                    stats.speed_total += info.size / elapsed
                    stats.speed_samples += 1
        else:
            stats.failed += 1
            stats.recent_failures += 1
            if job is not None:
                # The disc asked for was not made: try again, first.
                self._requeue(job)
                self._queue_changed()
        kiosk = next((k.id for k in self._kiosks.values() if burner.uid in k.burners), None)
        # Written in the same transaction as the burner's statistics (see `drain`).
        self._effects.writes.append(
            HistoryTick(self.session_id, burner.uid, kiosk, at, passed=passed)
        )
        self._stats_changed(burner, "passed" if passed else "failed", job, at=at)

    def _stats_changed(
        self, burner: Burner, result: str, md5: str | None, *, at: float | None = None
    ) -> None:
        """A burn ended (`result` passed, failed or cancelled): the burner's statistics, the
        session's totals, and what metrics label it by (its kiosk, the medium it made)."""
        self._dirty_burners.add(burner.uid)
        kiosk = next((k for k in self._kiosks.values() if burner.uid in k.burners), None)
        info = self._images.get(md5) if md5 else None
        made = burner.capabilities & (
            info.required_media() if info is not None else frozenset(bp.Capability)
        )
        data: dict[str, object] = {
            "uid": burner.uid,
            "burner": burner.stats.as_dict(),
            "totals": self.totals(),
            "result": result,
            "kiosk": None if kiosk is None else kiosk.name,
            "media": media_name(min(made)) if made else None,
        }
        if at is not None:
            data["at"] = at  # when the result was counted, for the dashboard's history chart
        self._announce(channels.stats(self.session_id), data)
