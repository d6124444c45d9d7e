"""The leaderboard under heavy use and faults (issue 15, part 2): bounded memory and time, uploads that never
starve pages, per-team limits, duplicates, and restarts that cost submitters nothing.

Every wait is a bounded poll; live services run on 127.0.0.1 and stop by themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from brainlid.leaderboard import archive
from brainlid.leaderboard import queue as q
from brainlid.leaderboard.bundle import BundleError, validate_bundle, write_bundle
from brainlid.leaderboard.db import Database
from brainlid.leaderboard.scoring import CheckReport
from brainlid.leaderboard.uploads import RateLimiter, cleanup_storage
from harness import ServiceProcess, raw_upload, start_worker, uploads_and_pages, wait_until
from support import REPO

BENCH = "nsd.subj01.EBA.encoding"
NO_BENCH_CHECK = {"known_benchmark": lambda b: None}
UNLIMITED = ["--rate-limit", "0", "--team-inflight", "0"]


def _bundle(path, ids, seed, name="net", n_layers=2, d=6):
    rng = np.random.default_rng(seed)
    feats = {f"layer{i}": rng.standard_normal((ids.size, d + i)).astype(np.float32) for i in range(n_layers)}
    return write_bundle(path, feats, ids, [BENCH], {"model_name": name, "parameters": 100 + seed})


def _one_layer_zip(path, arr: np.ndarray, fmt: str = "npy", dtype: str | None = None):
    """A bundle holding ``arr`` exactly as given (C or Fortran order, any dtype), written by numpy/safetensors."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        raw, fname = buf.getvalue(), "features/000.npy"
    else:
        from safetensors.numpy import save

        raw, fname = save({"features": np.ascontiguousarray(arr)}), "features/000.safetensors"
    man = {"format": "brainlid-submission", "format_version": 1, "benchmarks": ["x"],
           "stimulus_ids": list(range(arr.shape[0])), "metadata": {"model_name": "m"},
           "layers": [{"name": "l0", "file": fname, "shape": list(arr.shape), "dtype": dtype or arr.dtype.name,
                       "sha256": hashlib.sha256(raw).hexdigest()}]}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(man))
        zf.writestr(fname, raw)
    return path


# --------------------------------------------------------------------------- streaming validation
@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_streamed_layers_equal_what_numpy_and_safetensors_read(tmp_path, monkeypatch, chunk):
    """Chunked reads (7-byte chunks split values and rows) give the arrays numpy/safetensors load, and the same verdicts."""
    monkeypatch.setattr(archive, "CHUNK", chunk)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((37, 11)).astype(np.float32)
    cases = [(X, "npy"), (np.asfortranarray(X), "npy"), (X.astype(np.float16), "npy"), (X, "safetensors"),
             (X.astype(np.float16), "safetensors")]
    for i, (arr, fmt) in enumerate(cases):
        p = _one_layer_zip(tmp_path / f"ok{i}.zip", arr, fmt)
        got = validate_bundle(p, **NO_BENCH_CHECK).features["l0"]
        assert got.dtype == arr.dtype and np.array_equal(got, arr), (i, fmt)
        assert validate_bundle(p, load=False, **NO_BENCH_CHECK).layers == {"l0": ((37, 11), arr.dtype.name)}
    # NaN/inf counted exactly, wherever they fall (the oracle: numpy's count)
    bad = X.copy()
    bad.flat[rng.choice(bad.size, 9, replace=False)] = [np.nan, np.inf, -np.inf] * 3
    for order in "CF":
        p = _one_layer_zip(tmp_path / f"nan{order}.zip", np.asarray(bad, order=order))
        with pytest.raises(BundleError, match=f"{int(np.sum(~np.isfinite(bad)))} NaN/inf"):
            validate_bundle(p, load=False, **NO_BENCH_CHECK)
    # constancy: every row the same vector is rejected; one value off in the last row is not (both orders)
    row = rng.standard_normal(11).astype(np.float32)
    const = np.tile(row, (37, 1))
    almost = const.copy()
    almost[-1, -1] += 1
    for order in "CF":
        with pytest.raises(BundleError, match="constant: all 37 rows"):
            validate_bundle(_one_layer_zip(tmp_path / f"c{order}.zip", np.asarray(const, order=order)), load=False,
                            **NO_BENCH_CHECK)
        validate_bundle(_one_layer_zip(tmp_path / f"a{order}.zip", np.asarray(almost, order=order)), load=False,
                        **NO_BENCH_CHECK)
    with pytest.raises(BundleError, match="all values are 0"):
        validate_bundle(_one_layer_zip(tmp_path / "z.zip", np.zeros((40, 8), np.float32)), **NO_BENCH_CHECK)
    # a file whose data are shorter or longer than its header says, and a foreign dtype, are read no further
    p = _one_layer_zip(tmp_path / "f64.zip", X.astype(np.float64), dtype="float32")
    with pytest.raises(BundleError, match="float64 but the manifest declares float32"):
        validate_bundle(p, **NO_BENCH_CHECK)


