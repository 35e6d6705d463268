"""Burn supervision: claiming a drive for a take, then fetch → write → verify → eject in a task.

`Burns.start_burn` checks the drive and the medium and starts `Burns._run_job`, which gets the image
from the cache (fetching it first if needed), runs a `BurnJob` on the slot's drive and turns its
events into kiosk events, LEDs and link statuses. Every job, even one that ended before writing
(cancelled or a failed download), is journaled, so the coordinator hears of it exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from urllib.parse import urljoin, urlsplit

from appliance.agent.base import AgentBase
from appliance.agent.catalog import Take, save_catalog
from appliance.agent.slot import Slot, cancel_job
from appliance.burn.job import BurnJob, JobProgress, JobResult, JobStateChanged
from appliance.control import BurnAccepted, ControlError, ResultView, fits
from appliance.drives.base import BurnError, CorruptImage, DriveState, NoMedia, SourceImage
from appliance.images.bmap import BadBmap
from appliance.images.cache import Fetch
from appliance.images.sources import ByteSource, DownloadError, HttpSource
from appliance.journal import JobState
from appliance.leds import LedState

log = logging.getLogger("appliance.agent")

FETCH_FAILED = "download-failed"
DOWNLOAD_TICK = 0.5  # seconds between the kiosk's download progress updates
DOWNLOAD_TICKS = 14 * 24 * 3600  # a week of them: a bound, never reached


class Burns(AgentBase):
    def _pick(self, take: Take) -> Slot:
        image = take.view()
        free = [
            s
            for s in self.slots.values()
            if not s.busy
            and s.state in (DriveState.IDLE, DriveState.TRAY_OPEN)
            and fits(s.view(), image)
        ]
        if not free:
            raise ControlError("no-drive", "No free burner can take this image right now")
        # The smallest medium that fits, so a CD image does not use up a Blu-ray or a stick.
        return min(free, key=lambda s: (s.info.capacity or float("inf"), len(s.info.capabilities)))

    async def start_burn(self, take: Take, drive: str) -> BurnAccepted:
        """Claim a drive for `take` now and run fetch → write → verify → eject in a task."""
        slot = self._pick(take) if drive == "auto" else self._slot(drive)
        if slot.busy:
            raise ControlError("busy", f"{slot.name} is busy with another disc")
        if not fits(slot.view(), take.view()):
            raise ControlError("no-fit", f"{take.name} does not fit in {slot.name}")
        cache = self.cache
        if cache is None or (take.sha256 not in cache and not take.url):
            raise ControlError("not-found", f"{take.name} is not in the cache and has no URL")
        state = await slot.drive.state()
        if state is DriveState.TRAY_OPEN:
            # What a real burner does when a job starts: pull the tray in (the disc is there).
            await slot.drive.close_tray()
            state = await slot.drive.state()
        if state is not DriveState.IDLE:
            slot.state = state
            raise NoMedia(f"Put a blank disc in {slot.name} and close the tray")
        slot.state = state
        job_id = uuid.uuid4().hex
        slot.job_id, slot.take, slot.last_result, slot.job_view = job_id, take, None, None
        cache.pin(take.sha256)
        slot.task = asyncio.create_task(self._run_job(slot, take, job_id), name=f"job-{job_id}")
        self._emit_drive(slot)
        await self._send_status(slot)
        return {"job_id": job_id, "drive": slot.info.uid}

    async def cancel(self, drive: str) -> None:
        slot = self._slot(drive)
        if slot.task is None or not slot.busy:
            raise ControlError("not-burning", f"nothing is burning in {slot.name}")
        task = slot.task
        cancel_job(slot)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _fetching(
        self, slot: Slot, job_id: str, take: Take
    ) -> tuple[SourceImage, Fetch | None]:
        """`_source`, while the kiosk is shown how a download from the show's kiosks goes."""
        ticker = asyncio.create_task(self._download_progress(slot, job_id, take))
        try:
            return await self._source(slot, take)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _download_progress(self, slot: Slot, job_id: str, take: Take) -> None:
        """Every `DOWNLOAD_TICK` s while the take downloads from the swarm: how much is in and
        where it came from (other kiosks, the coordinator), as the kiosk's `download` phase."""
        started = time.monotonic()
        for _ in range(DOWNLOAD_TICKS):
            await asyncio.sleep(DOWNLOAD_TICK)
            counts = None if self.sharing is None else self.sharing.counters(take)
            if counts is None:
                continue  # not from the swarm (or not yet): the plain download says nothing
            got = counts.origin_bytes + counts.peer_bytes
            speed = got / max(time.monotonic() - started, 1e-3)
            slot.job_view = {
                "job_id": job_id,
                "image": take.sha256,
                "image_name": take.name,
                "phase": "download",
                "done": got,
                "total": take.size,
                "percent": round(100 * got / take.size, 1) if take.size else 0.0,
                "speed": speed,
                "eta": (take.size - got) / speed if speed > 0 else None,
                "from_peers": counts.peer_bytes,
                "from_origin": counts.origin_bytes,
            }
            self._emit({"event": "progress", "drive": slot.info.uid, "job": slot.job_view})

    async def _source(self, slot: Slot, take: Take) -> tuple[SourceImage, Fetch | None]:
        """The take's image from the cache, or downloading: a block target is written while
        the image downloads, other drives wait for the proven file."""
        from appliance.drives.block import BlockDrive

        cache = self.cache
        assert cache is not None  # noqa: S101 - set in start()
        if not take.url and take.sha256 not in cache:  # evicted since the burn was accepted
            raise DownloadError(f"{take.name} is not in the cache and has no URL")
        # A take uploaded to the coordinator names its image store by a relative URL.
        url = urljoin(self.config.coordinator_url or "", take.url)
        block = isinstance(slot.drive, BlockDrive)
        headers = self._headers_for(url)
        timeout = self.config.download_timeout
        bytes_from: ByteSource = HttpSource(url, headers=headers, timeout=timeout)
        sharing, swarm = self.sharing, None
        if sharing is not None and take.sha256 not in cache:
            # From the show's other kiosks too; a `burn` order carries no manifest, the
            # catalog's take does.
            known = self.catalog.get(take.sha256)
            digest = take.manifest or (known.manifest if known is not None else None)
            swarm = await sharing.source(take.sha256, take.size, digest, url, headers)
            bytes_from = swarm or bytes_from
        try:
            source, fetch = await cache.open_for_burn(
                bytes_from, take.sha256, take.size, take.name, stream=block
            )
        except CorruptImage:
            if sharing is not None and swarm is not None:
                sharing.forget_manifest(take.sha256)  # chunks matched it, the file did not
            raise
        bmap = None
        if block and take.bmap:
            # A USB stick or SD card gets only the mapped ranges written, the rest zeroed.
            bmap_url = urljoin(self.config.coordinator_url or "", take.bmap)
            origin = HttpSource(bmap_url, headers=self._headers_for(bmap_url), timeout=timeout)
            bmap = await cache.block_map(origin, take.sha256)
        return dataclasses.replace(
            source,
            md5=take.md5 or None,
            name=take.name,
            extracted_size=take.extracted_size,
            extracted_sha256=take.extracted_sha256,
            bmap=bmap,
            measure_extracted=block and take.extracted_sha256 is None,
        ), fetch

    def _headers_for(self, url: str) -> dict[str, str]:
        """The coordinator's own URLs get the appliance credential; nobody else does."""
        base = self.config.coordinator_url
        if (
            self._credential is not None
            and base is not None
            and urlsplit(url).netloc == urlsplit(base).netloc
        ):
            return {"Authorization": f"Bearer {self._credential}"}
        return {}

    async def _report_extracted(self, slot: Slot, take: Take) -> None:
        """After the first burn that unpacked a take the catalog says nothing of: what it
        unpacks to, kept in the catalog (the kiosk shows and fits by it) and sent upstream."""
        from appliance.drives.block import BlockDrive

        found = slot.drive.unpacked if isinstance(slot.drive, BlockDrive) else None
        if found is None or take.extracted_sha256 is not None:
            return
        size, sha = found
        if take.sha256 in self.catalog:
            self.catalog[take.sha256] = dataclasses.replace(
                self.catalog[take.sha256], extracted_size=size, extracted_sha256=sha
            )
            await asyncio.to_thread(save_catalog, self.config.state_dir, dict(self.catalog))
        sent = await self._send_online(
            {
                "type": "extracted",
                "sha256": take.sha256,
                "extracted_size": size,
                "extracted_sha256": sha,
            }
        )
        log.info("take unpacks to sha256=%s size=%d reported=%s", take.sha256, size, sent)

    async def _end_fetch(self, fetch: Fetch | None) -> None:
        """A burn that wrote while downloading let go: a complete download joins the cache."""
        cache = self.cache
        if fetch is None or cache is None:
            return
        try:
            await cache.end_fetch(fetch)
        except BurnError as exc:
            log.warning("downloaded image not kept sha256=%s error=%s", fetch.sha256, exc)

    async def _run_job(self, slot: Slot, take: Take, job_id: str) -> None:
        cache, journal = self.cache, self.journal
        assert cache is not None  # noqa: S101 - set in start()
        assert journal is not None  # noqa: S101 - set in start()
        started = time.monotonic()
        result: ResultView
        fetch: Fetch | None = None
        try:
            try:
                source, fetch = await self._fetching(slot, job_id, take)
            except asyncio.CancelledError:
                result = await self._cancelled_early(job_id, slot, take)
            except (BurnError, ValueError) as exc:
                reason = exc.code if isinstance(exc, BurnError) else FETCH_FAILED
                log.warning(
                    "image fetch failed job=%s sha256=%s error=%s", job_id, take.sha256, exc
                )
                # Journaled like any failed job, so the coordinator hears about it exactly once.
                await self._journal_unrun(job_id, slot, take, JobState.FAILED, reason, str(exc))
                result = self._result_view(job_id, take, False, reason, f"Could not get it: {exc}")
            else:
                await self._cache_changed()  # a download (or an eviction) changed what it holds
                job = BurnJob(slot.drive, source, journal=journal, job_id=job_id)
                slot.job = job
                job.add_listener(lambda event: self._on_job_event(slot, event))
                try:
                    # Run in this task, so cancelling the slot's task cancels the burn itself
                    # and the job journals the cancel before it ends.
                    outcome = await job.run()
                except asyncio.CancelledError:
                    if job.result is None:
                        result = await self._cancelled_early(job_id, slot, take)
                    else:
                        result = self._result_view(
                            job_id, take, False, job.result.reason, job.result.message
                        )
                else:
                    result = self._result_view(
                        job_id, take, outcome.ok, outcome.reason, outcome.message
                    )
                    if outcome.reason == BadBmap.code:
                        await cache.forget_block_map(take.sha256)
                    if outcome.ok:
                        await self._report_extracted(slot, take)
        finally:
            await self._end_fetch(fetch)
            cache.unpin(take.sha256)
            slot.job, slot.job_id, slot.job_view, slot.task = None, None, None, None
            if not self._closing:
                with contextlib.suppress(BurnError):
                    slot.state = await slot.drive.state()
        slot.last_result = result
        log.info(
            "job done job=%s drive=%s ok=%s seconds=%.1f",
            job_id,
            slot.info.uid,
            result["ok"],
            time.monotonic() - started,
        )
        if self.panel is not None:
            self.panel.show(slot.info.path, LedState.PASSED if result["ok"] else LedState.FAILED)
        self._emit({"event": "finished", "drive": slot.info.uid, "result": result})
        self._emit_drive(slot)
        await self._send_status(slot)
        self._spawn(self.report_results(), "report")

    async def _cancelled_early(self, job_id: str, slot: Slot, take: Take) -> ResultView:
        """Cancelled before the first byte: still a job the kiosk and the coordinator hear of."""
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        why = "cancelled before writing"
        try:
            record = await journal.get(job_id)
            if record is None:
                await self._journal_unrun(job_id, slot, take, JobState.CANCELLED, "cancelled", why)
            elif record.state is JobState.QUEUED:
                await journal.transition(job_id, JobState.CANCELLED, "cancelled", why)
        except Exception as exc:
            # The kiosk still hears how its job ended; only the record is missing.
            log.warning("journal refused a cancelled job job=%s error=%r", job_id, exc)
        return self._result_view(
            job_id, take, False, "cancelled", "The burn was cancelled; the disc is blank."
        )

    async def _journal_unrun(
        self, job_id: str, slot: Slot, take: Take, state: JobState, reason: str, message: str
    ) -> None:
        """Journal a job that ended before its BurnJob ran, so it is reported like any other.
        A journal that refuses is logged: the job's end still reaches the kiosk."""
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        try:
            await journal.create(
                job_id, slot.info.uid, slot.info.path, take.url or take.name, take.sha256, take.md5
            )
            await journal.transition(job_id, state, reason, message)
        except Exception as exc:
            log.warning("journal refused a job that never ran job=%s error=%r", job_id, exc)

    @staticmethod
    def _result_view(
        job_id: str, take: Take, ok: bool, reason: str | None, message: str
    ) -> ResultView:
        return {
            "job_id": job_id,
            "image": take.sha256,
            "image_name": take.name,
            "ok": ok,
            "reason": reason,
            "message": message,
        }

    def _on_job_event(self, slot: Slot, event: JobProgress | JobStateChanged | JobResult) -> None:
        if isinstance(event, JobProgress):
            take = slot.take
            slot.job_view = {
                "job_id": event.job_id,
                "image": take.sha256 if take else "",
                "image_name": take.name if take else "",
                "phase": event.phase.value,
                "done": event.done,
                "total": event.total,
                "percent": round(event.percent, 1),
                "speed": event.speed,
                "eta": event.eta,
            }
            shared = None if self.sharing is None or take is None else self.sharing.counters(take)
            if shared is not None:
                slot.job_view["from_peers"] = shared.peer_bytes
                slot.job_view["from_origin"] = shared.origin_bytes
            self._emit({"event": "progress", "drive": slot.info.uid, "job": slot.job_view})
            self._spawn(self._send_status(slot), "status")
        elif isinstance(event, JobStateChanged) and self.panel is not None:
            leds = {JobState.WRITING: LedState.WRITING, JobState.VERIFYING: LedState.VERIFYING}
            if event.state in leds:
                self.panel.show(slot.info.path, leds[event.state])
