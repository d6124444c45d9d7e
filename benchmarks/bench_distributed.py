"""The scoring grid serially vs on a Dask LocalCluster of 2 worker processes.

Grid: 2 models (random-weight digits MLP and CNN from the demo zoo) × 3 layers × 2 NSD-format
fixture benchmarks (:func:`brainlid.data.fixtures.write_nsd`: subjects 1 and 2, ``nsdgeneral``,
3,312 voxels, 500 stimuli; ``--quick``: 160 stimuli, a smaller volume), plus the pixels and
shuffled baselines and model–model mutual kNN: 18 cell tasks and 4 extraction tasks. Features are extracted once, before
timing (both paths then read the same feature cache); each worker is warmed by one untimed run
(process start, imports and numba compilation are reported separately as the cold run).

Reported (times interleaved, median of ``repeats``):

* serial and distributed wall time of the whole grid, and the speed-up;
* the client's planning time (it loads each benchmark's splits and resolves the layers before
  submitting anything) and the idle time per task in the grid,
  ``(wall · slots − Σ task seconds) / tasks``: the time a worker slot was not running a task
  (planning, scheduler round trips, commits, waiting on extraction, the tail of the grid);
* the bare Dask round trip per task: 400 no-op tasks through the same ``as_completed`` loop.

Run: ``python -m benchmarks distributed`` (``--quick``: one repeat).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks._common import print_table, timeit_interleaved

MODELS = {"mlp": "entrypoint:brainlid.demo.zoo:mlp_w64_d3@random", "cnn": "entrypoint:brainlid.demo.zoo:cnn_c4_d2@random"}
LAYERS = {"mlp": ["hidden.0", "hidden.1", "embed"], "cnn": ["blocks.0", "blocks.1", "embed"]}
BENCHES = ["nsd.subj01.nsdgeneral.encoding", "nsd.subj02.nsdgeneral.encoding"]


def _noop(i):
    return i


def main(quick: bool = False) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    os.environ["BRAINLID_HOME"] = str(home)  # before the workers start: they inherit it
    from distributed import as_completed

    from brainlid.data.fixtures import write_nsd
    from brainlid.scoring import distributed as D
    from brainlid.scoring.serial import score

    n_images, shape = (160, (10, 12, 8)) if quick else (500, (24, 24, 16))
    root = write_nsd(home / "nsd", subjects=(1, 2), n_images=n_images, n_shared=min(150, n_images // 3), n_sessions=3,
                     shape=shape, spaces=("func1pt8mm",), img_size=16, n_total=4000)
    kw = dict(layers=LAYERS, baselines=("pixels", "shuffled"), mm_metrics=("mutual_knn",), data_root=root, store=False)
    t0 = time.perf_counter()
    score(MODELS, BENCHES, **kw)  # extraction into the cache + warm-up of this process
    first_serial = time.perf_counter() - t0
    handle = D.connect("local", workers=2, log=None)
    try:
        t0 = time.perf_counter()
        cold = D.score_distributed(handle, MODELS, BENCHES, progress=False, return_result=True, **kw)
        cold_wall = time.perf_counter() - t0
        infos = []

        def dist():
            infos.append(D.score_distributed(handle, MODELS, BENCHES, progress=False, return_result=True, **kw).info)

        times = timeit_interleaved({"serial": lambda: score(MODELS, BENCHES, **kw), "dask 2 workers": dist},
                                   repeats=1 if quick else 3, warmup=False)
        info = infos[-1]
        slots = 2
        overhead = max(0.0, times["dask 2 workers"] * slots - info.task_seconds) / max(1, info.tasks)

        client = handle.client
        n = 400
        t0 = time.perf_counter()
        for f in as_completed([client.submit(_noop, i, pure=False) for i in range(n)]):
            f.result()
        noop = (time.perf_counter() - t0) / n
    finally:
        handle.close()

    print_table([
        {"run": "serial (warm cache)", "wall_s": round(times["serial"], 2), "tasks": "-", "speed_up": 1.0},
        {"run": "dask 2 workers (warm)", "wall_s": round(times["dask 2 workers"], 2), "tasks": info.tasks,
         "speed_up": round(times["serial"] / times["dask 2 workers"], 2)},
        {"run": "dask 2 workers (cold: start-up, imports, JIT)", "wall_s": round(cold_wall, 2), "tasks": cold.info.tasks,
         "speed_up": round(times["serial"] / cold_wall, 2)},
    ], title=f"score grid: 2 models × 3 layers × {len(BENCHES)} benchmarks + baselines ({info.cell_tasks} cell tasks, "
             f"{n_images} stimuli), first serial run incl. extraction {first_serial:.1f} s")
    print_table([
        {"measure": "task seconds (extraction + cells, summed, warm run)", "value": f"{info.task_seconds:.2f} s"},
        {"measure": "mean task time", "value": f"{1e3 * info.task_seconds / max(1, info.tasks):.0f} ms"},
        {"measure": "client planning before the first task (warm run)", "value": f"{info.plan_seconds:.2f} s"},
        {"measure": "idle slot time per task in the grid: (wall·2 − Σtask)/tasks", "value": f"{1e3 * overhead:.0f} ms"},
        {"measure": f"bare Dask round trip per no-op task ({n} tasks)", "value": f"{1e3 * noop:.2f} ms"},
    ], title="scheduling overhead")


if __name__ == "__main__":
    main()
