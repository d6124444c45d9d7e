"""The scoring worker: takes submissions from the database queue, validates and scores them.

A worker runs :func:`brainlid.leaderboard.scoring.check_bundle` — the code ``brainlid submit
check`` runs — on each claimed bundle and stores the result under its lease
(:mod:`brainlid.leaderboard.queue`). Run it as ``brainlid leaderboard worker`` (any number, on
any machine that sees the database and the bundle storage) or in-process
(``brainlid leaderboard serve --workers 1``, the default single-machine deployment).

Before a job is scored its peak memory is estimated from the manifest's layer shapes and the
benchmark's sizes (:func:`estimate_scoring_memory`); a job over the worker's ``memory_budget``
is rejected with the estimate in the reason instead of being tried (and killing the worker).
A worker that stops gracefully gives its job back (:func:`stop_workers`, :meth:`Worker.release_current`).

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

import numpy as np
import pandas as pd

from ..errors import BrainlidError, InputError
from ..features import fmt_size
from ..scoring import get_benchmark, load_benchmark_data, score, score_features
from ..scoring.baselines import PIXELS_MODEL, pixel_features
from ..scoring.distributed import cell_sizes, estimate_benchmark_cell_memory, estimate_rdm_group_memory
from . import queue as q
from .bundle import Limits, read_manifest
from .db import Database
from .scoring import BenchmarkData, check_bundle

__all__ = ["Worker", "add_baselines", "add_reference_entry", "estimate_scoring_memory", "default_memory_budget",
           "memory_refusal", "stop_workers"]

log = logging.getLogger("brainlid.leaderboard")


#: Working copies of one layer while it is scored, in units of its float32 size (measured 6.5×).
LAYER_FACTOR = 7
#: Fixed working space of a scoring job (bytes).
SCORING_BASE = 64 << 20


def default_memory_budget() -> int:
    """Half of the machine's physical memory, in bytes (the default scoring budget of a worker)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def estimate_scoring_memory(layers: Sequence[tuple[Sequence[int], str]], benchmarks: Sequence[str],
                            data: BenchmarkData) -> int:
    """Estimated peak bytes of scoring a bundle (what :func:`~brainlid.leaderboard.scoring.check_bundle` holds).

    Parameters
    ----------
    layers : sequence of ``((n_stimuli, n_features), dtype)``
        The manifest's layers.
    benchmarks : benchmark ids
    data : the server's :class:`BenchmarkData` (its sizes: splits, units, subjects)

    Model: a fixed :data:`SCORING_BASE` (interpreter working space), the loaded layers
    ``Σ itemsize·n·d`` plus their float32 copies when stored as float16 (``4·n·d``), held for
    the whole job; on top, the largest layer's working copies, :data:`LAYER_FACTOR` ``·4·n·d``
    (float64 copies for PCA and centring, the aligned copy, the LID subset: measured 6.5× on
    the NSD fixture at 8,000–128,000 features), and the largest cell of one benchmark from the
    memory model the distributed runner uses
    (:func:`brainlid.scoring.distributed.estimate_benchmark_cell_memory`: PCA projection, ridge
    decompositions, per-unit predictions and the stimulus bootstrap of the ROI mean, or the RDMs
    and their corrected stimulus bootstrap for RSA; ×1.5) with the benchmark's parameters
    (``n_boot`` / ``rsa_n_boot``), fit/test sizes, number of units (×time points) and time points, or :func:`~brainlid.scoring.distributed.estimate_rdm_group_memory`
    for published-RDM benchmarks. Benchmarks whose data this server lacks add nothing (the job
    is refused elsewhere). Meant as an upper bound (tests compare it with measured peaks).
    """
    dims = [(int(shape[0]), int(shape[1]), np.dtype(dt).itemsize) for shape, dt in layers]
    resident = SCORING_BASE + sum(n * d * (size + (4 if size < 4 else 0)) for n, d, size in dims)
    work = LAYER_FACTOR * 4 * max(n * d for n, d, _ in dims)
    peak = work
    for b in benchmarks:
        bench = get_benchmark(b)
        try:
            _, brain = data.load(b)
        except BrainlidError:
            continue
        if bench.kind == "rdms":
            need = estimate_rdm_group_memory(max(n for n, _, _ in dims), [d for _, d, _ in dims], int(brain.n_subjects))
        else:
            sizes = cell_sizes(brain, bench)
            cell = 0
            for n, d, _ in dims:
                fixed, per_unit = estimate_benchmark_cell_memory(bench, sizes, d, n_all=n)
                cell = max(cell, fixed + per_unit * sizes["n_units"])
            need = work + cell
        peak = max(peak, need)
    return int(resident + peak)


def _manifest_memory(path, data: BenchmarkData, limits: Limits | None) -> int | None:
    """:func:`estimate_scoring_memory` of a bundle file from its manifest; None when the manifest is unusable."""
    try:
        man = read_manifest(path, limits)
        layers = [(lay["shape"], lay["dtype"]) for lay in man["layers"]]
        return estimate_scoring_memory(layers, man["benchmarks"], data)
    except (BrainlidError, KeyError, TypeError, ValueError, IndexError):  # the validation gives the reason
        return None


