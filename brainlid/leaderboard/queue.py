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
* a row claimed more than ``max_attempts`` times (its worker keeps dying on it) is rejected
  with a reason instead of looping forever.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..errors import InputError
from .db import Database

__all__ = [
    "hash_token", "create_team", "team_for_token", "enqueue", "record_rejected", "claim", "heartbeat", "complete",
    "reject", "fail", "release", "get_submission", "list_submissions", "status_counts", "set_benchmark_privacy",
    "benchmark_settings", "STATUSES",
]

STATUSES = ("queued", "scoring", "scored", "rejected")
SCORE_DB_COLUMNS = ("model", "layer", "layer_index", "benchmark", "dataset", "subject", "roi", "metric", "split", "time",
                    "value", "ci_low", "ci_high", "ceiling", "normalised", "n_units", "n_stimuli", "selected",
                    "brainlid_version", "benchmark_version", "feature_cache_key")
GEOMETRY_DB_COLUMNS = ("model", "layer", "layer_index", "stimulus_set", "n", "estimator", "K", "value",
                       "brainlid_version", "benchmark_version", "feature_cache_key")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (tokens are 256-bit random strings, so no slow KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_team(db: Database, name: str) -> str:
    """Create a team (or give an existing one a new token); return the token, shown only once."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("a team name must have 1 to 200 characters")
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
            metadata: dict, bundle_path: str, bundle_sha256: str, size_bytes: int, kind: str = "entry") -> None:
    """Record an accepted submission as ``queued`` (one transaction)."""
    now = _now()
    db.execute(
        "INSERT INTO submissions (id, team_id, benchmarks, model_name, metadata, bundle_path, bundle_sha256, size_bytes, "
        "status, reason, attempts, created, updated, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', '', 0, ?, ?, ?)",
        (submission_id, team_id, json.dumps(benchmarks), model_name, json.dumps(metadata), bundle_path, bundle_sha256,
         int(size_bytes), now, now, kind),
    )


def record_rejected(db: Database, *, submission_id: str, team_id: int | None, reason: str, size_bytes: int = 0,
                    benchmarks: list[str] | None = None, model_name: str = "", metadata: dict | None = None) -> None:
    """Record an upload rejected at validation (no bundle kept), so its id reports the reason."""
    now = _now()
    db.execute(
        "INSERT INTO submissions (id, team_id, benchmarks, model_name, metadata, bundle_path, bundle_sha256, size_bytes, "
        "status, reason, attempts, created, updated) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, 'rejected', ?, 0, ?, ?)",
        (submission_id, team_id, json.dumps(benchmarks or []), model_name, json.dumps(metadata or {}), int(size_bytes),
         reason[:4000], now, now),
    )


def claim(db: Database, owner: str, lease_seconds: float = 60.0, max_attempts: int = 3) -> dict | None:
    """Take the oldest claimable submission under a lease; None when the queue is empty."""
    for _ in range(20):
        now = time.time()
        cands = db.query(
            "SELECT id, status, lease_expires, attempts, reason FROM submissions WHERE status = 'queued' "
            "OR (status = 'scoring' AND lease_expires < ?) ORDER BY created, id LIMIT 8", (now,))
        if not cands:
            return None
        for c in cands:
            with db.transaction() as tx:
                if c["attempts"] >= max_attempts:
                    n = tx.execute(
                        "UPDATE submissions SET status = 'rejected', reason = ?, lease_owner = NULL, updated = ? "
                        "WHERE id = ? AND status = 'scoring' AND lease_expires < ?",
                        (f"scoring failed {c['attempts']} times; not retried"
                         + (f" (last: {c['reason']})" if c["reason"] else " (the worker stopped each time)"), _now(),
                         c["id"], now))
                    continue
                n = tx.execute(
                    "UPDATE submissions SET status = 'scoring', lease_owner = ?, lease_expires = ?, "
                    "attempts = attempts + 1, updated = ? WHERE id = ? AND (status = 'queued' OR "
                    "(status = 'scoring' AND lease_expires < ?))",
                    (owner, now + lease_seconds, _now(), c["id"], now))
                if n == 1:
                    row = tx.query("SELECT * FROM submissions WHERE id = ?", (c["id"],))[0]
                    return row
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


def _rows(df: pd.DataFrame, cols) -> list[tuple]:
    if df is None or df.empty:
        return []
    out = []
    for rec in df[list(cols)].itertuples(index=False):
        out.append(tuple(_clean(v) for v in rec))
    return out


def complete(db: Database, submission_id: str, owner: str, scores: pd.DataFrame, geometry: pd.DataFrame) -> bool:
    """Store the score and geometry rows and mark ``scored`` — only while holding the lease.

    Returns False (and writes nothing) when the lease was lost.
    """
    from ..scoring.tables import geometry_frame, score_frame

    srows = [(submission_id, *r) for r in _rows(score_frame(scores if scores is not None else []), SCORE_DB_COLUMNS)]
    grows = [(submission_id, *r) for r in _rows(geometry_frame(geometry if geometry is not None else []), GEOMETRY_DB_COLUMNS)]
    with db.transaction() as tx:
        lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
        held = tx.query(f"SELECT id FROM submissions WHERE id = ? AND status = 'scoring' AND lease_owner = ?{lock}",
                        (submission_id, owner))
        if not held:
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
                   "WHERE id = ? AND status = 'scoring' AND lease_owner = ?", (reason[:4000], _now(), submission_id, owner))
    return n == 1


def fail(db: Database, submission_id: str, owner: str, reason: str) -> bool:
    """Record a server-side failure and make the job claimable at once (it counted as an attempt)."""
    n = db.execute("UPDATE submissions SET reason = ?, lease_owner = NULL, lease_expires = 0 "
                   "WHERE id = ? AND status = 'scoring' AND lease_owner = ?", (reason[:4000], submission_id, owner))
    return n == 1


def release(db: Database, submission_id: str, owner: str) -> bool:
    """Give a claimed submission back to the queue (graceful worker shutdown)."""
    n = db.execute("UPDATE submissions SET status = 'queued', lease_owner = NULL, lease_expires = NULL, "
                   "attempts = attempts - 1, updated = ? WHERE id = ? AND status = 'scoring' AND lease_owner = ?",
                   (_now(), submission_id, owner))
    return n == 1


def get_submission(db: Database, submission_id: str) -> dict | None:
    rows = db.query("SELECT s.*, t.name AS team FROM submissions s LEFT JOIN teams t ON t.team_id = s.team_id "
                    "WHERE s.id = ?", (submission_id,))
    if not rows:
        return None
    r = rows[0]
    r["benchmarks"] = json.loads(r["benchmarks"])
    r["metadata"] = json.loads(r["metadata"])
    return r


def list_submissions(db: Database, status: str | None = None) -> list[dict]:
    q = "SELECT s.*, t.name AS team FROM submissions s LEFT JOIN teams t ON t.team_id = s.team_id"
    rows = db.query(q + (" WHERE s.status = ?" if status else "") + " ORDER BY s.created, s.id", (status,) if status else ())
    for r in rows:
        r["benchmarks"] = json.loads(r["benchmarks"])
        r["metadata"] = json.loads(r["metadata"])
    return rows


def status_counts(db: Database) -> dict[str, int]:
    rows = db.query("SELECT status, COUNT(*) AS n FROM submissions GROUP BY status")
    out = {s: 0 for s in STATUSES}
    out.update({r["status"]: int(r["n"]) for r in rows})
    return out


def set_benchmark_privacy(db: Database, benchmark: str, private: bool, note: str = "") -> None:
    """Declare a benchmark's test responses private (held only by the server) or public."""
    with db.transaction() as tx:
        tx.execute("DELETE FROM benchmarks WHERE benchmark = ?", (benchmark,))
        tx.execute("INSERT INTO benchmarks (benchmark, test_private, note) VALUES (?, ?, ?)", (benchmark, int(private), note))


def benchmark_settings(db: Database) -> dict[str, dict]:
    return {r["benchmark"]: {"test_private": bool(r["test_private"]), "note": r["note"]}
            for r in db.query("SELECT benchmark, test_private, note FROM benchmarks")}
