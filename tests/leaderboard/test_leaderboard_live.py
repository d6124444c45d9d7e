"""The leaderboard service under load and faults, against a live server on 127.0.0.1.

Run against SQLite always and against a throw-away PostgreSQL when Debian's ``initdb``/``pg_ctl``
exist. Every wait is a bounded poll that stops by itself.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from brainlid.leaderboard import queue as q  # noqa: E402
from brainlid.leaderboard.bundle import write_bundle  # noqa: E402
from brainlid.leaderboard.db import Database  # noqa: E402
from harness import ServiceProcess, start_worker, wait_until  # noqa: E402

BENCH = "nsd.subj01.EBA.encoding"
#: Serve options for tests that upload many bundles from one team.
UNLIMITED = ["--rate-limit", "0", "--team-inflight", "0"]


def _bundle(path, ids, seed, name="net", n_layers=2):
    rng = np.random.default_rng(seed)
    feats = {f"layer{i}": rng.standard_normal((ids.size, 6 + i)).astype(np.float32) for i in range(n_layers)}
    return write_bundle(path, feats, ids, [BENCH], {"model_name": name, "parameters": 100 + seed})


def _post(url, path_or_bytes, token, timeout=120):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
    req = urllib.request.Request(url + "/api/submissions", data=data, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _score_rows(db, sid):
    return db.query("SELECT COUNT(*) AS n FROM scores WHERE submission_id = ?", (sid,))[0]["n"]


def test_50_concurrent_submissions_recorded_once(board_db_url, leaderboard_nsd, board_ids, tmp_path):
    db = Database(board_db_url)
    token = q.create_team(db, "lab <b>A</b>")
    bundles = [_bundle(tmp_path / f"b{i}.zip", board_ids, i, name=f"net{i}") for i in range(5)]
    with ServiceProcess(board_db_url, data_root=leaderboard_nsd, workers=0, home=tmp_path / "home",
                        extra=["--max-upload-mb", "1", *UNLIMITED]) as svc:
        with ThreadPoolExecutor(50) as ex:
            res = list(ex.map(lambda i: _post(svc.url, bundles[i % 5], token), range(50)))
        # five distinct bundles, each sent ten times: one submission each, the repeats answer its id (200)
        assert sorted(c for c, _ in res) == [200] * 45 + [202] * 5, res[:3]
        sids = [r["id"] for _, r in res]
        assert all(sids[i] == sids[i % 5] for i in range(50)) and len(set(sids)) == 5
        assert all(r.get("duplicate") for c, r in res if c == 200)
        rows = q.list_submissions(db)
        assert sorted(r["id"] for r in rows) == sorted(set(sids))
        assert {r["status"] for r in rows} == {"queued"} and {r["team"] for r in rows} == {"lab <b>A</b>"}
        assert all(_get(f"{svc.url}/api/submissions/{s}")["status"] == "queued" for s in sids[:5])
        # rejected uploads: bad token stores nothing; oversize stores nothing; a bad bundle is recorded with its reason
        assert _post(svc.url, bundles[0], "blt_wrong")[0] == 401
        code, body = _post(svc.url, b"\0" * (1 << 20) + b"x", token)
        assert code == 413 and "limit" in body["reason"]
        # refused before its body is read, a body larger than the socket buffers is still answered (drained), not
        # cut off into a broken pipe that a plain HTTP client (urllib here) reports instead of the reason
        for _ in range(3):
            assert _post(svc.url, b"\0" * (6 << 20), token)[0] == 413
            assert _post(svc.url, b"\0" * (6 << 20), "blt_wrong")[0] == 401
        bad = write_bundle(tmp_path / "bad.zip", {"a": np.arange(board_ids.size * 3, dtype=np.float32).reshape(-1, 3)}, board_ids[::-1], [BENCH], {"model_name": "x"})
        code, body = _post(svc.url, bad, token)
        assert code == 422 and "wrong order" in body["reason"]
        assert _get(f"{svc.url}/api/submissions/{body['id']}")["status"] == "rejected"
        assert q.status_counts(db) == {"queued": 5, "scoring": 0, "scored": 0, "rejected": 1}
        # the submitter's command: streamed upload, one more queued row; a bad token is a one-line error, exit 1
        from click.testing import CliRunner

        from brainlid.cli import cli

        extra = _bundle(tmp_path / "b5.zip", board_ids, 5, name="net5")
        res = CliRunner().invoke(cli, ["submit", "send", str(extra), "--server", svc.url, "--token", token])
        assert res.exit_code == 0 and re.match(r"submission [0-9a-f]{32}: queued", res.output)
        res = CliRunner().invoke(cli, ["submit", "send", str(bundles[1]), "--server", svc.url, "--token", "nope"])
        assert res.exit_code == 1 and "rejected — missing or invalid token" in res.output
        assert q.status_counts(db) == {"queued": 6, "scoring": 0, "scored": 0, "rejected": 1}
        storage = tmp_path / "board.sqlite.bundles" if db.dialect == "sqlite" else tmp_path / "home" / "leaderboard" / "bundles"
        assert len(list(storage.glob("bundles/*.zip"))) == 6 and not list(storage.glob("incoming/*"))


@pytest.mark.slow  # worker start-up (imports, first-call compilation) dominates
def test_killed_worker_and_restarted_service_lose_nothing(board_db_url, leaderboard_nsd, board_ids, tmp_path):
    db = Database(board_db_url)
    token = q.create_team(db, "lab")
    home = tmp_path / "home"
    svc = ServiceProcess(board_db_url, data_root=leaderboard_nsd, workers=0, home=home).start()
    sids = []
    try:
        for i in range(4):
            code, body = _post(svc.url, _bundle(tmp_path / f"b{i}.zip", board_ids, i), token)
            assert code == 202
            sids.append(body["id"])
        # the service dies (SIGKILL) with every job queued, and comes back
        svc.kill()
        svc = ServiceProcess(board_db_url, data_root=leaderboard_nsd, workers=0, home=home).start()
        assert q.status_counts(db)["queued"] == 4
        code, body = _post(svc.url, _bundle(tmp_path / "b4.zip", board_ids, 4), token)
        assert code == 202
        sids.append(body["id"])
        # a worker is killed (-9) while it scores
        w = start_worker(board_db_url, data_root=leaderboard_nsd, lease=2.0, home=home, log=tmp_path / "w1.log")
        try:
            victim = wait_until(lambda: [r["id"] for r in q.list_submissions(db, "scoring")], 120, 0.02, "a job in scoring")[0]
        finally:
            w.send_signal(signal.SIGKILL)
            w.wait(timeout=30)
        assert q.get_submission(db, victim)["status"] == "scoring"  # orphaned under a lease
        # ... and the service is killed again while jobs are queued, then restarted
        svc.kill()
        svc = ServiceProcess(board_db_url, data_root=leaderboard_nsd, workers=0, home=home).start()
        w2 = start_worker(board_db_url, data_root=leaderboard_nsd, lease=2.0, home=home, log=tmp_path / "w2.log")
        try:
            wait_until(lambda: all(q.get_submission(db, s)["status"] in ("scored", "rejected") for s in sids), 150, 0.2,
                       "every submission to finish")
        finally:
            w2.terminate()
            w2.wait(timeout=60)
        final = {s: q.get_submission(db, s) for s in sids}
        assert {f["status"] for f in final.values()} == {"scored"}, {s: (f["status"], f["reason"]) for s, f in final.items()}
        # the killed worker cost no attempt (attempts count failures the scoring raised); its lease ran out once
        assert final[victim]["attempts"] == 0 and final[victim]["lease_expiries"] == 1
        # each scored exactly once: 2 layers × (val, test) × (r, R²) rows, no duplicates
        assert [_score_rows(db, s) for s in sids] == [8] * len(sids)
        assert len(q.list_submissions(db)) == len(sids)
        st = _get(f"{svc.url}/api/submissions/{victim}")
        assert st["status"] == "scored" and {r["metric"] for r in st["scores"]} == {"encoding_r", "encoding_r2"}
        board = _get(f"{svc.url}/api/leaderboard?benchmark={BENCH}")
        assert sorted(r["entry_id"] for r in board) == sorted(sids)
        with urllib.request.urlopen(f"{svc.url}/entries/{victim}", timeout=30) as r:
            page = r.read().decode()
        assert "LID K-sweep" in page and "layer1" in page
        with urllib.request.urlopen(f"{svc.url}/leaderboard.csv", timeout=30) as r:
            assert r.read().decode().count("\n") == 1 + len(sids)
    finally:
        svc.stop()


def test_lease_lost_writes_nothing(board_db_url):
    """A worker whose lease expired and was taken over cannot complete: no double scoring."""
    import pandas as pd
    import time

    db = Database(board_db_url)
    q.enqueue(db, submission_id="s1", team_id=None, benchmarks=[BENCH], model_name="m", metadata={}, bundle_path="/x",
              bundle_sha256="", size_bytes=1)
    a = q.claim(db, "A", lease_seconds=2.0)
    assert a["id"] == "s1" and q.claim(db, "B", lease_seconds=60) is None  # leased: nobody else gets it
    time.sleep(2.2)
    b = q.claim(db, "B", lease_seconds=60)
    assert b["id"] == "s1" and (b["attempts"], b["lease_expiries"]) == (0, 1)  # an expiry is not an attempt
    row = pd.DataFrame([{"model": "m", "layer": "l", "benchmark": BENCH, "metric": "encoding_r", "split": "test",
                         "value": 0.5, "selected": True}])
    assert not q.heartbeat(db, "s1", "A") and not q.complete(db, "s1", "A", row, pd.DataFrame())
    assert q.complete(db, "s1", "B", row, pd.DataFrame())
    assert not q.complete(db, "s1", "B", row, pd.DataFrame())  # already scored
    assert _score_rows(db, "s1") == 1
    # a job whose worker keeps dying is rejected at its max_lease_expiries-th expiry, with a reason
    q.enqueue(db, submission_id="s2", team_id=None, benchmarks=[BENCH], model_name="m", metadata={}, bundle_path="/x",
              bundle_sha256="", size_bytes=1)
    for owner in ("C", "D"):
        assert q.claim(db, owner, lease_seconds=0.05, max_lease_expiries=2)["id"] == "s2"
        time.sleep(0.1)
    assert q.claim(db, "E", lease_seconds=0.05, max_lease_expiries=2) is None
    s2 = q.get_submission(db, "s2")
    assert s2["status"] == "rejected" and "stopped 2 times" in s2["reason"] and s2["attempts"] == 0


def test_migrations_and_tokens(board_db_url):
    from brainlid.leaderboard.db import MIGRATIONS, SCHEMA_VERSION, STORED_COLUMNS, DatabaseError

    db = Database(board_db_url, migrate=False)
    assert db.migrate(target=1) == 0 and db.schema_version() == 1
    db.execute("INSERT INTO teams (name, token_hash, created) VALUES ('old', 'h', 'now')")
    assert Database(board_db_url).schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    assert db.query("SELECT name FROM teams") == [{"name": "old"}]  # data kept
    for table, cols in STORED_COLUMNS.items():  # the migrated tables hold the one score-table schema
        got = [c.lower() for c in db.columns(table)]  # PostgreSQL folds unquoted names (K) to lower case
        assert sorted(got) == sorted(c.lower() for c in ["row_id", "submission_id", *cols]), table
    tok = q.create_team(db, "new")
    assert q.team_for_token(db, tok)["name"] == "new" and q.team_for_token(db, tok + "x") is None
    assert tok not in json.dumps(db.query("SELECT * FROM teams"))  # only the hash is stored
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError, match="newer"):
        Database(board_db_url)
