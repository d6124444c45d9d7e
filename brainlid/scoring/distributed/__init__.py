"""The scoring grid on Dask: a local cluster, an existing cluster, or SLURM.

``brainlid score ... --scheduler local|tcp://HOST:PORT|slurm`` (and
``brainlid.scoring.score(..., client=...)``) runs the same grid as the serial
:func:`brainlid.scoring.serial.score`, with Dask's distributed scheduler placing the tasks.
Without a scheduler nothing here is imported and Dask is not needed (it is the
``distributed`` extra: ``pip install 'brainlid[distributed]'``).

Tasks
    The grid — model names, layers, baseline groups, which group measures geometry, which
    benchmark runs the model–model task — is :func:`brainlid.scoring.plan.plan_grid`'s, the
    serial runner's plan; this module only maps it onto tasks:

    * one **extraction** task per (model spec, benchmark stimulus set): it runs
      :func:`brainlid.features.extract` on a worker, which writes every layer into the shared
      feature cache, and returns only the cache keys and shapes. It runs once, before that
      model's scoring tasks, which are submitted when it finishes;
    * one **cell** task per (model, layer, benchmark): :func:`brainlid.scoring.cell.score_layer`
      on the layer's features, read **by cache key on the worker** (a read-only memory map;
      never an array pickled into the task graph), plus that layer's geometry rows when the
      serial run would measure them there. For large ROIs an encoding cell is split into
      **voxel batches** (one task per batch of units, see :func:`plan_voxel_batches`); their
      per-unit scores are joined on the client, which makes the rows;
    * one **group** task per (model, RDM benchmark) (``kind="rdms"``, published brain RDMs):
      :func:`brainlid.scoring.cell.score_rdm_features` on all the model's layers
      together, read by cache key on the worker — the split-half layer selection compares every
      layer on the same image halves, and an RDM of ≤ a few hundred images is cheap, so the
      group is not split (its memory is checked with :func:`estimate_rdm_group_memory`);
    * one **model–model** task per benchmark stimulus set with two models or more.

    The benchmark's responses are loaded on the worker (from the shared data root, cached per
    worker process), so tasks carry only ids, keys and paths.

Modules
    :mod:`.cluster` (start or join a cluster, thread shares, worker warm-up), :mod:`.memory`
    (the memory model and voxel batches), :mod:`.tasks` (what runs on the workers), :mod:`.journal`
    (the client's book-keeping against the store) and :mod:`.run` (the driver,
    :func:`score_distributed`). This face re-exports their public names.

Exactly once, resumable
    The client is the **only writer** of the results store (SQLite must never sit on a network
    file system under concurrent writers): workers return rows, the client commits them as
    tasks finish (:func:`distributed.as_completed`), one transaction per store cell. The best
    layer is chosen across the layers of a (model, benchmark), so the layer cells of that pair
    are committed together, as soon as its last layer finishes. Rerunning the same command
    submits nothing for cells already in the store (``if_exists="skip"``); a task whose worker
    dies is rerun by Dask (``retries`` and the scheduler's ``allowed-failures``), and a cell is
    committed at most once per run; the store's ``UNIQUE`` cell key rejects any second copy.

Shared file system
    The feature cache (``$BRAINLID_HOME/cache/features``) and the dataset root must be on a file
    system that every worker sees at the same path (the client passes its cache folder to the
    tasks). The results store stays with the client and may be local.

Memory
    Each encoding cell's ridge memory is estimated (:func:`estimate_cell_memory`) and compared
    with the workers' memory limit; cells that do not fit are split into voxel batches, and a
    cell whose fixed part (features, PCA, Gram/kernel decompositions) alone does not fit raises
    :class:`CellMemoryError` with the numbers and what to change.

Threads
    Every task limits BLAS and torch threads in its worker process to the worker's share of the
    cores (:func:`brainlid.backend.set_threads`), so ``n_workers × threads ≤ cores``.

SLURM configuration
    ``--scheduler slurm`` builds a :class:`dask_jobqueue.SLURMCluster` from the ``[slurm]``
    section of ``$BRAINLID_HOME/config.toml`` (keys are :class:`~dask_jobqueue.SLURMCluster`
    arguments, plus ``jobs``, the number of jobs to submit); without that section dask-jobqueue's
    own configuration (``~/.config/dask/jobqueue.yaml``, ``jobqueue.slurm``) is used::

        [slurm]
        queue = "cpu"
        account = "mylab"
        cores = 16            # per job
        processes = 4         # Dask workers per job (4 cores each)
        memory = "64GB"       # per job
        walltime = "04:00:00"
        local_directory = "$TMPDIR"
        job_extra_directives = ["--constraint=avx2"]
        jobs = 8
"""

from .cluster import ClusterHandle, connect, load_slurm_config, slurm_cluster
from .memory import (MEMORY_FRACTION, CellMemoryError, cell_sizes, estimate_benchmark_cell_memory, estimate_cell_memory,
                     estimate_rdm_group_memory, parse_memory, plan_voxel_batches)
from .run import RETRIES, DistributedRunInfo, score_distributed

__all__ = [
    "ClusterHandle", "connect", "load_slurm_config", "score_distributed", "estimate_cell_memory",
    "estimate_benchmark_cell_memory", "cell_sizes", "plan_voxel_batches", "estimate_rdm_group_memory",
    "CellMemoryError", "DistributedRunInfo", "parse_memory", "slurm_cluster", "MEMORY_FRACTION", "RETRIES",
]
