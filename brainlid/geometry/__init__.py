"""Geometry of representations: exact kNN, local and global intrinsic dimension.

* :func:`knn` — exact k nearest neighbours (Euclidean, cosine, inner product), blocked,
  float32 candidates re-ranked in float64 (:mod:`brainlid.geometry.knn`).
* :func:`lid`, :func:`lid_pointwise`, :func:`lid_sweep`, :func:`global_dimension`,
  :func:`summarize` — the plain functions (:mod:`brainlid.geometry.dimension`), over the
  pointwise estimators (Levina–Bickel MLE, MOM, MADA, local TwoNN; :mod:`brainlid.geometry.local`)
  and the global measures (participation ratio, PCA dimensions, TwoNN, MLE at K = N − 1;
  :mod:`brainlid.geometry.global_`).
* :class:`MLE`, :class:`MOM`, :class:`MADA`, :class:`TwoNN` — scikit-dimension-style estimators
  (:mod:`brainlid.geometry.estimators`).

Registries and defaults, the package's one vocabulary (their modules import only numpy):
:data:`ESTIMATORS` (name → pointwise function), :data:`AGGREGATES`, :data:`NORMS`,
:data:`GLOBAL_MEASURES`, :data:`DEFAULT_K` (20) and the K-sweep :data:`DEFAULT_KS`;
:func:`check_k` is the one check of a neighbourhood size.
"""

from . import global_, local
from ._validate import DuplicatePointsWarning, check_k
from .dimension import (
    Neighbours,
    check_options,
    global_dimension,
    lid,
    lid_pointwise,
    lid_sweep,
    neighbours,
    summarize,
)
from .estimators import MADA, MLE, MOM, TwoNN
from .global_ import (
    GLOBAL_MEASURES,
    covariance_eigenvalues,
    participation_ratio,
    pca_dimensions,
    twonn_from_distances,
)
from .knn import KNN, METRICS, knn
from .local import (
    AGGREGATES,
    DEFAULT_K,
    DEFAULT_KS,
    ESTIMATORS,
    NORMS,
    aggregate,
    default_ks,
    mada_pointwise,
    mle_pointwise,
    mom_pointwise,
    twonn_pointwise,
)

__all__ = [
    "KNN", "knn", "METRICS",
    "lid", "lid_pointwise", "lid_sweep", "global_dimension", "summarize", "neighbours", "Neighbours",
    "MLE", "MOM", "MADA", "TwoNN",
    "mle_pointwise", "mom_pointwise", "mada_pointwise", "twonn_pointwise", "aggregate",
    "covariance_eigenvalues", "participation_ratio", "pca_dimensions", "twonn_from_distances",
    "ESTIMATORS", "NORMS", "AGGREGATES", "GLOBAL_MEASURES", "DEFAULT_K", "DEFAULT_KS", "default_ks",
    "check_k", "check_options", "DuplicatePointsWarning",
    "local", "global_", "dimension",
]
