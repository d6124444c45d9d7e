"""The leaderboard against a hostile submitter (issue 15): nothing a submitter controls can break a page.

Every case reproduces a hole found against a live board (issue 15, "Found" #1, #2, #5, #6, #8)
and the leaderboard items of issues 14 and 17. HTTP cases run in-process (Starlette's test
client) against SQLite and a throw-away PostgreSQL (skipped without Debian's ``initdb``).
The property-based test throws arbitrary JSON values at every metadata field and layer name.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
import uuid
import zipfile

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from brainlid.leaderboard import queue as q  # noqa: E402
from brainlid.leaderboard import board as board_mod  # noqa: E402
from brainlid.leaderboard import site  # noqa: E402
from brainlid.leaderboard.bundle import BundleError, validate_bundle, write_bundle  # noqa: E402
from brainlid.leaderboard.db import Database, DatabaseError  # noqa: E402
from brainlid.leaderboard.schema import METADATA_FIELDS, SchemaError, check_metadata, check_text, visible  # noqa: E402
from brainlid.leaderboard.scoring import BenchmarkData, check_bundle  # noqa: E402

BENCH = "nsd.subj01.EBA.encoding"
FORMULA = "=HYPERLINK(\"http://evil.example/\",\"click\")"


# --------------------------------------------------------------------------- fixtures
# the NSD fixture, its benchmark data and ids, PostgreSQL and the database URLs come from tests/conftest.py
class Board:
    """An in-process board (no workers) with one team token."""

    def __init__(self, board_db_url, tmp_path, nsd_root):
        from starlette.testclient import TestClient

        from brainlid.leaderboard.app import create_app

        self.storage = tmp_path / "store"
        self.app = create_app(board_db_url, storage=self.storage, data_root=nsd_root, workers=0)
        self.db = self.app.state.db
        self.token = q.create_team(self.db, "lab")
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def post(self, path, token=None, headers=None):
        return self.client.post("/api/submissions", content=open(path, "rb").read(),
                                headers={"Authorization": f"Bearer {token or self.token}",
                                         "Content-Type": "application/zip", **(headers or {})})


@pytest.fixture
def board(board_db_url, tmp_path, leaderboard_nsd):
    """A board on SQLite and on PostgreSQL (where the database matters: what is stored and read back)."""
    b = Board(board_db_url, tmp_path, leaderboard_nsd)
    with b.client:
        yield b


@pytest.fixture
def sqlite_board(tmp_path, leaderboard_nsd):
    """A board on SQLite only (cases decided before anything is stored)."""
    b = Board(f"sqlite:///{tmp_path / 'board.sqlite'}", tmp_path, leaderboard_nsd)
    with b.client:
        yield b


# --------------------------------------------------------------------------- helpers
def _feats(n, seed=0, d=6):
    rng = np.random.default_rng(seed)
    return {"l0": rng.standard_normal((n, d)).astype(np.float32), "l1": rng.standard_normal((n, d + 2)).astype(np.float32)}


def _valid(tmp_path, ids, name="ok.zip", md=None, seed=0):
    return write_bundle(tmp_path / name, _feats(ids.size, seed), ids, [BENCH], md or {"model_name": "net"})


def _rewrite(src, dst, *, manifest=None, manifest_text=None, rename=None):
    """Copy a bundle changing its manifest (a function of the dict, or raw text) and/or renaming members."""
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("manifest.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    if manifest is not None:
        man = manifest(man)
    for old, new in (rename or {}).items():
        members[new] = members.pop(old)
        for lay in man["layers"]:
            if lay["file"] == old:
                lay["file"] = new
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("manifest.json", manifest_text if manifest_text is not None else json.dumps(man))
        for n, b in members.items():
            info = zipfile.ZipInfo("placeholder")
            info.filename = n  # no normalisation, as a hostile tool would write it
            zf.writestr(info, b)
    return dst


def _md(**kw):
    def f(man):
        man["metadata"] = {"model_name": "net", **kw}
        return man
    return f


def _store_entry(db, sid, *, model="net", md=None, layers=("l0", "l1"), values=(0.2, -0.3), version=None,
                 source="real", team="lab"):
    """A scored entry written straight into the database (bypassing validation, like data stored before it)."""
    token = q.create_team(db, team)
    tid = q.team_for_token(db, token)["team_id"]
    rows = []
    for li, (layer, v) in enumerate(zip(layers, values)):
        for split in ("val", "test"):
            rows.append({"model": model, "layer": layer, "layer_index": li, "benchmark": BENCH, "dataset": "nsd",
                         "subject": "subj01", "roi": "EBA", "metric": "encoding_r", "split": split, "value": v,
                         "ci_low": v - 0.1, "ci_high": v + 0.1, "ceiling": 0.8, "normalised": v / 0.8, "n_units": 30,
                         "n_stimuli": 40, "selected": li == int(np.argmax(values)),
                         "benchmark_version": version, "data_source": source})
    geom = pd.DataFrame([{"model": model, "layer": layer, "layer_index": li, "stimulus_set": "s", "n": 40,
                          "estimator": "mle", "K": 20.0, "value": 5.0 + li} for li, layer in enumerate(layers)])
    q.enqueue(db, submission_id=sid, team_id=tid, benchmarks=[BENCH], model_name=model,
              metadata={"model_name": model, **(md or {})}, bundle_path="", bundle_sha256="ab" * 32, size_bytes=1)
    db.execute("UPDATE submissions SET status = 'scoring', lease_owner = 'w', lease_expires = ? WHERE id = ?", (1e12, sid))
    assert q.complete(db, sid, "w", pd.DataFrame(rows), geom)


def _bulk_entries(db, n):
    """``n`` scored entries ``e000…`` (model ``m000…``, test score ``i/1000``) written in one transaction."""
    from brainlid.leaderboard.queue import SCORE_DB_COLUMNS

    now = "2026-01-01T00:00:00.000+00:00"
    subs, rows = [], []
    for i in range(n):
        sid = f"e{i:03d}"
        subs.append((sid, json.dumps([BENCH]), f"m{i:03d}", json.dumps({"model_name": f"m{i:03d}"}), now, now))
        rows.append({"model": f"m{i:03d}", "layer": "l0", "layer_index": 0, "benchmark": BENCH, "dataset": "nsd",
                     "subject": "subj01", "roi": "EBA", "metric": "encoding_r", "split": "test", "value": i / 1000,
                     "selected": True, "data_source": "real"})
    scores = [(s[0], *r) for s, r in zip(subs, q.table_rows("scores", rows))]
    with db.transaction() as tx:
        tx.executemany("INSERT INTO submissions (id, benchmarks, model_name, metadata, status, created, updated) "
                       "VALUES (?, ?, ?, ?, 'scored', ?, ?)", subs)
        tx.executemany(f"INSERT INTO scores (submission_id, {', '.join(SCORE_DB_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * (len(SCORE_DB_COLUMNS) + 1))})", scores)


def _all_routes_ok(client, db, sids):
    """Every page, API route and export answers 200 with a body that parses."""
    for url in ["/", "/?sort=params", "/?sort=score&desc=0", "/?q=net", f"/?benchmark={BENCH}", "/api/leaderboard",
                f"/api/leaderboard?benchmark={BENCH}", "/leaderboard.csv", "/api/health"]:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    for sid in sids:
        for url in (f"/entries/{sid}", f"/api/submissions/{sid}"):
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
    json.loads(client.get("/api/leaderboard").text)
    list(csv.DictReader(io.StringIO(client.get("/leaderboard.csv").text)))


# --------------------------------------------------------------------------- Found #1, #2: metadata and names
BAD_METADATA = [
    ({"parameters": 10**400}, "metadata.parameters"),
    ({"parameters": -1}, "metadata.parameters"),
    ({"parameters": 1.5e9}, "metadata.parameters"),
    ({"parameters": True}, "metadata.parameters"),
    ({"training_data": "imagenet\ud800"}, "metadata.training_data"),
    ({"model_name": "net\ud800"}, "metadata.model_name"),
    ({"model_name": "a\x00b"}, "metadata.model_name"),
    ({"model_name": "\u200b"}, "metadata.model_name"),
    ({"model_name": " \u200b\u2060\u3164 "}, "metadata.model_name"),
    ({"model_name": "evil\u202egnp.exe"}, "metadata.model_name"),
    ({"model_name": "a\u2066b"}, "metadata.model_name"),
    ({"description": "line\x1b[31m"}, "metadata.description"),
    ({"model_name": "x" * 201}, "metadata.model_name"),
    ({"description": "x" * 2001}, "metadata.description"),
    ({"url": "javascript:alert(1)"}, "metadata.url"),
    ({"team": ["a"]}, "metadata.team"),
    ({"nope": 1}, "metadata"),
]


def test_bad_metadata_rejected_at_upload_naming_the_field(board, tmp_path, board_ids):
    ok = _valid(tmp_path, board_ids)
    sids = []
    for i, (md, field) in enumerate(BAD_METADATA):
        p = _rewrite(ok, tmp_path / f"bad{i}.zip", manifest=_md(**md))
        r = board.post(p)
        assert r.status_code == 422, (md, r.text)
        reason = r.json()["reason"]
        assert reason.startswith(field), (md, reason)
        assert "\ud800" not in reason and "\x00" not in reason and "\u202e" not in reason
        sub = board.client.get(f"/api/submissions/{r.json()['id']}")
        assert sub.status_code == 200 and sub.json()["status"] == "rejected" and sub.json()["reason"] == reason
        sids.append(r.json()["id"])
    assert list((board.storage / "bundles").iterdir()) == []  # no orphan bundle
    _all_routes_ok(board.client, board.db, sids)


def test_bad_layer_names_rejected(board, tmp_path, board_ids, board_data):
    """Layer names are checked like metadata (a NUL in one was a 202, then a failed PostgreSQL write)."""
    ok = _valid(tmp_path, board_ids)
    for i, name in enumerate(["l\ud800", "a\x00b", "\u200b", "x\u202ey", "y" * 201]):
        def f(man):
            man["layers"][0]["name"] = name
            return man

        p = _rewrite(ok, tmp_path / f"layer{i}.zip", manifest=f)
        r = board.post(p)
        assert r.status_code == 422 and "layers[0].name" in r.json()["reason"], r.text
        worker_view = check_bundle(p, data=board_data)  # the worker runs the same validation: the same reason, no attempt
        assert worker_view.status == "rejected" and worker_view.reason == r.json()["reason"]


def test_ids_out_of_range_deep_manifest_and_dot_members(sqlite_board, tmp_path, board_ids):
    board = sqlite_board
    ok = _valid(tmp_path, board_ids)
    big = _rewrite(ok, tmp_path / "big.zip", manifest=lambda m: {**m, "stimulus_ids": [2**63] + m["stimulus_ids"][1:]})
    r = board.post(big)
    assert r.status_code == 422 and "stimulus_ids[0]" in r.json()["reason"] and "64-bit" in r.json()["reason"]
    text = json.dumps(json.loads(zipfile.ZipFile(ok).read("manifest.json")))
    deep = _rewrite(ok, tmp_path / "deep.zip", manifest_text=text[:-1] + ', "x": ' + "[" * 60_000 + "]" * 60_000 + "}")
    r = board.post(deep)
    assert r.status_code == 422 and "nested 60001 levels deep" in r.json()["reason"], r.text
    dot = _rewrite(ok, tmp_path / "dot.zip", rename={"features/000.npy": "./features/000.npy"})
    r = board.post(dot)
    assert r.status_code == 422 and "'.'" in r.json()["reason"], r.text
    dup = _rewrite(ok, tmp_path / "dupkey.zip", manifest_text=text[:-1] + ', "benchmarks": ["x"]}')
    r = board.post(dup)
    assert r.status_code == 422 and "appears twice" in r.json()["reason"]


def test_submit_check_one_line_for_hostile_manifests(tmp_path, board_ids, leaderboard_nsd):
    """`brainlid submit check` answers "rejected: ..." (exit 1) where it printed a traceback."""
    from click.testing import CliRunner

    from brainlid.cli import cli

    ok = _valid(tmp_path, board_ids)
    text = zipfile.ZipFile(ok).read("manifest.json").decode()
    cases = {
        "big.zip": dict(manifest=lambda m: {**m, "stimulus_ids": [2**64] + m["stimulus_ids"][1:]}),
        "deep.zip": dict(manifest_text=text.rstrip()[:-1] + ', "x": ' + "[" * 60_000 + "]" * 60_000 + "}"),
        "surrogate.zip": dict(manifest=_md(training_data="\ud800")),
    }
    for name, kw in cases.items():
        p = _rewrite(ok, tmp_path / name, **kw)
        res = CliRunner().invoke(cli, ["submit", "check", str(p), "--data-root", str(leaderboard_nsd)])
        assert res.exit_code == 1, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rejected: ") and "Traceback" not in res.output, res.output


# --------------------------------------------------------------------------- Found #5: one validator
def test_string_ids_for_integer_benchmark_rejected_at_upload(sqlite_board, tmp_path, board_ids, board_data):
    board = sqlite_board
    p = write_bundle(tmp_path / "str.zip", _feats(board_ids.size), [str(i) for i in board_ids], [BENCH], {"model_name": "n"})
    r = board.post(p)
    assert r.status_code == 422, r.text
    assert "expected type: integer" in r.json()["reason"] and "strings" in r.json()["reason"]
    assert check_bundle(p, data=board_data).reason == r.json()["reason"]  # worker and upload agree


def test_missing_benchmark_data_rejected_at_upload_without_server_paths(board_db_url, tmp_path, board_ids, monkeypatch):
    """A board without the benchmark's data says so at upload (422), never queues it, and shows no server path."""
    from starlette.testclient import TestClient

    from brainlid.leaderboard.app import create_app
    from brainlid.leaderboard.worker import Worker

    missing = tmp_path / "server-data-root"
    store = tmp_path / "server-storage"
    monkeypatch.setenv("BRAINLID_DATA", str(missing))
    app = create_app(board_db_url, storage=store, data_root=missing, workers=0)
    token = q.create_team(app.state.db, "lab")
    p = _valid(tmp_path, board_ids)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/submissions", content=p.read_bytes(), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 422, r.text
        reason = r.json()["reason"]
        assert "not installed on this machine" in reason
        assert q.status_counts(app.state.db)["queued"] == 0
        page = c.get(f"/entries/{r.json()['id']}").text + c.get(f"/api/submissions/{r.json()['id']}").text
    # a bundle queued earlier (e.g. before the data went away) is rejected by the worker's validation, not retried
    db = app.state.db
    kept = store / "bundles" / "k.zip"
    kept.write_bytes(p.read_bytes())
    q.enqueue(db, submission_id="k", team_id=None, benchmarks=[BENCH], model_name="n", metadata={"model_name": "n"},
              bundle_path=str(kept), bundle_sha256="", size_bytes=1)
    res = Worker(db, BenchmarkData(missing)).run_once()
    sub = q.get_submission(db, "k")
    assert res["status"] == "rejected" and sub["status"] == "rejected" and sub["attempts"] == 0
    texts = [reason, page, sub["reason"]] + [s["reason"] for s in q.list_submissions(db)]
    for t in texts:
        assert str(missing) not in t and str(store) not in t and str(tmp_path) not in t, t


