"""The scoring grid on a Dask LocalCluster of 2 worker processes: same rows as the serial run (response and
RDM benchmarks), exactly once when a worker is killed mid-run, no work on a rerun; memory planning; cluster configs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from brainlid.errors import InputError  # noqa: E402
from brainlid.scoring import distributed as D  # noqa: E402
from brainlid.scoring.distributed import cluster as DC  # noqa: E402
from support import REALDATA  # noqa: E402

MODELS = {"mlp": "entrypoint:brainlid.demo.zoo:mlp_w64_d3@random", "cnn": "entrypoint:brainlid.demo.zoo:cnn_c4_d2@random"}
LAYERS = {"mlp": ["hidden.0", "hidden.1", "embed"], "cnn": ["blocks.0", "blocks.1", "embed"]}
BENCHES = ["nsd.subj01.nsdgeneral.encoding", "nsd.subj02.nsdgeneral.encoding"]
# 2 models × 3 layers × 2 benchmarks = 12 cells, + pixels (2) + shuffled (4) baselines + 1 model–model task
KW = dict(layers=LAYERS, baselines=("pixels", "shuffled"), mm_metrics=("mutual_knn",))
N_SCORE_CELLS = 12 + 2 + 4 + 2  # layer cells + model–model cells (one per model)
KEYS = ["model", "layer", "benchmark", "split", "metric", "roi"]
# RDM benchmarks: two CIFAR ResNets (any image size) and both baselines that apply to random-weights specs
RDM_MODELS = {"r0": "cifar_resnet:20@random:0", "r1": "cifar_resnet:20@random:1"}
RDM_KW = dict(layers=["layer1", "layer3"], baselines=("pixels", "shuffled"), mm_metrics=("mutual_knn",))
RDM_KEYS = KEYS + ["subject"]  # RDM rows: every subject and the group mean


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Synthetic NSD data (2 subjects), a brainlid home for the feature cache, and the serial reference."""
    from brainlid.demo import write_synthetic_nsd
    from brainlid.scoring.serial import score

    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINLID_HOME", str(home))  # inherited by the worker processes started below
    root = write_synthetic_nsd(home / "nsd")
    serial = score(MODELS, BENCHES, data_root=root, store=home / "serial.sqlite", return_result=True, **KW)
    yield home, root, serial
    mp.undo()


@pytest.fixture(scope="module")
def alg19(env):
    from brainlid.data.fixtures import write_algonauts2019

    home, _, _ = env
    return write_algonauts2019(home / "alg19", image_set="92", n_images=24, n_subjects=3, image_size=32)


@pytest.fixture(scope="module")
def cluster(env):
    with D.connect("local", workers=2, log=None) as handle:
        yield handle


def _sorted(df, keys):
    return df.sort_values(keys).reset_index(drop=True)


def _assert_same(a, b, keys=KEYS):
    pd.testing.assert_frame_equal(_sorted(a.scores, keys), _sorted(b.scores, keys), check_exact=False, rtol=1e-5,
                                  atol=1e-6)
    gk = ["model", "layer", "stimulus_set", "estimator", "K"]
    pd.testing.assert_frame_equal(_sorted(a.geometry, gk), _sorted(b.geometry, gk), check_exact=False, rtol=1e-5)


def _store_counts(path, row_key="model, layer, benchmark, metric, split, time"):
    con = sqlite3.connect(path)
    try:
        cells = pd.read_sql_query("SELECT kind, model, layer, benchmark FROM cells", con)
        dup = con.execute(f"SELECT COUNT(*) FROM (SELECT {row_key}, COUNT(*) c FROM scores "
                          f"GROUP BY {row_key} HAVING c > 1)").fetchone()[0]
        n_rows = con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    finally:
        con.close()
    return cells, dup, n_rows


