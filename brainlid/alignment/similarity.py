"""Model–model representational similarity: mutual kNN, CKNNA, CKA, ridge R², RSA.

This module is one topic: the model–model measures and their shared input checks and
neighbourhoods. Every function takes two feature matrices over the *same stimuli in the same
order*, ``A: (n_stimuli, d_A)`` and ``B: (n_stimuli, d_B)`` (join them on stimulus
ids first, e.g. with :func:`brainlid.data.ids.match_ids`). NaN/inf or constant
feature columns are dropped with a warning that reports how many
(:func:`brainlid.alignment.rsa.check_features`); a third (time) axis on either
side is refused (use :func:`brainlid.alignment.rsa.rsa_timecourse` for
time-resolved data).

Metric ids (stable names used in score tables and by the CLI): ``mutual_knn``,
``cknna``, ``cka_linear``, ``cka_linear_unbiased``, ``cka_rbf``, ``ridge_r2``, ``rsa``.

Neighbour sets are computed once per model with the exact kNN engine
(:func:`brainlid.geometry.knn.knn`) and can be reused across pairs: pass the
:class:`Neighbours` of :func:`neighbours` instead of an array, or use
:func:`pairwise_matrix`.

References
----------
Huh, Cheung, Wang, Isola (2024) The Platonic Representation Hypothesis, ICML
(mutual kNN, CKNNA; code minyoungg/platonic-rep). Kornblith, Norouzi, Lee, Hinton
(2019) Similarity of neural network representations revisited, ICML (CKA). Song,
Smola, Gretton, Bedo, Borgwardt (2012) Feature selection via dependence
maximization, JMLR 13 (unbiased HSIC).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import InputError
from ..geometry.knn import knn
from ._ridge import DEFAULT_ALPHAS, RELATIVE_ALPHAS, check_alpha_scale, ridge_cv_fit_predict
from .dissimilarity import check_features, rdm
from .rsa import compare_rdms

__all__ = [
    "METRICS",
    "Neighbours",
    "prepare_features",
    "neighbours",
    "mutual_knn",
    "knn_overlap",
    "cknna",
    "cka",
    "cka_linear",
    "ridge_r2",
    "rsa_similarity",
    "similarity",
    "pairwise_matrix",
]

METRICS = ("mutual_knn", "cknna", "cka_linear", "cka_linear_unbiased", "cka_rbf", "ridge_r2", "rsa")

#: above this many stimuli RBF CKA (dense n x n kernels) is refused unless max_n is raised
RBF_MAX_N = 20_000


# --------------------------------------------------------------------------- input handling
def _features(X, name: str, *, dtype=np.float32) -> np.ndarray:
    if hasattr(X, "detach") and hasattr(X, "cpu"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim == 3:
        raise InputError(
            f"{name} has 3 axes {X.shape}: a time axis? Model-model similarity takes (n_stimuli, n_features); "
            f"use brainlid.alignment.rsa.rsa_timecourse for time-resolved data, or pass one time point"
        )
    return check_features(X, name, min_rows=4, dtype=dtype)


def _pair(A, B, *, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    a3 = np.ndim(A) == 3
    b3 = np.ndim(B) == 3
    if a3 != b3:
        raise InputError(
            f"A has shape {np.shape(A)} and B has shape {np.shape(B)}: a time axis on one side only; "
            "pass (n_stimuli, n_features) for both, or use rsa_timecourse"
        )
    if np.shape(A)[0] != np.shape(B)[0]:
        raise InputError(
            f"A has {np.shape(A)[0]} stimuli (rows) and B has {np.shape(B)[0]}: match them on stimulus ids first "
            "(brainlid.data.ids.match_ids)"
        )
    return _features(A, "A", dtype=dtype), _features(B, "B", dtype=dtype)


# --------------------------------------------------------------------------- neighbours
def prepare_features(X, *, q: float | None = 0.95) -> np.ndarray:
    """Huh et al. (2024) feature preparation: outlier clamp, then unit-norm rows.

    t = mean over samples of each sample's q-quantile of |x| (linear interpolation,
    as ``torch.quantile``); every element is clipped to [-t, t]; each row is then
    divided by its L2 norm. ``q=None`` (or 1) skips the clamp.

    Parameters
    ----------
    X : array of shape (n, d)

    Returns
    -------
    ndarray of shape (n, d) float32

    Raises
    ------
    InputError
        If a row is all zero after clamping (its direction is undefined).
    """
    X = np.array(X, dtype=np.float32, copy=True)
    if q is not None and q < 1:
        if not 0 < q < 1:
            raise InputError(f"q must be in (0, 1]; got {q}")
        t = float(_row_quantiles(np.abs(X), q).mean())
        np.clip(X, -t, t, out=X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    if np.any(norms == 0):
        bad = np.flatnonzero(norms == 0)
        raise InputError(f"{bad.size} rows are all zero after the outlier clamp (e.g. row {int(bad[0])})")
    X /= norms[:, None].astype(np.float32)
    return X


def _row_quantiles(V: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-quantile with linear interpolation (numpy's / torch's default), float64.

    Partitions ``V`` in place (it is a scratch array) instead of sorting copies.
    """
    d = V.shape[1]
    h = (d - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, d - 1)
    V.partition(sorted({lo, hi}), axis=1)
    vlo = V[:, lo].astype(np.float64)
    vhi = V[:, hi].astype(np.float64)
    return vlo + (h - lo) * (vhi - vlo)