def test_public_reason_removes_paths():
    from brainlid.leaderboard.schema import public_reason

    got = public_reason("cannot open /srv/brainlid/data/nsd/betas.h5 (errno 2); see C:\\data\\x.npy or ~/d/e; "
                        "keep features/000.npy and https://example.org/a/b")
    assert "/srv" not in got and "C:\\" not in got and "~/d" not in got and got.count("<path>") == 3
    assert "features/000.npy" in got and "https://example.org/a/b" in got
    assert public_reason("x\ud800\x00\u202e") == "x\\ud800\\u0000\\u202e"


# --------------------------------------------------------------------------- Found #8 + the constant layer
def test_constant_layer_message(tmp_path, board_ids, board_data):
    """An all-zero 40×8 layer is rejected at validation with a message that says what is wrong.

    Decision: reject (not accept) — a layer that is the same vector for every stimulus carries no
    information; its encoding r and LID are undefined, so scoring could only fail later.
    """
    feats = _feats(board_ids.size)
    feats["l1"] = np.zeros((board_ids.size, 8), np.float32)
    p = write_bundle(tmp_path / "zero.zip", feats, board_ids, [BENCH], {"model_name": "n"})
    with pytest.raises(BundleError, match=rf"layer 'l1' is constant: all {board_ids.size} rows are the same vector \(all values are 0\)"):
        validate_bundle(p, published_ids=board_data.ids)
    feats["l1"] = np.tile(np.arange(8, dtype=np.float32), (board_ids.size, 1))
    p = write_bundle(tmp_path / "const.zip", feats, board_ids, [BENCH], {"model_name": "n"})
    rep = check_bundle(p, data=board_data)
    assert rep.status == "rejected" and "constant" in rep.reason and "identical" not in rep.reason
    feats["l1"][3, 5] += 1e-3  # one differing value is enough: accepted
    assert validate_bundle(write_bundle(tmp_path / "v.zip", feats, board_ids, [BENCH], {"model_name": "n"})).features["l1"].shape == (board_ids.size, 8)


