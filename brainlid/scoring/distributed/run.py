"""The Dask runner's driver: :func:`score_distributed` plans on the client, submits tasks and commits their rows.

The client submits one extraction task per (model spec, stimulus set) and, as each finishes, that model's cell
tasks (:mod:`.tasks`); it joins voxel batches, picks each (model, benchmark) group's best layer when the
group's last layer is in, and is the only writer of the results store (:class:`_Run`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..._progress import Stage
from ..._version import __version__
from ...errors import InputError
from ...features import FeatureCache
from ..plan import named_models, plan_grid
from ..cell import KEEP_ARRAYS, prune_kept, select_best_layer
from ..tables import ScoreResult
from ..store import DuplicateCellError, ResultsStore
from ..tables import finish_tables, geometry_frame, score_frame
from .cluster import ClusterHandle, _describe, _require_dask, _worker_version
from .journal import _Journal, _plan_entries, _refuse_stored, _stored_cells, _stored_frames
from .memory import (MEMORY_FRACTION, CellMemoryError, _fmt, estimate_benchmark_cell_memory,
                     estimate_rdm_group_memory, plan_voxel_batches)
from .tasks import _Cell, _cell_task, _extract_task, _join_unit_batches, _model_model_task, _rdm_group_task

__all__ = ["score_distributed", "DistributedRunInfo", "RETRIES"]

#: Times a task is resubmitted after an exception (a worker death is handled by the scheduler).
RETRIES = 2


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
    arrays: dict = field(default_factory=dict)  # comparison arrays returned by whole-cell tasks (cell.keep_arrays)


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
    """The grid of :func:`brainlid.scoring.serial.score` on a Dask cluster (same rows, same tables).

    Parameters
    ----------
    client : distributed.Client or ClusterHandle
        From :func:`connect` (or any client whose workers can import brainlid and see the same
        feature cache and data root paths).
    model, benchmarks, layers, data_root, out, store, baselines, pooling, batch_size, if_exists, extract_kwargs, mm_metrics
        As in :func:`brainlid.scoring.serial.score`. Models must be spec strings (they are rebuilt
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
        As in :func:`~brainlid.scoring.serial.score`: whole-cell tasks return their test split's
        predictions / model RDMs, and the client stores those of the selected layer (or every layer)
        with the group's rows. Voxel-batched cells and cells replayed from the journal keep none
        (``brainlid compare`` then says what to re-run); the client holds, per (model, benchmark)
        group in flight, the predictions of the best layer so far and of the layer just finished.

    Returns
    -------
    DataFrame of score rows, or a :class:`~brainlid.scoring.serial.ScoreResult` (with ``info``, a
    :class:`DistributedRunInfo`, as ``result.info``) when ``return_result``.
    """
    distributed = _require_dask()
    t_start = time.perf_counter()
    cl, memory_limit, threads = _cluster_shape(client, memory_limit, blas_threads)
    _check_inputs(cl, model, if_exists, keep_arrays)
    ekw = {"pooling": pooling, "batch_size": batch_size, **dict(extract_kwargs or {})}
    # names, layers, baseline groups, geometry-once and model–model-once: the serial runner's plan
    grid = plan_grid(model, benchmarks, layers=layers, baselines=baselines, data_root=data_root,
                     allow_download=ekw.get("allow_download"))
    st = ResultsStore(None if store is True else store) if store else None
    done_cells = _stored_cells(st, if_exists)
    plan = _plan_entries(grid, st, done_cells, mm_metrics)
    if if_exists == "error":
        _refuse_stored(plan, done_cells)

    info = DistributedRunInfo(plan_seconds=time.perf_counter() - t_start)
    run = _Run(distributed, cl, info, st=st, journal=_Journal(st.path) if st is not None else None,
               if_exists=if_exists, keep_arrays=keep_arrays, callback=callback, ekw=ekw, mm_metrics=tuple(mm_metrics),
               models=[(m.name, m.spec) for m in grid.models], threads=threads, memory_limit=memory_limit,
               voxel_batch=voxel_batch, root=None if data_root is None else str(Path(data_root).resolve()),
               cache_root=str(FeatureCache().root.resolve()))
    run.execute(plan, progress)

    # the tables: this run's rows plus the stored rows of the groups that were skipped
    if st is not None:
        scores_more, geom_more = _stored_frames(st, plan, [name for name, _ in run.models])
        run.all_scores += scores_more
        run.all_geom += geom_more
    # the store already has this run's cells (committed as they finished): finish_tables writes only the files
    scores, geom, paths = finish_tables(run.all_scores, run.all_geom, out=out, store=None, if_exists=if_exists)
    info.wall_seconds = time.perf_counter() - t_start
    if return_result:
        res = ScoreResult(scores, geom, paths, st)
        res.info = info
        return res
    return scores


def _check_inputs(cl, model, if_exists: str, keep_arrays: str) -> None:
    """Refuse a run the workers cannot do: bad options, another brainlid version on a worker, model objects."""
    if if_exists not in ("skip", "replace", "error"):
        raise InputError(f"if_exists must be 'skip', 'replace' or 'error', got {if_exists!r}")
    if keep_arrays not in KEEP_ARRAYS:
        raise InputError(f"keep_arrays must be 'selected', 'all' or 'none', got {keep_arrays!r}")
    other = {a: v for a, v in cl.run(_worker_version).items() if v != __version__}
    if other:
        raise InputError(f"Dask workers run another brainlid version than this client ({__version__}): "
                         + ", ".join(f"{a}: {v}" for a, v in sorted(other.items())))
    named, _ = named_models(model)
    bad = [k for k, v in named.items() if not isinstance(v, str)]
    if bad:
        raise InputError(f"distributed scoring rebuilds models on the workers from spec strings; {bad} are objects "
                         "(save the weights and use module:file.py:Name@weights.pt)")


def _cluster_shape(client, memory_limit, blas_threads) -> tuple:
    """(client, worker memory limit in bytes, BLAS threads per task): the handle's, the cluster's or the caller's."""
    handle = client if isinstance(client, ClusterHandle) else None
    cl = handle.client if handle is not None else client
    if handle is None and (memory_limit is None or blas_threads is None):
        handle = _describe(cl, None, False)
    memory_limit = handle.memory_limit if memory_limit is None else int(memory_limit)
    threads = handle.blas_threads if blas_threads is None else int(blas_threads)
    return cl, memory_limit, threads


class _Run:
    """The client's side of one run: submits tasks as their inputs are ready, joins and commits their results.

    The client is the only writer of the store: one transaction per store cell (:meth:`_commit`), a
    (model, benchmark) group's layer cells together once its last layer is in (:meth:`_group_done`).
    """

    def __init__(self, distributed, cl, info: DistributedRunInfo, *, st, journal, if_exists: str, keep_arrays: str,
                 callback, ekw: dict, mm_metrics: tuple, models: list, threads: int, memory_limit: int,
                 voxel_batch: int | None, root: str | None, cache_root: str):
        self.cl, self.info, self.st, self.journal, self.callback = cl, info, st, journal, callback
        self.if_exists, self.keep_arrays, self.ekw, self.mm_metrics = if_exists, keep_arrays, ekw, mm_metrics
        self.models = models  # (name, spec) of the grid's models: the model–model task reads their last layers
        self.threads, self.memory_limit, self.voxel_batch = threads, memory_limit, voxel_batch
        self.root, self.cache_root = root, cache_root
        self.futures = distributed.as_completed([], with_results=False)
        self.meta: dict = {}  # future.key → (kind, payload)
        self.extractions: dict = {}  # (spec, stim token) → {"result", "waiting": [(entry, group)]}
        self.run_id = uuid.uuid4().hex[:8]  # task keys are unique per run: a rerun never meets a cancelled key
        self.groups: dict = {}  # (model, benchmark id) → _Group
        self.mm_wait: list = []  # entries whose model–model task waits for the models' extractions
        self.all_scores: list[pd.DataFrame] = []
        self.all_geom: list[pd.DataFrame] = []
        self.written: set = set()
        self.total = self.n_done = 0
        self.bar = None

    # ---- submission
    def execute(self, plan: list, progress: bool) -> None:
        """Submit the plan's tasks (extractions first; cells when their extraction is done) and commit the results."""
        self.total = sum(len(g.layers) for e in plan for g, todo in zip(e.groups, e.todo) if todo) + sum(
            1 for e in plan if e.mm and e.mm_todo)
        self.info.groups_skipped = sum(1 for e in plan for todo in e.todo if not todo)
        pixel_groups = self._submit_extractions(plan)
        with Stage("cells", total=self.total, enabled=None if progress and self.total else False) as self.bar:
            try:
                for entry, g in pixel_groups:
                    self._submit_cells(entry, g, None)
                for fut in self.futures:
                    self._on_result(fut)
            except BaseException:
                for f in list(self.futures.futures):
                    f.cancel()
                raise
        if self.journal is not None:
            self.journal.cleanup()

    def _submit(self, fn, *args, kind, payload, name):
        f = self.cl.submit(fn, *args, key=f"{name}-{self.run_id}-{self.info.tasks}", retries=RETRIES, pure=False)
        self.meta[f.key] = (kind, payload)
        self.futures.add(f)
        self.info.tasks += 1
        return f

    def _submit_extractions(self, plan: list) -> list:
        """One extraction task per (spec, stimulus set) that some group needs; returns the pixel groups."""
        pixel_groups: list = []
        for entry in plan:
            for g, todo in zip(entry.groups, entry.todo):
                if not todo and not (entry.mm and entry.mm_todo and g.source == "cache"):  # mm reads the models' layers
                    continue
                if g.source == "pixels":
                    pixel_groups.append((entry, g))
                    continue
                # one extraction per (spec, stimulus set); the shuffled baseline reads the model's own
                tok = (g.spec, entry.stim_token)
                x = self.extractions.get(tok)
                if x is None:
                    x = self.extractions[tok] = {"waiting": [], "result": None}
                    self._submit(_extract_task, g.spec, entry.bench.id, self.root, list(g.extract_layers), self.ekw,
                                 self.cache_root, self.threads, kind="extract", payload=tok, name="extract")
                    self.info.extraction_tasks += 1
                if todo:
                    x["waiting"].append((entry, g))
            if entry.mm and entry.mm_todo:
                self.mm_wait.append(entry)
        return pixel_groups

    def _submit_cells(self, entry, g, ext) -> None:
        """The cell tasks of one (model, benchmark) group, or their results replayed from the journal."""
        bench = entry.bench
        by_name = {l: (k, shp) for l, k, shp in ext["layers"]} if ext is not None else {}
        grp = _Group(g.model, bench.id, len(g.layers))
        self.groups[(g.model, bench.id)] = grp
        source = "cache" if g.source == "random" else g.source  # a random twin is read from the cache as any model
        cells, dims = [], []
        for li, layer in enumerate(g.layers):
            key, d = ("", 32 * 32) if g.source == "pixels" else (by_name[layer][0], by_name[layer][1][1])
            cells.append(_Cell(bench=bench.id, data_root=self.root, model=g.model, layer=layer, layer_index=li,
                               source=source, key=key, row_key="" if source != "cache" else key,
                               ids_digest=ext["ids_digest"] if ext is not None else entry.sub_digest,
                               cache_root=self.cache_root, geometry=g.geometry, shuffle_seed=bench.params["seed"],
                               keep=self.st is not None and self.keep_arrays != "none"))
            dims.append(d)
        if bench.kind == "rdms":  # split-half layer selection over every layer: one task for the whole group
            self._check_fits(f"{g.model} on {bench.id}: scoring its {len(dims)} layer(s) together",
                             estimate_rdm_group_memory(entry.sizes["n_all"], dims, entry.sizes["n_subjects"]),
                             "score fewer layers or give the workers more --memory-per-worker")
            tasks: list = [tuple(cells)]
        else:
            tasks = []
            for cell, d in zip(cells, dims):
                tasks += self._layer_tasks(grp, cell, d, entry.sizes, bench)
        grp.cells += tasks
        replay: list = []
        for c in tasks:
            saved = self.journal.load(c) if self.journal is not None else None
            if saved is not None:  # finished by an earlier run that stopped before committing it
                replay.append(saved)
                self.info.cells_replayed += 1
            elif isinstance(c, tuple):
                self._submit(_rdm_group_task, c, self.threads, kind="cell", payload=c, name="rdm-group")
                self.info.cell_tasks += 1
            else:
                self._submit(_cell_task, c, self.threads, kind="cell", payload=c, name=f"cell-{c.layer}")
                self.info.cell_tasks += 1
        while replay:
            self._on_cell(replay.pop(0))

    def _check_fits(self, what: str, need: int, remedy: str) -> None:
        """Raise :class:`CellMemoryError` when ``need`` bytes exceed the workers' budget."""
        budget = int(MEMORY_FRACTION * self.memory_limit)
        if budget and need > budget:
            raise CellMemoryError(f"{what} needs about {_fmt(need)}, more than {MEMORY_FRACTION:.0%} of the worker "
                                  f"memory ({_fmt(budget)}); {remedy}")

    def _layer_tasks(self, grp: _Group, cell: _Cell, d: int, sizes: dict, bench) -> list:
        """One layer cell of a response benchmark: itself, or its voxel batches when it does not fit."""
        fixed, per_unit = estimate_benchmark_cell_memory(bench, sizes, d, n_all=sizes["n_all"])
        what = f"{cell.model} / {cell.layer} on {bench.id}"
        if bench.metric == "encoding":
            batches = plan_voxel_batches(sizes["n_units"], fixed, per_unit, self.memory_limit,
                                         voxel_batch=self.voxel_batch, what=what)
        else:
            batches = [(0, sizes["n_units"])]
            self._check_fits(f"{what}: an RSA cell", fixed + per_unit * sizes["n_units"],
                             "give the workers more --memory-per-worker")
        if len(batches) == 1:
            return [cell]
        grp.batches[cell.layer_index] = (cell, len(batches), [])
        return [replace(cell, units=ab, geometry=cell.geometry and j == 0, keep=False) for j, ab in enumerate(batches)]

    def _try_model_model(self) -> None:
        """Submit each waiting model–model task whose models' extractions are all done."""
        for entry in list(self.mm_wait):
            toks = {name: (spec, entry.stim_token) for name, spec in self.models}
            if all(self.extractions.get(t, {}).get("result") is not None for t in toks.values()):
                self.mm_wait.remove(entry)
                keys, digests = {}, {}
                for n, t in toks.items():
                    layer, key, _ = self.extractions[t]["result"]["layers"][-1]
                    keys[n] = (layer, key)
                    digests[n] = self.extractions[t]["result"]["ids_digest"]
                self._submit(_model_model_task, entry.bench.id, self.root, keys, digests, self.cache_root,
                             self.mm_metrics, self.threads, kind="mm", payload=entry, name="model-model")

    # ---- results
    def _on_result(self, fut) -> None:
        kind, payload = self.meta.pop(fut.key)
        res = fut.result()  # re-raises the task's error (after Dask's retries)
        fut.release()
        if kind == "extract":
            self._took(res)
            x = self.extractions[payload]
            x["result"] = res
            for entry, g in x.pop("waiting"):
                self._submit_cells(entry, g, res)
            x["waiting"] = []
            self._try_model_model()
        elif kind == "cell":
            self._took(res)
            if self.journal is not None:
                self.journal.save(res["cell"], res)
            self._on_cell(res)
        elif kind == "mm":
            df = score_frame(res)
            self._commit_frame("scores", df, "benchmark")
            self.all_scores.append(df)
            self._finished_cell(("model-model", payload.bench.id))

    def _took(self, res: dict) -> None:
        self.info.task_seconds += res["seconds"]
        self.info.worker_pids.add(res["pid"])

    def _on_cell(self, res: dict) -> None:
        """File a cell task's result (or a replayed one) in its group; the group is done when every layer is in."""
        cell = res["cell"]
        first = cell[0] if isinstance(cell, tuple) else cell
        grp = self.groups[(first.model, first.bench)]
        grp.geometry += res.get("geometry", [])
        grp.arrays.update(res.get("arrays") or {})
        if isinstance(cell, tuple):  # an RDM benchmark's group task: rows of every layer
            for r in res["rows"]:
                grp.rows.setdefault(r["layer_index"], []).append(r)
        elif cell.units is None:
            grp.rows[cell.layer_index] = res["rows"]
            if grp.arrays and self.keep_arrays == "selected":  # only the best layer so far stays on the client
                prune_kept(grp.arrays, select_best_layer(score_frame([r for v in grp.rows.values() for r in v])),
                           grp.model, grp.bench)
        else:
            whole, n_b, parts = grp.batches[cell.layer_index]
            parts.append(res)
            if len(parts) == n_b:
                grp.rows[cell.layer_index] = _join_unit_batches(whole, parts)
        if len(grp.rows) == grp.n_layers:
            self._group_done(grp)

    def _group_done(self, grp: _Group) -> None:
        """Commit a finished group: its best layer chosen, its score and geometry cells, its kept arrays."""
        rows = [r for li in sorted(grp.rows) for r in grp.rows[li]]
        scores = select_best_layer(score_frame(rows))
        geom = geometry_frame(grp.geometry)
        self._commit_frame("scores", scores, "benchmark")
        self._commit_frame("geometry", geom, "stimulus_set")
        if grp.arrays and self.st is not None:
            if self.keep_arrays == "selected":
                prune_kept(grp.arrays, scores, grp.model, grp.bench)
            self.st.add_arrays(grp.arrays, data_source=str(scores["data_source"].iloc[0]),
                               replace=self.if_exists == "replace")
            grp.arrays = {}
        if self.journal is not None:
            for c in grp.cells:
                self.journal.drop(c)
        for layer in scores["layer"].unique():
            self._finished_cell((grp.model, layer, grp.bench))
        self.all_scores.append(scores)
        self.all_geom.append(geom)

    def _commit_frame(self, kind: str, df: pd.DataFrame, place: str) -> None:
        """One store cell per (model, layer, benchmark or stimulus set, version) of ``df``."""
        for (m, layer, b, _v), part in df.groupby(["model", "layer", place, "benchmark_version"], sort=False):
            self._commit(kind, part, (m, layer, b))

    def _commit(self, kind: str, df: pd.DataFrame, key_desc: tuple) -> None:
        """One store cell per call (its own transaction); never twice in a run."""
        k = (kind, *key_desc)
        if k in self.written:
            return
        self.written.add(k)
        if self.st is None:
            return
        try:
            self.st.add_cell(kind, df, replace=self.if_exists == "replace")
            self.info.cells_written += 1
        except DuplicateCellError:
            if self.if_exists == "error":
                raise
            self.info.cells_skipped += 1

    def _finished_cell(self, key: tuple) -> None:
        self.n_done += 1
        self.bar.advance()
        if self.callback is not None:
            self.callback(self.n_done, self.total, key)
