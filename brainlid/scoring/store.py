"""The local results store: one SQLite file (default ``$BRAINLID_HOME/results.sqlite``).

Layout (schema version :data:`SCHEMA_VERSION`):

* ``meta(key, value)`` — ``schema_version`` and the brainlid version that created the file;
* ``cells`` — one row per **cell** ``(kind, model, layer, benchmark, benchmark_version)``
  (``kind`` is ``"scores"`` or ``"geometry"``), ``UNIQUE`` on those columns: a second write
  of the same cell and version is rejected (:class:`DuplicateCellError`) unless the caller
  asks to replace it;
* ``scores`` and ``geometry`` — the tidy rows (:mod:`brainlid.scoring.tables`), each pointing
  at its cell;
* ``arrays`` (schema 5) — references to content-addressed ``.npy`` files in ``<store dir>/arrays``:
  the held-out predictions / model RDM of each scored cell's kept layer and, once per benchmark
  version, the observed test responses (or brain RDMs), stimulus ids and noise ceilings — what
  ``brainlid compare`` (:mod:`brainlid.comparison`) resamples.

**Atomicity.** A cell and all its rows are written in one transaction (``BEGIN IMMEDIATE`` …
``COMMIT``). A process killed mid-write leaves no partial cell: SQLite's journal rolls the
transaction back the next time the file is opened.

**Migrations.** The schema is versioned in ``meta``; opening an older file runs the steps in
:data:`MIGRATIONS` in order (never dropping data), inside one transaction. A file from a newer
brainlid is refused with a clear error instead of being modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from .._version import __version__
from ..config import results_store_path
from ..errors import BrainlidError, FileFormatError
from .tables import GEOMETRY_COLUMNS, SCORE_COLUMNS, geometry_frame, score_frame

__all__ = ["ResultsStore", "DuplicateCellError", "DataSourceConflictError", "SCHEMA_VERSION", "MIGRATIONS",
           "SCHEMA_V1", "READ_VERSIONS"]

#: ``versions=`` of the store's reads: the newest benchmark version of each benchmark, or every row.
READ_VERSIONS = ("latest", "all")

SCHEMA_VERSION = 5


class DuplicateCellError(BrainlidError):
    """The store already holds rows for this (kind, model, layer, benchmark, benchmark version)."""


class DataSourceConflictError(BrainlidError):
    """The store holds this cell from another data source (e.g. synthetic rows where real rows arrive).

    Not a :class:`DuplicateCellError`: ``if_exists="skip"`` must not keep synthetic scores in
    place of real ones silently.
    """


#: SQLite type of each column type of the table schema (:mod:`brainlid.scoring.tables`)
_SQL_TYPES = {"string": "TEXT", "float64": "REAL", "Int64": "INTEGER", "boolean": "INTEGER"}

#: The first schema (brainlid 0.1.0.dev0 before the ``split``/``selected``/``layer_index`` columns).
#: Kept verbatim: :data:`MIGRATIONS` upgrades files created with it.
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE cells (
  cell_id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL, model TEXT NOT NULL, layer TEXT NOT NULL, benchmark TEXT NOT NULL,
  benchmark_version INTEGER NOT NULL, created TEXT NOT NULL, brainlid_version TEXT NOT NULL,
  UNIQUE (kind, model, layer, benchmark, benchmark_version)
);
CREATE TABLE scores (
  cell_id INTEGER NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
  model TEXT, layer TEXT, benchmark TEXT, dataset TEXT, subject TEXT, roi TEXT, metric TEXT,
  time REAL, value REAL, ci_low REAL, ci_high REAL, ceiling REAL, normalised REAL,
  n_units INTEGER, n_stimuli INTEGER,
  brainlid_version TEXT, benchmark_version INTEGER, feature_cache_key TEXT
);
CREATE TABLE geometry (
  cell_id INTEGER NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
  model TEXT, layer TEXT, stimulus_set TEXT, n INTEGER, estimator TEXT, K REAL, value REAL,
  brainlid_version TEXT, benchmark_version INTEGER, feature_cache_key TEXT
);
INSERT INTO meta VALUES ('schema_version', '1');
"""