def test_headers_csp_and_token(sqlite_board, tmp_path, board_ids):
    board = sqlite_board
    r = board.client.get("/")
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    # the page's own inline script and style are exactly what the hashes allow
    import base64

    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", r.text, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    p = _valid(tmp_path, board_ids)
    r = board.client.post("/api/submissions", content=p.read_bytes(), headers={"X-Brainlid-Token": board.token})
    assert r.status_code == 401  # the undocumented header is gone: Authorization: Bearer only


# --------------------------------------------------------------------------- NUL in query/path parameters
def test_nul_in_parameters_is_not_a_server_error(board):
    for url, codes in (("/?benchmark=%00", (404, 422)), ("/api/leaderboard?benchmark=%00", (404, 422)),
                       ("/leaderboard.csv?benchmark=a%00b", (404, 422)), ("/api/submissions/%00", (404,)),
                       ("/entries/a%00b", (404,)), ("/?q=%01", (422,)), ("/api/submissions/%ED%A0%80", (404,)),
                       ("/entries/%ED%A0%80", (404,)), ("/?benchmark=%ED%A0%80", (200,)),
                       ("/api/leaderboard?page=abc", (422,)), ("/api/leaderboard?per_page=100000", (422,))):
        r = board.client.get(url)
        assert r.status_code in codes, (url, r.status_code, r.text[:200])


