"""The SQLite results store: atomic cells, duplicate rejection, migrations; the tidy tables."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from brainlid.errors import FileFormatError, InputError
from brainlid.scoring import tables
from support import REPO
from brainlid.scoring.store import SCHEMA_V1, SCHEMA_VERSION, DuplicateCellError, ResultsStore


def _rows(model="m", layer="l1", bench="nsd.subj01.EBA.encoding", n=5, version=1):
    return [
        {"model": model, "layer": layer, "benchmark": bench, "dataset": "nsd", "subject": "subj01", "roi": "EBA",
         "metric": "encoding_r2", "split": "test", "time": float(t), "value": 0.1 * t, "n_units": 10,
         "benchmark_version": version, "brainlid_version": "x"}
        for t in range(n)
    ]


def test_tables_schema_and_roundtrip(tmp_path):
    df = tables.score_frame(_rows())
    assert list(df.columns) == list(tables.SCORE_COLUMNS)
    assert df["ci_low"].isna().all() and (df["selected"] == False).all()  # noqa: E712
    paths = tables.write_table(df, tmp_path / "scores")
    assert sorted(p.suffix for p in paths) == [".csv", ".parquet"]
    for p in paths:
        back = tables.read_table(p)
        pd.testing.assert_frame_equal(back, df, check_dtype=False)
    with pytest.raises(InputError, match="unknown column"):
        tables.score_frame([{**_rows()[0], "valeu": 1}])
    with pytest.raises(InputError, match="required"):
        tables.geometry_frame([{"model": "m"}])


def test_store_roundtrip_and_duplicates(tmp_path):
    st = ResultsStore(tmp_path / "r.sqlite")
    assert st.schema_version == SCHEMA_VERSION
    assert st.add_cell("scores", _rows()) == 5
    assert st.has_cell("scores", "m", "l1", "nsd.subj01.EBA.encoding", 1)
    with pytest.raises(DuplicateCellError, match="already has scores"):
        st.add_cell("scores", _rows())
    assert len(st.scores()) == 5
    # another version of the same benchmark is a different cell
    st.add_cell("scores", _rows(version=2))
    assert st.has_cell("scores", "m", "l1", "nsd.subj01.EBA.encoding", 1)
    assert st.has_cell("scores", "m", "l1", "nsd.subj01.EBA.encoding", 2)
    assert not st.has_cell("scores", "m", "l1", "nsd.subj01.EBA.encoding", 3)
    assert len(st.scores(versions="all")) == 10
    # replace swaps the rows in one transaction
    new = _rows(n=2)
    st.add_cell("scores", new, replace=True)
    got = st.scores(benchmark_version=1)
    assert len(got) == 2 and got["value"].tolist() == [0.0, 0.1]
    counts = st.add_frames(tables.score_frame(_rows() + _rows(layer="l2")), if_exists="skip")
    assert counts == {"written": 1, "skipped": 1, "rows": 5}
    assert len(st.scores(versions="all")) == 2 + 5 + 5
    with pytest.raises(Exception, match="one cell per call"):
        st.add_cell("scores", _rows() + _rows(layer="l3"))


def test_failure_mid_cell_leaves_no_rows(tmp_path):
    st = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(RuntimeError, match="simulated"):
        st.add_cell("scores", _rows(n=6), _fail_after=3)
    assert len(st.scores()) == 0 and len(st.cells()) == 0
    # and the cell can be written afterwards
    st.add_cell("scores", _rows(n=6))
    assert len(st.scores()) == 6


def test_killed_process_leaves_no_partial_cell(tmp_path):
    """A process killed (os._exit) in the middle of writing a cell: the journal rolls it back."""
    path = tmp_path / "r.sqlite"
    ResultsStore(path).add_cell("scores", _rows(model="kept"))
    code = textwrap.dedent(f"""
        import os
        import brainlid.scoring.store as s
        calls = [0]
        orig = s._py
        def dying(v):
            calls[0] += 1
            if calls[0] > 40:
                os._exit(9)
            return orig(v)
        s._py = dying
        rows = [dict(model="killed", layer="l", benchmark="b.s.r.encoding", metric="encoding_r2", value=float(i),
                     split="test", benchmark_version=1) for i in range(50)]
        s.ResultsStore({str(path)!r}).add_cell("scores", rows)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 9, res.stderr
    st = ResultsStore(path)
    assert set(st.scores()["model"]) == {"kept"}
    assert set(st.cells()["model"]) == {"kept"}