def test_truncated_and_padded_members(tmp_path):
    X = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, X)
    for name, raw in (("short", buf.getvalue()[:-4]), ("long", buf.getvalue() + b"\0" * 8)):
        man = {"format": "brainlid-submission", "format_version": 1, "benchmarks": ["x"], "stimulus_ids": list(range(20)),
               "metadata": {"model_name": "m"}, "layers": [{"name": "l0", "file": "features/000.npy", "shape": [20, 5],
                                                             "dtype": "float32", "sha256": hashlib.sha256(raw).hexdigest()}]}
        p = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("manifest.json", json.dumps(man))
            zf.writestr("features/000.npy", raw)
        with pytest.raises(BundleError, match="cannot read the array: it holds"):
            validate_bundle(p, **NO_BENCH_CHECK)


# The peak is this process's own VmHWM, reset after the warm-up: ru_maxrss survives fork+exec, so inside a full
# pytest run (a parent of ~1 GiB) it reported the parent's high-water mark (+877 MiB) instead of the child's.
_RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    from benchmarks._common import _peak_rss, _reset_peak_rss, current_rss
    from brainlid.leaderboard.bundle import validate_bundle
    validate_bundle(sys.argv[2], known_benchmark=lambda b: None, load=False)  # warm-up: every import done
    base = current_rss()
    _reset_peak_rss()
    b = validate_bundle(sys.argv[1], known_benchmark=lambda b: None, load=False)
    peak = _peak_rss()
    print(json.dumps({"rise": peak - base, "layers": {k: [list(s), d] for k, (s, d) in b.layers.items()}}))
""")


def _write_big_bundle(path, n_layers: int, n: int, d: int, seed: int = 0) -> None:
    """A bundle of ``n_layers`` float32 (n, d) layers as STORED zip members, written in 1 MiB chunks (never in memory)."""
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((1 << 18,)).astype(np.float32).tobytes()  # 1 MiB of values, repeated
    nbytes = n * d * 4
    layers = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for i in range(n_layers):
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
            h = hashlib.sha256(head.getvalue())
            name = f"features/{i:03d}.npy"
            with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as w:
                w.write(head.getvalue())
                left = nbytes
                while left:
                    piece = block[:min(left, len(block))]
                    w.write(piece)
                    h.update(piece)
                    left -= len(piece)
            layers.append({"name": f"layer{i}", "file": name, "shape": [n, d], "dtype": "float32", "sha256": h.hexdigest()})
        zf.writestr("manifest.json", json.dumps({"format": "brainlid-submission", "format_version": 1, "benchmarks": ["x"],
                                                 "stimulus_ids": list(range(n)), "layers": layers,
                                                 "metadata": {"model_name": "big"}}))


@pytest.mark.slow  # writes and reads 1 GiB
def test_validation_memory_is_bounded_gate(tmp_path):
    """Gate: validating 2 × 512 MiB layers raises the validating process's peak RSS by < 300 MiB (measured apart)."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux /proc (VmHWM) to measure the peak RSS")
    big, small = tmp_path / "big.zip", tmp_path / "small.zip"
    _write_big_bundle(big, 2, 1024, 131072)  # 2 × 512 MiB
    _write_big_bundle(small, 1, 64, 256)
    assert big.stat().st_size > 1 << 30
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(big), str(small)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["layers"] == {"layer0": [[1024, 131072], "float32"], "layer1": [[1024, 131072], "float32"]}
    assert res["rise"] < 300 << 20, f"validation raised RSS by {res['rise'] / 2**20:.0f} MiB"