@dataclass(frozen=True)
class Neighbours:
    """Precomputed neighbour sets of one model's features, reusable across pairs.

    Attributes
    ----------
    indices : ndarray (n, k_max) int32
        Neighbours by decreasing inner product of the prepared rows, self excluded.
    similarities : ndarray (n, k_max) float64
        The inner products <x_i, x_j> of the prepared rows (cosine similarities).
    self_similarities : ndarray (n,) float64
        <x_i, x_i> of the prepared rows (1 after the Huh et al. preparation); the
        diagonal of the kernel, used by the biased CKNNA. The features themselves
        are not kept, so many models' neighbours can be cached cheaply.
    """

    indices: np.ndarray
    similarities: np.ndarray
    self_similarities: np.ndarray

    @property
    def n(self) -> int:
        return self.indices.shape[0]

    @property
    def k_max(self) -> int:
        return self.indices.shape[1]

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k > self.k_max:
            raise InputError(f"the precomputed neighbours have k={self.k_max}; k={k} was asked for")
        return self.indices[:, :k], self.similarities[:, :k]


def neighbours(X, k: int = 10, *, prepare: bool = True, q: float = 0.95, memory_budget=None) -> Neighbours:
    """kNN of one model's features for :func:`mutual_knn` / :func:`cknna` (computed once, reused).

    Parameters
    ----------
    X : array of shape (n_stimuli, d)
    k : int
        Largest k that will be used (1 <= k <= n - 1).
    prepare : bool
        Apply :func:`prepare_features` (the Huh et al. recipe) first; otherwise the
        rows are used as given (inner-product neighbours).
    q : float
        Clamp quantile of :func:`prepare_features`.
    memory_budget
        Passed to :func:`brainlid.geometry.knn.knn` (blocked, never n x n).
    """
    F = _features(X, "X")
    F = prepare_features(F, q=q) if prepare else F
    res = knn(F, k, metric="inner_product", memory_budget=memory_budget, warn_on_duplicates=False)
    return Neighbours(res.indices, res.distances, np.einsum("ij,ij->i", F, F, dtype=np.float64))


def _as_neighbours(X, k: int, name: str, prepare: bool, q: float) -> Neighbours:
    if isinstance(X, Neighbours):
        X.take(k)
        return X
    if np.ndim(X) == 3:
        raise InputError(f"{name} has a time axis {np.shape(X)}; pass (n_stimuli, n_features)")
    return neighbours(X, k, prepare=prepare, q=q)


