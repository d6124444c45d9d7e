"""The scoring grid on Dask: a local cluster, an existing cluster, or SLURM.

``brainlid score ... --scheduler local|tcp://HOST:PORT|slurm`` (and
``brainlid.scoring.score(..., client=...)``) runs the same grid as the serial
:func:`brainlid.scoring.runner.score`, with Dask's distributed scheduler placing the tasks.
Without a scheduler nothing here is imported and Dask is not needed (it is the
``distributed`` extra: ``pip install 'brainlid[distributed]'``).

Tasks
    The grid — model names, layers, baseline groups, which group measures geometry, which
    benchmark runs the model–model task — is :func:`brainlid.scoring.plan.plan_grid`'s, the
    serial runner's plan; this module only maps it onto tasks:

    * one **extraction** task per (model spec, benchmark stimulus set): it runs
      :func:`brainlid.features.extract` on a worker, which writes every layer into the shared
      feature cache, and returns only the cache keys and shapes. It runs once, before that
      model's scoring tasks, which are submitted when it finishes;
    * one **cell** task per (model, layer, benchmark): :func:`brainlid.scoring.runner.score_layer`
      on the layer's features, read **by cache key on the worker** (a read-only memory map;
      never an array pickled into the task graph), plus that layer's geometry rows when the
      serial run would measure them there. For large ROIs an encoding cell is split into
      **voxel batches** (one task per batch of units, see :func:`plan_voxel_batches`); their
      per-unit scores are joined on the client, which makes the rows;
    * one **group** task per (model, RDM benchmark) (``kind="rdms"``, published brain RDMs):
      :func:`brainlid.scoring.rdm_benchmarks.score_rdm_features` on all the model's layers
      together, read by cache key on the worker — the split-half layer selection compares every
      layer on the same image halves, and an RDM of ≤ a few hundred images is cheap, so the
      group is not split (its memory is checked with :func:`estimate_rdm_group_memory`);
    * one **model–model** task per benchmark stimulus set with two models or more.

    The benchmark's responses are loaded on the worker (from the shared data root, cached per
    worker process), so tasks carry only ids, keys and paths.

Exactly once, resumable
    The client is the **only writer** of the results store (SQLite must never sit on a network
    file system under concurrent writers): workers return rows, the client commits them as
    tasks finish (:func:`distributed.as_completed`), one transaction per store cell. The best
    layer is chosen across the layers of a (model, benchmark), so the layer cells of that pair
    are committed together, as soon as its last layer finishes. Rerunning the same command
    submits nothing for cells already in the store (``if_exists="skip"``); a task whose worker
    dies is rerun by Dask (``retries`` and the scheduler's ``allowed-failures``), and a cell is
    committed at most once per run; the store's ``UNIQUE`` cell key rejects any second copy.

Shared file system
    The feature cache (``$BRAINLID_HOME/cache/features``) and the dataset root must be on a file
    system that every worker sees at the same path (the client passes its cache folder to the
    tasks). The results store stays with the client and may be local.

Memory
    Each encoding cell's ridge memory is estimated (:func:`estimate_cell_memory`) and compared
    with the workers' memory limit; cells that do not fit are split into voxel batches, and a
    cell whose fixed part (features, PCA, Gram/kernel decompositions) alone does not fit raises
    :class:`CellMemoryError` with the numbers and what to change.

Threads
    Every task limits BLAS and torch threads in its worker process to the worker's share of the
    cores (:func:`brainlid.backend.set_threads`), so ``n_workers × threads ≤ cores``.

SLURM configuration
    ``--scheduler slurm`` builds a :class:`dask_jobqueue.SLURMCluster` from the ``[slurm]``
    section of ``$BRAINLID_HOME/config.toml`` (keys are :class:`~dask_jobqueue.SLURMCluster`
    arguments, plus ``jobs``, the number of jobs to submit); without that section dask-jobqueue's
    own configuration (``~/.config/dask/jobqueue.yaml``, ``jobqueue.slurm``) is used::

        [slurm]
        queue = "cpu"
        account = "mylab"
        cores = 16            # per job
        processes = 4         # Dask workers per job (4 cores each)
        memory = "64GB"       # per job
        walltime = "04:00:00"
        local_directory = "$TMPDIR"
        job_extra_directives = ["--constraint=avx2"]
        jobs = 8
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..._progress import Stage
from ...backend import available_cores, set_threads
from ...data.provenance import data_source_of
from ...errors import BrainlidError, InputError, require

__all__ = [
    "ClusterHandle", "connect", "load_slurm_config", "score_distributed", "estimate_cell_memory", "estimate_benchmark_cell_memory",
    "cell_sizes",
    "plan_voxel_batches", "estimate_rdm_group_memory", "CellMemoryError", "DistributedRunInfo", "parse_memory", "slurm_cluster",
]

#: Fraction of a worker's memory limit a task may plan to use (Dask pauses a worker at 80 %).
MEMORY_FRACTION = 0.6
#: Times a task is resubmitted after an exception (a worker death is handled by the scheduler).
RETRIES = 2


class CellMemoryError(InputError):
    """A cell (or one voxel batch of it) needs more memory than a worker has."""


# --------------------------------------------------------------------------- clusters
@dataclass
class ClusterHandle:
    """A connected :class:`distributed.Client` and what it runs on.

    ``owned`` is True when this handle started the cluster (and :meth:`close` stops it).
    ``blas_threads`` is the number of BLAS/torch threads each task uses; ``memory_limit`` the
    smallest worker memory limit in bytes (0: unknown/unlimited).
    """

    client: object
    cluster: object | None
    owned: bool
    blas_threads: int
    memory_limit: int
    description: str

    def close(self) -> None:
        if self.owned:
            try:
                self.client.close()
            finally:
                if self.cluster is not None:
                    self.cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _require_dask():
    require("distributed", "distributed")
    return importlib.import_module("distributed")


def parse_memory(text) -> int:
    """``"4GB"``, ``"4GiB"``, ``"500MB"``, ``4e9`` → bytes (decimal and binary units)."""
    if text is None:
        return 0
    if isinstance(text, (int, float, np.integer, np.floating)):
        return int(text)
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", str(text).lower())
    if not m:
        raise InputError(f"memory must look like 4GB, 4GiB or 500MB, got {text!r}")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** " kmgt".index(m.group(2) or " "))


def _total_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def load_slurm_config(path: str | os.PathLike | None = None) -> dict:
    """The ``[slurm]`` section of ``$BRAINLID_HOME/config.toml`` (or ``path``); ``{}`` when absent."""
    import tomllib

    from ...config import brainlid_home

    p = Path(path) if path is not None else brainlid_home() / "config.toml"
    if not p.is_file():
        return {}
    try:
        cfg = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read {p}: {exc}") from exc
    sec = cfg.get("slurm", {})
    if not isinstance(sec, dict):
        raise InputError(f"{p}: [slurm] must be a table")
    return dict(sec)


def _dashboard_line(client) -> str:
    if importlib.util.find_spec("bokeh") is None:
        return "Dask dashboard: not available (install bokeh>=3.1 for it)"
    link = getattr(client, "dashboard_link", None)
    return f"Dask dashboard: {link}" if link else "Dask dashboard: not available"


def connect(
    scheduler: str | object = "local",
    *,
    workers: int | None = None,
    memory_per_worker: str | int | None = None,
    slurm_config: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = print,
) -> ClusterHandle:
    """Start or join a Dask cluster.

    Parameters
    ----------
    scheduler : ``"local"``, ``"tcp://HOST:PORT"``, ``"slurm"`` or a :class:`distributed.Client`
        ``local`` starts a :class:`distributed.LocalCluster` of ``workers`` processes (default:
        one per core, at most 8) with one task at a time each and ``cores // workers`` BLAS
        threads per task; ``tcp://`` joins a running scheduler; ``slurm`` builds a
        :class:`dask_jobqueue.SLURMCluster` from :func:`load_slurm_config` (else dask-jobqueue's
        own ``jobqueue.slurm`` configuration) and submits ``workers`` jobs (default the
        config's ``jobs``, else 1).
    workers : int or None
    memory_per_worker : "4GB" or bytes or None
        Local: each worker's memory limit (default: the machine's memory divided among them).
        SLURM: overrides ``memory`` per job divided by ``processes``.
    log : callable or None
        Where the dashboard link and the cluster description go.
    """
    distributed = _require_dask()
    if workers is not None and int(workers) < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    mem = parse_memory(memory_per_worker) if memory_per_worker is not None else None
    if mem is not None and mem < 64 * 2**20:
        raise InputError(f"--memory-per-worker {memory_per_worker!r} is below 64 MiB")
    if isinstance(scheduler, distributed.Client):
        handle = _describe(scheduler, None, False)
    elif scheduler == "local":
        import logging

        _keep_script_out_of_workers()
        cores = available_cores()
        n = int(workers) if workers is not None else max(1, min(cores, 8))
        threads = max(1, cores // n)
        limit = mem if mem is not None else int(_total_memory() * 0.9 / n)
        dash = ":0" if importlib.util.find_spec("bokeh") is not None else None
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, memory_limit=limit, dashboard_address=dash,
            silence_logs=logging.ERROR,
        )
        client = distributed.Client(cluster)
        handle = ClusterHandle(client, cluster, True, threads, limit,
                               f"local cluster: {n} worker process(es) × 1 task, {threads} BLAS thread(s) each, "
                               f"{_fmt(limit)} per worker")
    elif isinstance(scheduler, str) and scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        handle = _describe(client, None, True)
        handle.cluster = None
        # joined, not started: close the client only
        handle.owned = True
    elif scheduler == "slurm":
        cfg = load_slurm_config(slurm_config)
        jobs = int(workers or cfg.get("jobs", 1))
        cluster, shape = slurm_cluster(cfg, memory_per_worker=mem)
        cluster.scale(jobs=jobs)
        client = distributed.Client(cluster)
        handle = ClusterHandle(client, cluster, True, shape["blas_threads"], shape["memory_limit"],
                               f"SLURM cluster: {jobs} job(s) × {shape['processes']} worker(s), {shape['slots']} task "
                               f"slot(s) and {shape['blas_threads']} BLAS thread(s) per task, "
                               f"{_fmt(shape['memory_limit'])} per worker")
    else:
        raise InputError(f"--scheduler must be 'local', 'slurm' or tcp://HOST:PORT, got {scheduler!r}")
    try:  # import torch, himalaya and the scoring code on every worker now, while the client plans
        handle.client.run(_prewarm_async, wait=False)
    except Exception:  # pragma: no cover - a warm-up is only an optimisation
        pass
    if log is not None:
        log(handle.description)
        log(_dashboard_line(handle.client))
    return handle


def _worker_version() -> str:
    from ..._version import __version__

    return __version__


async def _prewarm_async() -> None:
    """:func:`_prewarm` in a thread of the worker (its event loop stays responsive)."""
    import asyncio

    await asyncio.get_running_loop().run_in_executor(None, _prewarm)


_WARM_LOCK = threading.Lock()
_warm = False


def _prewarm() -> None:
    """Import what every task needs (torch and himalaya take seconds to import in a fresh process).

    :func:`connect` starts it on every worker in a thread of its own, and every task calls it first
    (:func:`_worker_threads`): a task that arrives during the warm-up waits for it instead of
    importing the same packages from a second thread at once, which can fail half-way (SciPy's
    lazy submodules: "Module 'scipy' has no attribute '_lib'"). Once done it is a flag check.
    """
    global _warm
    if _warm:
        return
    with _WARM_LOCK:
        if _warm:
            return
        import torch  # noqa: F401

        from ...backend import get_backend
        from .. import runner  # noqa: F401
        from ... import features, geometry  # noqa: F401

        get_backend("auto")
        _warm = True


def slurm_cluster(config: Mapping | None = None, *, memory_per_worker: int | None = None):
    """A :class:`dask_jobqueue.SLURMCluster` from a ``[slurm]`` config (no jobs submitted yet).

    ``config`` holds SLURMCluster arguments (``cores``, ``memory``, ``processes``, ``queue``,
    ``account``, ``walltime``, ``job_extra_directives``, ...) and optionally ``jobs`` (ignored
    here); empty → dask-jobqueue's ``jobqueue.slurm`` configuration. Returns ``(cluster, shape)``
    with ``shape = {processes, slots, blas_threads, memory_limit}`` per worker: each job's
    ``cores`` are split among its ``processes`` workers, each worker runs
    ``cores // processes`` tasks at once with one BLAS thread each.
    """
    jobqueue = require("dask_jobqueue", "distributed")
    import dask

    cfg = {k: v for k, v in dict(config or {}).items() if k != "jobs"}
    try:
        cluster = jobqueue.SLURMCluster(**cfg)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot build a SLURM cluster from the [slurm] config {cfg}: {exc}") from exc
    dflt = dask.config.get("jobqueue.slurm", {})
    cores = int(cfg.get("cores") or dflt.get("cores") or 1)
    processes = int(cfg.get("processes") or dflt.get("processes") or 1)
    job_mem = parse_memory(cfg.get("memory") or dflt.get("memory") or 0)
    limit = memory_per_worker if memory_per_worker is not None else job_mem // max(1, processes)
    slots = max(1, cores // max(1, processes))
    return cluster, {"processes": processes, "slots": slots, "blas_threads": 1, "memory_limit": int(limit)}


def _keep_script_out_of_workers() -> None:
    """Stop local worker processes from re-running the user's script.

    Dask starts local workers with multiprocessing's ``spawn``, which re-executes a plain
    ``python script.py`` as ``__mp_main__`` in every worker unless the script guards itself with
    ``if __name__ == "__main__":`` (tutorials and notebooks-as-scripts do not). Giving the
    ``__main__`` module a spec named ``__main__`` makes the child skip that re-execution
    (``multiprocessing.spawn._fixup_main_from_name``). Objects defined in the script are still
    shipped to workers by value (cloudpickle). Modules run with ``python -m`` and interactive
    sessions already have a spec (or no file) and are left alone.
    """
    import importlib.machinery

    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and getattr(main, "__file__", None):
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


def _describe(client, cluster, owned) -> ClusterHandle:
    """Threads and memory of an existing cluster: BLAS threads = host cores / task slots on the host."""
    info = client.scheduler_info(n_workers=-1) if "n_workers" in _params(client.scheduler_info) else client.scheduler_info()
    ws = info.get("workers", {})
    if not ws:
        return ClusterHandle(client, cluster, owned, 1, 0, f"Dask cluster at {client.scheduler.address}: no workers yet")
    cores = client.run(available_cores)
    slots: dict[str, int] = {}
    for addr, w in ws.items():
        slots[w.get("host", addr)] = slots.get(w.get("host", addr), 0) + int(w.get("nthreads", 1))
    threads = min(max(1, cores.get(a, 1) // max(1, slots[w.get("host", a)])) for a, w in ws.items())
    limits = [int(w.get("memory_limit") or 0) for w in ws.values()]
    limit = min((x for x in limits if x > 0), default=0)
    desc = (f"Dask cluster at {client.scheduler.address}: {len(ws)} worker(s), "
            f"{sum(int(w.get('nthreads', 1)) for w in ws.values())} task slot(s), {threads} BLAS thread(s) per task, "
            f"{_fmt(limit) if limit else 'no memory limit'} per worker")
    return ClusterHandle(client, cluster, owned, threads, limit, desc)


def _params(fn) -> set:
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return set()


def _fmt(n: int) -> str:
    from ...features.cache import fmt_size

    return fmt_size(n) if n else "unlimited"


# --------------------------------------------------------------------------- memory model
def estimate_cell_memory(n_fit: int, n_eval: int, n_features: int, n_units: int, *, pca: int | None, n_folds: int,
                         n_alphas: int, n_all: int | None = None, metric: str = "encoding",
                         n_boot: int = 0, n_times: int = 1, n_reps: int = 1) -> tuple[int, int]:
    """Estimated peak bytes of one cell as ``(fixed, per_unit)``: total ≈ fixed + per_unit · units.

    Encoding (the ridge of :func:`brainlid.alignment._ridge.ridge_cv_fit_predict` after PCA to
    ``q = min(pca, n_features)`` components; ``m = min(q, n_fit)`` the size of the Gram (primal,
    q ≤ n) or kernel (dual) it diagonalises):

    * fixed — the features ``4·n_all·d`` (float32), their PCA projection ``4·(n_fit+n_eval)·q``
      and ``K + 1`` float64 decompositions (matrix + eigenvectors) ``16·(K+1)·m²``;
    * per unit (and time point) — Y and predictions in float32 ``4·(n_fit + 2·n_eval)``, the
      float64 copies of :func:`~brainlid.scoring.runner.unit_scores` ``32·n_eval``, the
      per-fold projected targets ``16·K·m`` and the per-α errors ``8·n_alphas``;
    * the stimulus bootstrap of the ROI mean (``n_boot`` resamples; fixed): the counts
      ``8·n_boot·n_eval`` and one block of units, ``8·(7·n_boot + 4·n_eval)`` per unit up to the
      block budget of :func:`~brainlid.alignment.uncertainty.bootstrap_unit_sums`.

    RSA (``n_times`` brain RDMs, one per time point; ``P = n_eval(n_eval−1)/2`` pairs); the
    phases run one after the other, so the sum is an upper bound:

    * fixed — the features ``4·n_all·d``; the model RDM's float64 work
      (:func:`brainlid.alignment.rsa.rdm`): one column chunk ``min(8·n_eval·d, 32 MiB)`` and two
      row blocks of the n×n product ``2·min(8·n_eval², 64 MiB)``; the condensed RDMs
      ``4·(1 + n_times)·P``; with ``n_boot >= 10`` the variance-corrected stimulus bootstrap
      (:func:`~brainlid.scoring.rdm_benchmarks.rdm_bootstrap_ci`: float64 RDM stack, tie groups and
      weighted ranks, then :func:`~brainlid.scoring.rdm_benchmarks.second_order_excess`'s
      standardised ranks and influence blocks) ``14·8·(1 + n_times)·P`` (measured 13–16× with
      tracemalloc at 200–500 stimuli and 1–60 time points) plus the counts ``8·n_boot·n_eval``;
      with ``n_reps > 1`` the split-half ceiling's half RDMs and ranks ``8·8·(1 + n_times)·P``;
    * per unit (and time point) — the responses ``4·n_eval`` and, with ``n_reps > 1``, the
      ceiling's float64 copy of the repetitions ``8·n_eval·n_reps``.

    A safety factor of 1.5 is applied to both parts.
    """
    n_all = n_all if n_all is not None else n_fit + n_eval
    if metric != "encoding":
        pairs = n_eval * (n_eval - 1) // 2
        rdm_work = min(8 * n_eval * n_features, 2**25) + 2 * min(8 * n_eval * n_eval, 2**26)
        fixed = 4 * n_all * n_features + rdm_work + 4 * (1 + n_times) * pairs
        per_unit = 4 * n_eval
        if n_boot >= 10:
            fixed += 14 * 8 * (1 + n_times) * pairs + 8 * n_boot * n_eval
        if n_reps > 1:
            fixed += 8 * 8 * (1 + n_times) * pairs
            per_unit += 8 * n_eval * n_reps
        return int(1.5 * fixed), int(1.5 * per_unit)
    q = n_features if pca is None else min(int(pca), n_features)
    m = min(q, n_fit)
    fixed = 4 * n_all * n_features + 4 * (n_fit + n_eval) * q + 16 * (n_folds + 1) * m * m
    per_unit = 4 * (n_fit + 2 * n_eval) + 32 * n_eval + 16 * n_folds * m + 8 * n_alphas
    if n_boot:
        from ...alignment.uncertainty import BOOT_BLOCK_BUDGET

        fixed += 8 * n_boot * n_eval + min(BOOT_BLOCK_BUDGET, 8 * (7 * n_boot + 4 * n_eval) * n_units)
    return int(1.5 * fixed), int(1.5 * per_unit)


def cell_sizes(brain, bench) -> dict[str, int]:
    """Sizes of the cells of a response benchmark, for :func:`estimate_benchmark_cell_memory`.

    ``n_fit``/``n_eval`` (train/test stimuli), ``n_units`` (units × time points), ``n_times``
    (1 without a time axis) and ``n_reps`` (repetitions of the responses an RSA ceiling splits,
    1 when none are kept).
    """
    from ..benchmarks import REPS_META_KEY
    from ..runner import make_splits  # runner imports this module inside score(): no import at module level (cycle)

    splits = make_splits(brain, bench)
    reps = (brain.meta or {}).get(REPS_META_KEY)
    return {"n_fit": int(splits["train"].size), "n_eval": int(splits["test"].size),
            "n_units": int(np.prod(brain.responses.shape[1:])), "n_times": 1 if brain.times is None else len(brain.times),
            "n_reps": 1 if reps is None else int(reps.responses.shape[1])}


def estimate_benchmark_cell_memory(bench, sizes: Mapping[str, int], n_features: int, *,
                                   n_all: int | None = None) -> tuple[int, int]:
    """:func:`estimate_cell_memory` of one layer on a response benchmark, with the benchmark's parameters.

    ``sizes`` from :func:`cell_sizes`; PCA components, CV folds and α grid from ``bench.params``, and
    the bootstrap resamples of its metric (``n_boot`` for encoding, ``rsa_n_boot`` for RSA). Used by
    the Dask runner and the leaderboard worker.
    """
    p = bench.params
    return estimate_cell_memory(sizes["n_fit"], sizes["n_eval"], n_features, sizes["n_units"], pca=p.get("pca"),
                                n_folds=p.get("cv", 5), n_alphas=len(p.get("alphas", ())), n_all=n_all,
                                metric=bench.metric,
                                n_boot=int(p.get("n_boot" if bench.metric == "encoding" else "rsa_n_boot", 0)),
                                n_times=sizes.get("n_times", 1), n_reps=sizes.get("n_reps", 1))


def estimate_rdm_group_memory(n_stimuli: int, n_features: Sequence[int], n_subjects: int) -> int:
    """Estimated peak bytes of one RDM-benchmark group task (all layers of a model scored together).

    The layers' features ``4·n·Σd`` (float32) and, for the stimulus bootstrap, the stacked
    condensed RDMs of the layers, the subjects and the group mean with their sort orders and
    ranks, ``4 · 8 · P · (L + S + 1)`` with ``P = n(n−1)/2`` pairs; a safety factor of 1.5.
    """
    n = int(n_stimuli)
    pairs = n * (n - 1) // 2
    return int(1.5 * (4 * n * int(sum(n_features)) + 32 * pairs * (len(n_features) + int(n_subjects) + 1)))


def plan_voxel_batches(n_units: int, fixed: int, per_unit: int, memory_limit: int, *, voxel_batch: int | None = None,
                       what: str = "cell") -> list[tuple[int, int]]:
    """Split ``n_units`` into ``[start, stop)`` batches that fit ``MEMORY_FRACTION × memory_limit``.

    ``voxel_batch`` forces a batch size (it must fit). ``memory_limit = 0`` (unknown) gives one
    batch unless ``voxel_batch`` is set. Raises :class:`CellMemoryError` naming the estimate, the
    budget and the remedy (a smaller ``--voxel-batch``, PCA, or more memory per worker).
    """
    budget = int(MEMORY_FRACTION * memory_limit)
    if voxel_batch is not None:
        size = int(voxel_batch)
        if size < 1:
            raise InputError(f"voxel batch must be >= 1, got {voxel_batch}")
        if budget and fixed + per_unit * min(size, n_units) > budget:
            raise CellMemoryError(
                f"{what}: a batch of {size} units needs about {_fmt(fixed + per_unit * min(size, n_units))}, more than "
                f"{MEMORY_FRACTION:.0%} of the worker memory ({_fmt(budget)}); use a smaller --voxel-batch "
                f"(≤ {max(0, (budget - fixed) // per_unit)}), fewer PCA components, or more --memory-per-worker")
    elif not budget or fixed + per_unit * n_units <= budget:
        size = n_units
    else:
        room = budget - fixed
        if room < per_unit:
            raise CellMemoryError(
                f"{what}: the features and ridge decompositions alone need about {_fmt(fixed)}, more than "
                f"{MEMORY_FRACTION:.0%} of the worker memory ({_fmt(budget)}); reduce the features (benchmark PCA "
                f"components, extraction reduce='pca:K' or 'srp:K'), or give the workers more --memory-per-worker")
        size = max(1, room // per_unit)
    size = max(1, min(size, n_units))
    return [(a, min(a + size, n_units)) for a in range(0, n_units, size)]


# --------------------------------------------------------------------------- worker side
def _worker_threads(n: int) -> None:
    """Limit BLAS/torch threads for the task about to run in this worker thread.

    Called at the start of every task (about 5 ms): OpenMP thread counts are per calling thread,
    threadpoolctl only reaches the libraries loaded so far, and other code may have changed the
    limits since the last task, so a once-per-process setting is not enough. The imports every
    task needs are done (or awaited) first: :func:`_prewarm`.
    """
    _prewarm()
    set_threads(n)


@functools.lru_cache(maxsize=4)
def _bench_inputs(bench_id: str, data_root: str | None):
    """(stimuli restricted to the responses' ids, BrainData) of a benchmark, as the serial runner builds them
    (:func:`brainlid.scoring.plan.benchmark_inputs`), cached per worker process."""
    from ..benchmarks import UnknownBenchmarkError
    from ..plan import benchmark_inputs

    try:
        return benchmark_inputs(bench_id, data_root)
    except UnknownBenchmarkError as exc:
        raise InputError(f"benchmark {bench_id!r} is not registered in the Dask worker process {os.getpid()}: workers "
                         "know the built-in benchmarks and those registered by modules they import (dask worker "
                         "--preload); score a benchmark registered only in this session serially") from exc


_VERIFIED: set = set()


def _read_features(cache_root: str, key: str) -> np.ndarray:
    """A layer's features from the shared cache, memory-mapped; SHA-256 checked once per worker process."""
    from ...features.cache import FeatureCache

    entry = FeatureCache(cache_root).entry(key)
    if not entry.is_complete():
        raise BrainlidError(f"feature cache entry {key[:12]} is missing under {cache_root} on this worker: the cache "
                            "must be on a file system shared by the client and every worker")
    arr = entry.load(verify=key not in _VERIFIED)
    _VERIFIED.add(key)
    return arr


def _extract_task(spec: str, bench_id: str, data_root, layers, ekw: dict, cache_root: str, threads: int) -> dict:
    """Extract (or find in the cache) a model's layers for a benchmark's stimuli; return keys, not arrays."""
    from ...features import extract
    from ...features.cache import ids_digest

    _worker_threads(threads)
    t0 = time.perf_counter()
    sub, _ = _bench_inputs(bench_id, data_root)
    feats = extract(spec, sub, layers=layers, cache=cache_root, progress=False, **ekw)
    keys = feats.provenance.get("cache_keys") or {}
    out = [(str(k), str(keys.get(k) or ""), tuple(int(s) for s in np.shape(feats[k]))) for k in feats.layers]
    if any(not key for _, key, _ in out):
        raise BrainlidError(f"extraction of {spec} returned layers without cache keys")
    return {"layers": out, "ids_digest": ids_digest(feats.stimulus_ids), "seconds": time.perf_counter() - t0,
            "pid": os.getpid()}


@dataclass(frozen=True)
class _Cell:
    """What a cell task needs (small: ids, keys and paths only)."""

    bench: str
    data_root: str | None
    model: str
    layer: str
    layer_index: int
    source: str  # "cache" | "pixels" | "shuffled"
    key: str  # feature cache key ("" for pixels)
    row_key: str  # the rows' feature_cache_key
    ids_digest: str
    cache_root: str
    geometry: bool = False
    units: tuple[int, int] | None = None  # a voxel batch [start, stop) or the whole cell
    shuffle_seed: int = 0
    keep: bool = False  # return the test split's comparison arrays (brainlid compare; whole cells only)

    @property
    def store_key(self) -> tuple:
        return (self.model, self.layer, self.bench)


def _cell_features(cell: _Cell):
    """(X, feature ids, BrainData) of a cell, read on the worker."""
    from .. import baselines as bl
    from ...features.cache import ids_digest

    sub, brain = _bench_inputs(cell.bench, cell.data_root)
    if cell.source == "pixels":
        return bl.pixel_features(sub), np.asarray(sub.ids), brain
    if ids_digest(sub.ids) != cell.ids_digest:
        raise BrainlidError(f"benchmark {cell.bench}: the stimulus ids on this worker differ from the client's "
                            "(different data root or dataset version on the workers?)")
    X = _read_features(cell.cache_root, cell.key)
    if cell.source == "shuffled":
        X = bl.shuffle_features({cell.layer: np.asarray(X)}, seed=cell.shuffle_seed)[cell.layer]
    return X, np.asarray(sub.ids), brain


def _cell_task(cell: _Cell, threads: int) -> dict:
    """Score one cell (or one voxel batch of it) on a worker; returns rows or per-unit scores."""
    from .. import runner
    from ..benchmarks import get_benchmark
    from ..plan import lid_ids

    _worker_threads(threads)
    t0 = time.perf_counter()
    X, ids, brain = _cell_features(cell)
    bench = get_benchmark(cell.bench)
    splits = runner.make_splits(brain, bench)
    out: dict = {"cell": cell, "pid": os.getpid()}
    if cell.units is None:
        keep = {} if cell.keep else None
        out["rows"] = runner.score_layer(X, ids, brain, bench, model=cell.model, layer=cell.layer,
                                         layer_index=cell.layer_index, splits=splits, feature_cache_key=cell.row_key,
                                         keep=keep)
        if keep:
            out["arrays"] = keep
    else:
        out["unit_scores"] = _unit_scores_batch(X, ids, brain, bench, splits, cell.units)
    if cell.geometry:
        pos = runner._positions(ids, lid_ids(bench, brain), "LID")
        out["geometry"] = runner.geometry_rows(
            np.asarray(X, dtype=np.float32)[pos], model=cell.model, layer=cell.layer, layer_index=cell.layer_index,
            stimulus_set=bench.lid_stimulus_set, ks=bench.params["lid_ks"], estimators=bench.params["lid_estimators"],
            benchmark_version=bench.version, feature_cache_key=cell.row_key, data_source=data_source_of(brain))
    out["seconds"] = time.perf_counter() - t0
    return out


def _unit_scores_batch(X, ids, brain, bench, splits, units) -> dict:
    """Per-unit (r, R², α at the grid's edge) of units ``[start, stop)`` for the val and test splits, and
    the batch's per-resample sums of the stimulus bootstrap (what score_layer computes for the whole ROI;
    the counts depend on the seed and the number of evaluated stimuli only, so batch sums add up)."""
    from .. import runner

    Xa, Ya, aid = runner._aligned(np.asarray(X, dtype=np.float32), ids, brain)
    a, b = units
    Ya = Ya[:, a:b]
    res = {}
    for split in ("val", "test"):
        fit_ids, eval_ids = (splits["fit"], splits["val"]) if split == "val" else (splits["train"], splits["test"])
        fi = runner._positions(aid, fit_ids, f"{split}-fit")
        ei = runner._positions(aid, eval_ids, split)
        fit = runner._encode(Xa[fi], Ya[fi], Xa[ei], Ya[ei], bench.params)
        res[split] = {"r": fit.r, "r2": fit.r2, "at_edge": fit.at_edge, "unbracketed": fit.unbracketed,
                      "n_alphas": fit.n_alphas, "boot": fit.boot, "n_eval": int(ei.size)}
    return res


def _unit_part_json(v: dict) -> dict:
    """One split of a voxel batch's results as plain JSON values (the journal)."""
    return {"r": np.asarray(v["r"]).tolist(), "r2": np.asarray(v["r2"]).tolist(),
            "at_edge": np.asarray(v["at_edge"]).tolist(), "unbracketed": np.asarray(v["unbracketed"]).tolist(),
            "n_alphas": int(v["n_alphas"]), "n_eval": int(v["n_eval"]),
            "boot": None if v["boot"] is None else {k: np.asarray(b).tolist() for k, b in v["boot"].items()}}


def _unit_part_from_json(v: dict) -> dict:
    return {"r": np.asarray(v["r"], dtype=np.float32), "r2": np.asarray(v["r2"], dtype=np.float32),
            "at_edge": np.asarray(v["at_edge"], dtype=bool), "unbracketed": np.asarray(v["unbracketed"], dtype=bool),
            "n_alphas": int(v["n_alphas"]), "n_eval": int(v["n_eval"]),
            "boot": None if v["boot"] is None else {k: np.asarray(b, dtype=np.float64) for k, b in v["boot"].items()}}


def _join_unit_batches(cell: _Cell, parts: list[dict]) -> list[dict]:
    """Rows of a voxel-batched encoding cell from its batches' per-unit scores (on the client)."""
    from ..._version import __version__
    from .. import runner
    from ..benchmarks import get_benchmark

    bench = get_benchmark(cell.bench)
    _, brain = _bench_inputs(cell.bench, cell.data_root)
    parts = sorted(parts, key=lambda p: p["cell"].units[0])
    base = {
        "model": cell.model, "layer": cell.layer, "layer_index": cell.layer_index, "benchmark": bench.id,
        "dataset": bench.dataset, "subject": bench.subject, "roi": bench.roi, "brainlid_version": __version__,
        "benchmark_version": bench.version, "feature_cache_key": cell.row_key, "data_source": data_source_of(brain),
    }
    rows: list[dict] = []
    for split in ("val", "test"):
        got = [p["unit_scores"][split] for p in parts]
        r = np.concatenate([g["r"] for g in got], axis=0)
        r2 = np.concatenate([g["r2"] for g in got], axis=0)
        at_edge = np.concatenate([g["at_edge"] for g in got], axis=0)
        boot = None if any(g["boot"] is None for g in got) else {k: sum(g["boot"][k] for g in got) for k in got[0]["boot"]}
        rows += runner.encoding_rows(r, r2, brain.noise_ceiling, brain.times, bench.params,
                                     {**base, "split": split, "ceiling_method": bench.ceiling}, got[0]["n_eval"],
                                     at_edge=at_edge, n_alphas=got[0]["n_alphas"], boot=boot)
        if split == "test":
            runner._warn_alpha_edges(np.concatenate([g["unbracketed"] for g in got], axis=0),
                                     f"{cell.model} {cell.layer} on {bench.id}")
    return rows


def _rdm_group_task(cells: tuple, threads: int) -> dict:
    """Score every layer of one (model, RDM benchmark) group on a worker
    (:func:`brainlid.scoring.rdm_benchmarks.score_rdm_features`, as the serial runner): score rows
    of all layers (the split-half layer selection needs them together) and, when asked, their
    geometry rows."""
    from ..rdm_benchmarks import score_rdm_features

    _worker_threads(threads)
    t0 = time.perf_counter()
    feats: dict = {}
    for c in cells:
        X, ids, brain = _cell_features(c)
        feats[c.layer] = X
    c = cells[0]
    keep = {} if c.keep else None
    scores, geom = score_rdm_features(feats, ids, c.bench, brain, model=c.model, geometry=c.geometry,
                                      feature_cache_key={x.layer: x.row_key for x in cells}, keep=keep)
    return {"cell": cells, "pid": os.getpid(), "rows": scores.to_dict("records"), "geometry": geom.to_dict("records"),
            "seconds": time.perf_counter() - t0, "arrays": keep}


def _model_model_task(bench_id: str, data_root, keys: dict, ids_digests: dict, cache_root: str, metrics, threads: int):
    """Model–model rows of the named models' last layers on a benchmark's LID stimuli."""
    from .. import runner
    from ..benchmarks import get_benchmark
    from ..plan import lid_ids
    from ...features.cache import ids_digest

    _worker_threads(threads)
    bench = get_benchmark(bench_id)
    sub, brain = _bench_inputs(bench_id, data_root)
    ids = np.asarray(sub.ids)
    if any(d != ids_digest(ids) for d in ids_digests.values()):
        raise BrainlidError(f"benchmark {bench_id}: stimulus ids on this worker differ from the client's")
    pos = runner._positions(ids, lid_ids(bench, brain), "LID")
    feats = {name: np.asarray(_read_features(cache_root, key), dtype=np.float32)[pos] for name, (layer, key) in keys.items()}
    return runner.model_model_rows(feats, stimulus_set=bench.lid_stimulus_set, metrics=tuple(metrics),
                                   layers={n: layer for n, (layer, _) in keys.items()}, data_source=data_source_of(brain))


# --------------------------------------------------------------------------- the client
@dataclass
class DistributedRunInfo:
    """What a distributed run did: tasks submitted, cells written, skipped or replayed from the journal.

    ``cell_tasks`` counts layer cells, voxel batches and RDM-benchmark group tasks.
    ``task_seconds`` sums the extraction and cell tasks' run times on the workers; ``plan_seconds`` is the client's
    planning before the first submission (loading each benchmark's splits, resolving layers, reading
    the store); ``wall_seconds`` the whole call.
    """

    tasks: int = 0
    extraction_tasks: int = 0
    cell_tasks: int = 0
    cells_written: int = 0
    cells_skipped: int = 0
    groups_skipped: int = 0
    cells_replayed: int = 0
    plan_seconds: float = 0.0
    task_seconds: float = 0.0
    wall_seconds: float = 0.0
    worker_pids: set = field(default_factory=set)


@dataclass
class _Group:
    """All layer cells of one (model, benchmark): committed together once the best layer is known."""

    model: str
    bench: str
    n_layers: int = 0
    rows: dict = field(default_factory=dict)  # layer_index → rows
    geometry: list = field(default_factory=list)
    batches: dict = field(default_factory=dict)  # layer_index → (cell, n_batches, parts)
    cells: list = field(default_factory=list)  # every task-cell of the group (journal entries)
    arrays: dict = field(default_factory=dict)  # comparison arrays returned by whole-cell tasks (runner.keep_arrays)


class _Journal:
    """Finished cell results the client has not committed yet (its own scratch beside the store).

    A (model, benchmark) pair is committed when its last layer finishes; a client that stops
    before that keeps the finished layers' results here (``<store>.pending/<digest>.json``,
    written atomically), and the next run replays them instead of recomputing. The digest covers
    everything the rows depend on (cell, voxel batch, feature cache key, benchmark version,
    brainlid version), so a stale entry is never reused; entries are deleted once committed.
    """

    def __init__(self, store_path):
        self.dir = Path(str(store_path) + ".pending")

    @staticmethod
    def _ident(cell: _Cell) -> tuple:
        from ..._version import __version__
        from ..benchmarks import get_benchmark

        b = get_benchmark(cell.bench)
        return (cell.model, cell.layer, cell.layer_index, cell.bench, b.version, b.params, cell.source, cell.key,
                cell.ids_digest, cell.geometry, cell.units, cell.shuffle_seed, __version__)

    def _path(self, cell: _Cell | tuple) -> Path:
        """One file per task: a cell, or the tuple of cells of an RDM-benchmark group task."""
        ident = tuple(self._ident(c) for c in cell) if isinstance(cell, tuple) else self._ident(cell)
        return self.dir / f"{hashlib.sha256(repr(ident).encode()).hexdigest()[:32]}.json"

    def save(self, cell: _Cell, res: dict) -> None:
        import json

        from ..._atomic import atomic_write_text

        out = {"rows": res.get("rows"), "geometry": res.get("geometry", []), "seconds": res.get("seconds", 0.0),
               "pid": res.get("pid", 0)}
        if res.get("unit_scores") is not None:
            out["unit_scores"] = {k: _unit_part_json(v) for k, v in res["unit_scores"].items()}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._path(cell), json.dumps(out, default=_json_value))

    def load(self, cell: _Cell) -> dict | None:
        import json

        p = self._path(cell)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # unreadable: recompute
            return None
        d["cell"] = cell
        if "unit_scores" in d:
            try:
                d["unit_scores"] = {k: _unit_part_from_json(v) for k, v in d["unit_scores"].items()}
            except (KeyError, TypeError, ValueError):  # an older journal format: recompute
                return None
        return d

    def drop(self, cell: _Cell) -> None:
        try:
            self._path(cell).unlink()
        except FileNotFoundError:
            pass

    def cleanup(self) -> None:
        try:
            self.dir.rmdir()  # only when empty
        except OSError:
            pass


