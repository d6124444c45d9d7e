"""RDMs from responses: :func:`rdm` (correlation, squared Euclidean, cosine, crossnobis), :func:`rdm_timecourse`.

RDMs are returned in *condensed* form: a vector of the n(n-1)/2 upper-triangle entries in
:func:`scipy.spatial.distance.squareform` order. Inputs are held in float32 by default and the RDM is
returned in float32, but every inner product is accumulated in float64 (centring, norms and one GEMM per
block of rows and of columns), so an RDM never depends on the BLAS library's thread count or summation
order, and an RDM of thousands of stimuli never needs more than a block of the n x n matrix. The
dissimilarities and their conventions (those of rsatoolbox) are listed in :mod:`brainlid.alignment.rsa`,
which re-exports everything here.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from ..errors import InputError

__all__ = ["RDM_METHODS", "check_features", "rdm", "rdm_timecourse", "noise_precision_from_residuals"]

RDM_METHODS = ("correlation", "euclidean", "cosine", "crossnobis")

#: bytes one block of the n x n product may take
_BLOCK_BYTES = 64 * 2**20


# --------------------------------------------------------------------------- helpers
def check_features(X, name: str = "X", *, min_rows: int = 3, dtype=np.float32,
                   drop_constant: bool = True) -> np.ndarray:
    """Validate a ``(n_stimuli, n_features)`` array and drop unusable feature columns.

    Columns containing NaN/inf are dropped with a :class:`UserWarning` that reports how many.
    Constant columns (zero variance across stimuli) are dropped too when ``drop_constant``
    (they carry no information for kernel/neighbour measures and would make some of them NaN);
    :func:`rdm` keeps them (``drop_constant=False``), as rsatoolbox does, because a constant
    unit still enters each pattern's mean and norm, hence correlation and cosine distances.

    Returns
    -------
    X : ndarray of shape (n_stimuli, n_kept) and ``dtype``
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{name} must be 2-D (n_stimuli, n_features); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise InputError(f"{name} must be a real numeric array; got dtype {X.dtype}")
    n, p = X.shape
    if n < min_rows:
        raise InputError(f"{name} has {n} stimuli (rows); at least {min_rows} are needed")
    if p == 0:
        raise InputError(f"{name} has no feature columns")
    X = np.asarray(X, dtype=dtype)
    # one pass of column min and max: NaN propagates and ±inf shows in one of them
    with np.errstate(invalid="ignore", over="ignore"):
        mn = X.min(axis=0)
        mx = X.max(axis=0)
    finite = np.isfinite(mn) & np.isfinite(mx)
    const = finite & (mn == mx) if drop_constant else np.zeros_like(finite)
    bad = ~finite | const
    if bad.all():
        raise InputError(
            f"{name}: all {p} features are unusable ({int((~finite).sum())} with NaN/inf, "
            f"{int(const.sum())} constant across stimuli)"
        )
    if bad.any():
        warnings.warn(
            f"{name}: dropped {int(bad.sum())} of {p} features ({int((~finite).sum())} with NaN/inf, "
            f"{int(const.sum())} constant across stimuli)",
            UserWarning,
            stacklevel=3,
        )
        X = np.ascontiguousarray(X[:, ~bad])
    return X