def knn_overlap(idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
    """|S_A(i) ∩ S_B(i)| per row, for two (n, k) neighbour index arrays (no repeats within a row).

    Vectorised: each row of [idx_a, idx_b] is sorted and equal neighbours counted.
    Works on stacked arrays (..., n, k) too.
    """
    both = np.concatenate([idx_a, idx_b], axis=-1)
    both.sort(axis=-1)
    return (both[..., 1:] == both[..., :-1]).sum(axis=-1)


def mutual_knn(A, B, k: int = 10, *, prepare: bool = True, q: float = 0.95, return_per_stimulus: bool = False):
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    score = (1/n) sum_i ``|S_A(i) ∩ S_B(i)|`` / k, where S_X(i) are the k nearest
    neighbours of stimulus i (self excluded) by inner product of the prepared rows
    (:func:`prepare_features`: clamp at the mean per-sample 95th percentile of
    ``|x|``, then L2-normalise rows). Chance level for unrelated spaces is k/(n-1).

    Parameters
    ----------
    A, B : array of shape (n_stimuli, d_A), (n_stimuli, d_B), or :class:`Neighbours`
        Features (same stimuli, same order) or their precomputed neighbours.
    k : int
        Neighbours per stimulus (default 10, as the reference).
    prepare, q
        See :func:`neighbours` (ignored for precomputed :class:`Neighbours`).
    return_per_stimulus : bool
        Also return the per-stimulus overlaps ``|S_A(i) ∩ S_B(i)| / k``, shape (n,).

    Returns
    -------
    float in [0, 1], or (float, ndarray (n,) float64)

    Notes
    -----
    The reference breaks exact similarity ties by argsort order; brainlid's exact
    kNN breaks them by the smaller index. Cost: two blocked kNN searches,
    O(n^2 d) time, O(n k) memory.
    """
    if not isinstance(A, Neighbours) and not isinstance(B, Neighbours):
        A, B = _pair(A, B)
    na = _as_neighbours(A, k, "A", prepare, q)
    nb = _as_neighbours(B, k, "B", prepare, q)
    if na.n != nb.n:
        raise InputError(f"A has {na.n} stimuli and B has {nb.n}")
    per = knn_overlap(na.take(k)[0], nb.take(k)[0]) / k
    score = float(per.mean())
    return (score, per.astype(np.float64)) if return_per_stimulus else score


# --------------------------------------------------------------------------- CKNNA
def _masked_hsic(rows, cols, kv, lv, n, unbiased: bool) -> float:
    """HSIC (reference formulas) of the sparse matrices K~ = M∘K, L~ = M∘L given as
    COO triplets (rows, cols) with values kv, lv. K and L are symmetric, M need not be."""
    from scipy import sparse  # start-up: scipy stays out of `brainlid align` for the other metrics

    Km = sparse.csr_matrix((kv, (rows, cols)), shape=(n, n))
    Lm = sparse.csr_matrix((lv, (rows, cols)), shape=(n, n))
    tr_kl = float(Km.multiply(Lm.T).sum())  # sum_ij K~_ij L~_ji
    k_row = np.asarray(Km.sum(axis=1)).ravel()
    k_col = np.asarray(Km.sum(axis=0)).ravel()
    l_row = np.asarray(Lm.sum(axis=1)).ravel()
    l_col = np.asarray(Lm.sum(axis=0)).ravel()
    k_sum, l_sum = float(kv.sum()), float(lv.sum())
    one_kl_one = float(k_col @ l_row)  # 1' K~ L~ 1
    if unbiased:
        # Song et al. (2012) eq. 5 on matrices with zero diagonal
        val = tr_kl + k_sum * l_sum / ((n - 1) * (n - 2)) - 2 * one_kl_one / (n - 2)
        return val / (n * (n - 3))
    one_lk_one = float(l_col @ k_row)  # 1' L~ K~ 1
    # trace(K~ H L~ H), H = I - 11'/n
    return tr_kl - (one_lk_one + one_kl_one) / n + k_sum * l_sum / n**2


def cknna(A, B, k: int = 10, *, unbiased: bool = True, prepare: bool = True, q: float = 0.95) -> float:
    """Centred kernel nearest-neighbour alignment (CKNNA; Huh et al. 2024).

    With linear kernels K = A'A'ᵀ, L = B'B'ᵀ of the prepared rows A', B' and the pair
    mask M_ij = [j ∈ kNN_A(i) ∧ j ∈ kNN_B(i)] (i != j when ``unbiased``),

        CKNNA = Align(K, L) / sqrt(Align(K, K) · Align(L, L)),
        Align(K, L) = HSIC(M∘K, M∘L),

    where Align(K, K) uses kNN_A's own mask (and Align(L, L) kNN_B's), HSIC is the
    unbiased estimator of Song et al. (2012) (``unbiased=True``, the default) or
    trace(K H L H), exactly as in the reference code (minyoungg/platonic-rep
    ``metrics.py``, whose 1e-6 in the denominator brainlid omits). With
    ``unbiased=False`` each point's neighbour set contains itself (the
    reference's top-k includes the diagonal), i.e. self + its k-1 nearest others.
    As k -> n-1 (unbiased) the mask covers every pair i != j and CKNNA equals
    unbiased linear CKA of the prepared features.

    Computed from the two kNN lists only (sparse, O(n k) memory); the kernel
    values of masked pairs are the inner products the kNN search returns.

    Parameters
    ----------
    A, B : arrays (n_stimuli, d) or :class:`Neighbours`
    k : int
        Neighbours, k >= 2.

    Returns
    -------
    float
    """
    if k < 2:
        raise InputError(f"CKNNA needs k >= 2; got {k}")
    if not isinstance(A, Neighbours) and not isinstance(B, Neighbours):
        A, B = _pair(A, B)
    kk = k if unbiased else k - 1
    na = _as_neighbours(A, kk, "A", prepare, q)
    nb = _as_neighbours(B, kk, "B", prepare, q)
    n = na.n
    if nb.n != n:
        raise InputError(f"A has {n} stimuli and B has {nb.n}")
    if n < 4:
        raise InputError("CKNNA needs at least 4 stimuli")
    ia, sa = na.take(kk)
    ib, sb = nb.take(kk)
    if not unbiased:  # self first, as the reference's top-k over K with its diagonal
        ar = np.arange(n, dtype=ia.dtype)[:, None]
        sa_self = na.self_similarities[:, None]
        sb_self = nb.self_similarities[:, None]
        ia, sa = np.hstack([ar, ia]), np.hstack([sa_self, sa])
        ib, sb = np.hstack([ar, ib]), np.hstack([sb_self, sb])
    rows = np.repeat(np.arange(n), ia.shape[1])

    def own(idx, sims):
        return _masked_hsic(rows, idx.ravel(), sims.ravel(), sims.ravel(), n, unbiased)

    # joint mask: entries of kNN_A(i) that are also in kNN_B(i); K values from A's list,
    # L values = <b_i, b_j> looked up in B's list
    order_b = np.argsort(ib, axis=1)
    ib_sorted = np.take_along_axis(ib, order_b, axis=1)
    sb_sorted = np.take_along_axis(sb, order_b, axis=1)
    pos = np.empty_like(ia)
    for r in range(0, n, 4096):  # searchsorted row by row, vectorised over blocks of rows
        blk = slice(r, min(n, r + 4096))
        off = (np.arange(blk.stop - blk.start) * (n + 1))[:, None]
        flat = (ib_sorted[blk] + off).ravel()
        p = np.searchsorted(flat, (ia[blk] + off).ravel()).reshape(ia[blk].shape)
        pos[blk] = p - np.arange(blk.stop - blk.start)[:, None] * ib.shape[1]
    pos_c = np.clip(pos, 0, ib.shape[1] - 1)
    hit = np.take_along_axis(ib_sorted, pos_c, axis=1) == ia
    l_at = np.take_along_axis(sb_sorted, pos_c, axis=1)
    kl = _masked_hsic(rows[hit.ravel()], ia[hit], sa[hit], l_at[hit], n, unbiased)
    kk_ = own(ia, sa)
    ll_ = own(ib, sb)
    if kk_ <= 0 or ll_ <= 0:
        raise InputError(
            f"CKNNA is undefined here: the self-alignment of {'A' if kk_ <= 0 else 'B'} is {min(kk_, ll_):.3g} <= 0 "
            f"(too few neighbours or degenerate features); try a larger k"
        )
    return float(kl / np.sqrt(kk_ * ll_))


# --------------------------------------------------------------------------- CKA
def _linear_side_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-side terms of the unbiased HSIC of K = XXᵀ (float64): diag(K), K~1, 1ᵀK~1 with K~ = K - diag(K)."""
    kd = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    sx = X.sum(axis=0, dtype=np.float64)
    k1 = (X @ sx.astype(X.dtype)).astype(np.float64) - kd  # K~1 = X(Xᵀ1) - diag(K)
    ksum = float(sx @ sx) - float(kd.sum())
    return kd, k1, ksum