# --------------------------------------------------------------------------- stored data can't break pages
def test_hostile_stored_rows_render_everywhere(board, tmp_path):
    """Rows stored before validation existed (huge numbers, surrogates, bidi, formulas) render on every route."""
    _store_entry(board.db, "big", model="big", md={"parameters": 10**400, "training_data": "x\ud800y"})
    _store_entry(board.db, "rtl", model="evil\u202egnp.exe", md={"description": "\x00\x1b", "url": "javascript:x"})
    _store_entry(board.db, "frm", model=FORMULA, md={"parameters": -5}, team="+team")
    _all_routes_ok(board.client, board.db, ["big", "rtl", "frm"])
    page = board.client.get("/").text
    assert "\u202e" not in page and "evil\\u202egnp.exe" in page
    ent = board.client.get("/entries/big").text
    assert "x\\ud800y" in ent and "<dt>Parameters</dt><dd>–</dd>" in ent
    out = tmp_path / "site"
    site.build_site(board.db, out)
    for f in out.rglob("*"):
        if f.is_file():
            f.read_text(encoding="utf-8")  # every static file is valid UTF-8
    json.loads((out / "leaderboard.json").read_text())


# --------------------------------------------------------------------------- Found #6: CSV injection
def test_csv_injection_neutralised_live_and_static(board, tmp_path):
    _store_entry(board.db, "f1", model=FORMULA, values=(-0.25, -0.5), team="@team")
    _store_entry(board.db, "f2", model="\tcmd", values=(0.1, 0.3), team="-2+3")
    _store_entry(board.db, "f3", model="plain", values=(0.4, 0.2), team="=1+1")
    out = tmp_path / "site"
    site.build_site(board.db, out)
    for text in (board.client.get("/leaderboard.csv").text, (out / "leaderboard.csv").read_text()):
        rows = {r["entry_id"]: r for r in csv.DictReader(io.StringIO(text))}
        assert rows["f1"]["model"] == "'" + FORMULA and rows["f1"]["team"] == "'@team"
        assert rows["f2"]["model"] == "'\tcmd" and rows["f2"]["team"] == "'-2+3" and rows["f3"]["team"] == "'=1+1"
        assert rows["f3"]["model"] == "plain"
        # numbers stay numbers: the negative score is written as a number, not neutralised text
        assert float(rows["f1"]["value"]) == pytest.approx(-0.25) and not rows["f1"]["value"].startswith("'")
        for r in rows.values():
            for k, v in r.items():
                if k not in ("value", "ci_low", "ci_high", "ceiling", "normalised", "r2", "lid", "lid_k", "parameters",
                             "benchmark_version", "current_version"):
                    assert not v.startswith(("=", "+", "-", "@", "\t", "\r")), (k, v)


