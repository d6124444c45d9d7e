"""The geometry part of ``brainlid demo``: LID and global dimension of built-in examples.

Datasets (all local, nothing is downloaded):

* ``digits`` — scikit-learn's bundled handwritten digits (1797 images of 8×8 pixels, 64-d);
* ``cube5_in_64d`` — 2000 points uniform in [0, 1]^5, linearly embedded in R^64 by a random
  Gaussian matrix (true dimension 5);
* ``swiss_roll`` — 2000 points of scikit-learn's swiss roll (a 2-d manifold in R^3).

Every row of the table comes from one exact kNN (:func:`brainlid.geometry.neighbours`) at
K = :data:`~brainlid.geometry.DEFAULT_K` (20).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import global_ as _global
from . import local as _local
from .dimension import neighbours
from .local import DEFAULT_K

__all__ = ["demo_datasets", "demo_table"]


def demo_datasets(seed: int = 0, n: int = 2000) -> dict[str, tuple[np.ndarray, int | None]]:
    """``{name: (X float32 (n, d), true intrinsic dimension or None)}`` for the demo."""
    from sklearn.datasets import load_digits, make_swiss_roll  # heavy: sklearn (only the demo needs it)

    rng = np.random.default_rng(seed)
    digits = load_digits().data.astype(np.float32)
    cube = (rng.random((n, 5)) @ rng.standard_normal((5, 64))).astype(np.float32)
    roll, _ = make_swiss_roll(n_samples=n, random_state=seed)
    return {"digits": (digits, None), "cube5_in_64d": (cube, 5), "swiss_roll": (roll.astype(np.float32), 2)}


def demo_table(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    """One row per demo dataset: n, dim, true_dim, MLE at k = 5/10/K (mean), MLE at K
    (MacKay–Ghahramani), MOM and MADA at K, local TwoNN at K, global TwoNN,
    participation ratio and PCA dimension at 95 % variance (K = :data:`~brainlid.geometry.DEFAULT_K` = 20)."""
    K = DEFAULT_K
    rows = []
    for name, (X, true_dim) in demo_datasets(seed, n).items():
        nb = neighbours(X, K)
        lam = _global.covariance_eigenvalues(nb.X)
        rows.append({
            "dataset": name,
            "n": nb.n,
            "dim": nb.dim,
            "true_dim": true_dim if true_dim is not None else "?",
            "MLE k=5": _local.aggregate(_local.mle_pointwise(nb.dists, 5)),
            "MLE k=10": _local.aggregate(_local.mle_pointwise(nb.dists, 10)),
            f"MLE k={K}": _local.aggregate(_local.mle_pointwise(nb.dists, K)),
            f"MLE-MG k={K}": _local.aggregate(_local.mle_pointwise(nb.dists, K), "harmonic"),
            f"MOM k={K}": _local.aggregate(_local.mom_pointwise(nb.dists, K)),
            f"MADA k={K}": _local.aggregate(_local.mada_pointwise(nb.dists, K)),
            f"TwoNN local k={K}": _local.aggregate(_local.twonn_pointwise(nb.dists, nb.indices, K)),
            "TwoNN": _global.twonn_from_distances(nb.dists[:, 0], nb.dists[:, 1]),
            "PR": _global.participation_ratio(lam),
            "PCA95": _global.pca_dimensions(lam)[0.95],
        })
    return pd.DataFrame(rows)
