"""The leaderboard database: one schema for SQLite (WAL) and PostgreSQL, with migrations.

URLs
----
* ``sqlite:///abs/path/board.sqlite`` or a plain file path — the embedded default
  (``$BRAINLID_HOME/leaderboard/board.sqlite``), opened in WAL mode with a busy timeout so
  the web service and workers (threads or processes) share it;
* ``postgresql://user@host:port/dbname`` — a real deployment (needs ``psycopg``).

SQL is written once with ``?`` placeholders; :class:`Database` rewrites them to ``%s`` for
PostgreSQL. The only dialect differences are the auto-increment key type and the lock mode of
write transactions (``BEGIN IMMEDIATE`` on SQLite; row locks on PostgreSQL).

Schema (version :data:`SCHEMA_VERSION`)
---------------------------------------
* ``meta(key, value)`` — ``schema_version``;
* ``teams(team_id, name, token_hash, created)`` — tokens are random 256-bit strings stored as
  their SHA-256 (a fast hash is enough for high-entropy secrets; nothing reversible is kept);
* ``submissions`` — one row per upload: id, team, benchmarks, model name, metadata JSON, the
  bundle's path and hash, ``status`` (queued / scoring / scored / rejected), ``reason``,
  ``attempts`` (failures the scoring raised), ``lease_expiries`` (leases that ran out: a worker
  died or the server restarted), the lease (``lease_owner``, ``lease_expires``), ``kind`` (``entry`` or
  ``baseline``), ``rescore_of`` (the submission whose kept bundle this one scores again under the
  current benchmark versions) and timestamps;
* ``scores`` / ``geometry`` — the tidy rows of each scored submission, one column per column of
  :data:`brainlid.scoring.tables.SCORE_COLUMNS` / :data:`~brainlid.scoring.tables.GEOMETRY_COLUMNS`
  (the one definition; :data:`STORED_COLUMNS`) plus ``row_id`` and ``submission_id``; rows stored
  before a column existed hold its default (``data_source``: ``unknown``);
* ``benchmarks(benchmark, test_private, note)`` — per-benchmark board settings.

Migrations: ``MIGRATIONS[v]`` upgrades a version-``v`` database to ``v + 1``; opening a
database runs the missing steps in one transaction; a newer database is refused. A column added
to the score-table schema needs a migration that adds it here (a test compares the migrated
tables with :data:`STORED_COLUMNS`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

from ..config import brainlid_home
from ..errors import BrainlidError, InputError, require
from ..scoring.tables import GEOMETRY_COLUMNS, SCORE_COLUMNS

__all__ = ["Database", "SCHEMA_VERSION", "MIGRATIONS", "STORED_COLUMNS", "default_db_url", "DatabaseError"]

SCHEMA_VERSION = 5

#: Table → the score-table columns it stores, in the order of :mod:`brainlid.scoring.tables` (the one schema).
STORED_COLUMNS: dict[str, tuple[str, ...]] = {"scores": tuple(SCORE_COLUMNS), "geometry": tuple(GEOMETRY_COLUMNS)}


class DatabaseError(BrainlidError):
    """The leaderboard database cannot be used (newer schema, unreachable server, bad URL)."""


# {pk}: auto-increment integer primary key; {real}: float column type.
MIGRATIONS: dict[int, list[str]] = {
    0: [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE teams (team_id {pk}, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL)",
        """CREATE TABLE submissions (
            id TEXT PRIMARY KEY, team_id INTEGER, benchmarks TEXT NOT NULL, model_name TEXT NOT NULL,
            metadata TEXT NOT NULL, bundle_path TEXT, bundle_sha256 TEXT, size_bytes INTEGER,
            status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT, lease_expires {real}, created TEXT NOT NULL, updated TEXT NOT NULL,
            scored_at TEXT, kind TEXT NOT NULL DEFAULT 'entry'
        )""",
        "CREATE INDEX submissions_status ON submissions (status, created)",
        """CREATE TABLE scores (
            row_id {pk}, submission_id TEXT NOT NULL REFERENCES submissions(id), model TEXT, layer TEXT,
            layer_index INTEGER, benchmark TEXT, dataset TEXT, subject TEXT, roi TEXT, metric TEXT, split TEXT,
            time {real}, value {real}, ci_low {real}, ci_high {real}, ceiling {real}, normalised {real},
            n_units INTEGER, n_stimuli INTEGER, selected INTEGER, brainlid_version TEXT, benchmark_version INTEGER,
            feature_cache_key TEXT
        )""",
        "CREATE INDEX scores_submission ON scores (submission_id)",
        """CREATE TABLE geometry (
            row_id {pk}, submission_id TEXT NOT NULL REFERENCES submissions(id), model TEXT, layer TEXT,
            layer_index INTEGER, stimulus_set TEXT, n INTEGER, estimator TEXT, K {real}, value {real},
            brainlid_version TEXT, benchmark_version INTEGER, feature_cache_key TEXT
        )""",
        "CREATE INDEX geometry_submission ON geometry (submission_id)",
        "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
    ],
    1: [
        "CREATE TABLE benchmarks (benchmark TEXT PRIMARY KEY, test_private INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '')",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    ],
    # score-table columns of issue 14 (provenance of the data and of the CI/ceiling methods) and re-scoring
    2: [
        "ALTER TABLE scores ADD COLUMN ceiling_lower {real}",
        "ALTER TABLE scores ADD COLUMN normalised_unit_mean {real}",
        "ALTER TABLE scores ADD COLUMN alpha_edge_fraction {real}",
        "ALTER TABLE scores ADD COLUMN ci_method TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE scores ADD COLUMN ceiling_method TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE scores ADD COLUMN data_source TEXT NOT NULL DEFAULT 'unknown'",
        "ALTER TABLE submissions ADD COLUMN rescore_of TEXT",
        "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
    ],
    # faults (issue 15): lease expiries counted apart from scoring failures; duplicate-upload lookup by hash
    3: [
        "ALTER TABLE submissions ADD COLUMN lease_expiries INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX submissions_team_sha ON submissions (team_id, bundle_sha256)",
        "UPDATE meta SET value = '4' WHERE key = 'schema_version'",
    ],
    # geometry rows keep the score-table schema's data_source (they were stored without it)
    4: [
        "ALTER TABLE geometry ADD COLUMN data_source TEXT NOT NULL DEFAULT 'unknown'",
        "UPDATE meta SET value = '5' WHERE key = 'schema_version'",
    ],
}


def default_db_url() -> str:
    """``sqlite:///$BRAINLID_HOME/leaderboard/board.sqlite``."""
    return f"sqlite:///{brainlid_home() / 'leaderboard' / 'board.sqlite'}"