# --------------------------------------------------------------------------- pagination
def test_pagination_of_page_and_api(tmp_path):
    db = Database(tmp_path / "b.sqlite")
    n = 230
    _bulk_entries(db, n)
    rows = board_mod.board_rows(db)
    assert len(rows) == n and [r["model"] for r in rows][:2] == ["m229", "m228"]  # by score
    page1 = site.render_index(rows)
    got = re.findall(r'<tr class="entry"[^>]*><td><a href="/entries/(e\d+)"', page1)
    assert len(got) == board_mod.PER_PAGE == 100 and got[0] == "e229"
    assert "page 1 of 3" in page1 and 'rel="next" href="?page=2"' in page1
    page3 = site.render_index(rows, page=3)
    got3 = re.findall(r'<tr class="entry"[^>]*><td><a href="/entries/(e\d+)"', page3)
    assert got3 == [f"e{i:03d}" for i in range(29, -1, -1)]
    from starlette.testclient import TestClient

    from brainlid.leaderboard.app import create_app

    with TestClient(create_app(f"sqlite:///{db.path}", storage=tmp_path / "s", workers=0)) as c:
        seen = []
        url = "/api/leaderboard?per_page=64"
        while url:
            r = c.get(url)
            assert r.status_code == 200 and r.headers["x-total-count"] == str(n)
            seen += [x["entry_id"] for x in r.json()]
            m = re.search(r'<([^>]+)>; rel="next"', r.headers["link"])
            url = m.group(1) if m else None
        assert seen == [r["entry_id"] for r in rows]  # every row exactly once, in board order
        r = c.get("/api/leaderboard")
        assert len(r.json()) == 100
        assert c.get("/?page=3&sort=model&desc=0").text.count('<tr class="entry"') == 30
    out = tmp_path / "site"
    names = {p.name for p in site.build_site(db, out)}
    assert {"index.html", "index-2.html", "index-3.html"} <= names and "index-4.html" not in names
    assert 'href="index-2.html"' in (out / "index.html").read_text()