def test_migration_from_v1_keeps_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1)
    con.execute("INSERT INTO cells (kind, model, layer, benchmark, benchmark_version, created, brainlid_version) "
                "VALUES ('scores', 'old', 'fc', 'nsd.subj01.EBA.encoding', 1, 'then', '0.0.1')")
    con.execute("INSERT INTO scores (cell_id, model, layer, benchmark, metric, value, benchmark_version) "
                "VALUES (1, 'old', 'fc', 'nsd.subj01.EBA.encoding', 'encoding_r2', 0.25, 1)")
    con.commit()
    con.close()
    st = ResultsStore(path)
    assert st.schema_version == SCHEMA_VERSION
    df = st.scores()
    assert df["model"].tolist() == ["old"] and df["value"].tolist() == [0.25]
    assert df["split"].tolist() == ["test"] and df["selected"].tolist() == [False]
    with pytest.raises(DuplicateCellError):
        st.add_cell("scores", _rows(model="old", layer="fc"))
    st.add_cell("scores", _rows(model="new"))
    assert len(st.scores()) == 6
    # a row written before the data_source column existed reads as "unknown"; the new ones keep theirs
    df = st.scores(versions="all")
    assert df.set_index("model")["data_source"].to_dict() == {"old": "unknown", "new": "unknown"}


def test_migration_from_v2_adds_ceiling_lower(tmp_path):
    from brainlid.scoring.store import MIGRATIONS

    path = tmp_path / "v2.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1)
    con.executescript(MIGRATIONS[1])
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.execute("INSERT INTO cells (kind, model, layer, benchmark, benchmark_version, created, brainlid_version) "
                "VALUES ('scores', 'old', 'fc', 'k92.human.IT.rsa', 1, 'then', '0.0.2')")
    con.execute("INSERT INTO scores (cell_id, model, layer, benchmark, metric, value, ceiling, split, benchmark_version) "
                "VALUES (1, 'old', 'fc', 'k92.human.IT.rsa', 'rsa_spearman', 0.3, 0.6, 'all', 1)")
    con.commit()
    con.close()
    st = ResultsStore(path)
    assert st.schema_version == SCHEMA_VERSION
    df = st.scores()
    assert df["value"].tolist() == [0.3] and df["ceiling"].tolist() == [0.6] and df["ceiling_lower"].isna().all()
    st.add_cell("scores", [{**r, "ceiling_lower": 0.4} for r in _rows(model="new")])
    new = st.scores(model="new")
    assert len(new) == 5 and (new["ceiling_lower"] == 0.4).all()