def memory_refusal(need: int | None, budget: int) -> str:
    """The rejection reason of a job estimated at ``need`` bytes over ``budget`` ("" when it fits)."""
    if not budget or need is None or need <= budget:
        return ""
    return (f"scoring this bundle needs an estimated {fmt_size(need)} of memory, over this board's scoring budget of "
            f"{fmt_size(budget)}; submit fewer or smaller layers (fewer features per layer, float16 halves the arrays)")


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
        Failures the scoring raises before the job is rejected.
    max_lease_expiries : int
        Leases of one job that may run out (its worker died, the server restarted) before it is
        rejected (a bundle that kills its worker every time, e.g. out of memory).
    memory_budget : int or None
        Bytes a job may need (:func:`estimate_scoring_memory`); a job over it is rejected with
        the estimate. None: :func:`default_memory_budget`; 0: unlimited.
    """

    def __init__(self, db: Database, data: BenchmarkData | None = None, *, lease_seconds: float = 60.0,
                 max_attempts: int = 3, max_lease_expiries: int = 5, memory_budget: int | None = None,
                 limits: Limits | None = None, owner: str | None = None):
        self.db = db
        self.data = data or BenchmarkData()
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = int(max_attempts)
        self.max_lease_expiries = int(max_lease_expiries)
        self.memory_budget = default_memory_budget() if memory_budget is None else int(memory_budget)
        self.limits = limits
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.current: str | None = None

    def run_once(self) -> dict | None:
        """Claim and process one job; returns ``{"id", "status"}`` or None when the queue is empty."""
        job = q.claim(self.db, self.owner, self.lease_seconds, self.max_lease_expiries)
        if job is None:
            return None
        self.current = job["id"]
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job["id"], stop), daemon=True)
        beat.start()
        try:
            return {"id": job["id"], "status": self._process(job)}
        finally:
            self.current = None
            stop.set()
            beat.join()

    def release_current(self) -> bool:
        """Give the job being scored back to the queue at no cost (a graceful stop that cannot wait for it).

        The scoring thread may go on, but its result is not stored (it no longer holds the lease).
        """
        sid = self.current
        return bool(sid) and q.release(self.db, sid, self.owner)

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
        refusal = memory_refusal(_manifest_memory(path, self.data, self.limits), self.memory_budget) if self.memory_budget else ""
        if refusal:
            ok = q.reject(self.db, job["id"], self.owner, refusal)
            return "rejected" if ok else "lease-lost"
        try:
            report = check_bundle(path, data=self.data, limits=self.limits, sha256=job.get("bundle_sha256") or None)
        except Exception as exc:  # noqa: BLE001 - server-side failure: retried up to max_attempts
            log.exception("scoring %s failed", job["id"])
            q.fail(self.db, job["id"], self.owner, f"attempt {int(job['attempts'] or 0) + 1} failed on the server: {exc}",
                   self.max_attempts)
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
        try:
            q.expire_dead_local_leases(self.db, self.owner)
        except Exception:  # noqa: BLE001 - best effort: those leases then simply run out
            log.exception("worker %s: could not check for leases of dead local workers", self.owner)
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


def stop_workers(workers: Sequence[tuple[Worker, threading.Thread]], stop: threading.Event, grace: float) -> list[str]:
    """Stop worker loops gracefully: the one stop of ``serve`` (in-process workers) and ``leaderboard worker``.

    Sets ``stop`` (each loop ends after its current job), waits up to ``grace`` seconds in all
    for the jobs being scored, then gives every job still being scored back to the queue at no
    cost (:meth:`Worker.release_current`; a later result of its thread is not stored).

    Parameters
    ----------
    workers : sequence of (Worker, the thread running its :meth:`Worker.run`)
    stop : the event the loops watch
    grace : seconds to wait for the running jobs (in all, not per worker)

    Returns
    -------
    list of str — the owners of the workers whose job was given back.
    """
    stop.set()
    end = time.monotonic() + grace
    released = []
    for w, t in workers:
        t.join(timeout=max(0.0, end - time.monotonic()))
        if t.is_alive() and w.release_current():
            log.warning("worker %s stopped while scoring: gave the job back to the queue", w.owner)
            released.append(w.owner)
    return released


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
    stimuli) through :func:`brainlid.scoring.serial.score`. Returns the new entry ids.
    """
    which = tuple(which)
    ids: list[str] = []
    if model is None:
        if set(which) - {"pixels"}:
            raise InputError("random-weights and shuffled baselines need --model")
        model = None
    res = score(model if model is not None else [], benchmarks, layers=layers, data_root=root, store=False,
                baselines=which, pooling=pooling, batch_size=batch_size, return_result=True) if model is not None else None
    if res is None:  # pixels only
        parts_s, parts_g = [], []
        for b in benchmarks:
            stimuli, brain = load_benchmark_data(b, root)
            if stimuli is None:
                raise InputError(f"benchmark {b} ships no images: no pixel baseline")
            s, g = score_features({"pixels": pixel_features(stimuli)}, stimuli.ids, b, brain, model=PIXELS_MODEL)
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