# --------------------------------------------------------------------------- issue 14: data source and versions
def test_data_source_and_benchmark_version_shown(tmp_path):
    from brainlid.scoring import get_benchmark

    cur = int(get_benchmark(BENCH).version)
    db = Database(tmp_path / "b.sqlite")
    _store_entry(db, "syn", model="synnet", source="synthetic", version=cur)
    _store_entry(db, "real", model="realnet", source="real", version=cur)
    _store_entry(db, "old", model="oldnet", source="", version=cur - 1, values=(0.5, 0.1))  # the best score
    stored = {r["submission_id"]: r["data_source"] for r in db.query("SELECT submission_id, data_source FROM scores")}
    assert stored == {"syn": "synthetic", "real": "real", "old": "unknown"}
    ordered = board_mod.board_rows(db)
    assert ordered[-1]["entry_id"] == "old"  # same score, but an older version ranks after the current ones
    rows = {r["entry_id"]: r for r in ordered}
    assert rows["syn"]["data_source"] == "synthetic" and rows["old"]["benchmark_version"] == cur - 1
    page = site.render_index(list(rows.values()))
    tr = {m.group(1): m.group(0) for m in re.finditer(r'<tr class="entry"[^>]*><td><a href="/entries/(\w+)".*?</tr>', page)}
    assert 'class="tag synthetic"' in tr["syn"] and "synthetic" not in tr["real"]
    assert f"v{cur - 1} (old)" in tr["old"] and f">v{cur}<" in tr["real"] and "(old)" not in tr["real"]
    ent = site.render_entry(board_mod.entry_data(db, "old"))
    assert f"v{cur - 1} (old)" in ent and f"benchmark is now version {cur}" in ent
    csvrows = {r["entry_id"]: r for r in csv.DictReader(io.StringIO(board_mod.board_csv(list(rows.values()))))}
    assert csvrows["syn"]["data_source"] == "synthetic" and csvrows["old"]["benchmark_version"] == str(cur - 1)