# --------------------------------------------------------------------------- the queue's fault accounting
def _enqueue(db, sid, path="/x", sha=""):
    q.enqueue(db, submission_id=sid, team_id=None, benchmarks=[BENCH], model_name="m", metadata={}, bundle_path=str(path),
              bundle_sha256=sha, size_bytes=1)


def test_attempts_count_only_scoring_failures(tmp_path):
    db = Database(tmp_path / "b.sqlite")
    _enqueue(db, "s")
    # a lease that runs out (worker killed, server restarted) costs no attempt
    assert q.claim(db, "A", lease_seconds=0.01)["id"] == "s"
    time.sleep(0.05)
    got = q.claim(db, "B", lease_seconds=60)
    assert (got["attempts"], got["lease_expiries"], got["lease_owner"]) == (0, 1, "B")
    # a graceful stop gives it back at no cost
    assert q.release(db, "s", "B") and not q.release(db, "s", "B")
    assert {k: q.get_submission(db, "s")[k] for k in ("status", "attempts", "lease_expiries", "lease_owner")} == \
        {"status": "queued", "attempts": 0, "lease_expiries": 1, "lease_owner": None}
    # failures the scoring raised: queued again until the max_attempts-th, which rejects with the last reason
    for i in range(1, 4):
        assert q.claim(db, f"W{i}", lease_seconds=60)["id"] == "s"
        assert not q.fail(db, "s", "someone-else", "x", max_attempts=3)  # only the lease holder
        assert q.fail(db, "s", f"W{i}", f"boom {i}", max_attempts=3)
        s = q.get_submission(db, "s")
        assert s["attempts"] == i and s["status"] == ("queued" if i < 3 else "rejected")
    assert "failed 3 times" in s["reason"] and "boom 3" in s["reason"] and q.claim(db, "Z") is None


def test_worker_that_keeps_dying_is_capped(tmp_path):
    db = Database(tmp_path / "b.sqlite")
    _enqueue(db, "oom")
    for i in range(3):  # three workers die on it (their leases run out): retaken each time, no attempt used
        job = q.claim(db, f"W{i}", lease_seconds=0.01, max_lease_expiries=4)
        assert job["id"] == "oom" and job["attempts"] == 0 and job["lease_expiries"] == i
        time.sleep(0.05)
    assert q.claim(db, "W3", lease_seconds=0.01, max_lease_expiries=4)["lease_expiries"] == 3
    time.sleep(0.05)
    assert q.claim(db, "W4", lease_seconds=0.01, max_lease_expiries=4) is None  # the 4th expiry rejects it
    s = q.get_submission(db, "oom")
    assert s["status"] == "rejected" and "stopped 4 times" in s["reason"] and s["attempts"] == 0


def test_leases_of_dead_local_workers_end_at_once(tmp_path):
    """A restart need not wait for the dead worker's lease: this host's dead pids are expired, nothing else."""
    import socket

    db = Database(tmp_path / "b.sqlite")
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owners = {"dead": f"{host}:{dead.pid}:aa", "alive": f"{host}:{os.getppid()}:bb", "remote": f"other-{host}:{dead.pid}:cc",
              "odd": "not-a-worker"}
    for sid, owner in owners.items():
        _enqueue(db, sid)
        assert q.claim(db, owner, lease_seconds=600)["id"] == sid
    assert q.expire_dead_local_leases(db, f"{host}:{os.getpid()}:me") == ["dead"]
    job = q.claim(db, "new", lease_seconds=60)
    assert (job["id"], job["lease_expiries"], job["attempts"]) == ("dead", 1, 0)
    assert q.claim(db, "new2", lease_seconds=60) is None  # the others keep their leases


