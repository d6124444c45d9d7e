# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Scaling out — the scoring grid on Dask (this machine, a running cluster, or SLURM)
#
# Scoring a model zoo is a grid: models × layers × benchmarks × subjects. Every **cell** (one
# layer of one model on one benchmark) is an independent ridge fit, so the grid parallelises
# well; on NSD it is thousands of fits, and labs run it on clusters. brainlid does not schedule
# anything itself: it hands the cells to **Dask's distributed scheduler**.
#
# * `brainlid score ... --scheduler local` starts a `LocalCluster` on this machine: one worker
#   process per core (or `--workers N`), each running one task at a time with its share of the
#   BLAS threads, so the machine is never oversubscribed.
# * `--scheduler tcp://HOST:PORT` joins a cluster that is already running.
# * `--scheduler slurm` submits Dask workers as SLURM jobs (dask-jobqueue), configured in the
#   `[slurm]` section of `$BRAINLID_HOME/config.toml`.
#
# Without `--scheduler` scoring stays serial and Dask is not even imported (it is the
# `distributed` extra: `pip install 'brainlid[distributed]'`).
#
# **What moves where.** A model's features are extracted **once**, by one task, into the shared
# feature cache; the scoring tasks that follow read them **by cache key** on the worker (a
# memory map), so no feature array is ever pickled into the task graph. Workers return rows;
# the client alone writes the results store, cell by cell, as tasks finish. Rerunning a command
# skips the cells already stored, a task whose worker dies is rerun, and no cell is ever
# written twice.
#
# **Data.** This page runs on the demo's **synthetic** NSD-format subjects (digits as images,
# "voxels" that are noisy linear read-outs of digit features) with two small digit networks at
# random initialisation: it demonstrates the machinery, not a finding about brains.

# %%
import time

import _common
import numpy as np

from brainlid.scoring import score
from brainlid.scoring import distributed as D
from brainlid.scoring.store import ResultsStore

OUT = _common.output_dir("tutorial06")
root = _common.synthetic_nsd()
models = {"mlp": "entrypoint:brainlid.demo.zoo:mlp_w64_d3@random", "cnn": "entrypoint:brainlid.demo.zoo:cnn_c4_d2@random"}
layers = {"mlp": ["hidden.0", "hidden.1", "embed"], "cnn": ["blocks.0", "blocks.1", "embed"]}
benchmarks = ["nsd.subj01.nsdgeneral.encoding"]
grid = dict(layers=layers, data_root=root, baselines=False, mm_metrics=("mutual_knn",))

# %% [markdown]
# ## The serial run (the reference)
#
# 2 models × 3 layers × 1 benchmark = 6 cells, plus the model–model alignment. The first run
# also extracts the features into the cache.

# %%
t0 = time.perf_counter()
serial = score(models, benchmarks, store=OUT / "serial.sqlite", return_result=True, **grid)
print(f"serial: {time.perf_counter() - t0:.1f} s, {len(serial.scores)} score rows")

# %% [markdown]
# ## The same grid on a local cluster of 2 worker processes
#
# `D.connect("local", workers=2)` starts the cluster and prints the dashboard link (the
# dashboard needs `bokeh`). `score(..., client=...)` runs the grid on it, with a progress bar of
# finished cells. The client decides how many voxels one task may take from the workers'
# memory limit (`--memory-per-worker`) and the estimated ridge memory; a cell that cannot fit
# even as a small batch stops with an error that says so (use PCA, or more memory).

# %%
cluster = D.connect("local", workers=2)
t0 = time.perf_counter()
dist = score(models, benchmarks, store=OUT / "dask.sqlite", client=cluster, return_result=True, **grid)
print(f"dask: {time.perf_counter() - t0:.1f} s (includes starting the workers' Python, torch and numba)")
info = dist.info
print(f"{info.tasks} tasks ({info.extraction_tasks} extraction, {info.cell_tasks} cell) on {len(info.worker_pids)} worker "
      f"processes; {info.cells_written} cells written; {info.task_seconds:.1f} s of task time, "
      f"{info.plan_seconds:.1f} s planning, {info.wall_seconds:.1f} s wall")

# %% [markdown]
# The rows are the serial rows (up to float rounding; the workers use 1 BLAS thread each):

# %%
keys = ["model", "layer", "benchmark", "split", "metric"]
a = serial.scores.sort_values(keys).reset_index(drop=True)
b = dist.scores.sort_values(keys).reset_index(drop=True)
assert (a[keys].values == b[keys].values).all()
print(f"max |serial − dask| over {len(a)} scores: {float(np.nanmax(np.abs(a['value'] - b['value']))):.1e}")
test = b[(b.split == "test") & (b.metric == "encoding_r2")]
print(test[["model", "layer", "value", "normalised", "selected"]].round(3).to_string(index=False))

# %% [markdown]
# ## Resuming
#
# Run the same command again (after a crash, a cancelled job, or just to be sure): every cell is
# already in the store, so nothing is submitted.

# %%
again = score(models, benchmarks, store=OUT / "dask.sqlite", client=cluster, return_result=True, **grid)
print("tasks submitted on the rerun:", again.info.tasks)
print("cells in the store:", len(ResultsStore(OUT / "dask.sqlite").cells()))
cluster.close()

# %% [markdown]
# ## An existing Dask cluster
#
# Start a scheduler and workers however your site does it, e.g.
#
# ```bash
# dask scheduler --port 8786                       # on the head node
# dask worker tcp://head:8786 --nworkers 4 --nthreads 1 --memory-limit 16GB   # on each node
# brainlid score --model torchvision:resnet18 --benchmark nsd.subj01.nsdgeneral.encoding \
#     --scheduler tcp://head:8786
# ```
#
# or from Python, `client = distributed.Client("tcp://head:8786")` and
# `score(..., client=client)`. brainlid gives each task `host cores / task slots on the host`
# BLAS threads.
#
# **Shared file system.** The workers read the datasets and the feature cache at the *same
# paths* as the client: put `$BRAINLID_DATA` and `$BRAINLID_HOME/cache` on a file system every
# node mounts (the client passes its cache folder to the tasks). The results store
# (`$BRAINLID_HOME/results.sqlite`) is written only by the client and may stay local.
#
# ## SLURM
#
# `--scheduler slurm` reads the `[slurm]` section of `$BRAINLID_HOME/config.toml`; its keys are
# [dask-jobqueue `SLURMCluster`](https://jobqueue.dask.org/en/latest/generated/dask_jobqueue.SLURMCluster.html)
# arguments, plus `jobs`, the number of jobs to submit (`--workers` overrides it):
#
# ```toml
# [slurm]
# queue = "cpu"
# account = "mylab"
# cores = 16              # per job
# processes = 4           # Dask workers per job
# memory = "64GB"         # per job (16 GB per worker)
# walltime = "04:00:00"
# local_directory = "$TMPDIR"
# job_extra_directives = ["--constraint=avx2"]
# jobs = 8
# ```
#
# Without that section dask-jobqueue's own `jobqueue.slurm` configuration
# (`~/.config/dask/jobqueue.yaml`) is used. Run `brainlid score` itself on the login node (or in
# a small job): it is the scheduler's client and the only writer of the results store.
# `D.slurm_cluster(D.load_slurm_config())[0].job_script()` shows the job script it would submit.