#: ``MIGRATIONS[v]`` upgrades a version-``v`` file to ``v + 1``.
MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE scores ADD COLUMN layer_index INTEGER;
ALTER TABLE scores ADD COLUMN split TEXT DEFAULT 'test';
ALTER TABLE scores ADD COLUMN selected INTEGER DEFAULT 0;
ALTER TABLE geometry ADD COLUMN layer_index INTEGER;
CREATE INDEX IF NOT EXISTS scores_cell ON scores(cell_id);
CREATE INDEX IF NOT EXISTS geometry_cell ON geometry(cell_id);
""",
    # 2 → 3: the lower noise-ceiling bound of the RDM benchmarks (existing rows: NULL → NaN)
    2: """
ALTER TABLE scores ADD COLUMN ceiling_lower REAL;
""",
    # 3 → 4 (issue 14): where the data came from, and how normalised / intervals / ceilings were made.
    # Rows written before read as data_source 'unknown', NaN / "" for the others (never refused).
    3: """
ALTER TABLE scores ADD COLUMN normalised_unit_mean REAL;
ALTER TABLE scores ADD COLUMN alpha_edge_fraction REAL;
ALTER TABLE scores ADD COLUMN ci_method TEXT DEFAULT '';
ALTER TABLE scores ADD COLUMN ceiling_method TEXT DEFAULT '';
ALTER TABLE scores ADD COLUMN data_source TEXT DEFAULT 'unknown';
ALTER TABLE geometry ADD COLUMN data_source TEXT DEFAULT 'unknown';
""",
    # 4 → 5 (issue 18): arrays a paired model comparison needs (brainlid compare), content-addressed
    # ``<store dir>/arrays/<sha256>.npy`` files referenced by (model, layer, benchmark, version, split, name);
    # model = layer = '' for a benchmark's own arrays (observed responses, brain RDMs, stimulus ids, ceilings)
    4: """
CREATE TABLE IF NOT EXISTS arrays (
  model TEXT NOT NULL, layer TEXT NOT NULL, benchmark TEXT NOT NULL, benchmark_version INTEGER NOT NULL,
  split TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, shape TEXT NOT NULL, dtype TEXT NOT NULL,
  data_source TEXT DEFAULT 'unknown', created TEXT NOT NULL,
  UNIQUE (model, layer, benchmark, benchmark_version, split, name)
);
CREATE INDEX IF NOT EXISTS arrays_key ON arrays(benchmark, benchmark_version, model);
""",
}

_KINDS = {"scores": (SCORE_COLUMNS, score_frame), "geometry": (GEOMETRY_COLUMNS, geometry_frame)}


def _py(v):
    """A value sqlite3 accepts (numpy scalars, pandas NA → None)."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_, bool)):
        return int(v)
    return v


