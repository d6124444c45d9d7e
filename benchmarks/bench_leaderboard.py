"""The leaderboard service under load: page latency while slow uploads are in flight, and page cost vs board size.

Two measurements against ``brainlid leaderboard serve`` on 127.0.0.1 (a subprocess, SQLite):

* **pages during uploads** — ``/api/health`` and ``/`` are fetched one after the other while
  ``n`` uploads (200; ``--quick``: 50) each send 20 kB in 10 pieces 0.3 s apart (then are
  validated and rejected: not zips). Reported: p50 / p99 of each path idle and busy, and the
  busy/idle ratios (machine speed cancels out); the goal is a busy p99 under 1 s.
  (:func:`tests.leaderboard.harness.uploads_and_pages`, the generator the test uses.)
* **page at 5,000 entries vs at 100** — two boards filled with scored entries (one score row
  each, written straight into the database); ``GET /`` (first page, default 100 rows) and
  ``GET /api/leaderboard`` timed interleaved (median of ``repeats``); goal ≤ 2× (pagination).

Run: ``python -m benchmarks leaderboard`` (``--quick``: 50 uploads, 1,000 entries, 3 repeats).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from benchmarks._common import print_table, timeit_interleaved

BENCH = "nsd.subj01.EBA.encoding"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _fill(db_url: str, n: int) -> None:
    """``n`` scored entries with one test score row each, written in one transaction."""
    from brainlid.leaderboard import queue as q
    from brainlid.leaderboard.db import Database

    db = Database(db_url)
    now = "2026-01-01T00:00:00.000+00:00"
    cols = q.SCORE_DB_COLUMNS
    subs, scores = [], []
    for i in range(n):
        sid = uuid.uuid4().hex
        subs.append((sid, json.dumps([BENCH]), f"model-{i}", json.dumps({"model_name": f"model-{i}", "parameters": 1000 + i}),
                     now, now, now))
        row = {"model": f"model-{i}", "layer": "fc", "layer_index": 0, "benchmark": BENCH, "dataset": "nsd",
               "subject": "subj01", "roi": "EBA", "metric": "encoding_r", "split": "test", "value": (i % 97) / 100,
               "ceiling": 0.8, "normalised": (i % 97) / 80, "n_units": 32, "n_stimuli": 40, "selected": 1,
               "brainlid_version": "bench", "benchmark_version": 2, "ci_method": "", "ceiling_method": "",
               "data_source": "synthetic"}
        scores.append((sid, *[row.get(c) for c in cols]))
    with db.transaction() as tx:
        tx.executemany("INSERT INTO submissions (id, team_id, benchmarks, model_name, metadata, bundle_path, bundle_sha256, "
                       "size_bytes, status, reason, attempts, created, updated, scored_at, kind) VALUES "
                       "(?, NULL, ?, ?, ?, '', '', 0, 'scored', '', 0, ?, ?, ?, 'entry')", subs)
        tx.executemany(f"INSERT INTO scores (submission_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})",
                       scores)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def main(quick: bool = False) -> None:
    from brainlid.leaderboard import queue as q
    from tests.leaderboard.harness import ServiceProcess, uploads_and_pages
    from brainlid.leaderboard.db import Database

    tmp = Path(tempfile.mkdtemp(prefix="bench_leaderboard_"))
    n_uploads = 50 if quick else 200
    big = 1000 if quick else 5000
    repeats = 3 if quick else 7

    # ---- pages while slow uploads are in flight
    url = f"sqlite:///{tmp / 'load.sqlite'}"
    token = q.create_team(Database(url), "load")
    svc = ServiceProcess(url, home=tmp / "home", extra=["--rate-limit", "0", "--team-inflight", "0",
                                                        "--max-pending-uploads", str(n_uploads + 16)]).start()
    try:
        t0 = time.perf_counter()
        res = uploads_and_pages(svc.url, token, n_uploads=n_uploads, n_idle=20, n_pages=20, timeout=600)
        wall = time.perf_counter() - t0
    finally:
        svc.stop()
    rows = []
    for path in res["idle"]:
        idle, busy = res["idle"][path], res["busy"][path]
        rows.append({"path": path, "idle p50 ms": 1000 * statistics.median(idle), "idle p99 ms": 1000 * _pct(idle, 99),
                     "busy p50 ms": 1000 * statistics.median(busy), "busy p99 ms": 1000 * _pct(busy, 99),
                     "p50 ratio": statistics.median(busy) / statistics.median(idle),
                     "p99 ratio": _pct(busy, 99) / _pct(idle, 99), "p99 < 1 s": _pct(busy, 99) < 1.0})
    print_table(rows, f"pages while {n_uploads} slow uploads are in flight (min in flight at a request: "
                      f"{min(res['in_flight'])}; all pages 200: {set(res['busy_status']) == {200}}; "
                      f"upload answers {sorted(set(res['upload_status']))}; {wall:.1f} s)")

    # ---- page cost vs number of entries
    services = {}
    try:
        for n in (100, big):
            u = f"sqlite:///{tmp / f'board{n}.sqlite'}"
            Database(u)
            _fill(u, n)
            services[n] = ServiceProcess(u, home=tmp / "home", extra=["--rate-limit", "0"]).start()
        fns = {}
        for n, s in services.items():
            fns[f"/ at {n}"] = (lambda s=s: _get(s.url + "/"))
            fns[f"/api/leaderboard at {n}"] = (lambda s=s: _get(s.url + "/api/leaderboard"))
        sizes = {k: len(f()) for k, f in fns.items()}
        t = timeit_interleaved(fns, repeats=repeats)
    finally:
        for s in services.values():
            s.stop()
    rows = []
    for path in ("/", "/api/leaderboard"):
        small, large = t[f"{path} at 100"], t[f"{path} at {big}"]
        rows.append({"path": path, "100 entries ms": 1000 * small, f"{big} entries ms": 1000 * large,
                     "ratio": large / small, "ratio <= 2": large / small <= 2.0,
                     "bytes at 100": sizes[f"{path} at 100"], f"bytes at {big}": sizes[f"{path} at {big}"]})
    print_table(rows, f"first page at {big} entries vs at 100 (median of {repeats}, interleaved)")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