def _block_rows(n: int, width: int, itemsize: int) -> int:
    return int(max(1, min(n, _BLOCK_BYTES // max(1, width * itemsize))))


def _condensed_from_blocks(n: int, block: Callable[[int, int], np.ndarray], dtype,
                           itemsize: int | None = None) -> np.ndarray:
    """Assemble a condensed RDM of ``dtype`` from row blocks.

    ``block(s, e)`` returns the (e - s, n - s) block of the dissimilarity matrix
    for rows s..e-1 and columns s..n-1; only its strictly-upper part is kept.
    ``itemsize``: bytes per element of the blocks (default: ``dtype``'s), for the block budget.
    """
    out = np.empty(n * (n - 1) // 2, dtype=dtype)
    step = _block_rows(n, n, itemsize or np.dtype(dtype).itemsize)
    pos = 0
    for s in range(0, n - 1, step):
        e = min(n, s + step)  # e == n in one block lets BLAS use the symmetric product (syrk)
        blk = block(s, e)
        rows = np.arange(s, e)[:, None]
        cols = np.arange(s, n)[None, :]
        vals = blk[cols > rows]
        out[pos : pos + vals.size] = vals
        pos += vals.size
    assert pos == out.size
    return out


def _dot64(A: np.ndarray, B: np.ndarray, s: int, e: int, prep=None) -> np.ndarray:
    """``P(A)[s:e] @ P(B)[s:].T`` accumulated in float64, over column chunks converted on the fly.

    Parameters
    ----------
    A, B : ndarray of shape (n, p), any real dtype (float32 storage)
    s, e : int
        Rows ``s..e-1`` of A against rows ``s..n-1`` of B.
    prep : callable ``(chunk, rows) -> float64 chunk``, optional
        Per-row transform applied to a column chunk (e.g. centring and scaling);
        ``rows`` is the row slice the chunk came from. Default: a float64 cast.

    Returns
    -------
    G : ndarray of shape (e - s, n - s) float64
        Independent of the BLAS thread count up to float64 rounding (~1e-16
        relative), hence identical once rounded to float32.
    """
    n, p = B.shape
    prep = prep or (lambda chunk, rows: chunk.astype(np.float64))
    width = int(max(1, min(p, (_BLOCK_BYTES // 2) // max(1, 8 * (n - s)))))
    same = A is B and s == 0 and e == n  # one block of a Gram matrix: P @ P.T (BLAS may use syrk)
    G = np.zeros((e - s, n - s))
    for c in range(0, p, width):
        cols = slice(c, min(p, c + width))
        Pb = prep(B[s:, cols], slice(s, n))
        Pa = Pb if same else prep(A[s:e, cols], slice(s, e))
        G += Pa @ Pb.T
    return G


def _gram_condensed(A: np.ndarray, *, transform, dtype, prep=None) -> np.ndarray:
    """Condensed ``transform(G, s, e)`` over row blocks, G = ``_dot64(A, A, s, e, prep)``, output ``dtype``."""
    n = A.shape[0]

    def block(s, e):
        return transform(_dot64(A, A, s, e, prep), s, e)

    return _condensed_from_blocks(n, block, dtype, itemsize=8)


# --------------------------------------------------------------------------- RDMs
def noise_precision_from_residuals(X, *, method: str = "diag") -> np.ndarray:
    """Noise precision per unit from the residuals of repeated measurements.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_reps, n_units)
        Repeated measurements; missing repetitions are rows of NaN.
    method : {"diag"}
        ``"diag"``: univariate noise normalisation, precision_u = 1 / s_u^2 with
        s_u^2 = sum of squared residuals from each stimulus' mean / dof,
        dof = sum_i (n_i - 1).

    Returns
    -------
    precision : ndarray of shape (n_units,) float64
        Pass it as ``noise=`` to :func:`rdm` (a diagonal precision).
    """
    if method != "diag":
        raise InputError(f"unknown noise estimation method {method!r}; use 'diag' or pass a precision matrix")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise InputError(f"repeated measurements must be (stimulus, rep, unit); got shape {X.shape}")
    mean = np.nanmean(X, axis=1, keepdims=True)
    present = ~np.isnan(X).all(axis=2)
    dof = int((present.sum(axis=1) - 1).clip(min=0).sum())
    if dof < 1:
        raise InputError("noise estimation needs at least one stimulus with 2 or more repetitions")
    var = np.nansum((X - mean) ** 2, axis=(0, 1)) / dof
    if np.any(var <= 0):
        raise InputError(f"{int((var <= 0).sum())} units have zero noise variance; drop them first")
    return 1.0 / var


def _prepare_reps(X, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(stimulus, rep, unit) with NaN-padded reps -> zero-filled array and presence mask (n, r)."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise InputError(f"repeated measurements must be 3-D (stimulus, rep, unit); got shape {X.shape}")
    X = np.asarray(X, dtype=dtype)
    finite = np.isfinite(X)
    present = finite.any(axis=2)  # a rep of all-NaN is padding
    # units with NaN inside a present repetition are dropped; constant units are kept (they add 0 to
    # every cross-validated distance but count in p, as in rsatoolbox)
    drop = (~finite & present[:, :, None]).any(axis=(0, 1))
    Xz = np.where(finite, X, 0).astype(dtype, copy=False)
    if drop.all():
        raise InputError(f"all {X.shape[2]} units are unusable (NaN inside a present repetition)")
    if drop.any():
        warnings.warn(
            f"dropped {int(drop.sum())} of {X.shape[2]} units (with NaN inside a present repetition)",
            UserWarning,
            stacklevel=4,
        )
        Xz = Xz[:, :, ~drop]
    Xz[~present] = 0
    return np.ascontiguousarray(Xz), present, ~drop


def _crossnobis(X, *, noise, cv: str, dtype) -> np.ndarray:
    Xz, present, keep = _prepare_reps(X, dtype)
    n, r, p = Xz.shape
    n_rep = present.sum(axis=1)
    if np.any(n_rep < 2):
        raise InputError(
            f"crossnobis needs at least 2 repetitions per stimulus; {int((n_rep < 2).sum())} of {n} stimuli "
            f"have fewer"
        )
    if cv not in ("folds", "trials"):
        raise InputError(f"cv must be 'folds' or 'trials'; got {cv!r}")
    # apply the noise precision on one side of every inner product: <x Lambda, y>
    if noise is None:
        XL = Xz
    else:
        L = np.asarray(noise, dtype=np.float64)
        if L.ndim == 1:
            L = L[keep] if L.shape[0] == keep.size and L.shape[0] != p else L
            if L.shape != (p,):
                raise InputError(f"noise precision has shape {np.shape(noise)}; expected ({p},) or ({p}, {p})")
            XL = Xz * L.astype(dtype)
        elif L.ndim == 2:
            if L.shape == (keep.size, keep.size) and keep.size != p:
                L = L[np.ix_(keep, keep)]
            if L.shape != (p, p):
                raise InputError(f"noise precision has shape {np.shape(noise)}; expected ({p},) or ({p}, {p})")
            XL = (Xz.reshape(n * r, p) @ L.astype(dtype)).reshape(n, r, p)
        else:
            raise InputError("noise must be None, a (p,) diagonal precision or a (p, p) precision matrix")
    S = Xz.sum(axis=1)  # (n, p) sums over reps
    SL = XL.sum(axis=1)
    cat = Xz.reshape(n, r * p)
    catL = XL.reshape(n, r * p)
    # self term: mean over ordered pairs of distinct reps of <x_a, x_b>
    self_num = np.einsum("ij,ij->i", S.astype(np.float64), SL.astype(np.float64)) - np.einsum(
        "ij,ij->i", cat.astype(np.float64), catL.astype(np.float64)
    )
    nr = n_rep.astype(np.float64)
    c_self = self_num / (nr * (nr - 1))
    pres = present.astype(dtype)

    def block(s, e):
        cross = _dot64(SL, S, s, e)  # sum over all rep pairs (float64 accumulation)
        if cv == "folds":
            same = _dot64(catL, cat, s, e)  # same-fold pairs, excluded
            common = pres[s:e] @ pres[s:].T
            denom = np.outer(nr[s:e], nr[s:]) - common
            c_ij = (cross - same) / denom
        else:
            c_ij = cross / np.outer(nr[s:e], nr[s:])
        d = c_self[s:e, None] + c_self[None, s:] - 2 * c_ij
        return d / p

    return _condensed_from_blocks(n, block, dtype, itemsize=8)


def rdm(X, method: str = "correlation", *, noise=None, cv: str = "folds", dtype=np.float32) -> np.ndarray:
    """Representational dissimilarity matrix (condensed) of a set of response patterns.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_units) or (n_stimuli, n_reps, n_units)
        Response patterns. With a repetition axis (NaN-padded when ragged),
        ``"crossnobis"`` uses the repetitions; the other methods average them
        first (``nanmean``). Units with NaN/inf are dropped with a warning that
        reports how many; constant units are kept (rsatoolbox's convention: they
        change correlation and cosine distances through each pattern's mean and norm).
    method : {"correlation", "euclidean", "cosine", "crossnobis"}
        Dissimilarity, see the module docstring (rsatoolbox's conventions;
        ``"euclidean"`` is the squared distance divided by the number of units).
    noise : None, array of shape (n_units,) or (n_units, n_units)
        Noise precision for ``"crossnobis"`` (multivariate noise normalisation):
        inner products become <x, Lambda y>. ``None`` is the identity (cross-
        validated Euclidean). :func:`noise_precision_from_residuals` estimates a
        diagonal one.
    cv : {"folds", "trials"}
        Crossnobis cross-validation. ``"folds"`` (rsatoolbox's convention): the
        repetition index is a fold (e.g. a run) whose noise may be shared across
        stimuli, so every product of two measurements from the same fold is
        excluded: with s_ij = mean over (a in reps_i, b in reps_j, fold_a !=
        fold_b) of <x_a, Lambda x_b>, d_ij = (s_ii + s_jj - 2 s_ij) / p. For
        balanced data this equals rsatoolbox's leave-one-fold-out ``calc_rdm(...,
        method='crossnobis')``; for ragged data it equals
        ``calc_rdm_unbalanced``. ``"trials"``: independent trials, only
        products of a measurement with itself are excluded (s_ij = <m_i, Lambda m_j>
        for i != j).
    dtype : numpy dtype
        Storage dtype of the responses and output dtype of the RDM (float32 by default;
        float64 for reference-grade numbers). Inner products, centring and norms are
        accumulated in float64 either way, so the RDM does not depend on the BLAS thread
        count (a serial and a Dask run give the same float32 RDM).

    Returns
    -------
    d : ndarray of shape (n_stimuli * (n_stimuli - 1) / 2,)
        Condensed RDM in ``scipy.spatial.distance.squareform`` order.

    Notes
    -----
    Cost O(n^2 p) in float64 matrix products, memory O(n p) in ``dtype`` plus one block
    of rows of the n x n product (64 MB) and one float64 column chunk (32 MB). Correlation: Z = rows centred and scaled to unit norm,
    d_ij = 1 - z_i . z_j. Euclidean: ``(|x_i|^2 + |x_j|^2 - 2 x_i . x_j) / p``.

    References
    ----------
    Nili et al. (2014) PLoS Comput Biol 10:e1003553. Walther et al. (2016)
    NeuroImage 137:188-200.
    """
    if method not in RDM_METHODS:
        raise InputError(f"unknown RDM method {method!r}; choose one of {', '.join(RDM_METHODS)}")
    X = np.asarray(X)
    if method == "crossnobis":
        if X.ndim != 3:
            raise InputError(
                f"crossnobis needs repeated measurements (stimulus, rep, unit); got shape {X.shape}"
            )
        if X.shape[0] < 2:
            raise InputError("an RDM needs at least 2 stimuli")
        return _crossnobis(X, noise=noise, cv=cv, dtype=dtype)
    if X.ndim == 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            X = np.nanmean(np.asarray(X, dtype=np.float64), axis=1)
    if X.ndim != 2:
        raise InputError(f"responses must be (stimulus, unit) or (stimulus, rep, unit); got shape {X.shape}")
    X = check_features(X, "responses", min_rows=2, dtype=dtype, drop_constant=False)
    n, p = X.shape
    if method in ("correlation", "cosine"):
        # centring and norms in float64, chunk by chunk (no float64 copy of X)
        mean = X.mean(axis=1, dtype=np.float64) if method == "correlation" else np.zeros(n)
        width = int(max(1, min(p, (_BLOCK_BYTES // 2) // (8 * n))))
        sumsq = np.zeros(n)
        for c in range(0, p, width):
            D = X[:, c : c + width].astype(np.float64)
            D -= mean[:, None]
            sumsq += np.einsum("ij,ij->i", D, D)
        del D  # before the Gram's own chunk: one float64 chunk at a time
        norms = np.sqrt(sumsq)
        if np.any(norms == 0):
            bad = np.flatnonzero(norms == 0)
            what = "constant across units" if method == "correlation" else "all zero"
            raise InputError(
                f"{bad.size} stimuli have patterns {what} (e.g. row {int(bad[0])}); "
                f"their {method} distance is undefined"
            )

        def standardise(chunk, rows):  # one float64 copy of the chunk, centred and scaled in place
            c = chunk.astype(np.float64)
            c -= mean[rows, None]
            c /= norms[rows, None]
            return c

        def one_minus(G, s, e):
            np.subtract(1, G, out=G)
            return G

        return _gram_condensed(X, transform=one_minus, dtype=dtype, prep=standardise)
    # euclidean (squared, / p)
    sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)

    def transform(G, s, e):
        D = sq[s:e, None] + sq[None, s:] - 2 * G
        np.maximum(D, 0, out=D)
        return D / p

    return _gram_condensed(X, transform=transform, dtype=dtype)


def rdm_timecourse(X, method: str = "correlation", **kwargs) -> np.ndarray:
    """One RDM per time point.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_units, n_times) or (n_stimuli, n_reps, n_units, n_times)
        Time-resolved responses in brainlid's canonical axis order.
    method, **kwargs
        As :func:`rdm`.

    Returns
    -------
    d : ndarray of shape (n_times, n_pairs)
    """
    X = np.asarray(X)
    if X.ndim not in (3, 4):
        raise InputError(
            f"time-resolved responses must be (stimulus, unit, time) or (stimulus, rep, unit, time); "
            f"got shape {X.shape}"
        )
    return np.stack([rdm(X[..., t], method, **kwargs) for t in range(X.shape[-1])])
