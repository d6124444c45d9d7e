"""The upload path of the leaderboard service: bounded in time, memory, threads and per-team rate.

``POST /api/submissions`` (:meth:`Uploads.handle`) never holds a thread that serves pages:

* the body is read on the event loop with a deadline — ``body_timeout`` seconds plus one second
  per ``min_upload_rate`` bytes received — so a 1 byte/s trickle is cut with **408**, while a
  large upload at a reasonable rate is not;
* validation (:func:`brainlid.leaderboard.scoring.check_bundle` with ``score=False``, which
  streams each array member in chunks and keeps none) runs in its own pool of
  ``validation_slots`` threads; the handler awaits it without holding a thread; the upload's
  database calls use a second small pool; pages use Starlette's default pool and are never
  queued behind uploads;
* at most ``max_pending`` uploads are in progress (reading, waiting for validation, validating):
  one more is answered **503** with ``Retry-After``;
* per team: at most ``rate_limit`` uploads a minute and ``team_inflight`` at once (**429** with
  ``Retry-After``; 0 disables either);
* a bundle whose SHA-256 equals one the team already submitted (queued, scoring or scored;
  same bytes, so the same benchmarks) answers **200** with the existing submission's id;
* with a ``memory_budget``, a bundle whose scoring would need more
  (:func:`brainlid.leaderboard.worker.estimate_scoring_memory`) is rejected at upload (422).

:func:`cleanup_storage` runs at start-up: ``.part`` files in ``incoming/`` older than the body
timeout (uploads killed mid-way; a live upload of another server process writes its file at
least every ``body_timeout`` seconds, so it is left alone) and bundles no submission row points to.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import queue as q
from .bundle import Limits
from .db import Database
from .scoring import BenchmarkData, CheckReport, check_bundle
from .worker import estimate_scoring_memory, memory_refusal

__all__ = ["UploadPolicy", "RateLimiter", "Uploads", "cleanup_storage"]

log = logging.getLogger("brainlid.leaderboard")

#: Seconds a token's team lookup is reused by the upload handler.
TEAM_CACHE_SECONDS = 10.0
#: An upload refused before its body is read (bad token, over the size limit, rate limited) has the rest of
#: its body read and discarded up to this many bytes, so an ordinary HTTP client that sends the whole body
#: before reading the answer sees the refusal instead of a broken pipe; larger bodies are cut off at once.
DRAIN_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What a board operator sets for uploads (see docs/leaderboard.md, "Limits a board operator can set").

    Attributes
    ----------
    body_timeout : float
        Seconds an upload may take beyond ``bytes / min_upload_rate`` (408 past it); also the
        age after which a leftover ``.part`` file is removed at start-up.
    min_upload_rate : float
        Bytes per second an upload must sustain (on average, after ``body_timeout``).
    max_pending : int
        Uploads in progress at once (503 past it).
    rate_limit : int
        Uploads per team per minute (429 past it); 0: unlimited.
    team_inflight : int
        Uploads of one team in progress at once (429 past it); 0: unlimited.
    validation_slots : int
        Uploads validated at once (a thread each; memory per slot is a few MiB).
    memory_budget : int
        Bytes a bundle's scoring may need (checked at upload as well as by the worker); 0: no check.
    """

    body_timeout: float = 60.0
    min_upload_rate: float = 64 * 1024
    max_pending: int = 64
    rate_limit: int = 0
    team_inflight: int = 0
    validation_slots: int = 2
    memory_budget: int = 0


