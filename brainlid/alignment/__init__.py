"""Alignment of representations with brains and with each other (floor 2: uses data, features and
geometry; used by scoring).

* :mod:`~brainlid.alignment.encoding` — voxelwise encoding models: :func:`fit_encoding` (the one
  pipeline: train-only PCA, ridge with a relative α grid, per-unit r / R², stimulus bootstrap),
  :func:`encoding_scores`, :func:`brain_encoding_scores`, :func:`banded_encoding_scores`;
* :mod:`~brainlid.alignment.rsa` — :func:`rdm`, :func:`compare_rdms`, :func:`rdm_timecourse`,
  :func:`rsa_timecourse`;
* :mod:`~brainlid.alignment.ceiling` — noise ceilings: :func:`split_half_reliability`,
  :func:`nc_from_ncsnr`, :func:`spearman_brown`, :func:`normalise_r2`, :func:`normalise_r`,
  :func:`rsa_noise_ceiling`, :func:`rdm_split_half_reliability`, :func:`group_split_half_reliability`;
* :mod:`~brainlid.alignment.brain_rdms` — a model's RDMs against a set of brain RDMs:
  :func:`score_model_rdms`, :func:`score_brain_rdms`;
* :mod:`~brainlid.alignment.similarity` — model–model measures: :func:`mutual_knn`, :func:`cknna`,
  :func:`cka`, :func:`ridge_r2`, :func:`pairwise_matrix` (and :func:`~brainlid.alignment.similarity.similarity` by metric id);
* :mod:`~brainlid.alignment.uncertainty`, :mod:`~brainlid.alignment.rsa_bootstrap` — stimulus
  bootstraps: :func:`bootstrap_ci`, :func:`paired_bootstrap_test`, :func:`rdm_bootstrap_ci`;
* :mod:`~brainlid.alignment.null` — permutation nulls: :func:`permutation_null`.

The names are imported on first use (the command line's start-up stays light).
"""

from __future__ import annotations

from .._lazy import lazy_face

_FACE = {
    **dict.fromkeys(["fit_encoding", "encoding_scores", "brain_encoding_scores", "banded_encoding_scores",
                     "EncodingScores", "ridge_cv_fit_predict"], ".encoding"),
    **dict.fromkeys(["rdm", "compare_rdms", "rdm_timecourse", "rsa_timecourse", "square_rdm"], ".rsa"),
    **dict.fromkeys(["split_half_reliability", "nc_from_ncsnr", "spearman_brown", "normalise_r2", "normalise_r",
                     "rsa_noise_ceiling", "rdm_split_half_reliability", "group_split_half_reliability",
                     "rdm_session_reliability"], ".ceiling"),
    **dict.fromkeys(["score_model_rdms", "score_brain_rdms"], ".brain_rdms"),
    **dict.fromkeys(["mutual_knn", "cknna", "cka", "ridge_r2", "pairwise_matrix"], ".similarity"),
    **dict.fromkeys(["bootstrap_ci", "paired_bootstrap_test"], ".uncertainty"),
    "rdm_bootstrap_ci": ".rsa_bootstrap",
    "permutation_null": ".null",
}

__all__ = list(_FACE)
__getattr__, __dir__ = lazy_face(__name__, _FACE)
