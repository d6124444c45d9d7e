"""Teams, submissions and the scoring queue, persisted in the leaderboard database.

Queue protocol (works the same on SQLite and PostgreSQL):

* an accepted upload is one row ``status = 'queued'`` written in one transaction after its
  bundle file has been renamed into place (a row always has its file);
* :func:`claim` moves the oldest claimable row — ``queued``, or ``scoring`` with an expired
  lease (its worker died) — to ``scoring`` with a lease ``(owner, expires)`` by a
  *conditional* ``UPDATE … WHERE status/lease still as read``: of two workers racing for a row,
  exactly one update changes it;
* the worker renews the lease while it scores (:func:`heartbeat`);
* :func:`complete` writes the score rows and ``status = 'scored'`` in one transaction **only if
  the worker still holds the lease** — a worker that lost its lease (paused past expiry while
  another took over) writes nothing, so no submission is scored twice; :func:`reject` likewise;
* ``attempts`` counts only failures the scoring itself raised (:func:`fail`); after
  ``max_attempts`` of them the row is rejected with the last reason;
* a lease that ran out (the worker was killed, or the whole server restarted) costs no attempt:
  the row is retaken, and ``lease_expiries`` counts it — after ``max_lease_expiries`` (a bundle
  whose worker keeps dying, e.g. out of memory) the row is rejected instead of looping forever;
* a worker that stops gracefully gives its row back (:func:`release`) at no cost.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..scoring import geometry_frame, get_benchmark, score_frame
from .db import STORED_COLUMNS, Database
from .schema import MAX_NAME, check_text, public_reason

__all__ = [
    "hash_token", "create_team", "team_for_token", "enqueue", "record_rejected", "claim", "heartbeat", "complete",
    "reject", "fail", "release", "get_submission", "list_submissions", "status_counts", "set_benchmark_privacy",
    "benchmark_settings", "requeue_for_rescore", "current_version", "find_duplicate", "expire_dead_local_leases", "STATUSES",
    "table_rows", "SCORE_DB_COLUMNS", "GEOMETRY_DB_COLUMNS",
]

STATUSES = ("queued", "scoring", "scored", "rejected")
#: The columns of the ``scores`` and ``geometry`` tables: those of :mod:`brainlid.scoring.tables`, the one schema.
SCORE_DB_COLUMNS = STORED_COLUMNS["scores"]
GEOMETRY_DB_COLUMNS = STORED_COLUMNS["geometry"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (tokens are 256-bit random strings, so no slow KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_team(db: Database, name: str) -> str:
    """Create a team (or give an existing one a new token); return the token, shown only once."""
    name = check_text(name.strip(), "the team name", max_len=MAX_NAME)  # shown on every page: the submission schema
    token = "blt_" + secrets.token_urlsafe(32)
    with db.transaction() as tx:
        if tx.query("SELECT team_id FROM teams WHERE name = ?", (name,)):
            tx.execute("UPDATE teams SET token_hash = ? WHERE name = ?", (hash_token(token), name))
        else:
            tx.execute("INSERT INTO teams (name, token_hash, created) VALUES (?, ?, ?)", (name, hash_token(token), _now()))
    return token


def team_for_token(db: Database, token: str | None) -> dict | None:
    """The team row of a token, or None (unknown or empty token)."""
    if not token:
        return None
    rows = db.query("SELECT team_id, name FROM teams WHERE token_hash = ?", (hash_token(token),))
    return rows[0] if rows else None


def enqueue(db: Database, *, submission_id: str, team_id: int | None, benchmarks: list[str], model_name: str,
            metadata: dict, bundle_path: str, bundle_sha256: str, size_bytes: int, kind: str = "entry",
            rescore_of: str | None = None) -> None:
    """Record an accepted submission as ``queued`` (one transaction).

    ``rescore_of``: the id of the submission whose kept bundle this one scores again.
    """
    now = _now()
    db.execute("INSERT INTO submissions (id, team_id, benchmarks, model_name, metadata, bundle_path, bundle_sha256, "
               "size_bytes, status, reason, attempts, created, updated, kind, rescore_of) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', '', 0, ?, ?, ?, ?)",
               (submission_id, team_id, json.dumps(benchmarks), model_name, json.dumps(metadata), bundle_path,
                bundle_sha256, int(size_bytes), now, now, kind, rescore_of))


def record_rejected(db: Database, *, submission_id: str, team_id: int | None, reason: str, size_bytes: int = 0,
                    benchmarks: list[str] | None = None, model_name: str = "", metadata: dict | None = None) -> None:
    """Record an upload rejected at validation (no bundle kept), so its id reports the reason."""
    now = _now()
    db.execute(
        "INSERT INTO submissions (id, team_id, benchmarks, model_name, metadata, bundle_path, bundle_sha256, size_bytes, "
        "status, reason, attempts, created, updated) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, 'rejected', ?, 0, ?, ?)",
        (submission_id, team_id, json.dumps(benchmarks or []), model_name, json.dumps(metadata or {}), int(size_bytes),
         public_reason(reason), now, now),
    )


def claim(db: Database, owner: str, lease_seconds: float = 60.0, max_lease_expiries: int = 5) -> dict | None:
    """Take the oldest claimable submission under a lease; None when the queue is empty.

    A ``queued`` row is taken as it is. A ``scoring`` row whose lease ran out (its worker died,
    or the server restarted) is retaken without consuming an attempt; its ``lease_expiries``
    grows by one, and the ``max_lease_expiries``-th expiry rejects it (a bundle that kills its
    worker every time, e.g. out of memory, cannot loop forever).
    """
    for _ in range(20):
        now = time.time()
        cands = db.query(
            "SELECT id, status, lease_expiries FROM submissions WHERE status = 'queued' "
            "OR (status = 'scoring' AND lease_expires < ?) ORDER BY created, id LIMIT 8", (now,))
        if not cands:
            return None
        for c in cands:
            with db.transaction() as tx:
                if c["status"] == "queued":
                    n = tx.execute("UPDATE submissions SET status = 'scoring', lease_owner = ?, lease_expires = ?, "
                                   "updated = ? WHERE id = ? AND status = 'queued'",
                                   (owner, now + lease_seconds, _now(), c["id"]))
                elif int(c["lease_expiries"] or 0) + 1 >= max_lease_expiries:
                    tx.execute(
                        "UPDATE submissions SET status = 'rejected', reason = ?, lease_owner = NULL, "
                        "lease_expiries = lease_expiries + 1, updated = ? WHERE id = ? AND status = 'scoring' "
                        "AND lease_expires < ?",
                        (f"scoring stopped {int(c['lease_expiries'] or 0) + 1} times without finishing (the worker "
                         "died each time, e.g. out of memory); not retried", _now(), c["id"], now))
                    continue
                else:
                    n = tx.execute("UPDATE submissions SET lease_owner = ?, lease_expires = ?, "
                                   "lease_expiries = lease_expiries + 1, updated = ? WHERE id = ? AND status = 'scoring' "
                                   "AND lease_expires < ?", (owner, now + lease_seconds, _now(), c["id"], now))
                if n == 1:
                    return tx.query("SELECT * FROM submissions WHERE id = ?", (c["id"],))[0]
    return None


def heartbeat(db: Database, submission_id: str, owner: str, lease_seconds: float = 60.0) -> bool:
    """Extend the lease; False if the worker no longer holds it."""
    n = db.execute("UPDATE submissions SET lease_expires = ? WHERE id = ? AND status = 'scoring' AND lease_owner = ?",
                   (time.time() + lease_seconds, submission_id, owner))
    return n == 1


def _clean(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.bool_, bool)):
        return int(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    return v


def table_rows(table: str, rows) -> list[tuple]:
    """Rows for the ``scores`` or ``geometry`` table, one tuple of :data:`~brainlid.leaderboard.db.STORED_COLUMNS` each.

    Parameters
    ----------
    table : {"scores", "geometry"}
    rows : DataFrame or iterable of dicts
        Score or geometry rows; typed by :func:`~brainlid.scoring.score_frame` /
        :func:`~brainlid.scoring.geometry_frame` (missing columns get their defaults, unknown
        ones are an error). NaN and ``<NA>`` become NULL, booleans 0/1.
    """
    frame = (score_frame if table == "scores" else geometry_frame)(rows if rows is not None else [])
    return [tuple(_clean(v) for v in rec) for rec in frame[list(STORED_COLUMNS[table])].itertuples(index=False)]


def _held(db: Database, tx, submission_id: str, owner: str) -> list[dict]:
    """The row (``[{"id", "attempts"}]``) while ``owner`` holds its lease, locked for this transaction; else ``[]``."""
    lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
    return tx.query(f"SELECT id, attempts FROM submissions WHERE id = ? AND status = 'scoring' AND lease_owner = ?{lock}",
                    (submission_id, owner))


def complete(db: Database, submission_id: str, owner: str, scores: pd.DataFrame, geometry: pd.DataFrame) -> bool:
    """Store the score and geometry rows and mark ``scored`` — only while holding the lease.

    Returns False (and writes nothing) when the lease was lost.
    """
    srows = [(submission_id, *r) for r in table_rows("scores", scores)]
    grows = [(submission_id, *r) for r in table_rows("geometry", geometry)]
    with db.transaction() as tx:
        if not _held(db, tx, submission_id, owner):
            return False
        tx.execute("DELETE FROM scores WHERE submission_id = ?", (submission_id,))
        tx.execute("DELETE FROM geometry WHERE submission_id = ?", (submission_id,))
        tx.executemany(f"INSERT INTO scores (submission_id, {', '.join(SCORE_DB_COLUMNS)}) VALUES "
                       f"({', '.join('?' * (len(SCORE_DB_COLUMNS) + 1))})", srows)
        tx.executemany(f"INSERT INTO geometry (submission_id, {', '.join(GEOMETRY_DB_COLUMNS)}) VALUES "
                       f"({', '.join('?' * (len(GEOMETRY_DB_COLUMNS) + 1))})", grows)
        now = _now()
        tx.execute("UPDATE submissions SET status = 'scored', reason = '', lease_owner = NULL, updated = ?, scored_at = ? "
                   "WHERE id = ?", (now, now, submission_id))
    return True


def reject(db: Database, submission_id: str, owner: str, reason: str) -> bool:
    """Mark ``rejected`` with a reason — only while holding the lease."""
    n = db.execute("UPDATE submissions SET status = 'rejected', reason = ?, lease_owner = NULL, updated = ? "
                   "WHERE id = ? AND status = 'scoring' AND lease_owner = ?",
                   (public_reason(reason), _now(), submission_id, owner))
    return n == 1


def fail(db: Database, submission_id: str, owner: str, reason: str, max_attempts: int = 3) -> bool:
    """Record a failure the scoring raised: one attempt used; queued again, or rejected at ``max_attempts``.

    Only while holding the lease; returns False when the lease was lost.
    """
    with db.transaction() as tx:
        held = _held(db, tx, submission_id, owner)
        if not held:
            return False
        used = int(held[0]["attempts"] or 0) + 1
        if used >= max_attempts:
            tx.execute("UPDATE submissions SET status = 'rejected', reason = ?, attempts = ?, lease_owner = NULL, "
                       "lease_expires = NULL, updated = ? WHERE id = ?",
                       (public_reason(f"scoring failed {used} times; not retried (last: {reason})"), used, _now(), submission_id))
        else:
            tx.execute("UPDATE submissions SET status = 'queued', reason = ?, attempts = ?, lease_owner = NULL, "
                       "lease_expires = NULL, updated = ? WHERE id = ?", (public_reason(reason), used, _now(), submission_id))
    return True


def release(db: Database, submission_id: str, owner: str) -> bool:
    """Give a claimed submission back to the queue at no cost (graceful worker shutdown)."""
    n = db.execute("UPDATE submissions SET status = 'queued', lease_owner = NULL, lease_expires = NULL, "
                   "updated = ? WHERE id = ? AND status = 'scoring' AND lease_owner = ?", (_now(), submission_id, owner))
    return n == 1


def get_submission(db: Database, submission_id: str) -> dict | None:
    """The submission row with its team name, ``benchmarks`` and ``metadata`` decoded; None for an unknown id."""
    rows = db.query("SELECT s.*, t.name AS team FROM submissions s LEFT JOIN teams t ON t.team_id = s.team_id "
                    "WHERE s.id = ?", (submission_id,))
    if not rows:
        return None
    r = rows[0]
    r["benchmarks"] = json.loads(r["benchmarks"])
    r["metadata"] = json.loads(r["metadata"])
    return r


def list_submissions(db: Database, status: str | None = None) -> list[dict]:
    """Every submission (or those with ``status``), oldest first, as :func:`get_submission` returns them."""
    q = "SELECT s.*, t.name AS team FROM submissions s LEFT JOIN teams t ON t.team_id = s.team_id"
    rows = db.query(q + (" WHERE s.status = ?" if status else "") + " ORDER BY s.created, s.id", (status,) if status else ())
    for r in rows:
        r["benchmarks"] = json.loads(r["benchmarks"])
        r["metadata"] = json.loads(r["metadata"])
    return rows


def status_counts(db: Database) -> dict[str, int]:
    """Number of submissions per status (every one of :data:`STATUSES`, 0 when none)."""
    rows = db.query("SELECT status, COUNT(*) AS n FROM submissions GROUP BY status")
    out = {s: 0 for s in STATUSES}
    out.update({r["status"]: int(r["n"]) for r in rows})
    return out


def set_benchmark_privacy(db: Database, benchmark: str, private: bool, note: str = "") -> None:
    """Declare a benchmark's test responses private (held only by the server) or public.

    Raises :class:`~brainlid.errors.InputError` for a benchmark this brainlid does not define.
    """
    get_benchmark(benchmark)
    with db.transaction() as tx:
        tx.execute("DELETE FROM benchmarks WHERE benchmark = ?", (benchmark,))
        tx.execute("INSERT INTO benchmarks (benchmark, test_private, note) VALUES (?, ?, ?)", (benchmark, int(private), note))


def benchmark_settings(db: Database) -> dict[str, dict]:
    """Benchmark id → ``{"test_private": bool, "note": str}`` for the benchmarks given settings."""
    return {r["benchmark"]: {"test_private": bool(r["test_private"]), "note": r["note"]}
            for r in db.query("SELECT benchmark, test_private, note FROM benchmarks")}


def current_version(benchmark: str) -> int | None:
    """The version this brainlid defines for ``benchmark``; None for a benchmark it no longer defines."""
    try:
        return int(get_benchmark(benchmark).version)
    except Exception:  # noqa: BLE001 - a benchmark this brainlid no longer defines
        return None


def requeue_for_rescore(db: Database, *, benchmarks: list[str] | None = None, everything: bool = False,
                        ) -> list[tuple[str, str]]:
    """Queue kept bundles again, to be scored under the current benchmark versions.

    A scored entry (not a baseline) whose bundle is still stored is re-queued as a new
    submission (``rescore_of`` = the old id; same team, metadata and bundle) when one of its
    benchmarks was scored under an older version than this brainlid defines, or always with
    ``everything``. ``benchmarks`` limits it to entries scored on those benchmarks. The old
    submission and its scores stay (the board labels them with their version). An entry with a
    queued, running or scored re-score is skipped (from then on its re-score is the entry to
    consider), so running this twice queues nothing new. Returns ``[(old id, new id), ...]``.
    """
    for b in benchmarks or ():
        get_benchmark(b)  # an unknown id is an error, not "nothing to do"
    scored: dict[str, dict] = {}
    for r in db.query("SELECT submission_id, benchmark, MIN(benchmark_version) AS v FROM scores "
                      "GROUP BY submission_id, benchmark"):
        scored.setdefault(r["submission_id"], {})[r["benchmark"]] = r["v"]
    current = {b: current_version(b) for b in {b for got in scored.values() for b in got}}
    later: dict[str, list[dict]] = {}
    for s in list_submissions(db):
        if s.get("rescore_of"):
            later.setdefault(s["rescore_of"], []).append(s)
    out = []
    for s in list_submissions(db, "scored"):
        if s["kind"] != "entry" or not s.get("bundle_path") or not os.path.exists(s["bundle_path"]):
            continue
        got = scored.get(s["id"], {})
        if benchmarks and not set(benchmarks) & set(got):
            continue
        if any(current[b] is None for b in got):
            continue  # a benchmark this brainlid no longer defines: cannot be re-scored
        stale = any(v is None or int(v) < current[b] for b, v in got.items())
        if not (stale or everything):
            continue
        if any(t["status"] != "rejected" for t in later.get(s["id"], [])):
            continue  # a re-score is pending, or done (then the re-score is the entry to consider)
        sid = uuid.uuid4().hex
        enqueue(db, submission_id=sid, team_id=s["team_id"], benchmarks=s["benchmarks"], model_name=s["model_name"],
                metadata=s["metadata"], bundle_path=s["bundle_path"], bundle_sha256=s["bundle_sha256"] or "",
                size_bytes=s["size_bytes"] or 0, rescore_of=s["id"])
        out.append((s["id"], sid))
    return out


def find_duplicate(db: Database, team_id: int | None, bundle_sha256: str) -> dict | None:
    """The team's newest entry with this bundle hash that is queued, being scored or scored; None if there is none.

    The same bytes carry the same manifest, hence the same benchmarks: such an upload is the
    same submission (a rejected one may be sent again).
    """
    rows = db.query("SELECT id, status FROM submissions WHERE team_id = ? AND bundle_sha256 = ? AND kind = 'entry' "
                    "AND status IN ('queued', 'scoring', 'scored') ORDER BY created DESC, id LIMIT 1",
                    (team_id, bundle_sha256))
    return rows[0] if rows else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive
    return True


def expire_dead_local_leases(db: Database, owner: str) -> list[str]:
    """End at once the leases held by dead workers of this machine (a restart need not wait for them to run out).

    Owners are ``host:pid:tag``; a lease whose host is this owner's and whose process no
    longer exists is set to expired, so the next :func:`claim` retakes the job (counting one
    lease expiry, as if it had run out). Returns the ids. Leases of other machines, of live
    processes and of unknown owner formats are left to run out. Workers that share a host
    name but not a process table (containers with the host's name) would see each other as
    dead: give them distinct host names, or their jobs may be retaken (never scored twice).
    """
    host, _, rest = owner.partition(":")
    mine = rest.split(":", 1)[0]
    out = []
    for r in db.query("SELECT id, lease_owner FROM submissions WHERE status = 'scoring' AND lease_owner LIKE ?",
                      (f"{host}:%",)):  # LIKE may match more ("_"); the exact host is checked below
        parts = (r["lease_owner"] or "").split(":")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or parts[1] == mine or _pid_alive(int(parts[1])):
            continue
        if db.execute("UPDATE submissions SET lease_expires = 0 WHERE id = ? AND status = 'scoring' AND lease_owner = ?",
                      (r["id"], r["lease_owner"])) == 1:
            out.append(r["id"])
    return out