def test_rescore_requeues_old_versions_and_keeps_the_old_scores(tmp_path, board_ids, board_data):
    from click.testing import CliRunner

    from brainlid.cli import cli
    from brainlid.leaderboard.worker import Worker
    from brainlid.scoring import get_benchmark

    cur = int(get_benchmark(BENCH).version)
    db = Database(tmp_path / "b.sqlite")
    bundle = _valid(tmp_path, board_ids)
    _store_entry(db, "old", model="net", version=cur - 1)
    _store_entry(db, "now", model="net2", version=cur)
    db.execute("UPDATE submissions SET bundle_path = ? WHERE id IN ('old', 'now')", (str(bundle),))
    run = CliRunner().invoke(cli, ["leaderboard", "rescore", "--db", str(db.path)])
    assert run.exit_code == 0 and "re-queued 1 submission(s): old → " in run.output, run.output
    new = [s for s in q.list_submissions(db) if s.get("rescore_of")]
    assert len(new) == 1 and new[0]["rescore_of"] == "old" and new[0]["status"] == "queued"
    again = CliRunner().invoke(cli, ["leaderboard", "rescore", "--db", str(db.path)])
    assert "re-queued 0" in again.output  # nothing queued twice
    assert Worker(db, board_data).run_once()["status"] == "scored"
    vers = {r["submission_id"]: r["v"] for r in db.query("SELECT submission_id, MIN(benchmark_version) AS v FROM scores "
                                                          "GROUP BY submission_id")}
    assert vers == {"old": cur - 1, "now": cur, new[0]["id"]: cur}  # old scores kept, new set under the current version
    run = CliRunner().invoke(cli, ["leaderboard", "rescore", "--db", str(db.path), "--all", "--benchmark", BENCH])
    assert "re-queued 2" in run.output  # the current entry and the re-score (the superseded one is not queued again)
    bad = CliRunner().invoke(cli, ["leaderboard", "rescore", "--db", str(db.path), "--benchmark", "nope.x"])
    assert bad.exit_code != 0 and "unknown benchmark" in str(bad.exception or bad.output)


