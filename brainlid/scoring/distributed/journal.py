"""The Dask client's book-keeping against the results store: what it has, and what finished but is not in it yet.

* :func:`_plan_entries`: per benchmark of the plan (an :class:`_Entry`), which (model, benchmark) groups and
  model–model cells still miss store cells; :func:`_stored_frames` reads back the rows of those skipped;
* :class:`_Journal`: a (model, benchmark) group is committed when its last layer finishes; the results of the
  layers finished before a client stopped wait here (JSON files beside the store) and are replayed by the next
  run instead of being recomputed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..._atomic import atomic_write_text
from ..._version import __version__
from ...data.ids import ids_digest
from ...data.provenance import data_source_of
from ..benchmarks import get_benchmark
from ..store import DuplicateCellError
from .memory import cell_sizes
from .tasks import _Cell


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
        b = get_benchmark(cell.bench)
        return (cell.model, cell.layer, cell.layer_index, cell.bench, b.version, b.params, cell.source, cell.key,
                cell.ids_digest, cell.geometry, cell.units, cell.shuffle_seed, __version__)

    def _path(self, cell: _Cell | tuple) -> Path:
        """One file per task: a cell, or the tuple of cells of an RDM-benchmark group task."""
        ident = tuple(self._ident(c) for c in cell) if isinstance(cell, tuple) else self._ident(cell)
        return self.dir / f"{hashlib.sha256(repr(ident).encode()).hexdigest()[:32]}.json"

    def save(self, cell: _Cell, res: dict) -> None:
        out = {"rows": res.get("rows"), "geometry": res.get("geometry", []), "seconds": res.get("seconds", 0.0),
               "pid": res.get("pid", 0)}
        if res.get("unit_scores") is not None:
            out["unit_scores"] = {k: _unit_part_json(v) for k, v in res["unit_scores"].items()}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._path(cell), json.dumps(out, default=_json_value))

    def load(self, cell: _Cell) -> dict | None:
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


def _json_value(o):
    """JSON for the journal: numpy scalars as numbers, pandas' NA (RDM rows' ``n_units``) as null."""
    if o is pd.NA:
        return None
    return o.item() if hasattr(o, "item") else str(o)


# --------------------------------------------------------------------------- what the store already has
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


def _digest(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def _stored_cells(st, if_exists: str) -> set:
    """``(kind, model, layer, benchmark, version)`` of every cell in the store (none when replacing)."""
    if st is None or if_exists == "replace":
        return set()
    c = st.cells()
    return set(zip(c["kind"], c["model"], c["layer"], c["benchmark"], c["benchmark_version"].astype(int)))


def _plan_entries(grid, st, done_cells: set, mm_metrics) -> list[_Entry]:
    """Which (model, benchmark) groups need work, which geometry cells, which model–model cells."""
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
    return plan


def _refuse_stored(plan: list[_Entry], done_cells: set) -> None:
    """``if_exists="error"``: raise when the store already has scores of a planned group."""
    for e in plan:
        for g in e.groups:
            if any(("scores", g.model, l, e.bench.id, e.bench.version) in done_cells for l in g.layers):
                raise DuplicateCellError(f"the store already has scores for {g.model} on {e.bench.id}")


def _stored_frames(st, plan: list[_Entry], model_names: list[str]) -> tuple[list, list]:
    """The stored score and geometry rows of the groups (and model–model cells) this run skipped."""
    scores: list[pd.DataFrame] = []
    geom: list[pd.DataFrame] = []
    for e in plan:
        v = e.bench.version
        for g, todo in zip(e.groups, e.todo):
            if not todo:
                scores.append(st.scores(model=g.model, benchmark=e.bench.id, layer=list(g.layers), benchmark_version=v))
                if g.geometry:
                    geom.append(st.geometry(model=g.model, stimulus_set=e.bench.lid_stimulus_set,
                                            layer=list(g.layers), benchmark_version=v))
        if e.mm and not e.mm_todo:
            for mv in sorted({c[4] for c in e.mm_cells}):  # model–model versions differ by metric
                cells = [c for c in e.mm_cells if c[4] == mv]
                scores.append(st.scores(model=model_names, benchmark=sorted({c[3] for c in cells}),
                                        layer=sorted({c[2] for c in cells}), benchmark_version=mv))
    return scores, geom