def test_matches_serial_and_rerun_does_no_work(env, cluster, tmp_path):
    home, root, serial = env
    store = tmp_path / "dist.sqlite"
    res = D.score_distributed(cluster, MODELS, BENCHES, data_root=root, store=store, return_result=True, progress=False,
                              out=tmp_path / "out", **KW)
    assert res.info.cell_tasks == 12 + 2 + 4 and res.info.extraction_tasks == 4  # 2 models × 2 stimulus sets
    # ran in the worker processes, not here (how the scheduler spread 18 tasks over the 2 workers is its business)
    assert res.info.worker_pids and res.info.worker_pids <= set(cluster.client.run(os.getpid).values())
    assert os.getpid() not in res.info.worker_pids
    _assert_same(serial, res)
    # the stored rows equal the serial run's stored rows
    from brainlid.scoring.store import ResultsStore

    s_ser, s_dist = ResultsStore(home / "serial.sqlite"), ResultsStore(store)
    pd.testing.assert_frame_equal(_sorted(s_ser.scores(), KEYS), _sorted(s_dist.scores(), KEYS), check_exact=False, rtol=1e-5)
    assert set(map(tuple, s_ser.cells()[["kind", "model", "layer", "benchmark"]].values)) == \
        set(map(tuple, s_dist.cells()[["kind", "model", "layer", "benchmark"]].values))
    cells, dup, n_rows = _store_counts(store)
    assert (cells["kind"] == "scores").sum() == N_SCORE_CELLS and dup == 0
    assert (tmp_path / "out" / "scores.parquet").exists()
    # the rerun submits nothing and writes nothing, and returns the same tables from the store
    again = D.score_distributed(cluster, MODELS, BENCHES, data_root=root, store=store, return_result=True, progress=False, **KW)
    assert again.info.tasks == 0 and again.info.cells_written == 0
    assert _store_counts(store)[2] == n_rows
    _assert_same(serial, again)


def test_worker_killed_mid_run_every_cell_exactly_once(env, cluster, tmp_path):
    home, root, serial = env
    store = tmp_path / "kill.sqlite"
    pids = cluster.client.run(os.getpid)
    killed = []

    def kill_one(done, total, cell):
        if not killed:  # first committed cell: tasks are still queued and running on both workers
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, done, total))

    res = D.score_distributed(cluster, MODELS, BENCHES, data_root=root, store=store, return_result=True, progress=False,
                              callback=kill_one, **KW)
    assert killed and killed[0][1] < killed[0][2]  # killed before the last cell
    cells, dup, _ = _store_counts(store)
    assert (cells["kind"] == "scores").sum() == N_SCORE_CELLS and dup == 0
    assert not cells.duplicated().any()
    _assert_same(serial, res)
    # the nanny restarted the killed worker: the cluster is whole again
    cluster.client.wait_for_workers(2, timeout=60)
    assert killed[0][0] not in cluster.client.run(os.getpid).values()


@pytest.mark.parametrize("stop_at", ["first commit", "model-model commit"])
def test_client_stopped_mid_run_resumes_from_store_and_journal(env, cluster, tmp_path, stop_at):
    """The client dies after a commit: the rerun replays journaled layer results, computes the rest."""
    home, root, serial = env
    store = tmp_path / "stop.sqlite"

    class Stop(Exception):
        pass

    def stop(done, total, cell):
        if stop_at == "first commit" or cell[0] == "model-model":
            raise Stop

    with pytest.raises(Stop):
        D.score_distributed(cluster, MODELS, BENCHES, data_root=root, store=store, progress=False, callback=stop, **KW)
    cells, dup, _ = _store_counts(store)
    committed = (cells["kind"] == "scores").sum()
    # (the model–model task may finish last of all, after every group committed)
    assert 0 < committed and dup == 0 and (committed < N_SCORE_CELLS or stop_at == "model-model commit")
    # the first commit is either a whole (model, benchmark) group — one cell per layer — or the
    # model–model task's rows (which belong to no group): whichever the scheduler finished first
    committed_layer_cells = ((cells["kind"] == "scores") & cells["benchmark"].isin(BENCHES)).sum()
    pending = list((tmp_path / "stop.sqlite.pending").glob("*.json"))
    res = D.score_distributed(cluster, MODELS, BENCHES, data_root=root, store=store, return_result=True, progress=False,
                              **KW)
    assert res.info.cells_replayed == len(pending)
    # 18 cell tasks in the whole grid: those of committed groups are skipped, journaled ones replayed, the rest run
    assert res.info.cell_tasks + res.info.cells_replayed == 18 - committed_layer_cells
    cells, dup, _ = _store_counts(store)
    assert (cells["kind"] == "scores").sum() == N_SCORE_CELLS and dup == 0
    assert not (tmp_path / "stop.sqlite.pending").exists()  # committed entries are removed
    _assert_same(serial, res)