class RateLimiter:
    """Per-key sliding one-minute window and in-flight count (single event loop: no locks needed).

    :meth:`acquire` returns ``""`` and counts the upload, or the refusal reason; every successful
    acquire must be followed by :meth:`release`.
    """

    def __init__(self, per_minute: int, inflight: int, *, clock=time.monotonic):
        self.per_minute, self.inflight, self.clock = int(per_minute), int(inflight), clock
        self._times: dict = collections.defaultdict(collections.deque)
        self._busy: dict = collections.Counter()

    def acquire(self, key) -> tuple[str, int]:
        """``("", 0)`` when allowed, else ``(reason, retry_after_seconds)``."""
        now = self.clock()
        times = self._times[key]
        while times and times[0] <= now - 60.0:
            times.popleft()
        if self.inflight and self._busy[key] >= self.inflight:
            return f"this team already has {self._busy[key]} upload(s) in progress (limit {self.inflight})", 5
        if self.per_minute and len(times) >= self.per_minute:
            return (f"rate limit: at most {self.per_minute} upload(s) per team per minute",
                    max(1, math.ceil(times[0] + 60.0 - now)))
        times.append(now)
        self._busy[key] += 1
        return "", 0

    def release(self, key) -> None:
        """End one upload of ``key`` counted by :meth:`acquire`."""
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        if not self._times.get(key):
            self._times.pop(key, None)


def cleanup_storage(db: Database, store: Path, max_age: float, *, now: float | None = None) -> dict[str, int]:
    """Remove leftovers of killed uploads; returns ``{"parts": n, "bundles": m}`` removed.

    ``incoming/*.part`` files not written for ``max_age`` seconds, and ``bundles/*.zip`` files
    (as old) that no submission row names (by id or by path). Younger files belong to uploads in
    progress — possibly in another server process sharing the storage — and are left alone.
    """
    now = time.time() if now is None else now
    removed = {"parts": 0, "bundles": 0}

    def old(p: Path) -> bool:
        try:
            return now - p.stat().st_mtime > max_age
        except FileNotFoundError:
            return False

    for p in (store / "incoming").glob("*.part"):
        if old(p):
            p.unlink(missing_ok=True)
            removed["parts"] += 1
    zips = [p for p in (store / "bundles").glob("*.zip") if old(p)]
    if zips:
        rows = db.query("SELECT id, bundle_path FROM submissions")
        known = {r["id"] for r in rows} | {os.path.basename(r["bundle_path"] or "") for r in rows}
        for p in zips:
            if p.stem not in known and p.name not in known:
                p.unlink(missing_ok=True)
                removed["bundles"] += 1
    if any(removed.values()):
        log.warning("start-up cleanup removed %d unfinished upload(s) and %d bundle(s) without a submission",
                    removed["parts"], removed["bundles"])
    return removed