def test_worker_counts_raised_failures(tmp_path, monkeypatch, board_data):
    """An exception of the scoring is an attempt; after max_attempts the reason says so."""
    from brainlid.leaderboard import worker as wmod

    def boom(*a, **k):
        raise RuntimeError("scoring crashed")

    monkeypatch.setattr(wmod, "check_bundle", boom)
    db = Database(tmp_path / "b.sqlite")
    p = _bundle(tmp_path / "b.zip", board_data.ids(BENCH), 0)
    _enqueue(db, "s", p)
    w = wmod.Worker(db, board_data, lease_seconds=30, max_attempts=2, memory_budget=0)
    assert [w.run_once()["status"] for _ in range(2)] == ["failed", "failed"] and w.run_once() is None
    s = q.get_submission(db, "s")
    assert s["status"] == "rejected" and s["attempts"] == 2 and "scoring crashed" in s["reason"]


def test_memory_estimate_bounds_the_measured_peak(tmp_path, board_data, board_ids):
    """The scoring-memory estimate is above the peak the scoring allocates (tracemalloc) and not wildly above it."""
    import tracemalloc

    from brainlid.leaderboard.scoring import check_bundle
    from brainlid.leaderboard.worker import SCORING_BASE, estimate_scoring_memory

    rng = np.random.default_rng(0)
    warm = write_bundle(tmp_path / "w.zip", {"l": rng.standard_normal((board_ids.size, 8)).astype(np.float32)},
                        board_ids, [BENCH], {"model_name": "w"})
    assert check_bundle(warm, data=board_data).status == "scored"  # imports and caches out of the measurement
    for n_layers, d, dtype in ((1, 40_000, "float32"), (2, 15_000, "float16")):
        feats = {f"l{i}": rng.standard_normal((board_ids.size, d)) for i in range(n_layers)}
        p = write_bundle(tmp_path / f"b{n_layers}.zip", feats, board_ids, [BENCH], {"model_name": "m"}, dtype=dtype)
        tracemalloc.start()
        rep = check_bundle(p, data=board_data)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert rep.status == "scored", rep.reason
        est = estimate_scoring_memory([((board_ids.size, d), dtype)] * n_layers, [BENCH], board_data)
        assert peak <= est <= 3 * peak + SCORING_BASE, (n_layers, d, peak, est)


def test_memory_estimate_counts_the_benchmarks_bootstrap(board_data, board_ids):
    """The worker's estimate holds the same per-layer cell as the Dask runner's, including the stimulus bootstrap of
    the ROI mean with the benchmark's n_boot (the worker used to leave it out)."""
    import dataclasses

    from brainlid.leaderboard.worker import LAYER_FACTOR, SCORING_BASE, estimate_scoring_memory
    from brainlid.scoring import get_benchmark
    from brainlid.scoring.distributed import cell_sizes, estimate_benchmark_cell_memory

    bench, (_, brain) = get_benchmark(BENCH), board_data.load(BENCH)
    n, d = board_ids.size, 20_000
    sizes = cell_sizes(brain, bench)
    fixed, per_unit = estimate_benchmark_cell_memory(bench, sizes, d, n_all=n)
    est = estimate_scoring_memory([((n, d), "float32")], [BENCH], board_data)
    assert est == SCORING_BASE + 4 * n * d + LAYER_FACTOR * 4 * n * d + fixed + per_unit * sizes["n_units"]
    no_boot = dataclasses.replace(bench, params={**bench.params, "n_boot": 0})
    assert estimate_benchmark_cell_memory(no_boot, sizes, d, n_all=n)[0] < fixed  # the bootstrap is counted


def test_worker_refuses_a_job_over_its_memory_budget(tmp_path, monkeypatch, board_data, board_ids):
    from brainlid.features.cache import fmt_size
    from brainlid.leaderboard import worker as wmod

    reached = []
    monkeypatch.setattr(wmod, "check_bundle", lambda path, **k: reached.append(path) or CheckReport("rejected", "reached"))
    db = Database(tmp_path / "b.sqlite")
    p = _bundle(tmp_path / "b.zip", board_ids, 0, d=50)
    need = wmod.estimate_scoring_memory([((board_ids.size, 50), "float32"), ((board_ids.size, 51), "float32")], [BENCH], board_data)
    for sid, budget in (("over", need - 1), ("fits", need)):
        _enqueue(db, sid, p)
        assert wmod.Worker(db, board_data, memory_budget=budget).run_once()["status"] == "rejected"
    over, fits = q.get_submission(db, "over"), q.get_submission(db, "fits")
    assert f"needs an estimated {fmt_size(need)}" in over["reason"] and fmt_size(need - 1) in over["reason"]
    assert fits["reason"] == "reached" and reached == [str(p)]  # the one within budget went on to scoring


