"""Dask clusters for the scoring grid: start or join one, and each task's share of threads.

:func:`connect` starts a local cluster, joins a running scheduler or builds a SLURM cluster
(:func:`slurm_cluster` from :func:`load_slurm_config`) and returns a :class:`ClusterHandle` with the
BLAS threads each task may use and the workers' memory limit. Every worker imports torch and himalaya
once (:func:`_prewarm`, started by :func:`connect`); every task limits its threads first
(:func:`_worker_threads`). Dask itself is imported only here, inside the functions that need it (the
``distributed`` extra is optional).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..._version import __version__
from ...backend import available_cores, get_backend, set_threads
from ...config import brainlid_home
from ...errors import InputError, require
from .memory import _fmt, parse_memory

__all__ = ["ClusterHandle", "connect", "load_slurm_config", "slurm_cluster"]


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
        """Close what this handle opened: its client and the cluster it started (a joined scheduler keeps running)."""
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


def _total_memory() -> int:
    try:
        import psutil  # optional: comes with distributed

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def load_slurm_config(path: str | os.PathLike | None = None) -> dict:
    """The ``[slurm]`` section of ``$BRAINLID_HOME/config.toml`` (or ``path``); ``{}`` when absent."""
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
        handle = _start_local(distributed, workers, mem)
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
        handle = _start_slurm(distributed, workers, mem, slurm_config)
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


def _start_local(distributed, workers: int | None, mem: int | None) -> ClusterHandle:
    """A :class:`distributed.LocalCluster` of ``workers`` processes (default one per core, at most 8), one task
    and ``cores // workers`` BLAS threads each, ``mem`` bytes each (default 90 % of the machine shared)."""
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
    return ClusterHandle(client, cluster, True, threads, limit,
                        f"local cluster: {n} worker process(es) × 1 task, {threads} BLAS thread(s) each, "
                        f"{_fmt(limit)} per worker")


def _start_slurm(distributed, workers: int | None, mem: int | None, slurm_config) -> ClusterHandle:
    """A SLURM cluster from :func:`load_slurm_config` with ``workers`` jobs (default the config's ``jobs``, else 1)."""
    cfg = load_slurm_config(slurm_config)
    jobs = int(workers or cfg.get("jobs", 1))
    cluster, shape = slurm_cluster(cfg, memory_per_worker=mem)
    cluster.scale(jobs=jobs)
    client = distributed.Client(cluster)
    return ClusterHandle(client, cluster, True, shape["blas_threads"], shape["memory_limit"],
                        f"SLURM cluster: {jobs} job(s) × {shape['processes']} worker(s), {shape['slots']} task "
                        f"slot(s) and {shape['blas_threads']} BLAS thread(s) per task, "
                        f"{_fmt(shape['memory_limit'])} per worker")


def _worker_version() -> str:
    return __version__


async def _prewarm_async() -> None:
    """:func:`_prewarm` in a thread of the worker (its event loop stays responsive)."""
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
        import torch  # noqa: F401  # heavy: torch (the scoring code came with this module's package)

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
    import dask  # optional: dask

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
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return set()


def _worker_threads(n: int) -> None:
    """Limit BLAS/torch threads for the task about to run in this worker thread.

    Called at the start of every task (about 5 ms): OpenMP thread counts are per calling thread,
    threadpoolctl only reaches the libraries loaded so far, and other code may have changed the
    limits since the last task, so a once-per-process setting is not enough. The imports every
    task needs are done (or awaited) first: :func:`_prewarm`.
    """
    _prewarm()
    set_threads(n)
