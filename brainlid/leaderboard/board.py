"""The board's data: rows read from the leaderboard database, and their CSV and JSON exports.

* :func:`board_rows` — one row per (entry, benchmark): the test scores of the layer chosen on
  the validation split, CIs, ceiling-normalised value, LID of that layer, parameters; computed
  once per state of the database (cached until a submission or a benchmark setting changes), so
  a page costs about the same at 100 and at 5,000 entries;
* :func:`entry_data` — everything one entry's page shows;
* :func:`board_csv`, :func:`board_json`, :func:`json_text` — the exports: CSV cells that a
  spreadsheet would run as a formula (text starting with ``= + - @``, tab or CR) are prefixed
  with ``'`` (OWASP), numbers stay numbers; JSON is ASCII without NaN;
* :func:`paginate` — :data:`PER_PAGE` rows a page, at most :data:`MAX_PER_PAGE`.

The pages themselves are rendered by :mod:`brainlid.leaderboard.site`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading

from ..geometry import DEFAULT_K
from . import queue as q
from .db import Database
from .schema import safe_float, visible

__all__ = ["board_rows", "entry_data", "rows_data_source", "board_csv", "board_json", "json_text", "paginate",
           "csv_cell", "FORMULA_START", "LID_K", "PRIMARY_METRIC", "BOARD_COLUMNS", "PER_PAGE", "MAX_PER_PAGE"]

#: The K at which the table's LID column reports the MLE (falls back to the nearest K measured).
LID_K = float(DEFAULT_K)
PRIMARY_METRIC = {"encoding": "encoding_r", "rsa": "rsa_spearman"}
BOARD_COLUMNS = ["entry_id", "kind", "model", "team", "benchmark", "dataset", "subject", "roi", "test_set", "layer",
                 "metric", "value", "ci_low", "ci_high", "ceiling", "normalised", "r2", "lid", "lid_k", "parameters",
                 "training_data", "submitted", "data_source", "benchmark_version", "current_version"]
#: Rows a board page shows by default, and at most (``?per_page=``).
PER_PAGE = 100
MAX_PER_PAGE = 500


_CACHE: dict[str, tuple] = {}
_CACHE_LOCK = threading.Lock()


def _board_state(db: Database) -> tuple:
    """A cheap fingerprint of everything the board rows depend on (changes whenever a row could)."""
    rows = db.query("SELECT '' AS k, COUNT(*) AS n, MAX(updated) AS u FROM submissions UNION ALL "
                    "SELECT benchmark, test_private, NULL FROM benchmarks")  # one round trip
    return tuple(sorted((r["k"], r["n"], r["u"] or "") for r in rows))


def board_rows(db: Database, benchmark: str | None = None) -> list[dict]:
    """One dict per (scored entry or baseline, benchmark) with :data:`BOARD_COLUMNS`.

    Computed once per database state (see :func:`_board_state`) and then served from memory: the
    dicts are shared between callers, treat them as read-only.
    """
    state = _board_state(db)
    with _CACHE_LOCK:
        hit = _CACHE.get(db.url)
    if hit is None or hit[0] != state:
        rows = _board_rows(db)
        with _CACHE_LOCK:
            _CACHE[db.url] = (state, rows)
    else:
        rows = hit[1]
    return [r for r in rows if r["benchmark"] == benchmark] if benchmark else list(rows)


def rows_data_source(rows: list[dict]) -> str:
    """The data source a set of score rows shows: ``synthetic`` if any row is, ``real`` if all are, else ``unknown``."""
    src = {str(r.get("data_source") or "unknown") for r in rows}
    return "synthetic" if "synthetic" in src else "real" if src == {"real"} else "unknown"


def _board_rows(db: Database) -> list[dict]:
    subs = {s["id"]: s for s in q.list_submissions(db, "scored")}
    if not subs:
        return []
    privacy = q.benchmark_settings(db)
    srows = db.query("SELECT sc.* FROM scores sc WHERE sc.split = 'test' AND sc.selected = 1 "
                     "ORDER BY sc.submission_id, sc.benchmark, sc.metric")
    grows = db.query("SELECT submission_id, layer, stimulus_set, estimator, K AS kk, value FROM geometry WHERE estimator = 'mle'")
    lid: dict[tuple, dict[float, float]] = {}
    for g in grows:
        if safe_float(g["kk"]) is not None and safe_float(g["value"]) is not None:
            lid.setdefault((g["submission_id"], g["layer"]), {})[float(g["kk"])] = float(g["value"])
    by: dict[tuple, dict] = {}
    for r in srows:
        sid = r["submission_id"]
        if sid not in subs:
            continue
        key = (sid, r["benchmark"])
        rec = by.setdefault(key, {"rows": []})
        rec["rows"].append(r)
    out = []
    versions = {bench: q.current_version(bench) for bench in {b for _, b in by}}  # once per benchmark, not per row
    for (sid, bench), rec in by.items():
        s = subs[sid]
        rows = rec["rows"]
        metric_kind = "rsa" if any(str(r["metric"]).startswith("rsa") for r in rows) else "encoding"
        pm = PRIMARY_METRIC[metric_kind]
        prim = [r for r in rows if r["metric"] == pm] or rows
        r2 = [r for r in rows if r["metric"] == "encoding_r2"]

        def mean(rs, col):
            vals = [safe_float(r[col]) for r in rs]
            vals = [v for v in vals if v is not None]
            return sum(vals) / len(vals) if vals else None

        layer = prim[0]["layer"]
        sweep = lid.get((sid, layer), {})
        k = min(sweep, key=lambda kk: (abs(kk - LID_K), kk)) if sweep else None
        md = s["metadata"]
        out.append({
            "entry_id": sid, "kind": s["kind"], "model": s["model_name"], "team": s.get("team") or "",
            "benchmark": bench, "dataset": prim[0]["dataset"], "subject": prim[0]["subject"], "roi": prim[0]["roi"],
            "test_set": "private" if privacy.get(bench, {}).get("test_private") else "public",
            "layer": layer, "metric": prim[0]["metric"], "value": mean(prim, "value"), "ci_low": mean(prim, "ci_low"),
            "ci_high": mean(prim, "ci_high"), "ceiling": mean(prim, "ceiling"), "normalised": mean(prim, "normalised"),
            "r2": mean(r2, "value") if r2 else None, "lid": sweep.get(k) if k is not None else None, "lid_k": k,
            "parameters": md.get("parameters"), "training_data": md.get("training_data", ""),
            "submitted": (s.get("scored_at") or s["created"])[:10], "data_source": rows_data_source(prim),
            "benchmark_version": prim[0].get("benchmark_version"),
            "current_version": versions[bench],
        })
    def older(r):  # rows of an older benchmark version rank after the current version's (not comparable)
        v, cur = safe_float(r["benchmark_version"]), safe_float(r["current_version"])
        return v is not None and cur is not None and v < cur

    out.sort(key=lambda r: (r["benchmark"], r["kind"] != "entry", older(r),
                            -(r["value"] if r["value"] is not None else -1e9), r["entry_id"]))
    return out


def entry_data(db: Database, entry_id: str) -> dict | None:
    """Everything the entry page shows: the submission row, all its score rows and geometry rows."""
    sub = q.get_submission(db, entry_id)
    if sub is None:
        return None
    scores = db.query("SELECT * FROM scores WHERE submission_id = ? ORDER BY benchmark, layer_index, split, metric, time",
                      (entry_id,))
    # K AS kk: PostgreSQL folds unquoted identifiers to lower case
    geom = db.query("SELECT layer, layer_index, stimulus_set, n, estimator, K AS kk, value FROM geometry "
                    "WHERE submission_id = ? ORDER BY layer_index, estimator, K", (entry_id,))
    for g in geom:
        g["K"] = g.pop("kk")
    return {"submission": sub, "scores": scores, "geometry": geom, "privacy": q.benchmark_settings(db)}


#: Text a spreadsheet would run as a formula starts with one of these (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v):
    """A CSV cell a spreadsheet shows as text: numbers stay numbers; text that a spreadsheet would run as a
    formula (starting with ``= + - @``, tab or CR) gets a leading ``'`` (OWASP CSV-injection rule)."""
    if v is None:
        return ""
    if isinstance(v, (bool, int, float)):
        return v
    text = visible(str(v))
    return "'" + text if text.startswith(FORMULA_START) else text


def board_csv(rows: list[dict]) -> str:
    """The board rows as CSV text (:data:`BOARD_COLUMNS`), cells neutralised by :func:`csv_cell`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BOARD_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_cell(r.get(k)) for k in BOARD_COLUMNS})
    return buf.getvalue()


def _json_safe(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v if isinstance(v, (str, int, bool, type(None))) else str(v)


def json_text(obj, indent: int | None = None) -> str:
    """JSON text of anything the board serves: ASCII only (any stored text encodes, lone surrogates
    included) and no NaN/inf (invalid JSON) — null instead."""
    return json.dumps(_json_safe(obj), indent=indent, ensure_ascii=True, allow_nan=False)


def board_json(rows: list[dict]) -> str:
    """The board rows as JSON text (:func:`json_text`)."""
    return json_text(rows, indent=1)


def paginate(rows: list, page: int = 1, per_page: int = PER_PAGE) -> tuple[list, int, int]:
    """``(rows of the page, page, number of pages)``; ``page`` is clamped to the existing pages (1-based)."""
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    pages = max(1, math.ceil(len(rows) / per_page))
    page = max(1, min(int(page), pages))
    return rows[(page - 1) * per_page: page * per_page], page, pages