def test_upload_refuses_a_bundle_over_the_memory_budget(tmp_path, board_data, board_ids):
    """With a budget the upload's validation rejects at once what the worker would refuse (same estimate)."""
    from brainlid.features.cache import fmt_size
    from brainlid.leaderboard.bundle import Limits
    from brainlid.leaderboard.uploads import UploadPolicy, Uploads
    from brainlid.leaderboard.worker import estimate_scoring_memory

    p = _bundle(tmp_path / "b.zip", board_ids, 0, d=30)
    need = estimate_scoring_memory([((board_ids.size, 30), "float32"), ((board_ids.size, 31), "float32")], [BENCH],
                                   board_data)
    db = Database(tmp_path / "b.sqlite")
    reasons = []
    for budget, status in ((need - 1, "rejected"), (need, "valid"), (0, "valid")):
        up = Uploads(db, tmp_path / "store", board_data, Limits(), UploadPolicy(memory_budget=budget))
        try:
            rep = up._validate(p)
        finally:
            up.close()
        assert rep.status == status, (budget, rep.reason)
        reasons.append(rep.reason)
    assert f"needs an estimated {fmt_size(need)}" in reasons[0] and reasons[1:] == ["", ""]


def test_graceful_stop_releases_the_job(tmp_path, monkeypatch, leaderboard_nsd, board_ids):
    """Stopping the service while a job is scored longer than the grace gives it back: no attempt, no expiry."""
    pytest.importorskip("starlette")
    import threading

    from starlette.testclient import TestClient

    from brainlid.leaderboard import worker as wmod
    from brainlid.leaderboard.app import create_app

    started, never = threading.Event(), threading.Event()

    def slow(path, **k):
        started.set()
        never.wait(30)
        return CheckReport("rejected", "should not be stored")

    monkeypatch.setattr(wmod, "check_bundle", slow)
    url = f"sqlite:///{tmp_path / 'b.sqlite'}"
    db = Database(url)
    _enqueue(db, "s", _bundle(tmp_path / "b.zip", board_ids, 0))
    app = create_app(url, data_root=leaderboard_nsd, workers=1, stop_grace=0.2, memory_budget=0)
    try:
        with TestClient(app):
            assert started.wait(30)
            assert q.get_submission(db, "s")["status"] == "scoring"
        s = q.get_submission(db, "s")
        assert (s["status"], s["attempts"], s["lease_expiries"], s["lease_owner"]) == ("queued", 0, 0, None)
    finally:
        never.set()
    time.sleep(0.2)  # the scoring thread returns: it lost its lease, so nothing is written
    assert q.get_submission(db, "s")["status"] == "queued"


@pytest.mark.slow  # a worker process start
def test_worker_process_sigterm_gives_the_job_back(tmp_path, leaderboard_nsd, board_ids):
    """`brainlid leaderboard worker` stopped with SIGTERM mid-job (grace 0) releases it: queued, nothing used."""

    url = f"sqlite:///{tmp_path / 'b.sqlite'}"
    db = Database(url)
    _enqueue(db, "s", _bundle(tmp_path / "b.zip", board_ids, 0, n_layers=6, d=2000))
    log = tmp_path / "w.log"
    w = start_worker(url, data_root=leaderboard_nsd, home=tmp_path / "home", log=log,
                     extra=["--stop-grace", "0", "--memory-budget", "0"])
    try:
        wait_until(lambda: q.get_submission(db, "s")["status"] == "scoring", 60, 0.01, "the worker to take the job")
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=60) == 0
    finally:
        if w.poll() is None:
            w.kill()
    s = q.get_submission(db, "s")
    assert (s["status"], s["attempts"], s["lease_expiries"], s["lease_owner"]) == ("queued", 0, 0, None)
    assert "gave it back to the queue" in log.read_text()