def _hsic_from_terms(tr: float, n: int, sa=None, sb=None) -> float:
    """HSIC from tr(KL) = ||XᵀY||_F^2 (biased, = trace(K H L H) for column-centred X, Y), or the
    unbiased estimator (Song et al. 2012, eq. 5) when the per-side stats are given:

      [tr(K~L~) + 1ᵀK~1 · 1ᵀL~1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK~L~1] / (n(n-3)),
      tr(K~L~) = ||XᵀY||_F^2 - sum_i |x_i|^2 |y_i|^2.
    """
    if sa is None:
        return tr
    kd, k1, ksum = sa
    ld, l1, lsum = sb
    val = (tr - float(kd @ ld)) + ksum * lsum / ((n - 1) * (n - 2)) - 2 * float(k1 @ l1) / (n - 2)
    return val / (n * (n - 3))


def _frob2(P: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", P, P, dtype=np.float64))


def cka_linear(A, B, *, unbiased: bool = False) -> float:
    """Linear CKA in feature space (never n x n).

    biased: CKA = ||AcᵀBc||_F^2 / (||AcᵀAc||_F ||BcᵀBc||_F) with column-centred Ac, Bc
    (Kornblith et al. 2019); unbiased: the same ratio of unbiased HSIC estimates
    (Song et al. 2012), computed from O(n d) per-side terms (see :func:`_hsic_from_terms`).
    Cost: three float32 GEMMs AcᵀBc, AcᵀAc, BcᵀBc (O(n (d_A^2 + d_B^2 + d_A d_B)))
    with float64 accumulation of the Frobenius norms; memory O(d_A d_B + d_A^2 + d_B^2 + n d).

    Invariant to orthogonal transforms and isotropic scaling of either side; 1 for
    A vs A Q.
    """
    A, B = _pair(A, B)
    n = A.shape[0]
    Ac = A - A.mean(axis=0, dtype=np.float64).astype(np.float32)
    Bc = B - B.mean(axis=0, dtype=np.float64).astype(np.float32)
    sa = _linear_side_stats(Ac) if unbiased else None
    sb = _linear_side_stats(Bc) if unbiased else None
    hab = _hsic_from_terms(_frob2(Ac.T @ Bc), n, sa, sb)
    haa = _hsic_from_terms(_frob2(Ac.T @ Ac), n, sa, sa)
    hbb = _hsic_from_terms(_frob2(Bc.T @ Bc), n, sb, sb)
    if haa <= 0 or hbb <= 0:
        raise InputError("CKA is undefined: the (unbiased) HSIC of a representation with itself is <= 0")
    return float(hab / np.sqrt(haa * hbb))


def _rbf_gram(X: np.ndarray, sigma: float | None) -> np.ndarray:
    X = X.astype(np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0)
    np.fill_diagonal(D, 0)
    if sigma is None:
        s2 = float(np.median(D))  # Kornblith et al.: median squared distance (diagonal included)
        if s2 <= 0:
            raise InputError("the median squared distance is 0 (mostly duplicate rows); pass sigma")
        return np.exp(-D / (2 * s2))
    return np.exp(-D / (2 * float(sigma) ** 2))


def _hsic_dense(K: np.ndarray, L: np.ndarray, unbiased: bool) -> float:
    n = K.shape[0]
    if unbiased:
        Kt = K.copy()
        Lt = L.copy()
        np.fill_diagonal(Kt, 0)
        np.fill_diagonal(Lt, 0)
        val = (
            float((Kt * Lt.T).sum())
            + Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
            - 2 * float(Kt.sum(axis=0) @ Lt.sum(axis=1)) / (n - 2)
        )
        return val / (n * (n - 3))
    Kc = K - K.mean(axis=0, keepdims=True) - K.mean(axis=1, keepdims=True) + K.mean()
    return float((Kc * L).sum())  # trace(K H L H) for symmetric L


def cka(A, B, kernel: str = "linear", *, unbiased: bool = False, sigma: float | None = None,
        max_n: int = RBF_MAX_N) -> float:
    """Centred kernel alignment (Kornblith et al. 2019).

    Parameters
    ----------
    A, B : arrays (n_stimuli, d_A), (n_stimuli, d_B)
    kernel : {"linear", "rbf"}
        ``"linear"`` is computed in feature space (:func:`cka_linear`, never n x n).
        ``"rbf"``: ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``; needs dense n x n float64
        kernels (about 3 · 8 n^2 bytes: 2.4 GB at n = 10,000), refused above ``max_n``
        stimuli and warned about above 5,000.
    unbiased : bool
        Unbiased HSIC (Song et al. 2012) instead of trace(K H L H).
    sigma : float or None
        RBF bandwidth; ``None``: sigma^2 = median squared pairwise distance, per side
        (Kornblith et al.'s ``threshold=1``).
    """
    if kernel == "linear":
        return cka_linear(A, B, unbiased=unbiased)
    if kernel != "rbf":
        raise InputError(f"unknown CKA kernel {kernel!r}; use 'linear' or 'rbf'")
    A, B = _pair(A, B)
    n = A.shape[0]
    if n > max_n:
        raise InputError(
            f"RBF CKA needs dense {n}x{n} kernels (~{3 * 8 * n * n / 1e9:.1f} GB); refused above max_n={max_n}. "
            "Use linear CKA, subsample stimuli, or raise max_n"
        )
    if n > 5000:
        warnings.warn(f"RBF CKA on {n} stimuli builds dense n x n kernels (~{3 * 8 * n * n / 1e9:.1f} GB)",
                      UserWarning, stacklevel=2)
    K = _rbf_gram(A, sigma)
    L = _rbf_gram(B, sigma)
    hkl = _hsic_dense(K, L, unbiased)
    hkk = _hsic_dense(K, K, unbiased)
    hll = _hsic_dense(L, L, unbiased)
    if hkk <= 0 or hll <= 0:
        raise InputError("CKA is undefined: the HSIC of a representation with itself is <= 0")
    return float(hkl / np.sqrt(hkk * hll))


# --------------------------------------------------------------------------- ridge R^2
def _pca_fit_transform(train: np.ndarray, test: np.ndarray, n_components: int | None):
    mu = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    tr = train - mu
    te = test - mu
    if n_components is None or n_components >= min(tr.shape):
        return tr, te
    # PCA on the training split only, via the SVD of the centred training rows
    _, _, Vt = np.linalg.svd(tr, full_matrices=False)
    V = Vt[:n_components].T
    return tr @ V, te @ V


def ridge_r2(A, B, *, n_components: int | None = 300, alphas=None, n_folds: int = 5, inner_folds: int = 5,
             multioutput: str = "variance_weighted", seed: int = 0, backend: str = "auto",
             return_directions: bool = False, alpha_scale: str = "relative"):
    """Cross-validated ridge R² between two models, averaged over A→B and B→A (Yu et al. 2026).

    For each direction X→Y and each of ``n_folds`` outer folds (shuffled KFold,
    ``seed``): both embeddings are reduced to ``n_components`` PCs fitted on the
    training stimuli only (``None`` keeps all features, centred), a ridge with
    alpha chosen by ``inner_folds``-fold inner CV per target
    (:func:`brainlid.alignment._ridge.ridge_cv_fit_predict`) predicts Y's test
    embedding from X's, and the held-out R² is computed with ``multioutput``
    (``"variance_weighted"`` [ours, default]: 1 - SSE/SST pooled over components;
    ``"uniform_average"``: mean of per-component R²). Scores are averaged over
    folds, then over the two directions.

    The α grid is relative by default (``alpha_scale="relative"``, grid
    :data:`~brainlid.alignment._ridge.RELATIVE_ALPHAS` = ``np.logspace(-4, 4, 9)``, multiples of
    ``trace(XᵀX)/n_features`` of each fold's training PCs), as for encoding scores, so the score
    is invariant to rescaling either model's features (A → cA, B → cB); ``alphas=`` is then a
    relative grid too. ``alpha_scale="absolute"`` takes ``alphas`` as penalties in the units of
    the PCs (default grid ``np.logspace(-2, 8, 11)``; the score then depends on feature scale).

    Returns
    -------
    float, or (float, {"A->B": float, "B->A": float}) with ``return_directions``.
    """
    from sklearn.model_selection import KFold  # start-up: scikit-learn stays out of `brainlid align`

    A, B = _pair(A, B)
    n = A.shape[0]
    if n_folds < 2 or n_folds > n:
        raise InputError(f"n_folds must be in [2, n_stimuli={n}]; got {n_folds}")
    if multioutput not in ("variance_weighted", "uniform_average"):
        raise InputError(f"multioutput must be 'variance_weighted' or 'uniform_average'; got {multioutput!r}")
    check_alpha_scale(alpha_scale)
    if alphas is None:
        alphas = RELATIVE_ALPHAS if alpha_scale == "relative" else DEFAULT_ALPHAS
    kf = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = {}
    for name, X, Y in (("A->B", A, B), ("B->A", B, A)):
        fold_scores = []
        for tr, te in kf.split(X):
            Xtr, Xte = _pca_fit_transform(X[tr], X[te], n_components)
            Ytr, Yte = _pca_fit_transform(Y[tr], Y[te], n_components)
            res = ridge_cv_fit_predict(Xtr, Ytr, Xte, alphas=alphas, n_folds=inner_folds, center=True,
                                       backend=backend, seed=seed, alpha_scale=alpha_scale)
            pred = np.asarray(res.predictions, dtype=np.float64)
            Yte64 = Yte.astype(np.float64)
            sse = ((Yte64 - pred) ** 2).sum(axis=0)
            sst = ((Yte64 - Yte64.mean(axis=0)) ** 2).sum(axis=0)
            if multioutput == "variance_weighted":
                fold_scores.append(1 - sse.sum() / sst.sum())
            else:
                ok = sst > 0
                fold_scores.append(float(np.mean(1 - sse[ok] / sst[ok])))
        scores[name] = float(np.mean(fold_scores))
    score = 0.5 * (scores["A->B"] + scores["B->A"])
    return (score, scores) if return_directions else score


# --------------------------------------------------------------------------- RSA between models
def rsa_similarity(A, B, *, rdm_method: str = "correlation", compare: str = "spearman") -> float:
    """RSA between two models: compare their RDMs (:mod:`brainlid.alignment.rsa`)."""
    A, B = _pair(A, B)
    return float(compare_rdms(rdm(A, rdm_method), rdm(B, rdm_method), compare))


# --------------------------------------------------------------------------- dispatch
def similarity(A, B, metric: str = "mutual_knn", **kwargs) -> float:
    """Any model–model metric by id (see :data:`METRICS`); ``kwargs`` go to that function."""
    if metric == "mutual_knn":
        return mutual_knn(A, B, **kwargs)
    if metric == "cknna":
        return cknna(A, B, **kwargs)
    if metric == "cka_linear":
        return cka_linear(A, B, **kwargs)
    if metric == "cka_linear_unbiased":
        return cka_linear(A, B, unbiased=True, **kwargs)
    if metric == "cka_rbf":
        return cka(A, B, "rbf", **kwargs)
    if metric == "ridge_r2":
        return ridge_r2(A, B, **kwargs)
    if metric == "rsa":
        return rsa_similarity(A, B, **kwargs)
    raise InputError(f"unknown similarity metric {metric!r}; choose one of {', '.join(METRICS)}")


def pairwise_matrix(features_by_model: Mapping[str, object], metric: str = "mutual_knn", **kwargs):
    """Similarity between every pair of models, with per-model work done once.

    For ``mutual_knn`` / ``cknna`` each model's neighbours are computed once (at
    the requested ``k``); for ``rsa`` each model's RDM is computed once; other
    metrics are computed pair by pair. Symmetric metrics fill both triangles.

    Parameters
    ----------
    features_by_model : mapping name -> array (n_stimuli, d)
        Same stimuli, same order, for every model.
    metric : str
        See :data:`METRICS`.

    Returns
    -------
    pandas.DataFrame (models x models) float64; the diagonal is the metric of a model with itself.
    """
    import pandas as pd  # start-up: pandas stays out of `brainlid align`

    names = list(features_by_model)
    if len(names) < 1:
        raise InputError("no models given")
    feats = dict(features_by_model)
    if metric in ("mutual_knn", "cknna"):
        k = kwargs.get("k", 10)
        prep = kwargs.get("prepare", True)
        q = kwargs.get("q", 0.95)
        kk = k if (metric == "mutual_knn" or kwargs.get("unbiased", True)) else k - 1
        feats = {m: neighbours(feats[m], kk, prepare=prep, q=q) for m in names}
        ns = {m: v.n for m, v in feats.items()}
        if len(set(ns.values())) > 1:
            raise InputError(f"models have different numbers of stimuli: {ns}")
    elif metric == "rsa":
        rm = kwargs.get("rdm_method", "correlation")
        cmp_ = kwargs.get("compare", "spearman")
        rdms = np.stack([rdm(_features(feats[m], m), rm) for m in names])
        return pd.DataFrame(compare_rdms(rdms, rdms, cmp_), index=names, columns=names)
    M = np.empty((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            b = names[j]
            # every metric here is symmetric (ridge R^2 averages both directions)
            M[i, j] = M[j, i] = similarity(feats[a], feats[b], metric, **kwargs)
    return pd.DataFrame(M, index=names, columns=names)