def test_newer_or_foreign_file_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    ResultsStore(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(FileFormatError, match="newer"):
        ResultsStore(path)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    with pytest.raises(FileFormatError, match="not a brainlid results store"):
        ResultsStore(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(FileFormatError):
        ResultsStore(junk)


def test_geometry_cells(tmp_path):
    st = ResultsStore(tmp_path / "r.sqlite")
    rows = [{"model": "m", "layer": "l", "stimulus_set": "nsd.subj01.test", "n": 100, "estimator": "mle", "K": k,
             "value": 10.0 - k / 10, "benchmark_version": 1} for k in (5, 10, 20)]
    rows.append({"model": "m", "layer": "l", "stimulus_set": "nsd.subj01.test", "n": 100,
                 "estimator": "participation_ratio", "K": np.nan, "value": 3.0, "benchmark_version": 1})
    st.add_frames(geometry=tables.geometry_frame(rows))
    g = st.geometry(estimator="mle")
    assert g["K"].tolist() == [5, 10, 20]
    assert np.isnan(st.geometry(estimator="participation_ratio")["K"].iloc[0])


def _v3_store(path, with_geometry: bool = True):
    """A store as brainlid wrote it before schema 4 (no data_source, ci_method, ... columns)."""
    from brainlid.scoring.store import MIGRATIONS

    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1)
    con.executescript(MIGRATIONS[1])
    con.executescript(MIGRATIONS[2])
    con.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    con.execute("INSERT INTO cells (kind, model, layer, benchmark, benchmark_version, created, brainlid_version) "
                "VALUES ('scores', 'old', 'fc', 'nsd.subj01.EBA.encoding', 1, 'then', '0.0.3')")
    con.execute("INSERT INTO scores (cell_id, model, layer, benchmark, metric, value, ceiling, normalised, split, "
                "benchmark_version) VALUES (1, 'old', 'fc', 'nsd.subj01.EBA.encoding', 'encoding_r2', 0.2, 0.5, 0.4, "
                "'test', 1)")
    if with_geometry:
        con.execute("INSERT INTO cells (kind, model, layer, benchmark, benchmark_version, created, brainlid_version) "
                    "VALUES ('geometry', 'old', 'fc', 'nsd.subj01.test', 1, 'then', '0.0.3')")
        con.execute("INSERT INTO geometry (cell_id, model, layer, stimulus_set, estimator, K, value, benchmark_version) "
                    "VALUES (2, 'old', 'fc', 'nsd.subj01.test', 'mle', 20, 7.5, 1)")
    con.commit()
    con.close()


def test_migration_from_v3_adds_the_issue14_columns(tmp_path):
    """Schema 3 → 4 adds data_source and the four encoding/RSA provenance columns; old rows read as
    data_source 'unknown', NaN / '' for the others — not refused, not changed."""
    path = tmp_path / "v3.sqlite"
    _v3_store(path)
    st = ResultsStore(path)
    assert st.schema_version == SCHEMA_VERSION >= 4  # (5: the arrays table of issue 18)
    con = sqlite3.connect(path)
    cols = {r[1] for r in con.execute("PRAGMA table_info(scores)")}
    gcols = {r[1] for r in con.execute("PRAGMA table_info(geometry)")}
    con.close()
    assert {"normalised_unit_mean", "alpha_edge_fraction", "ci_method", "ceiling_method", "data_source"} <= cols
    assert "data_source" in gcols
    # every column of the schema (A1's four included, once they are in SCORE_COLUMNS) is readable
    assert set(tables.SCORE_COLUMNS) <= cols | {"cell_id"}
    assert set(tables.GEOMETRY_COLUMNS) <= gcols | {"cell_id"}
    old = st.scores()
    assert old["data_source"].tolist() == ["unknown"]
    assert old[["value", "ceiling", "normalised"]].values.tolist() == [[0.2, 0.5, 0.4]]
    for c, t in tables.SCORE_COLUMNS.items():
        if c in ("normalised_unit_mean", "alpha_edge_fraction"):
            assert old[c].isna().all()
        if c in ("ci_method", "ceiling_method"):
            assert old[c].tolist() == [""]
    assert st.geometry()["data_source"].tolist() == ["unknown"]
    # new rows keep their own source beside the old ones
    st.add_cell("scores", [{**r, "data_source": "synthetic"} for r in _rows(model="new")])
    got = {m: set(g) for m, g in st.scores(versions="all").groupby("model")["data_source"]}
    assert got == {"old": {"unknown"}, "new": {"synthetic"}}


def test_reads_keep_benchmark_versions_apart(tmp_path):
    """Rows of an old benchmark version stay labelled with it; the default read returns only the newest version
    of each benchmark (with a warning naming what it left out), so old and new scores are never mixed."""
    st = ResultsStore(tmp_path / "r.sqlite")
    st.add_cell("scores", _rows(model="a", version=1))  # scored before the bump
    st.add_cell("scores", _rows(model="b", version=1))
    st.add_cell("scores", _rows(model="a", version=2))  # re-scored under version 2
    st.add_cell("scores", _rows(model="c", bench="nsd.subj02.EBA.encoding", version=1))  # never re-scored
    with pytest.warns(UserWarning, match=r"left out 10 scores row\(s\) of older benchmark versions"):
        latest = st.scores()
    by_bench = {b: set(g) for b, g in latest.groupby("benchmark")["benchmark_version"]}
    assert by_bench == {"nsd.subj01.EBA.encoding": {2}, "nsd.subj02.EBA.encoding": {1}}
    assert set(latest.loc[latest["benchmark"] == "nsd.subj01.EBA.encoding", "model"]) == {"a"}
    every = st.scores(versions="all")
    assert len(every) == 20
    assert every.groupby(["model", "benchmark_version"]).size().to_dict() == {("a", 1): 5, ("a", 2): 5, ("b", 1): 5,
                                                                              ("c", 1): 5}
    # an explicit version filter wins over the default
    assert set(st.scores(benchmark_version=1)["model"]) == {"a", "b", "c"}
    with pytest.raises(Exception, match="versions must be"):
        st.scores(versions="newest")


def test_synthetic_cell_is_not_silently_kept_for_real_rows(tmp_path):
    """A store that holds a cell scored on synthetic (fixture) data refuses real rows for the same cell with a
    clear error even under if_exists='skip' (skipping would keep synthetic numbers under a real benchmark id)."""
    from brainlid.scoring.store import DataSourceConflictError

    st = ResultsStore(tmp_path / "r.sqlite")
    st.add_cell("scores", [{**r, "data_source": "synthetic"} for r in _rows()])
    real = tables.score_frame([{**r, "data_source": "real"} for r in _rows()])
    with pytest.raises(DataSourceConflictError, match="from synthetic data, and these rows come from real data"):
        st.add_frames(real, if_exists="skip")
    assert set(st.scores()["data_source"]) == {"synthetic"}
    st.add_frames(real, if_exists="replace")
    assert set(st.scores()["data_source"]) == {"real"}
    # same source twice: the ordinary duplicate rules
    assert st.add_frames(real, if_exists="skip") == {"written": 0, "skipped": 1, "rows": 0}


def test_tables_data_source_defaults_and_validation(tmp_path):
    """A CSV / Parquet table written before the data_source column reads with data_source 'unknown'."""
    df = tables.score_frame(_rows())
    assert set(df["data_source"]) == {"unknown"}
    old = df.drop(columns=["data_source"])
    old.to_csv(tmp_path / "old.csv", index=False)
    old.to_parquet(tmp_path / "old.parquet", index=False)
    for p in (tmp_path / "old.csv", tmp_path / "old.parquet"):
        back = tables.read_table(p)
        assert list(back.columns) == list(tables.SCORE_COLUMNS)
        assert set(back["data_source"]) == {"unknown"}
    syn = tables.score_frame([{**r, "data_source": "synthetic"} for r in _rows()])
    tables.write_table(syn, tmp_path / "syn")
    assert set(tables.read_table(tmp_path / "syn.csv")["data_source"]) == {"synthetic"}
    with pytest.raises(InputError, match="data_source"):
        tables.score_frame([{**_rows()[0], "data_source": "simulated"}])


def _documented_in_docstring(doc: str, section: str) -> set[str]:
    """Column names in the first field of the rst table that follows ``section`` in the tables docstring."""
    import re

    block = doc[doc.index(section):]
    rules = [m.start() for m in re.finditer(r"^=+ +=+$", block, flags=re.M)]
    table = block[rules[1]:rules[2]]
    names = set()
    for line in table.splitlines()[1:]:
        first = line[:23].strip()
        if first:
            names |= {x.strip() for x in first.split(",")}
    return names


def test_every_score_column_is_documented_in_both_places():
    """Column definitions live in the schema docstring and docs/score_columns.md; neither may drift from
    SCORE_COLUMNS (a column added without a definition fails here)."""
    import re

    md = (REPO / "docs" / "score_columns.md").read_text(encoding="utf-8")
    headed = {n for line in md.splitlines() if line.startswith("### ") for n in re.findall(r"`([^`]+)`", line)}
    in_doc = _documented_in_docstring(tables.__doc__, "**scores**")
    for col in tables.SCORE_COLUMNS:
        assert col in in_doc, f"{col} is not defined in the brainlid.scoring.tables docstring"
        assert col in headed, f"{col} has no '### `{col}`' definition in docs/score_columns.md"
    assert in_doc <= set(tables.SCORE_COLUMNS) and headed <= set(tables.SCORE_COLUMNS), "a documented column is gone"
    for col in tables.GEOMETRY_COLUMNS:  # the geometry table is described in one paragraph of each
        geo_doc, geo_md = tables.__doc__.split("**geometry**")[1], md.split("## The geometry table")[1]
        assert re.search(rf"\b{col}\b", geo_doc) or col in tables.PROVENANCE_COLUMNS, col
        assert re.search(rf"\b{col}\b", geo_md), col


def test_check_data_source_before_skipping_stored_cells(tmp_path):
    """What the Dask runner calls before it skips stored cells (it never recomputes them, so it must not
    hand back synthetic rows for a run on real data)."""
    from brainlid.scoring.store import DataSourceConflictError

    st = ResultsStore(tmp_path / "r.sqlite")
    st.add_cell("scores", [{**r, "data_source": "synthetic"} for r in _rows(version=2)])
    st.check_data_source("nsd.subj01.EBA.encoding", 2, "synthetic")
    st.check_data_source("nsd.subj01.EBA.encoding", 1, "real")  # another version: other cells
    st.check_data_source("nsd.subj02.EBA.encoding", 2, "real")
    with pytest.raises(DataSourceConflictError, match="from synthetic data, and this run reads real data"):
        st.check_data_source("nsd.subj01.EBA.encoding", 2, "real")


def test_store_columns_come_from_the_table_schema(tmp_path, monkeypatch):
    """The SQL tables hold every column of brainlid.scoring.tables (the one schema): a column added to the
    schema is added to an existing store when it is opened, and old rows read it as its default."""
    from brainlid.scoring import store as store_mod

    path = tmp_path / "s.sqlite"
    st = ResultsStore(path)
    st.add_cell("scores", _rows(model="old"))
    con = sqlite3.connect(path)
    for kind, cols in (("scores", tables.SCORE_COLUMNS), ("geometry", tables.GEOMETRY_COLUMNS)):
        assert {r[1] for r in con.execute(f"PRAGMA table_info({kind})")} == set(cols) | {"cell_id"}
    con.close()
    wider = {**tables.SCORE_COLUMNS, "extra_score": "float64"}
    monkeypatch.setitem(store_mod._KINDS, "scores", (wider, lambda rows: tables._frame(rows, wider, "scores")))
    st = ResultsStore(path)
    con = sqlite3.connect(path)
    assert "extra_score" in {r[1] for r in con.execute("PRAGMA table_info(scores)")}
    con.close()
    assert st.scores()["extra_score"].isna().all() and len(st.scores()) == len(_rows())