def test_startup_cleanup(tmp_path):
    db = Database(tmp_path / "b.sqlite")
    store = tmp_path / "store"
    (store / "incoming").mkdir(parents=True)
    (store / "bundles").mkdir()
    now = time.time()
    files = {}
    for name, age in (("incoming/old.zip.part", 600), ("incoming/live.zip.part", 5), ("bundles/orphan.zip", 600),
                      ("bundles/young.zip", 5), ("bundles/kept.zip", 600), ("bundles/by-path.zip", 600)):
        f = store / name
        f.write_bytes(b"x")
        os.utime(f, (now - age, now - age))
        files[name] = f
    _enqueue(db, "kept", files["bundles/kept.zip"])
    _enqueue(db, "other-id", files["bundles/by-path.zip"])
    assert cleanup_storage(db, store, 60.0, now=now) == {"parts": 1, "bundles": 1}
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) == \
        ["bundles/by-path.zip", "bundles/kept.zip", "bundles/young.zip", "incoming/live.zip.part"]


def test_rate_limiter_window_and_inflight():
    now = [0.0]
    rl = RateLimiter(3, 2, clock=lambda: now[0])
    assert rl.acquire("a") == ("", 0) and rl.acquire("a") == ("", 0)
    why, _ = rl.acquire("a")
    assert "2 upload(s) in progress" in why  # in-flight cap
    assert rl.acquire("b") == ("", 0)  # another team is not affected
    rl.release("a")
    assert rl.acquire("a") == ("", 0)  # third upload of the minute
    rl.release("a")
    rl.release("a")
    now[0] = 30.0
    why, retry = rl.acquire("a")
    assert "3 upload(s) per team per minute" in why and retry == 30
    now[0] = 60.5  # the first ones left the window
    assert rl.acquire("a") == ("", 0)
    assert RateLimiter(0, 0).acquire("a") == ("", 0)


def test_token_lookups_are_shared_and_expire(tmp_path, monkeypatch, board_data):
    """A burst of uploads with one token makes one team query; a replaced token stops working after the cache time."""
    from brainlid.leaderboard import uploads as umod
    from brainlid.leaderboard.bundle import Limits

    db = Database(tmp_path / "b.sqlite")
    old = q.create_team(db, "lab")
    calls = []
    real = q.team_for_token

    def counted(db_, token):
        calls.append(token)
        time.sleep(0.05)
        return real(db_, token)

    monkeypatch.setattr(umod.q, "team_for_token", counted)
    up = umod.Uploads(db, tmp_path / "store", board_data, Limits(), umod.UploadPolicy())

    async def burst(token, n):
        return await asyncio.gather(*(up._team(token) for _ in range(n)))

    try:
        teams = asyncio.run(burst(old, 30))
        assert len(calls) == 1 and {t["name"] for t in teams} == {"lab"}
        new = q.create_team(db, "lab")  # a new token replaces the old one
        assert asyncio.run(burst(old, 1))[0]["name"] == "lab"  # still cached
        monkeypatch.setattr(umod, "TEAM_CACHE_SECONDS", 0.0)
        time.sleep(0.01)
        assert asyncio.run(burst(old, 1)) == [None] and asyncio.run(burst(new, 1))[0]["name"] == "lab"
        assert asyncio.run(burst(None, 1)) == [None] and len(calls) == 3
    finally:
        up.close()