@dataclass
class _Entry:
    """One benchmark of the plan on the client: what its tasks need, without the benchmark's data."""

    bench: object
    sub_digest: str  # ids digest of the benchmark's stimuli (restricted to ids with brain data)
    stim_token: str  # extraction key: one extraction per (spec, stimulus set)
    sizes: dict  # n_all, n_fit, n_eval, n_units (memory planning)
    groups: list  # brainlid.scoring.plan.Group, in the plan's order
    todo: list  # per group: some of its store cells are missing
    mm: bool = False  # the model–model task of this benchmark's LID set runs here
    mm_cells: list = field(default_factory=list)
    mm_todo: bool = False


def _group_cells(g, bench) -> list[tuple]:
    """Store cells ``(kind, model, layer, benchmark or stimulus set, version)`` a group writes."""
    need = [("scores", g.model, l, bench.id, bench.version) for l in g.layers]
    if g.geometry:
        need += [("geometry", g.model, l, bench.lid_stimulus_set, bench.version) for l in g.layers]
    return need


def _json_value(o):
    """JSON for the journal: numpy scalars as numbers, pandas' NA (RDM rows' ``n_units``) as null."""
    if o is pd.NA:
        return None
    return o.item() if hasattr(o, "item") else str(o)


def _digest(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def score_distributed(
    client,
    model,
    benchmarks,
    *,
    layers=None,
    data_root=None,
    out=None,
    store=True,
    baselines=True,
    pooling: str = "avg",
    batch_size: int = 64,
    if_exists: str = "skip",
    extract_kwargs: Mapping | None = None,
    mm_metrics: Sequence[str] = ("mutual_knn", "ridge_r2"),
    voxel_batch: int | None = None,
    memory_limit: int | None = None,
    blas_threads: int | None = None,
    progress: bool = True,
    callback: Callable[[int, int, tuple], None] | None = None,
    return_result: bool = False,
    keep_arrays: str = "selected",
):
    """The grid of :func:`brainlid.scoring.runner.score` on a Dask cluster (same rows, same tables).

    Parameters
    ----------
    client : distributed.Client or ClusterHandle
        From :func:`connect` (or any client whose workers can import brainlid and see the same
        feature cache and data root paths).
    model, benchmarks, layers, data_root, out, store, baselines, pooling, batch_size, if_exists, extract_kwargs, mm_metrics
        As in :func:`brainlid.scoring.runner.score`. Models must be spec strings (they are rebuilt
        on the workers).
    voxel_batch : int or None
        Units per encoding task; default from the worker memory limit (:func:`plan_voxel_batches`).
    memory_limit, blas_threads : int or None
        Override what the cluster reports (bytes per worker; BLAS threads per task).
    progress : bool
        A rich progress bar of committed cells on stderr (only on a terminal outside CI).
    callback : callable(done, total, cell) or None
        Called on the client after each committed cell.
    keep_arrays : {"selected", "all", "none"}
        As in :func:`~brainlid.scoring.runner.score`: whole-cell tasks return their test split's
        predictions / model RDMs, and the client stores those of the selected layer (or every layer)
        with the group's rows. Voxel-batched cells and cells replayed from the journal keep none
        (``brainlid compare`` then says what to re-run); the client holds, per (model, benchmark)
        group in flight, the predictions of the best layer so far and of the layer just finished.

    Returns
    -------
    DataFrame of score rows, or a :class:`~brainlid.scoring.runner.ScoreResult` (with ``info``, a
    :class:`DistributedRunInfo`, as ``result.info``) when ``return_result``.
    """
    distributed = _require_dask()
    from ..plan import named_models, plan_grid
    from ..runner import KEEP_ARRAYS, ScoreResult
    from ..store import DuplicateCellError, ResultsStore
    from ..tables import geometry_frame, score_frame, write_table
    from ...features.cache import FeatureCache, ids_digest

    t_start = time.perf_counter()
    handle = client if isinstance(client, ClusterHandle) else None
    cl = handle.client if handle is not None else client
    if handle is None and (memory_limit is None or blas_threads is None):
        handle = _describe(cl, None, False)
    memory_limit = handle.memory_limit if memory_limit is None else int(memory_limit)
    threads = handle.blas_threads if blas_threads is None else int(blas_threads)
    if if_exists not in ("skip", "replace", "error"):
        raise InputError(f"if_exists must be 'skip', 'replace' or 'error', got {if_exists!r}")
    if keep_arrays not in KEEP_ARRAYS:
        raise InputError(f"keep_arrays must be 'selected', 'all' or 'none', got {keep_arrays!r}")
    from ..._version import __version__

    other = {a: v for a, v in cl.run(_worker_version).items() if v != __version__}
    if other:
        raise InputError(f"Dask workers run another brainlid version than this client ({__version__}): "
                         + ", ".join(f"{a}: {v}" for a, v in sorted(other.items())))

    named, _ = named_models(model)
    bad = [k for k, v in named.items() if not isinstance(v, str)]
    if bad:
        raise InputError(f"distributed scoring rebuilds models on the workers from spec strings; {bad} are objects "
                         "(save the weights and use module:file.py:Name@weights.pt)")
    ekw = {"pooling": pooling, "batch_size": batch_size, **dict(extract_kwargs or {})}
    # names, layers, baseline groups, geometry-once and model–model-once: the serial runner's plan
    grid = plan_grid(model, benchmarks, layers=layers, baselines=baselines, data_root=data_root,
                     allow_download=ekw.get("allow_download"))
    root = None if data_root is None else str(Path(data_root).resolve())
    cache_root = str(FeatureCache().root.resolve())
    st = None
    if store:
        st = ResultsStore(None if store is True else store)
    journal = _Journal(st.path) if st is not None else None
    done_cells: set = set()
    if st is not None and if_exists != "replace":
        c = st.cells()
        done_cells = set(zip(c["kind"], c["model"], c["layer"], c["benchmark"], c["benchmark_version"].astype(int)))

    # ---- plan: which (model, benchmark) groups need work; which geometry cells; model–model cells
    plan: list[_Entry] = []
    for bp in grid:
        bench, sub, brain = bp.bench, bp.stimuli, bp.brain
        if done_cells:  # stored cells are skipped: they must come from the same kind of data as this run's
            st.check_data_source(bench.id, bench.version, data_source_of(brain))
        if bench.kind == "rdms":  # published RDMs: nothing is fitted
            sizes = {"n_all": len(sub), "n_subjects": int(brain.n_subjects)}
        else:
            sizes = {"n_all": len(sub), **cell_sizes(brain, bench)}
        entry = _Entry(bench, ids_digest(np.asarray(sub.ids)), _digest(sub.digest), sizes, bp.groups,
                       [not all(c in done_cells for c in _group_cells(g, bench)) for g in bp.groups], bp.model_model)
        if entry.mm:
            entry.mm_cells = bp.mm_cells(mm_metrics)
            entry.mm_todo = not all(c in done_cells for c in entry.mm_cells)
        plan.append(entry)
        del bp, brain, sub

    if if_exists == "error":
        for e in plan:
            for g in e.groups:
                if any(("scores", g.model, l, e.bench.id, e.bench.version) in done_cells for l in g.layers):
                    raise DuplicateCellError(f"the store already has scores for {g.model} on {e.bench.id}")

    info = DistributedRunInfo(plan_seconds=time.perf_counter() - t_start)
    total = sum(len(g.layers) for e in plan for g, todo in zip(e.groups, e.todo) if todo) + sum(
        1 for e in plan if e.mm and e.mm_todo)
    info.groups_skipped = sum(1 for e in plan for todo in e.todo if not todo)

    # ---- submit: extraction first; cells when their extraction is done
    futures = distributed.as_completed([], with_results=False)
    meta: dict = {}  # future.key → (kind, payload)
    extractions: dict = {}  # (spec, stim token, layers) → {"future"|"result", "waiting": [(entry, group)]}

    run_id = uuid.uuid4().hex[:8]  # task keys are unique per run: a rerun never meets a cancelled key

    def submit(fn, *args, kind, payload, name):
        f = cl.submit(fn, *args, key=f"{name}-{run_id}-{info.tasks}", retries=RETRIES, pure=False)
        meta[f.key] = (kind, payload)
        futures.add(f)
        info.tasks += 1
        return f

    def submit_cells(entry, g, ext):
        bench = entry.bench
        by_name = {l: (k, shp) for l, k, shp in ext["layers"]} if ext is not None else {}
        grp = _Group(g.model, bench.id, len(g.layers))
        groups[(g.model, bench.id)] = grp
        sizes = entry.sizes
        source = "cache" if g.source == "random" else g.source  # a random twin is read from the cache as any model
        cells, dims = [], []
        for li, layer in enumerate(g.layers):
            key, d = ("", 32 * 32) if g.source == "pixels" else (by_name[layer][0], by_name[layer][1][1])
            cells.append(_Cell(bench=bench.id, data_root=root, model=g.model, layer=layer, layer_index=li,
                               source=source, key=key, row_key="" if source != "cache" else key,
                               ids_digest=ext["ids_digest"] if ext is not None else entry.sub_digest,
                               cache_root=cache_root, geometry=g.geometry, shuffle_seed=bench.params["seed"],
                               keep=st is not None and keep_arrays != "none"))
            dims.append(d)
        if bench.kind == "rdms":  # split-half layer selection over every layer: one task for the whole group
            need = estimate_rdm_group_memory(sizes["n_all"], dims, sizes["n_subjects"])
            budget = int(MEMORY_FRACTION * memory_limit)
            if budget and need > budget:
                raise CellMemoryError(f"{g.model} on {bench.id}: scoring its {len(dims)} layer(s) together needs about "
                                      f"{_fmt(need)}, more than {MEMORY_FRACTION:.0%} of the worker memory "
                                      f"({_fmt(budget)}); score fewer layers or give the workers more --memory-per-worker")
            tasks: list = [tuple(cells)]
        else:
            tasks = []
            for cell, d in zip(cells, dims):
                tasks += layer_tasks(grp, cell, d, sizes, bench)
        grp.cells += tasks
        replay: list = []
        for c in tasks:
            saved = journal.load(c) if journal is not None else None
            if saved is not None:  # finished by an earlier run that stopped before committing it
                replay.append(saved)
                info.cells_replayed += 1
            elif isinstance(c, tuple):
                submit(_rdm_group_task, c, threads, kind="cell", payload=c, name="rdm-group")
                info.cell_tasks += 1
            else:
                submit(_cell_task, c, threads, kind="cell", payload=c, name=f"cell-{c.layer}")
                info.cell_tasks += 1
        while replay:
            on_cell(replay.pop(0))

    def layer_tasks(grp, cell, d, sizes, bench) -> list:
        """One layer cell of a response benchmark: itself, or its voxel batches when it does not fit."""
        fixed, per_unit = estimate_benchmark_cell_memory(bench, sizes, d, n_all=sizes["n_all"])
        what = f"{cell.model} / {cell.layer} on {bench.id}"
        if bench.metric == "encoding":
            batches = plan_voxel_batches(sizes["n_units"], fixed, per_unit, memory_limit, voxel_batch=voxel_batch,
                                         what=what)
        else:
            batches = [(0, sizes["n_units"])]
            budget = int(MEMORY_FRACTION * memory_limit)
            if budget and fixed + per_unit * sizes["n_units"] > budget:
                raise CellMemoryError(f"{what}: an RSA cell needs about {_fmt(fixed + per_unit * sizes['n_units'])}, "
                                      f"more than {MEMORY_FRACTION:.0%} of the worker memory ({_fmt(budget)}); "
                                      "give the workers more --memory-per-worker")
        if len(batches) == 1:
            return [cell]
        grp.batches[cell.layer_index] = (cell, len(batches), [])
        return [replace(cell, units=ab, geometry=cell.geometry and j == 0, keep=False) for j, ab in enumerate(batches)]

    groups: dict = {}
    pixel_groups: list = []
    mm_wait: list = []  # (entry, {name: ext key})
    for entry in plan:
        for g, todo in zip(entry.groups, entry.todo):
            if not todo and not (entry.mm and entry.mm_todo and g.source == "cache"):  # mm reads the models' layers
                continue
            if g.source == "pixels":
                pixel_groups.append((entry, g))
                continue
            # one extraction per (spec, stimulus set); the shuffled baseline reads the model's own
            tok = (g.spec, entry.stim_token)
            x = extractions.get(tok)
            if x is None:
                x = extractions[tok] = {"waiting": [], "result": None}
                submit(_extract_task, g.spec, entry.bench.id, root, list(g.extract_layers), ekw, cache_root, threads,
                       kind="extract", payload=tok, name="extract")
                info.extraction_tasks += 1
            if todo:
                x["waiting"].append((entry, g))
        if entry.mm and entry.mm_todo:
            mm_wait.append(entry)

    def try_model_model():
        for entry in list(mm_wait):
            toks = {m.name: (m.spec, entry.stim_token) for m in grid.models}
            if all(extractions.get(t, {}).get("result") is not None for t in toks.values()):
                mm_wait.remove(entry)
                keys = {}
                digests = {}
                for n, t in toks.items():
                    layer, key, _ = extractions[t]["result"]["layers"][-1]
                    keys[n] = (layer, key)
                    digests[n] = extractions[t]["result"]["ids_digest"]
                submit(_model_model_task, entry.bench.id, root, keys, digests, cache_root, tuple(mm_metrics), threads,
                       kind="mm", payload=entry, name="model-model")

    all_scores: list[pd.DataFrame] = []
    all_geom: list[pd.DataFrame] = []
    written: set = set()

    def commit(kind, df, key_desc):
        """One store cell per call (its own transaction); never twice in a run."""
        k = (kind, *key_desc)
        if k in written:
            return
        written.add(k)
        if st is None:
            return
        try:
            st.add_cell(kind, df, replace=if_exists == "replace")
            info.cells_written += 1
        except DuplicateCellError:
            if if_exists == "error":
                raise
            info.cells_skipped += 1

    bar = _Bar(total, progress)
    n_done = 0

    def finished_cell(key):
        nonlocal n_done
        n_done += 1
        bar.advance()
        if callback is not None:
            callback(n_done, total, key)

    def group_done(grp: _Group):
        from ..runner import select_best_layer

        rows = [r for li in sorted(grp.rows) for r in grp.rows[li]]
        scores = select_best_layer(score_frame(rows))
        geom = geometry_frame(grp.geometry)
        for (m, layer, b, _v), part in scores.groupby(["model", "layer", "benchmark", "benchmark_version"], sort=False):
            commit("scores", part, (m, layer, b))
        for (m, layer, s, _v), part in geom.groupby(["model", "layer", "stimulus_set", "benchmark_version"], sort=False):
            commit("geometry", part, (m, layer, s))
        if grp.arrays and st is not None:
            from ..runner import prune_kept

            if keep_arrays == "selected":
                prune_kept(grp.arrays, scores, grp.model, grp.bench)
            st.add_arrays(grp.arrays, data_source=str(scores["data_source"].iloc[0]), replace=if_exists == "replace")
            grp.arrays = {}
        if journal is not None:
            for c in grp.cells:
                journal.drop(c)
        for layer in scores["layer"].unique():
            finished_cell((grp.model, layer, grp.bench))
        all_scores.append(scores)
        all_geom.append(geom)

    def on_cell(res):
        cell = res["cell"]
        first = cell[0] if isinstance(cell, tuple) else cell
        grp = groups[(first.model, first.bench)]
        grp.geometry += res.get("geometry", [])
        grp.arrays.update(res.get("arrays") or {})
        if isinstance(cell, tuple):  # an RDM benchmark's group task: rows of every layer
            for r in res["rows"]:
                grp.rows.setdefault(r["layer_index"], []).append(r)
        elif cell.units is None:
            grp.rows[cell.layer_index] = res["rows"]
            if grp.arrays and keep_arrays == "selected":  # only the best layer so far stays on the client
                from ..runner import prune_kept, select_best_layer

                prune_kept(grp.arrays, select_best_layer(score_frame([r for v in grp.rows.values() for r in v])),
                           grp.model, grp.bench)
        else:
            whole, n_b, parts = grp.batches[cell.layer_index]
            parts.append(res)
            if len(parts) == n_b:
                grp.rows[cell.layer_index] = _join_unit_batches(whole, parts)
        if len(grp.rows) == grp.n_layers:
            group_done(grp)

    try:
        for entry, g in pixel_groups:
            submit_cells(entry, g, None)
        for fut in futures:
            kind, payload = meta.pop(fut.key)
            res = fut.result()  # re-raises the task's error (after Dask's retries)
            fut.release()
            if kind == "extract":
                info.task_seconds += res["seconds"]
                info.worker_pids.add(res["pid"])
                x = extractions[payload]
                x["result"] = res
                for entry, g in x.pop("waiting"):
                    submit_cells(entry, g, res)
                x["waiting"] = []
                try_model_model()
            elif kind == "cell":
                info.task_seconds += res["seconds"]
                info.worker_pids.add(res["pid"])
                if journal is not None:
                    journal.save(res["cell"], res)
                on_cell(res)
            elif kind == "mm":
                df = score_frame(res)
                for (m, layer, b, _v), part in df.groupby(["model", "layer", "benchmark", "benchmark_version"], sort=False):
                    commit("scores", part, (m, layer, b))
                all_scores.append(df)
                finished_cell(("model-model", payload.bench.id))
    except BaseException:
        for f in list(futures.futures):
            f.cancel()
        raise
    finally:
        bar.close()
    if journal is not None:
        journal.cleanup()

    # ---- the tables: this run's rows plus the stored rows of the groups that were skipped
    if st is not None:
        for e in plan:
            v = e.bench.version
            for g, todo in zip(e.groups, e.todo):
                if not todo:
                    all_scores.append(st.scores(model=g.model, benchmark=e.bench.id, layer=list(g.layers),
                                                benchmark_version=v))
                    if g.geometry:
                        all_geom.append(st.geometry(model=g.model, stimulus_set=e.bench.lid_stimulus_set,
                                                    layer=list(g.layers), benchmark_version=v))
            if e.mm and not e.mm_todo:
                for mv in sorted({c[4] for c in e.mm_cells}):  # model–model versions differ by metric
                    cells = [c for c in e.mm_cells if c[4] == mv]
                    all_scores.append(st.scores(model=[m.name for m in grid.models],
                                                benchmark=sorted({c[3] for c in cells}),
                                                layer=sorted({c[2] for c in cells}), benchmark_version=mv))
    scores = pd.concat([s for s in all_scores if len(s)], ignore_index=True) if any(len(s) for s in all_scores) else score_frame([])
    geom = pd.concat([g for g in all_geom if len(g)], ignore_index=True) if any(len(g) for g in all_geom) else geometry_frame([])
    scores = score_frame(scores)
    geom = geometry_frame(geom).drop_duplicates(subset=["model", "layer", "stimulus_set", "estimator", "K"]).reset_index(drop=True)
    paths: list[Path] = []
    if out is not None:
        paths += write_table(scores, Path(out) / "scores")
        paths += write_table(geom, Path(out) / "geometry")
    info.wall_seconds = time.perf_counter() - t_start
    if return_result:
        res = ScoreResult(scores, geom, paths, st)
        res.info = info
        return res
    return scores


class _Bar:
    """The progress bar of committed cells (:class:`brainlid._progress.Stage`: stderr, only on a terminal
    outside CI), or nothing."""

    def __init__(self, total: int, show: bool):
        self._stage = Stage("cells", total=total, enabled=None if show and total else False).__enter__()

    def advance(self):
        self._stage.advance()

    def close(self):
        self._stage.__exit__(None, None, None)