class ResultsStore:
    """A SQLite results store.

    Parameters
    ----------
    path : path-like or None
        The SQLite file; default :func:`brainlid.config.results_store_path`. Created (with the
        current schema) when missing; migrated when older.

    Examples
    --------
    >>> store = ResultsStore(tmp_path / "r.sqlite")          # doctest: +SKIP
    >>> store.add_cell("scores", scores_df)                    # doctest: +SKIP
    >>> store.scores(model="resnet18")                         # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else results_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init()

    # connection --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self):
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise FileFormatError(f"cannot open results store {self.path}: {exc}") from exc
        try:
            con.execute("PRAGMA foreign_keys = ON")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _transaction(self):
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _init(self) -> None:
        try:
            with self._transaction() as con:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not tables:
                    # new file: create schema 1 and migrate like any old file (one code path)
                    for stmt in _statements(SCHEMA_V1):
                        con.execute(stmt)
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('created_by', ?)", (__version__,))
                elif "meta" not in tables or "cells" not in tables:
                    raise FileFormatError(f"{self.path} is an SQLite file but not a brainlid results store")
                version = self.schema_version_of(con)
                if version > SCHEMA_VERSION:
                    raise FileFormatError(
                        f"results store {self.path} has schema version {version}, newer than this brainlid "
                        f"({__version__}, schema {SCHEMA_VERSION}); upgrade brainlid"
                    )
                while version < SCHEMA_VERSION:
                    for stmt in _statements(MIGRATIONS[version]):
                        con.execute(stmt)
                    version += 1
                    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
                _add_schema_columns(con)
        except sqlite3.DatabaseError as exc:
            raise FileFormatError(f"{self.path} is not a readable results store: {exc}") from exc

    @staticmethod
    def schema_version_of(con) -> int:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise FileFormatError("results store has no schema_version")
        return int(row[0])

    @property
    def schema_version(self) -> int:
        with self._connect() as con:
            return self.schema_version_of(con)

    # writing -----------------------------------------------------------------------------------
    def has_cell(self, kind: str, model: str, layer: str, benchmark: str, benchmark_version: int) -> bool:
        with self._connect() as con:
            row = con.execute(
                "SELECT 1 FROM cells WHERE kind=? AND model=? AND layer=? AND benchmark=? AND benchmark_version=?",
                (kind, model, layer, benchmark, int(benchmark_version)),
            ).fetchone()
        return row is not None

    def check_data_source(self, benchmark: str, benchmark_version: int, data_source: str) -> None:
        """Raise :class:`DataSourceConflictError` if the store holds score rows of ``benchmark`` at
        ``benchmark_version`` from another data source than ``data_source`` (a runner that skips
        stored cells calls this first, so it never returns synthetic rows for a real run)."""
        with self._connect() as con:
            held = {r[0] or "unknown" for r in con.execute(
                "SELECT DISTINCT s.data_source FROM scores s JOIN cells c ON s.cell_id = c.cell_id "
                "WHERE c.kind = 'scores' AND c.benchmark = ? AND c.benchmark_version = ?",
                (benchmark, int(benchmark_version)))}
        if held - {data_source}:
            raise DataSourceConflictError(
                f"the store {self.path} holds {benchmark} version {benchmark_version} scores from "
                f"{'/'.join(sorted(held))} data, and this run reads {data_source} data; keep them apart in another "
                "store, or pass replace=True (CLI: --replace) to overwrite the cells"
            )

    def add_cell(self, kind: str, rows, *, replace: bool = False, _fail_after: int | None = None) -> int:
        """Write one cell's rows in one transaction; return the number of rows written.

        ``rows`` must all share one ``(model, layer, benchmark, benchmark_version)`` (geometry
        rows use the ``stimulus_set`` as the benchmark key). With ``replace=False`` an existing
        cell raises :class:`DuplicateCellError` and nothing is written; with ``replace=True`` the
        old rows are deleted in the same transaction.

        ``_fail_after`` (testing only) raises after that many rows have been inserted, to
        show that a failure mid-cell leaves nothing behind.
        """
        if kind not in _KINDS:
            raise BrainlidError(f"unknown row kind {kind!r}; expected 'scores' or 'geometry'")
        columns, frame = _KINDS[kind]
        df = frame(rows)
        if len(df) == 0:
            return 0
        bench_col = "benchmark" if kind == "scores" else "stimulus_set"
        key_cols = ["model", "layer", bench_col, "benchmark_version"]
        keys = df[key_cols].astype(str).drop_duplicates()
        if len(keys) != 1:
            raise BrainlidError(f"one cell per call: rows span {len(keys)} (model, layer, {bench_col}, version) keys")
        model, layer, bench = (str(df[c].iloc[0]) for c in key_cols[:3])
        bv = df["benchmark_version"].iloc[0]
        bv = 0 if bv is pd.NA else int(bv)
        cols = list(columns)
        sql = f"INSERT INTO {kind} (cell_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})"
        records = df[cols].astype(object).to_numpy()
        with self._transaction() as con:
            existing = con.execute(
                "SELECT cell_id FROM cells WHERE kind=? AND model=? AND layer=? AND benchmark=? AND benchmark_version=?",
                (kind, model, layer, bench, bv),
            ).fetchone()
            if existing is not None:
                old_src = {r[0] or "unknown" for r in
                           con.execute(f"SELECT DISTINCT data_source FROM {kind} WHERE cell_id = ?", (existing[0],))}
                new_src = set(df["data_source"].astype(str))
                if not replace and old_src and old_src != new_src:
                    raise DataSourceConflictError(
                        f"the store already has {kind} for model {model!r}, layer {layer!r}, {bench_col} {bench!r} "
                        f"version {bv} from {'/'.join(sorted(old_src))} data, and these rows come from "
                        f"{'/'.join(sorted(new_src))} data ({self.path}); keep them apart in another store, or pass "
                        "replace=True (CLI: --replace) to overwrite"
                    )
                if not replace:
                    raise DuplicateCellError(
                        f"the store already has {kind} for model {model!r}, layer {layer!r}, {bench_col} {bench!r} "
                        f"version {bv} ({self.path}); pass replace=True (CLI: --replace) to overwrite"
                    )
                con.execute(f"DELETE FROM {kind} WHERE cell_id = ?", (existing[0],))
                con.execute("DELETE FROM cells WHERE cell_id = ?", (existing[0],))
            cur = con.execute(
                "INSERT INTO cells (kind, model, layer, benchmark, benchmark_version, created, brainlid_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, model, layer, bench, bv, datetime.now(timezone.utc).isoformat(), __version__),
            )
            cell_id = cur.lastrowid
            for i, rec in enumerate(records):
                if _fail_after is not None and i >= _fail_after:
                    raise RuntimeError(f"simulated failure after {i} rows")
                con.execute(sql, (cell_id, *(_py(v) for v in rec)))
        return len(records)

    def add_frames(self, scores: pd.DataFrame | None = None, geometry: pd.DataFrame | None = None, *,
                   if_exists: str = "error") -> dict:
        """Write tables cell by cell (each cell its own transaction).

        ``if_exists``: ``"error"`` (raise :class:`DuplicateCellError` at the first existing cell;
        cells written before it stay), ``"skip"`` (keep the stored cell) or ``"replace"``.
        Returns counts ``{"written": cells, "skipped": cells, "rows": rows}``.
        """
        if if_exists not in ("error", "skip", "replace"):
            raise BrainlidError(f"if_exists must be 'error', 'skip' or 'replace', got {if_exists!r}")
        counts = {"written": 0, "skipped": 0, "rows": 0}
        for kind, df in (("scores", scores), ("geometry", geometry)):
            if df is None or len(df) == 0:
                continue
            bench_col = "benchmark" if kind == "scores" else "stimulus_set"
            keys = ["model", "layer", bench_col, "benchmark_version"]
            for _, part in df.groupby(keys, sort=False, dropna=False):
                try:
                    counts["rows"] += self.add_cell(kind, part, replace=if_exists == "replace")
                    counts["written"] += 1
                except DuplicateCellError:
                    if if_exists == "error":
                        raise
                    counts["skipped"] += 1
        return counts

    # reading -----------------------------------------------------------------------------------
    def _read(self, kind: str, where: dict, versions: str = "latest") -> pd.DataFrame:
        if versions not in READ_VERSIONS:
            raise BrainlidError(f"versions must be one of {READ_VERSIONS}, got {versions!r}")
        columns, frame = _KINDS[kind]
        cols = list(columns)
        clauses, params = _where_sql(where, columns, kind)
        sql = f"SELECT {', '.join(cols)} FROM {kind}" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        with self._connect() as con:
            df = pd.read_sql_query(sql, con, params=params)
            if versions == "latest" and where.get("benchmark_version") is None:
                newest = dict(con.execute(
                    "SELECT benchmark, MAX(benchmark_version) FROM cells WHERE kind = ? GROUP BY benchmark", (kind,)))
        if "selected" in df.columns:
            df["selected"] = df["selected"].fillna(0).astype(bool)
        df = frame(df)
        if versions == "latest" and where.get("benchmark_version") is None and len(df):
            bench_col = "benchmark" if kind == "scores" else "stimulus_set"
            want = df[bench_col].map(newest).astype("Int64")
            keep = (df["benchmark_version"].fillna(0) == want.fillna(0)).to_numpy(dtype=bool)
            if not keep.all():
                old = df.loc[~keep, [bench_col, "benchmark_version"]].drop_duplicates()
                warnings.warn(
                    f"results store {self.path}: left out {int((~keep).sum())} {kind} row(s) of older benchmark "
                    f"versions ({', '.join(f'{b} v{v}' for b, v in old.itertuples(index=False))}); they are not "
                    f"comparable with the newest version's rows (read them with versions='all')", UserWarning,
                    stacklevel=3)
                df = df[keep].reset_index(drop=True)
        return df

    def scores(self, *, versions: str = "latest", **where) -> pd.DataFrame:
        """Score rows, optionally filtered, e.g. ``scores(model="m", benchmark=[...])``.

        Parameters
        ----------
        versions : {"latest", "all"}
            ``"latest"`` (default): of each benchmark, only the rows of the newest
            ``benchmark_version`` the store holds (rows of older versions mean something else
            and are left out, with a warning saying how many); ``"all"``: every version, each row
            labelled by its ``benchmark_version``. An explicit ``benchmark_version=`` filter
            overrides ``versions``.
        **where
            Column → value or list of values.
        """
        return self._read("scores", where, versions)

    def geometry(self, *, versions: str = "latest", **where) -> pd.DataFrame:
        """Geometry rows, optionally filtered (``versions`` as in :meth:`scores`, per stimulus set)."""
        return self._read("geometry", where, versions)

    def cells(self) -> pd.DataFrame:
        """The cell index: kind, model, layer, benchmark, benchmark_version, created, brainlid_version."""
        with self._connect() as con:
            return pd.read_sql_query(
                "SELECT kind, model, layer, benchmark, benchmark_version, created, brainlid_version FROM cells", con
            )

    # arrays of paired comparisons (schema 5) ---------------------------------------------------
    @property
    def arrays_dir(self) -> Path:
        """Folder of the content-addressed ``.npy`` files: ``<store dir>/arrays`` (shared by the stores of one
        folder; a file is named by the SHA-256 of its dtype, shape and bytes, so equal arrays are written once)."""
        return self.path.parent / "arrays"

    def add_arrays(self, arrays: Mapping[tuple, np.ndarray], *, data_source: str = "unknown",
                   replace: bool = False) -> int:
        """Keep arrays a paired comparison reads (:mod:`brainlid.comparison`); return how many references were written.

        Parameters
        ----------
        arrays : mapping ``(model, layer, benchmark, benchmark_version, split, name)`` → ndarray
            ``model = layer = ""`` for a benchmark's own arrays. Numeric arrays are stored as they are
            (predictions float32); string arrays (stimulus ids) as fixed-width unicode — never pickled.
        data_source : str
            Recorded with every reference (``real`` / ``synthetic`` / ``unknown``).
        replace : bool
            Overwrite existing references (a cell that was re-scored); else an existing reference is kept.

        The ``.npy`` files are written atomically before the references (one transaction), so a
        reference never names a missing file.
        """
        refs = []
        for key, arr in arrays.items():
            if len(key) != 6:
                raise BrainlidError(f"array key must be (model, layer, benchmark, version, split, name), got {key!r}")
            a = np.asarray(arr)
            if a.dtype.kind in "OSU":
                a = a.astype(str)
            elif a.dtype.kind not in "biuf":
                raise BrainlidError(f"array {key[-1]!r} has unsupported dtype {a.dtype}")
            a = np.ascontiguousarray(a)
            h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
            h.update(memoryview(a).cast("B") if a.size else b"")
            sha = h.hexdigest()
            f = self.arrays_dir / f"{sha}.npy"
            if not f.exists():
                with atomic_path(f) as tmp:
                    np.save(tmp, a, allow_pickle=False)
            m, layer, bench, version, split, name = key
            refs.append((str(m), str(layer), str(bench), int(version), str(split), str(name), sha,
                         ",".join(map(str, a.shape)), a.dtype.str, str(data_source),
                         datetime.now(timezone.utc).isoformat()))
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self._transaction() as con:
            for ref in refs:
                con.execute(f"{verb} INTO arrays (model, layer, benchmark, benchmark_version, split, name, sha256, "
                            "shape, dtype, data_source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ref)
        return len(refs)

    def array_index(self, **where) -> pd.DataFrame:
        """The array references (model, layer, benchmark, benchmark_version, split, name, sha256, shape, dtype,
        data_source, created), optionally filtered by column → value or list of values."""
        clauses, params = _where_sql(where, ("model", "layer", "benchmark", "benchmark_version", "split", "name"),
                                     "arrays")
        with self._connect() as con:
            return pd.read_sql_query("SELECT * FROM arrays" + (f" WHERE {' AND '.join(clauses)}" if clauses else ""),
                                     con, params=params)

    def load_arrays(self, model: str, layer: str, benchmark: str, benchmark_version: int,
                    split: str = "test") -> dict[str, np.ndarray]:
        """The arrays kept for one key (name → read-only memory-mapped ndarray); empty when none."""
        idx = self.array_index(model=model, layer=layer, benchmark=benchmark, benchmark_version=int(benchmark_version),
                               split=split)
        out = {}
        for rec in idx.itertuples(index=False):
            f = self.arrays_dir / f"{rec.sha256}.npy"
            try:
                out[rec.name] = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise FileFormatError(f"results store {self.path}: array file {f} of {rec.name!r} "
                                      f"({model or benchmark}) is missing or unreadable: {exc}") from exc
        return out

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"


def _where_sql(where: dict, columns, what: str) -> tuple[list[str], list]:
    """``col IN (?, …)`` clauses and their parameters for column → value or list of values (None: no filter)."""
    clauses, params = [], []
    for k, v in where.items():
        if v is None:
            continue
        if k not in columns:
            raise BrainlidError(f"cannot filter {what} by unknown column {k!r}")
        vals = [v] if isinstance(v, (str, int, float, np.integer)) else list(v)
        clauses.append(f"{k} IN ({', '.join('?' * len(vals))})")
        params.extend(int(x) if isinstance(x, np.integer) else x for x in vals)
    return clauses, params


def _add_schema_columns(con) -> None:
    """Add to the ``scores`` / ``geometry`` tables any column of the table schema
    (:data:`brainlid.scoring.tables.SCORE_COLUMNS`, :data:`~brainlid.scoring.tables.GEOMETRY_COLUMNS`, the one
    schema) they lack, typed by :data:`_SQL_TYPES`; existing rows read it as the column's default (NULL → NaN,
    ``""``, ``<NA>``, ``data_source`` ``"unknown"``: :func:`~brainlid.scoring.tables.score_frame`). The
    :data:`MIGRATIONS` keep what a column list cannot say (defaults of old rows, indexes, new tables)."""
    for kind, (columns, _) in _KINDS.items():
        have = {row[1] for row in con.execute(f"PRAGMA table_info({kind})")}
        for name, dtype in columns.items():
            if name not in have:
                con.execute(f"ALTER TABLE {kind} ADD COLUMN {name} {_SQL_TYPES[dtype]}")


def _statements(script: str) -> Iterable[str]:
    """Split a schema script into statements (the scripts contain no ';' inside literals)."""
    for stmt in script.split(";"):
        stmt = stmt.strip()
        if stmt:
            yield stmt