# --------------------------------------------------------------------------- live service
def _post(url, path, token, timeout=120):
    req = urllib.request.Request(url + "/api/submissions", data=open(path, "rb").read(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


@pytest.fixture
def live(tmp_path, leaderboard_nsd):
    pytest.importorskip("uvicorn")

    started = []

    def start(*extra, workers=0):
        svc = ServiceProcess(f"sqlite:///{tmp_path / 'board.sqlite'}", data_root=leaderboard_nsd, workers=workers,
                             home=tmp_path / "home", extra=list(extra)).start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


def test_slow_bodies_rate_limits_busy_board_and_duplicates(live, tmp_path, board_ids):

    svc = live("--rate-limit", "2", "--team-inflight", "0", "--max-pending-uploads", "2", "--body-timeout", "2")
    db = Database(svc.db_url)
    a, b = q.create_team(db, "a"), q.create_team(db, "b")
    host, port = "127.0.0.1", svc.port
    # a 1 byte/s trickle is cut with 408
    assert asyncio.run(raw_upload(host, port, a, b"x" * 100, pieces=100, pause=1.0)) == 408

    async def busy():
        # two slow uploads hold both pending slots; a third is told to come back later
        held = [asyncio.create_task(raw_upload(host, port, b, b"y" * 1000, pieces=20, pause=0.05)) for _ in range(2)]
        await asyncio.sleep(0.3)
        third = await raw_upload(host, port, b, b"z" * 10, pieces=1, pause=0.0)
        return third, await asyncio.gather(*held)

    third, held = asyncio.run(busy())
    assert third == 503 and held == [422, 422]  # the held ones finish (not zips)
    # the rate limit: 2 uploads of team a in a minute (the cut trickle counted), the next is 429; team b unaffected
    p = _bundle(tmp_path / "b.zip", board_ids, 1)
    code, body, headers = _post(svc.url, p, a)
    assert code == 202
    code, body2, headers = _post(svc.url, p, a)
    assert code == 429 and "per team per minute" in body2["reason"] and int(headers["retry-after"]) >= 1
    # team b has used its two this minute as well: a fresh team sends the same bundle twice → one submission
    c = q.create_team(db, "c")
    (c1, r1, _), (c2, r2, _) = _post(svc.url, p, c), _post(svc.url, p, c)
    assert (c1, c2) == (202, 200) and r2["id"] == r1["id"] and r2["duplicate"] and r1["id"] != body["id"]
    assert len([s for s in q.list_submissions(db) if s["status"] == "queued"]) == 2


@pytest.mark.slow  # 200 connections plus a service start
def test_pages_complete_while_200_slow_uploads_are_in_flight(live):

    svc = live(*UNLIMITED, "--max-pending-uploads", "256", "--body-timeout", "30")
    token = q.create_team(Database(svc.db_url), "load")
    res = uploads_and_pages(svc.url, token, n_uploads=200, body=b"x" * 20_000, pieces=20, pause=0.3, n_idle=3,
                            n_pages=10, timeout=180)
    assert res["busy_status"] == [200] * 20, res["busy_status"]
    assert res["in_flight"][0] == 200  # the uploads take ≥ 6 s: the first pages were fetched with all of them in flight
    assert sorted(set(res["upload_status"])) == [422]  # every upload was read, validated and answered


@pytest.mark.slow  # four service starts, three lease expiries, one scoring
def test_three_kill9_during_one_job_score_it_once(live, tmp_path, board_ids):
    """`kill -9` of the whole service three times while it scores one job: retaken each time at no cost, scored once."""
    svc = live("--lease", "1.5", workers=1)
    db = Database(svc.db_url)
    token = q.create_team(db, "lab")
    code, body, _ = _post(svc.url, _bundle(tmp_path / "b.zip", board_ids, 7, n_layers=2), token)
    assert code == 202
    sid = body["id"]

    for _ in range(3):
        pid = svc.proc.pid
        wait_until(lambda: f":{pid}:" in (q.get_submission(db, sid)["lease_owner"] or ""), 120, 0.01,
                   "this server's worker to take the job")
        assert q.get_submission(db, sid)["status"] == "scoring"
        svc.kill()  # SIGKILL: no shutdown code runs
        svc = live("--lease", "1.5", workers=1)
    wait_until(lambda: q.get_submission(db, sid)["status"] in ("scored", "rejected"), 180, 0.2, "the job to finish")
    s = q.get_submission(db, sid)
    assert (s["status"], s["attempts"], s["lease_expiries"]) == ("scored", 0, 3), s["reason"]
    rows = db.query("SELECT layer, split, metric FROM scores WHERE submission_id = ?", (sid,))
    assert len(rows) == 8 and len({tuple(r.values()) for r in rows}) == 8  # 2 layers × (val, test) × (r, R²), once
    assert len(q.list_submissions(db)) == 1
