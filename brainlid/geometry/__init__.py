"""Geometry of representations: exact kNN, local and global intrinsic dimension.

* :func:`knn` — exact k nearest neighbours (Euclidean, cosine, inner product), blocked,
  float32 candidates re-ranked in float64 (:mod:`brainlid.geometry.knn`).
* :func:`lid`, :func:`lid_pointwise`, :func:`lid_sweep` — local intrinsic dimension
  (Levina–Bickel MLE, MOM, MADA, local TwoNN; :mod:`brainlid.geometry.local`).
* :func:`global_dimension` — participation ratio, PCA dimensions, TwoNN, MLE at K = N − 1
  (:mod:`brainlid.geometry.global_`).
* :class:`MLE`, :class:`MOM`, :class:`MADA`, :class:`TwoNN` — scikit-dimension-style estimators.
"""

from . import global_, local
from ._validate import DuplicatePointsWarning
from .estimators import (
    MADA,
    MLE,
    MOM,
    Neighbours,
    TwoNN,
    global_dimension,
    lid,
    lid_pointwise,
    lid_sweep,
    neighbours,
    summarize,
)
from .global_ import covariance_eigenvalues, participation_ratio, pca_dimensions, twonn_from_distances
from .knn import KNN, METRICS, knn
from .local import (
    AGGREGATES,
    DEFAULT_KS,
    ESTIMATORS,
    NORMS,
    aggregate,
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
    "ESTIMATORS", "NORMS", "AGGREGATES", "DEFAULT_KS", "DuplicatePointsWarning",
    "local", "global_",
]