class Database:
    """A leaderboard database behind a URL (see the module docstring).

    Each call opens its own connection (SQLite) or uses a per-thread connection (PostgreSQL),
    so one object may be shared by the threads of the web service.

    Parameters
    ----------
    url : database URL or SQLite file path (default :func:`default_db_url`)
    migrate : bring the schema up to date on opening
    create : bool
        Whether a database that does not exist yet (no SQLite file; an empty PostgreSQL
        database) may be created. ``False`` (read-only and maintenance commands) raises
        :class:`DatabaseError` instead, so a typo in a URL never leaves an empty board behind.
    """

    def __init__(self, url: str | os.PathLike | None = None, *, migrate: bool = True, create: bool = True):
        url = str(url) if url is not None else default_db_url()
        if "://" not in url:
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            self.dialect = "sqlite"
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
            if not path:
                raise InputError(f"sqlite URL {url!r} names no file")
            self.path = Path(path)
            if not create and not self.path.is_file():
                raise DatabaseError(f"no leaderboard database at {self.path} (a new board is created by "
                                    "`brainlid leaderboard serve` or `brainlid leaderboard token`)")
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = "postgresql"
            self.path = None
            self._psycopg = require("psycopg", "leaderboard", "a PostgreSQL leaderboard database")
        else:
            raise InputError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
        self._local = threading.local()
        if not create and self.schema_version() == 0:
            raise DatabaseError(f"{self.safe_url} holds no leaderboard (a new board is created by "
                                "`brainlid leaderboard serve` or `brainlid leaderboard token`)")
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ connections
    def _connect(self):
        if self.dialect == "sqlite":
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("PRAGMA foreign_keys=ON")
            return con
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {self.safe_url}: {exc}") from None

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked (``***``): what messages and logs may show."""
        p = urlparse(self.url)
        return self.url.replace(p.password, "***") if p.password else self.url

    def _conn(self):
        if self.dialect == "sqlite":
            return self._connect()
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = self._local.con = self._connect()
        return con

    def sql(self, text: str) -> str:
        """Dialect-specific SQL from the shared text (``?`` placeholders, ``{pk}``, ``{real}``)."""
        if "{pk}" in text or "{real}" in text:
            pk = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
            real = "REAL" if self.dialect == "sqlite" else "DOUBLE PRECISION"
            text = text.replace("{pk}", pk).replace("{real}", real)
        if self.dialect == "postgresql":
            text = text.replace("?", "%s")
        return text

    @contextlib.contextmanager
    def transaction(self) -> Iterator["_Tx"]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite): everything or nothing."""
        con = self._conn()
        try:
            con.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            tx = _Tx(self, con)
            yield tx
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise
        finally:
            if self.dialect == "sqlite":
                con.close()

    def query(self, text: str, params: Iterable[Any] = ()) -> list[dict]:
        """Run a read query; rows as dicts."""
        con = self._conn()
        try:
            cur = con.execute(self.sql(text), tuple(params))
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
        finally:
            if self.dialect == "sqlite":
                con.close()

    def execute(self, text: str, params: Iterable[Any] = ()) -> int:
        """Run one write statement in its own transaction; the number of rows it changed."""
        with self.transaction() as tx:
            return tx.execute(text, params)

    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` (a plain identifier), in the table's order."""
        if not table.isidentifier():
            raise InputError(f"not a table name: {table!r}")
        con = self._conn()
        try:
            cur = con.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            return [d[0] for d in cur.description]
        finally:
            if self.dialect == "sqlite":
                con.close()

    # ------------------------------------------------------------------ schema
    def _has_meta(self, tx) -> bool:
        if self.dialect == "sqlite":
            rows = tx.query("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
        else:
            rows = tx.query("SELECT COUNT(*) AS n FROM information_schema.tables "
                            "WHERE table_name = 'meta' AND table_schema = current_schema()")
        return bool(rows[0]["n"])

    def schema_version(self) -> int:
        """The schema version of the database (0: empty)."""
        with self.transaction() as tx:
            if not self._has_meta(tx):
                return 0
            rows = tx.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0]["value"]) if rows else 0

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema to ``target`` (one transaction); returns the version found before."""
        with self.transaction() as tx:
            if self.dialect == "postgresql":  # one migrator at a time
                tx.query("SELECT pg_advisory_xact_lock(81726354)")
            found = 0
            if self._has_meta(tx):
                rows = tx.query("SELECT value FROM meta WHERE key = 'schema_version'")
                found = int(rows[0]["value"]) if rows else 0
            if found > SCHEMA_VERSION:
                raise DatabaseError(f"{self.safe_url} has leaderboard schema {found}, newer than this brainlid's "
                                    f"{SCHEMA_VERSION}; upgrade brainlid")
            for v in range(found, target):
                for stmt in MIGRATIONS[v]:
                    tx.execute(stmt)
        return found


class _Tx:
    """Statements inside one transaction."""

    def __init__(self, db: Database, con):
        self.db, self.con = db, con

    def execute(self, text: str, params: Iterable[Any] = ()) -> int:
        cur = self.con.execute(self.db.sql(text), tuple(params))
        return cur.rowcount

    def executemany(self, text: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.db.dialect == "sqlite":
            self.con.executemany(self.db.sql(text), rows)
        else:
            with self.con.cursor() as cur:
                cur.executemany(self.db.sql(text), rows)

    def query(self, text: str, params: Iterable[Any] = ()) -> list[dict]:
        cur = self.con.execute(self.db.sql(text), tuple(params))
        cols = [d[0] for d in cur.description or ()]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