class _Refused(Exception):
    """An upload answered before validation (status code, body, headers)."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body.get("reason", ""))
        self.status, self.body, self.headers = status, body, headers or {}


class Uploads:
    """The ``POST /api/submissions`` handler and the resources it owns (two thread pools, counters).

    Parameters
    ----------
    db, store, data, limits : the service's database, bundle storage, benchmark data, bundle limits
    policy : :class:`UploadPolicy`
    """

    def __init__(self, db: Database, store: Path, data: BenchmarkData, limits: Limits, policy: UploadPolicy):
        self.db, self.store, self.data, self.limits, self.policy = db, Path(store), data, limits, policy
        self.validators = ThreadPoolExecutor(max(1, int(policy.validation_slots)), thread_name_prefix="brainlid-validate")
        self.db_pool = ThreadPoolExecutor(4, thread_name_prefix="brainlid-upload-db")
        self.limiter = RateLimiter(policy.rate_limit, policy.team_inflight)
        self.pending = 0
        self._enqueue_lock: asyncio.Lock | None = None
        self._teams: dict[str, tuple[float, asyncio.Future]] = {}

    def close(self) -> None:
        """Shut both thread pools down (pending work is cancelled)."""
        self.validators.shutdown(wait=False, cancel_futures=True)
        self.db_pool.shutdown(wait=False, cancel_futures=True)

    async def _in(self, pool, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ the steps
    def _validate(self, part: Path, sha256: str | None = None) -> CheckReport:
        """Runs in a validation slot: the one validation, then the scoring-memory estimate when budgeted.

        ``sha256``: the body's digest, computed while it was received (so the file is not hashed again).
        """
        report = check_bundle(part, data=self.data, limits=self.limits, score=False, sha256=sha256)
        if report.status != "rejected" and self.policy.memory_budget:
            need = estimate_scoring_memory(list(report.bundle.layers.values()), report.bundle.benchmarks, self.data)
            refusal = memory_refusal(need, self.policy.memory_budget)
            if refusal:
                return CheckReport("rejected", refusal)
        return report

    def _store(self, part: Path, final: Path) -> None:
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, final)
        os.utime(final)  # its age counts from now: start-up cleanup leaves it alone while its row is written

    async def _read_body(self, request, part: Path) -> tuple[int, str]:
        """Stream the body to ``part`` under the deadline; returns (bytes, SHA-256)."""
        from starlette.requests import ClientDisconnect  # optional: starlette (the leaderboard extra)

        pol, limit = self.policy, self.limits.max_upload
        h = hashlib.sha256()
        n = 0
        start = time.monotonic()
        stream = request.stream().__aiter__()
        with open(part, "wb") as fh:
            while True:
                left = start + pol.body_timeout + n / pol.min_upload_rate - time.monotonic()
                try:
                    if left <= 0:
                        raise asyncio.TimeoutError
                    chunk = await asyncio.wait_for(stream.__anext__(), left)
                except StopAsyncIteration:
                    break
                except ClientDisconnect:  # nobody to answer; nothing kept
                    raise _Refused(400, {"status": "rejected", "reason": "the upload was interrupted"}) from None
                except asyncio.TimeoutError:
                    raise _Refused(408, {"status": "rejected", "reason": (
                        f"upload too slow: {n} bytes in {time.monotonic() - start:.0f} s (the board needs the body within "
                        f"{pol.body_timeout:g} s plus 1 s per {pol.min_upload_rate / 1024:g} KiB)")},
                        {"connection": "close"}) from None
                n += len(chunk)
                if n > limit:
                    raise _Refused(413, {"status": "rejected", "reason": f"upload exceeds the limit of {limit} bytes"},
                                   {"connection": "close"})
                fh.write(chunk)
                h.update(chunk)
        return n, h.hexdigest()

    async def _drain(self, request) -> None:
        """Read and discard what is left of a refused upload's body, at most :data:`DRAIN_BYTES`, within the
        body deadline (see :data:`DRAIN_BYTES`); a client disconnect or the deadline ends it quietly."""
        from starlette.requests import ClientDisconnect  # optional: starlette (the leaderboard extra)

        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > DRAIN_BYTES:
            return
        n, deadline = 0, time.monotonic() + self.policy.body_timeout
        try:
            stream = request.stream().__aiter__()
            while n <= DRAIN_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                n += len(await asyncio.wait_for(stream.__anext__(), left))
        except (StopAsyncIteration, ClientDisconnect, asyncio.TimeoutError, RuntimeError):
            return  # RuntimeError: the body was already consumed (refused while streaming it to disk)

    async def _team(self, token: str | None) -> dict | None:
        """The token's team, looked up once per :data:`TEAM_CACHE_SECONDS` (concurrent uploads share one query).

        A burst of uploads would otherwise queue one database query each in front of the
        upload pool; a token replaced with ``leaderboard token`` stops working within that time.
        """
        if not token:
            return None
        key, now = q.hash_token(token), time.monotonic()
        hit = self._teams.get(key)
        if hit is None or now - hit[0] > TEAM_CACHE_SECONDS or (hit[1].done() and hit[1].exception()):
            if len(self._teams) > 4096:  # a flood of made-up tokens cannot grow it without bound
                self._teams = {k: v for k, v in self._teams.items() if now - v[0] <= TEAM_CACHE_SECONDS}
                if len(self._teams) > 4096:
                    self._teams.clear()
            hit = self._teams[key] = (now, asyncio.ensure_future(self._in(self.db_pool, q.team_for_token, self.db, token)))
        return await asyncio.shield(hit[1])

    async def _duplicate(self, team_id, sha: str) -> dict | None:
        return await self._in(self.db_pool, q.find_duplicate, self.db, team_id, sha)

    # ------------------------------------------------------------------ the handler
    async def handle(self, request):
        """``POST /api/submissions`` (see the module docstring for the answers)."""
        from starlette.responses import JSONResponse  # optional: starlette (the leaderboard extra)

        if self.pending >= self.policy.max_pending:
            return JSONResponse({"status": "rejected", "reason": f"the board is busy ({self.pending} uploads in progress); "
                                 "retry later"}, status_code=503, headers={"retry-after": "10", "connection": "close"})
        self.pending += 1
        try:
            return await self._handle(request)
        except _Refused as r:
            if r.status in (401, 413, 429):  # not after a slow (408) or interrupted (400) body
                await self._drain(request)
            return JSONResponse(r.body, status_code=r.status, headers=r.headers)
        finally:
            self.pending -= 1

    async def _handle(self, request):
        from starlette.responses import JSONResponse  # optional: starlette (the leaderboard extra)

        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None  # the one way to authenticate
        team = await self._team(token)
        if team is None:
            raise _Refused(401, {"status": "rejected", "reason": "missing or invalid token"}, {"connection": "close"})
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_upload:
            raise _Refused(413, {"status": "rejected", "reason": f"upload of {declared} bytes exceeds the limit of "
                                 f"{self.limits.max_upload} bytes"}, {"connection": "close"})
        tid = team["team_id"]
        why, retry = self.limiter.acquire(tid)
        if why:
            raise _Refused(429, {"status": "rejected", "reason": why}, {"retry-after": str(retry), "connection": "close"})
        sid = uuid.uuid4().hex
        part = self.store / "incoming" / f"{sid}.zip.part"
        try:
            n, sha = await self._read_body(request, part)
            if n == 0:
                raise _Refused(400, {"status": "rejected", "reason": "empty upload"})
            dup = await self._duplicate(tid, sha)
            if dup is not None:
                return self._existing(dup)
            report = await self._in(self.validators, self._validate, part, sha)
            if report.status == "rejected":
                await self._in(self.db_pool, q.record_rejected, self.db, submission_id=sid, team_id=tid,
                               reason=report.reason, size_bytes=n)
                return JSONResponse({"id": sid, "status": "rejected", "reason": report.reason}, status_code=422)
            b = report.bundle
            md = dict(b.metadata)
            md.setdefault("team", team["name"])
            final = self.store / "bundles" / f"{sid}.zip"
            if self._enqueue_lock is None:
                self._enqueue_lock = asyncio.Lock()
            async with self._enqueue_lock:  # one duplicate check + enqueue at a time: two equal uploads make one row
                dup = await self._duplicate(tid, sha)
                if dup is not None:
                    return self._existing(dup)
                await self._in(self.validators, self._store, part, final)
                try:
                    await self._in(self.db_pool, q.enqueue, self.db, submission_id=sid, team_id=tid,
                                   benchmarks=b.benchmarks, model_name=b.model_name, metadata=md, bundle_path=str(final),
                                   bundle_sha256=sha, size_bytes=n)
                except BaseException:
                    final.unlink(missing_ok=True)  # a bundle never outlives a failed row write
                    raise
            return JSONResponse({"id": sid, "status": "queued", "url": f"/api/submissions/{sid}",
                                 "fixture": report.fixture}, status_code=202)
        finally:
            part.unlink(missing_ok=True)
            self.limiter.release(tid)

    @staticmethod
    def _existing(sub: dict):
        from starlette.responses import JSONResponse  # optional: starlette (the leaderboard extra)

        return JSONResponse({"id": sub["id"], "status": sub["status"], "url": f"/api/submissions/{sub['id']}",
                             "duplicate": True, "reason": "the same bundle was already submitted by this team"},
                            status_code=200)
