"""The scoring worker: takes submissions from the database queue, validates and scores them.

A worker runs :func:`brainlid.leaderboard.scoring.check_bundle` — the code ``brainlid submit
check`` runs — on each claimed bundle and stores the result under its lease
(:mod:`brainlid.leaderboard.queue`). Run it as ``brainlid leaderboard worker`` (any number, on
any machine that sees the database and the bundle storage) or in-process
(``brainlid leaderboard serve --workers 1``, the default single-machine deployment).

Reference rows (:func:`add_baselines`, :func:`add_reference_entry`) are the baselines the
board shows beside the entries: raw pixels, random weights, stimulus-shuffled features.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import InputError
from . import queue as q
from .bundle import Limits
from .db import Database
from .scoring import BenchmarkData, check_bundle

__all__ = ["Worker", "add_baselines", "add_reference_entry"]

log = logging.getLogger("brainlid.leaderboard")


class Worker:
    """One scoring loop.

    Parameters
    ----------
    db : Database
    data : BenchmarkData
        Where the benchmarks' data are read (the server's data root).
    lease_seconds : float
        Lease length; renewed every ``lease_seconds / 3`` while scoring. A killed worker's job
        is reclaimed by another worker after at most this long.
    max_attempts : int
        Claims of one job before it is rejected (a bundle that kills its worker every time).
    """

    def __init__(self, db: Database, data: BenchmarkData | None = None, *, lease_seconds: float = 60.0,
                 max_attempts: int = 3, limits: Limits | None = None, owner: str | None = None):
        self.db = db
        self.data = data or BenchmarkData()
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = int(max_attempts)
        self.limits = limits
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run_once(self) -> dict | None:
        """Claim and process one job; returns ``{"id", "status"}`` or None when the queue is empty."""
        job = q.claim(self.db, self.owner, self.lease_seconds, self.max_attempts)
        if job is None:
            return None
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job["id"], stop), daemon=True)
        beat.start()
        try:
            return {"id": job["id"], "status": self._process(job)}
        finally:
            stop.set()
            beat.join()

    def _beat(self, sid: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                if not q.heartbeat(self.db, sid, self.owner, self.lease_seconds):
                    return
            except Exception:  # noqa: BLE001 - a transient DB error; the next beat retries
                pass

    def _process(self, job: dict) -> str:
        path = job.get("bundle_path")
        if not path or not Path(path).exists():
            q.reject(self.db, job["id"], self.owner, "the bundle file is missing on the server")
            return "rejected"
        try:
            report = check_bundle(path, data=self.data, limits=self.limits)
        except Exception as exc:  # noqa: BLE001 - server-side failure: retried up to max_attempts
            log.exception("scoring %s failed", job["id"])
            q.fail(self.db, job["id"], self.owner, f"attempt {job['attempts']} failed on the server: {exc}")
            return "failed"
        if report.status == "scored":
            ok = q.complete(self.db, job["id"], self.owner, report.scores, report.geometry)
            return "scored" if ok else "lease-lost"
        ok = q.reject(self.db, job["id"], self.owner, report.reason)
        return "rejected" if ok else "lease-lost"

    def run(self, stop: threading.Event | None = None, *, idle_sleep: float = 0.5, exit_when_empty: bool = False,
            max_jobs: int | None = None) -> int:
        """Process jobs until ``stop`` is set (or the queue is empty with ``exit_when_empty``); returns the count."""
        stop = stop or threading.Event()
        n = 0
        while not stop.is_set():
            try:
                res = self.run_once()
            except Exception:  # noqa: BLE001 - e.g. database briefly unreachable: wait and retry
                log.exception("worker %s: queue error (retrying)", self.owner)
                res = None
                if exit_when_empty:
                    raise
            if res is None:
                if exit_when_empty:
                    break
                stop.wait(idle_sleep)
                continue
            n += 1
            if max_jobs is not None and n >= max_jobs:
                break
        return n


def add_reference_entry(db: Database, name: str, scores: pd.DataFrame, geometry: pd.DataFrame, *,
                        metadata: dict | None = None) -> str:
    """Store precomputed rows as a ``baseline`` reference entry (scored); returns its id."""
    if scores is None or scores.empty:
        raise InputError(f"reference entry {name!r} has no score rows")
    sid = uuid.uuid4().hex
    benches = sorted(set(scores["benchmark"].astype(str)))
    owner = f"reference:{sid}"
    q.enqueue(db, submission_id=sid, team_id=None, benchmarks=benches, model_name=name,
              metadata={"model_name": name, **(metadata or {})}, bundle_path="", bundle_sha256="", size_bytes=0,
              kind="baseline")
    db.execute("UPDATE submissions SET status = 'scoring', lease_owner = ?, lease_expires = ? WHERE id = ?",
               (owner, time.time() + 3600, sid))
    q.complete(db, sid, owner, scores, geometry)
    return sid


def add_baselines(db: Database, model: str | None, benchmarks: Sequence[str], *, root=None,
                  which: Sequence[str] = ("pixels", "random", "shuffled"), layers: Sequence[str] | None = None,
                  pooling: str = "avg", batch_size: int = 64) -> list[str]:
    """Score the baselines on the server's data and store them as reference rows.

    ``pixels`` needs no model; ``random`` and ``shuffled`` are built from ``model`` (a spec:
    the same architecture with random weights, and the model's features shuffled across
    stimuli) through :func:`brainlid.scoring.runner.score`. Returns the new entry ids.
    """
    from ..scoring.runner import score

    which = tuple(which)
    ids: list[str] = []
    if model is None:
        if set(which) - {"pixels"}:
            raise InputError("random-weights and shuffled baselines need --model")
        model = None
    res = score(model if model is not None else [], benchmarks, layers=layers, data_root=root, store=False,
                baselines=which, pooling=pooling, batch_size=batch_size, return_result=True) if model is not None else None
    if res is None:  # pixels only
        from ..scoring import baselines as bl
        from ..scoring.benchmarks import load_benchmark_data
        from ..scoring.runner import score_features

        parts_s, parts_g = [], []
        for b in benchmarks:
            stimuli, brain = load_benchmark_data(b, root)
            if stimuli is None:
                raise InputError(f"benchmark {b} ships no images: no pixel baseline")
            s, g = score_features({"pixels": bl.pixel_features(stimuli)}, stimuli.ids, b, brain, model=bl.PIXELS_MODEL)
            parts_s.append(s)
            parts_g.append(g)
        scores, geom = pd.concat(parts_s, ignore_index=True), pd.concat(parts_g, ignore_index=True)
    else:
        scores, geom = res.scores, res.geometry
        scores = scores[scores["dataset"] != "models"]
        scores = scores[scores["model"] != model]  # the model itself is an entry, submitted as a bundle
    for name, part in scores.groupby("model", sort=True):
        kind = ("pixels" if name.startswith("baseline:pixels") else "random weights" if "@random" in name
                else "shuffled" if name.endswith("#shuffled") else "baseline")
        ids.append(add_reference_entry(db, str(name), part, geom[geom["model"] == name],
                                       metadata={"description": f"baseline: {kind}"}))
    return ids
