"""Deprecated: the RDM benchmarks' code moved to the floor it belongs to.

* the stimulus bootstrap of RDM comparisons (:func:`rdm_bootstrap_ci`, :func:`second_order_excess`,
  :func:`excess_shrink`, ``BOOTSTRAP_METHODS``, ``CI_METHOD``) and :func:`split_half` →
  :mod:`brainlid.alignment.rsa_bootstrap`;
* the score rows of an RDM benchmark (:func:`rdm_score_rows`, :func:`score_rdm_features`) →
  :mod:`brainlid.scoring.cell.rdms` (also on the face :mod:`brainlid.scoring.cell`);
* :func:`load_benchmark_rdms` → :mod:`brainlid.scoring.benchmarks` (the registry, beside ``RDM_BENCHMARKS``).

The old names keep working here with a ``DeprecationWarning`` naming the new place.
"""

from .._deprecate import forward

_BOOT = "brainlid.alignment.rsa_bootstrap"

__getattr__ = forward(__name__, {
    **{name: _BOOT for name in ("split_half", "rdm_bootstrap_ci", "second_order_excess", "excess_shrink",
                                "BOOTSTRAP_METHODS", "CI_METHOD", "_tie_groups", "_weighted_ranks", "_plain_ranks",
                                "_weighted_similarity", "_pair_incidence")},
    "rdm_score_rows": "brainlid.scoring.cell.rdms",
    "score_rdm_features": "brainlid.scoring.cell.rdms",
    "load_benchmark_rdms": "brainlid.scoring.benchmarks",
})
