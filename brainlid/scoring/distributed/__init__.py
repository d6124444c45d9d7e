"""The scoring grid on Dask (a package: see :mod:`brainlid.scoring.distributed.run`)."""

from .run import (MEMORY_FRACTION, RETRIES, CellMemoryError, ClusterHandle, DistributedRunInfo, cell_sizes, connect,
                  estimate_benchmark_cell_memory, estimate_cell_memory, estimate_rdm_group_memory, load_slurm_config,
                  parse_memory, plan_voxel_batches, score_distributed, slurm_cluster)

__all__ = [
    "ClusterHandle", "connect", "load_slurm_config", "score_distributed", "estimate_cell_memory",
    "estimate_benchmark_cell_memory", "cell_sizes", "plan_voxel_batches", "estimate_rdm_group_memory",
    "CellMemoryError", "DistributedRunInfo", "parse_memory", "slurm_cluster", "MEMORY_FRACTION", "RETRIES",
]
