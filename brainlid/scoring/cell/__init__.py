"""The scoring cell: pure per-cell functions both runners call (serial :mod:`brainlid.scoring.serial`,
Dask :mod:`brainlid.scoring.distributed`).

* :mod:`.responses` — splits, one layer's encoding / RSA rows on a response benchmark, the provenance
  of a row;
* :mod:`.batches` — an encoding cell in unit (voxel) batches, joined again;
* :mod:`.selection` — best-layer choice on ``val`` rows, the comparison arrays kept;
* :mod:`.geometry` — LID / global geometry rows, model–model rows;
* :mod:`.rdms` — the rows of RDM benchmarks (published brain RDMs, split-half layer selection);
* :mod:`.layers` — :func:`score_features`, all layers of one model on one benchmark.
"""

from .batches import batched_encoding_rows, unit_scores_batch
from .geometry import geometry_rows, model_model_rows
from .layers import score_features
from .rdms import rdm_score_rows, score_rdm_features
from .responses import (RSA_CEILING_METHOD, base_row, encoding_rows, id_positions, lid_positions, make_splits,
                        rsa_split_half_ceiling, score_layer, split_ids, unit_scores_for_layer)
from .selection import KEEP_ARRAYS, keep_arrays, prune_kept, select_best_layer

__all__ = [
    "make_splits", "split_ids", "base_row", "id_positions", "lid_positions", "score_layer", "encoding_rows",
    "unit_scores_batch", "batched_encoding_rows", "unit_scores_for_layer", "rsa_split_half_ceiling",
    "RSA_CEILING_METHOD", "geometry_rows", "model_model_rows", "select_best_layer", "keep_arrays", "prune_kept",
    "KEEP_ARRAYS", "score_features", "rdm_score_rows", "score_rdm_features",
]