def test_voxel_batches_match_whole_cells(env, cluster, tmp_path):
    from brainlid.scoring import score

    home, root, serial = env
    res = score(MODELS, BENCHES[:1], data_root=root, store=False, return_result=True, client=cluster, voxel_batch=100,
                layers=LAYERS, baselines=False, mm_metrics=("mutual_knn",))
    assert res.info.cell_tasks == 6 * 4  # 384 units in batches of 100
    ref = serial.scores[serial.scores.benchmark.isin(BENCHES[:1] + ["models.nsd.subj01.test.mutual_knn"])
                        & ~serial.scores.model.str.contains("baseline|#shuffled")]
    pd.testing.assert_frame_equal(_sorted(ref, KEYS), _sorted(res.scores, KEYS), check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data", ["algonauts2019 fixture", "real k92"])
def test_rdm_benchmarks_match_serial_one_task_per_group(env, alg19, cluster, tmp_path, data):
    """RDM benchmarks on Dask: one task per (model, benchmark) group; rows equal the serial run's,
    also when the client stops after its first commit and a rerun replays the journaled groups."""
    from brainlid.scoring.serial import score

    if data == "real k92":
        root, benches = REALDATA / "k92", ["k92.monkey.IT.rsa"]  # (human IT's 4-subject bootstrap takes ~15 s a model)
        if not root.is_dir():
            pytest.skip("real k92 data absent")
    else:
        root, benches = alg19, ["algonauts2019.92.IT.rsa", "algonauts2019.92.MEG_late.rsa"]
    serial = score(RDM_MODELS, benches, data_root=root, store=False, return_result=True, **RDM_KW)
    assert {"val", "test", "all"} <= set(serial.scores.split) and serial.scores.selected.any()
    store = tmp_path / "rdm.sqlite"

    class Stop(Exception):
        pass

    def stop(done, total, cell):
        raise Stop

    with pytest.raises(Stop):
        D.score_distributed(cluster, RDM_MODELS, benches, data_root=root, store=store, progress=False, callback=stop,
                            **RDM_KW)
    pending = list((tmp_path / "rdm.sqlite.pending").glob("*.json"))
    res = D.score_distributed(cluster, RDM_MODELS, benches, data_root=root, store=store, return_result=True,
                              progress=False, **RDM_KW)
    # 5 groups (pixels, r0, r0#shuffled, r1, r1#shuffled) per benchmark, one task each, minus the committed group
    committed = res.info.groups_skipped
    assert committed <= 1 and res.info.cells_replayed == len(pending)
    assert res.info.cell_tasks + res.info.cells_replayed == 5 * len(benches) - committed
    _assert_same(serial, res, RDM_KEYS)
    # every layer cell once, plus the model–model cells (one task: the benchmarks share their images)
    cells, dup, n_rows = _store_counts(store, "model, layer, benchmark, subject, metric, split, time")
    assert (cells["kind"] == "scores").sum() == len(benches) * (1 + 2 + 1 + 2 + 1) + 2 and dup == 0
    assert (cells["kind"] == "geometry").sum() == 1 + 2 + 2  # geometry once per model and image set
    again = D.score_distributed(cluster, RDM_MODELS, benches, data_root=root, store=store, return_result=True,
                                progress=False, **RDM_KW)
    assert again.info.tasks == 0 and _store_counts(store)[2] == n_rows
    _assert_same(serial, again, RDM_KEYS)


def test_cell_that_cannot_fit_is_a_clear_error(env, alg19, cluster):
    home, root, _ = env
    with pytest.raises(D.CellMemoryError, match=r"r[01] on algonauts2019.92.IT.rsa: scoring its 2 layer\(s\) together"):
        D.score_distributed(cluster, RDM_MODELS, ["algonauts2019.92.IT.rsa"], data_root=alg19, store=False,
                            progress=False, memory_limit=2**16, **{**RDM_KW, "baselines": False})
    with pytest.raises(InputError, match="spec strings"):
        D.score_distributed(cluster, {"obj": object()}, BENCHES[:1], data_root=root, store=False, progress=False)
    with pytest.raises(D.CellMemoryError, match="reduce the features|more --memory-per-worker"):
        D.score_distributed(cluster, MODELS, BENCHES[:1], data_root=root, store=False, progress=False, memory_limit=2**20,
                            **KW)


# ----------------------------------------------------------------------------- pure planning
def test_memory_plan():
    fixed, per = D.estimate_cell_memory(8000, 1000, 4096, 20000, pca=300, n_folds=5, n_alphas=9, n_all=10000)
    # features 4·10000·4096 dominate the fixed part; 6 decompositions of 300² float64 pairs
    assert fixed == int(1.5 * (4 * 10000 * 4096 + 4 * 9000 * 300 + 16 * 6 * 300**2))
    assert per == int(1.5 * (4 * (8000 + 2000) + 32 * 1000 + 16 * 5 * 300 + 8 * 9))
    limit = fixed * 3
    b = D.plan_voxel_batches(20000, fixed, per, limit)
    assert b[0][0] == 0 and b[-1][1] == 20000 and all(x[1] == y[0] for x, y in zip(b, b[1:]))
    size = b[0][1] - b[0][0]
    assert fixed + per * size <= D.MEMORY_FRACTION * limit < fixed + per * (size + 1)
    assert D.plan_voxel_batches(20000, fixed, per, 0) == [(0, 20000)]  # unknown limit: one task
    assert D.plan_voxel_batches(10, fixed, per, 10 * limit) == [(0, 10)]
    assert D.plan_voxel_batches(10, 0, 1, 0, voxel_batch=4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(D.CellMemoryError, match="smaller --voxel-batch"):
        D.plan_voxel_batches(20000, fixed, per, limit, voxel_batch=20000)
    with pytest.raises(D.CellMemoryError, match="PCA|reduce"):
        D.plan_voxel_batches(20000, fixed, per, fixed)
    # RSA: never split by units (its bound against measured peaks: test_rsa_cell_estimate_bounds_the_measured_peak)
    f2, p2 = D.estimate_cell_memory(8000, 1000, 512, 100, pca=None, n_folds=5, n_alphas=9, metric="rsa")
    assert p2 == 6000 and f2 > 1.5 * 4 * 9000 * 512
    # an RDM-benchmark group: all layers' features and the stacked condensed RDMs (2 layers, 3 subjects + mean)
    assert D.estimate_rdm_group_memory(92, [64, 128], 3) == int(1.5 * (4 * 92 * 192 + 32 * (92 * 91 // 2) * 6))


@pytest.mark.parametrize("n, d, units, n_times, n_boot", [(300, 3000, 200, 1, 200), (200, 500, 40, 40, 200),
                                                          (250, 2000, 100, 1, 0)])
def test_rsa_cell_estimate_bounds_the_measured_peak(n, d, units, n_times, n_boot):
    """An RSA cell's estimate (model RDM in float64 blocks, brain RDMs, the corrected stimulus bootstrap with its
    second-order excess, per time point) is above the peak the cell's scoring allocates (tracemalloc) and within
    3× of it; the old model (two RDMs, no bootstrap, no time points) was below it."""
    import tracemalloc
    import types
    import warnings

    from brainlid.scoring.benchmarks import DEFAULT_PARAMS
    from brainlid.scoring.cell.responses import _rsa_rows

    p = {**DEFAULT_PARAMS, "rsa_n_boot": n_boot}
    bench = types.SimpleNamespace(params=p, metric="rsa")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    reps = rng.standard_normal((n, 3, units) + ((n_times,) if n_times > 1 else ())).astype(np.float32)
    Y, times = reps.mean(axis=1), (np.arange(n_times, dtype=float) if n_times > 1 else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _rsa_rows(X[:12], Y[:12], times, p, {}, ceiling=reps[:12])  # imports and caches out of the measurement
        tracemalloc.start()
        _rsa_rows(X, Y, times, p, {}, ceiling=reps)
        peak = tracemalloc.get_traced_memory()[1] + X.nbytes + Y.nbytes + reps.nbytes  # + the inputs it holds
        tracemalloc.stop()
    sizes = {"n_fit": 4 * n, "n_eval": n, "n_units": units * n_times, "n_times": n_times, "n_reps": 3}
    fixed, per_unit = D.estimate_benchmark_cell_memory(bench, sizes, d, n_all=n)
    est = fixed + per_unit * units * n_times
    assert peak <= est <= 3 * peak, (peak, est)
    if n_boot:
        assert 1.5 * (4 * n * d + 16 * n * n + 4 * n * units * n_times) < peak  # the old RSA model


def test_parse_memory():
    assert D.parse_memory("4GB") == 4 * 10**9
    assert D.parse_memory("4GiB") == 4 * 2**30
    assert D.parse_memory("500 MB") == 500 * 10**6
    assert D.parse_memory(123) == 123
    with pytest.raises(InputError, match="4GB"):
        D.parse_memory("lots")


def test_slurm_config_and_job_script(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path))
    assert D.load_slurm_config() == {}
    (tmp_path / "config.toml").write_text(
        '[slurm]\nqueue = "cpu"\naccount = "mylab"\ncores = 8\nprocesses = 2\nmemory = "32GB"\n'
        'walltime = "01:00:00"\njob_extra_directives = ["--constraint=avx2"]\njobs = 3\n'
        'scheduler_options = { dashboard_address = ":0" }\n')
    cfg = D.load_slurm_config()
    assert cfg["jobs"] == 3 and cfg["cores"] == 8
    cluster, shape = D.slurm_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert shape == {"processes": 2, "slots": 4, "blas_threads": 1, "memory_limit": 16 * 10**9}
    for line in ("#SBATCH -p cpu", "#SBATCH -A mylab", "#SBATCH --cpus-per-task=8", "#SBATCH -t 01:00:00",
                 "#SBATCH --constraint=avx2", "--nworkers 2", "--nthreads 4"):
        assert line in script, script
    (tmp_path / "config.toml").write_text("[slurm]\nno_such_option = 1\n")
    with pytest.raises(InputError, match="SLURM"):
        D.slurm_cluster(D.load_slurm_config())
    (tmp_path / "config.toml").write_text("[slurm\n")
    with pytest.raises(InputError, match="config.toml"):
        D.load_slurm_config()


def test_join_existing_cluster_and_bad_scheduler(cluster):
    addr = cluster.client.scheduler.address
    with D.connect(addr, log=None) as h:
        assert h.cluster is None and h.blas_threads >= 1 and h.memory_limit == cluster.memory_limit
        assert "2 worker(s)" in h.description
        assert h.client.submit(sum, [1, 2]).result() == 3
    assert cluster.client.submit(sum, [2, 2]).result() == 4  # closing the joined client left the cluster running
    with pytest.raises(InputError, match="local', 'slurm' or tcp"):
        D.connect("ssh://nowhere", log=None)
    with pytest.raises(InputError, match="workers"):
        D.connect("local", workers=0, log=None)


def test_serial_scoring_does_not_import_dask():
    code = ("import sys, brainlid.scoring, brainlid.scoring.serial, brainlid.scoring.runner, brainlid.cli; "
            "bad = [m for m in ('dask', 'distributed', 'dask_jobqueue') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_thread_share_of_local_workers(cluster):
    from brainlid.backend import available_cores

    assert cluster.blas_threads == max(1, available_cores() // 2)

    def probe(n):  # what a task sees after the per-task thread limit
        from threadpoolctl import threadpool_info

        DC._worker_threads(n)
        return __import__("torch").get_num_threads(), {i["num_threads"] for i in threadpool_info()}, os.getpid()

    addrs = list(cluster.client.scheduler_info()["workers"])
    got = [cluster.client.submit(probe, cluster.blas_threads, workers=[a], pure=False).result() for a in addrs]
    assert len({pid for *_, pid in got}) == 2
    for torch_threads, blas, _ in got:
        assert (torch_threads, blas) == (cluster.blas_threads, {cluster.blas_threads}), got


def test_cli_scheduler_joins_a_cluster(env, cluster, tmp_path, capsys):
    import json

    from brainlid.cli import main

    home, root, serial = env
    store = tmp_path / "cli.sqlite"
    args = ["score", "--benchmark", BENCHES[0], "--data-root", str(root), "--no-baselines", "--store", str(store),
            "--scheduler", cluster.client.scheduler.address, "--json"]
    for name, spec in MODELS.items():
        args[1:1] = ["--model", spec]
    args[-1:-1] = ["--layers", "embed"]
    assert main(args) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert "Dask dashboard" in out.err and "2 worker(s)" in out.err
    got = {(r["model"], r["metric"]): r["value"] for r in rows if r["metric"] == "encoding_r2"}
    ref = serial.scores[(serial.scores.split == "test") & (serial.scores.metric == "encoding_r2")
                        & (serial.scores.benchmark == BENCHES[0]) & (serial.scores.layer == "embed")]
    assert len(got) == 2
    for spec in MODELS.values():
        name = next(k for k, v in MODELS.items() if v == spec)
        assert got[(spec, "encoding_r2")] == pytest.approx(float(ref[ref.model == name]["value"].iloc[0]), rel=1e-5)
    assert cluster.client.submit(sum, [1, 1]).result() == 2  # the CLI closed its client, not the cluster
    # options that need a scheduler are refused without one (one-line error)
    res = subprocess.run([sys.executable, "-m", "brainlid", "score", "--model", MODELS["mlp"], "--benchmark", BENCHES[0],
                          "--workers", "2"], capture_output=True, text=True, env={**os.environ, "BRAINLID_HOME": str(home)})
    assert res.returncode == 1 and res.stderr.strip().startswith("brainlid: error:") and "--scheduler" in res.stderr


def test_tasks_wait_for_the_worker_warm_up(monkeypatch):
    """A task arriving while the warm-up imports (in another thread) waits instead of importing at once."""
    import threading

    monkeypatch.setattr(DC, "_warm", False)
    monkeypatch.setattr(DC, "set_threads", lambda n: None)
    done = threading.Event()
    with DC._WARM_LOCK:  # the warm-up is importing
        t = threading.Thread(target=lambda: (DC._worker_threads(1), done.set()), daemon=True)
        t.start()
        assert not done.wait(0.3)
    assert done.wait(60) and DC._warm
    t.join()
