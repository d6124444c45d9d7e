"""Fixtures of the leaderboard tests: a throw-away PostgreSQL cluster and a new board database per test.

The NSD fixture, its benchmark data and published ids (``leaderboard_nsd``, ``board_data``,
``board_ids``) are in ``tests/conftest.py``: other tests use them too. The helpers that start
services, workers and PostgreSQL are in :mod:`harness` (this folder).
"""

from __future__ import annotations

import uuid

import pytest
from harness import PostgresServer, find_pg_bin


@pytest.fixture(scope="session")
def leaderboard_pg():
    """A throw-away PostgreSQL cluster for the leaderboard tests, started once per run.

    Skipped without Debian's ``initdb``/``pg_ctl`` or ``psycopg``.
    """
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries (initdb/pg_ctl) not found; install Debian's postgresql package (see README)")
    pytest.importorskip("psycopg")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def board_db_url(request, tmp_path):
    """A new, empty leaderboard database URL: a SQLite file in ``tmp_path``, or a database on :func:`leaderboard_pg`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'board.sqlite'}"
    return request.getfixturevalue("leaderboard_pg").create_database("t" + uuid.uuid4().hex[:12])