# --------------------------------------------------------------------------- issue 17: CLI edges
def test_cli_edges(tmp_path, capsys):
    from brainlid.cli import main

    db = tmp_path / "b.sqlite"
    assert main(["leaderboard", "serve", "--db", str(db), "--port", "99999"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["brainlid: error: --port must be from 1 to 65535, got 99999"]  # before any URL is printed
    assert not db.exists()  # nor was a database created
    typo = tmp_path / "typo" / "x.sqlite"
    for argv in (["leaderboard", "build", "--db", f"sqlite:///{typo}", "--out", str(tmp_path / "site")],
                 ["leaderboard", "private", "--db", f"sqlite:///{typo}", BENCH],
                 ["leaderboard", "worker", "--db", f"sqlite:///{typo}", "--exit-when-empty"],
                 ["leaderboard", "rescore", "--db", f"sqlite:///{typo}"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no leaderboard database at" in err[0], err
        assert not typo.exists() and not typo.parent.exists()
    assert main(["leaderboard", "token", "--db", str(db), "--team", "lab"]) == 0  # token may create a board
    capsys.readouterr()
    assert main(["leaderboard", "private", "--db", str(db), "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'nope'" in err[0]
    assert q.benchmark_settings(Database(db)) == {}
    assert main(["leaderboard", "private", "--db", str(db), BENCH]) == 0
    assert q.benchmark_settings(Database(db))[BENCH]["test_private"] is True


def test_empty_postgresql_database_refused_by_read_only_commands(leaderboard_pg):
    url = leaderboard_pg.create_database("e" + uuid.uuid4().hex[:12])
    with pytest.raises(DatabaseError, match="holds no leaderboard"):
        Database(url, create=False)
    Database(url)  # serve/token create the schema
    assert Database(url, create=False).schema_version() >= 3


# --------------------------------------------------------------------------- property-based: arbitrary JSON
def _hypothesis():
    return pytest.importorskip("hypothesis")


def test_arbitrary_metadata_stores_and_renders(board_db_url, tmp_path):
    """Arbitrary JSON values in every metadata field and the layer name: either a SchemaError naming the
    field, or the value is stored and every page, API route, CSV and the static build render it."""
    _hypothesis()
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from starlette.testclient import TestClient

    from brainlid.leaderboard.app import create_app

    hostile = st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "\u2066", "\u200b", "\ufeff", "=", "+", "-", "@",
                               "\t", "\r", "\n", "<script>", "&amp;", '"', "'", "é", "😀", "\u0301", "\u3164", " "])
    text = st.one_of(st.text(max_size=30), st.lists(hostile, max_size=6).map("".join),
                     st.tuples(st.text(max_size=5), hostile, st.text(max_size=5)).map("".join),
                     st.text(min_size=190, max_size=260))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**450, max_value=10**450),
                        st.floats(allow_nan=True, allow_infinity=True), text)
    anything = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=6)
    # plausible values (that still hold formula starts, markup, emoji, combining marks, BOMs): most examples pass
    # validation with at most one field replaced by an arbitrary JSON value
    safe_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    plain = st.one_of(st.text(safe_chars, min_size=1, max_size=40),
                      st.tuples(st.sampled_from(["=", "+", "-", "@", "<b>", "é", "😀", "a\u0301"]),
                                st.text(safe_chars, max_size=10)).map("".join))
    good = {"model_name": plain, "team": plain, "parameters": st.integers(0, 10**13), "training_data": plain,
            "url": plain.map(lambda t: "https://example.org/" + t.replace(" ", "%20")), "description": plain,
            "layers_note": plain}

    @st.composite
    def examples(draw):
        md = draw(st.fixed_dictionaries({}, optional={k: v for k, v in good.items() if k != "model_name"}))
        md["model_name"] = draw(plain)
        layer = draw(plain)
        target = draw(st.sampled_from(["none", "layer", *METADATA_FIELDS]))
        if target == "layer":
            layer = draw(anything)
        elif target != "none":
            md[target] = draw(anything)
        return md, layer

    db = Database(board_db_url)
    app = create_app(board_db_url, storage=tmp_path / "s", workers=0)
    stored: list[tuple[str, dict, str]] = []
    seen_errors: set[str] = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(example=examples())
    def run(example):
        md, layer = example
        try:
            clean = check_metadata(md)
            layer_ok = check_text(layer, "layers[0].name", max_len=200)
        except SchemaError as exc:
            assert str(exc).startswith(("metadata", "layers[0].name")), exc
            seen_errors.add(exc.field.split(".")[-1])
            return
        sid = uuid.uuid4().hex
        _store_entry(db, sid, model=clean["model_name"], md=clean, layers=(layer_ok, layer_ok + "_2"))
        stored.append((sid, clean, layer_ok))
        page = site.render_index(board_mod.board_rows(db))
        ent = site.render_entry(board_mod.entry_data(db, sid))
        for p in (page, ent):
            p.encode("utf-8")
        assert html.escape(visible(clean["model_name"]), quote=True) in ent
        assert html.escape(visible(layer_ok), quote=True) in ent
        row = next(r for r in csv.DictReader(io.StringIO(board_mod.board_csv(board_mod.board_rows(db)))) if r["entry_id"] == sid)
        name = visible(clean["model_name"])
        assert row["model"] in (name, "'" + name) and (row["model"] == name) != name.startswith(board_mod.FORMULA_START)

    run()
    assert stored, "no example passed validation"
    assert len(seen_errors) >= 3  # the generator did reach rejections of several fields too
    with TestClient(app, raise_server_exceptions=False) as c:
        _all_routes_ok(c, db, [s for s, _, _ in stored])
    out = tmp_path / "site"
    written = site.build_site(db, out)
    assert len([p for p in written if p.parent.name == "entries"]) == len(stored)
    for f in written:
        f.read_text(encoding="utf-8")


def test_json_depth_matches_the_parsed_structure():
    """The pre-parse depth scan agrees with the depth of the parsed value, brackets inside strings included."""
    _hypothesis()
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from brainlid.leaderboard.schema import json_depth

    def depth(v):
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    tricky = st.text(st.sampled_from(list('[]{}"\\,: a')), max_size=8)
    values = st.recursive(st.one_of(st.integers(), tricky, st.none()),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(tricky, c, max_size=3), max_leaves=12)

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(v=values, indent=st.sampled_from([None, 1]))
    def run(v, indent):
        assert json_depth(json.dumps(v, indent=indent, ensure_ascii=False)) == depth(v)

    run()
