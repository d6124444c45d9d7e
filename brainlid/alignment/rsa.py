"""Representational similarity analysis: RDMs and RDM comparisons.

RDMs are returned in *condensed* form: a vector of the n(n-1)/2 upper-triangle
entries in :func:`scipy.spatial.distance.squareform` order (row-major,
(0,1), (0,2), ..., (1,2), ...). Inputs are held in float32 by default and the
RDM is returned in float32, but every inner product is accumulated in float64
(centring, norms and one GEMM per block of rows and of columns, converted on the
fly), so an RDM never depends on the BLAS library's thread count or summation
order (which changed float32 RDMs by 1 ulp, hence the ranks of near-tied pairs
and Spearman comparisons by ~1e-6 between a serial and a Dask run), and an RDM
of thousands of stimuli never needs more than a block of the n x n matrix.

Dissimilarities (``rdm(method=...)``), with the same conventions as rsatoolbox
(Nili et al. 2014; rsatoolbox ``calc_rdm``), so numbers are comparable:

``"correlation"``
    1 - Pearson r between the two response patterns (across units).
``"euclidean"``
    **Squared** Euclidean distance divided by the number of units,
    ||x_i - x_j||^2 / p (rsatoolbox's ``'euclidean'``; the mean squared difference
    per unit).
``"cosine"``
    1 - cosine similarity (no centring); equals scipy's ``pdist(metric="cosine")``.
``"crossnobis"``
    Cross-validated squared Mahalanobis distance / p (Walther et al. 2016) from
    repeated measurements ``(stimulus, rep, unit)``; unbiased, so it can be
    negative. See :func:`rdm` for the cross-validation conventions.

Comparisons (``compare_rdms(method=...)``):

``"spearman"``
    Pearson r of the ranks (average ranks for ties), rsatoolbox ``'spearman'``.
``"pearson"``
    Pearson r, rsatoolbox ``'corr'``.
``"kendall_tau_a"``
    Kendall's tau-a, (concordant - discordant) / (P(P-1)/2) with P the number of
    pairs, ties counted as neither (rsatoolbox ``'tau-a'``; Nili et al. 2014).
``"cosine"``
    Cosine similarity of the two vectors, rsatoolbox ``'cosine'``.
``"cosine_whitened"``
    Whitened cosine, rsatoolbox ``'cosine_cov'`` without ``sigma_k`` (Diedrichsen
    et al. 2021): the cosine between the double-centred second-moment matrices
    G = -1/2 H D H (H the centring matrix), counting each off-diagonal entry of
    G twice and each diagonal entry once; equivalently the linear CKA of the
    implied kernels.
``"pearson_whitened"``
    rsatoolbox ``'corr_cov'``: as above after subtracting the mean dissimilarity.

Time-resolved data (EEG/MEG): :func:`rdm_timecourse` gives one RDM per time
point and :func:`rsa_timecourse` the comparison score per time point.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import numpy as np

from ..data.condensed import n_from_condensed, square_rdm
from ..errors import InputError

__all__ = [
    "RDM_METHODS",
    "COMPARE_METHODS",
    "check_features",
    "rdm",
    "rdm_timecourse",
    "compare_rdms",
    "rsa_timecourse",
    "noise_precision_from_residuals",
    "n_from_condensed",
    "square_rdm",
]

RDM_METHODS = ("correlation", "euclidean", "cosine", "crossnobis")
COMPARE_METHODS = ("spearman", "pearson", "kendall_tau_a", "cosine", "cosine_whitened", "pearson_whitened")
#: rsatoolbox's names for the same comparisons, accepted as aliases
COMPARE_ALIASES = {"corr": "pearson", "tau-a": "kendall_tau_a", "cosine_cov": "cosine_whitened",
                   "corr_cov": "pearson_whitened"}

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
    d_ij = 1 - z_i . z_j. Euclidean: (|x_i|^2 + |x_j|^2 - 2 x_i . x_j) / p.

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


# --------------------------------------------------------------------------- comparisons
def _as_rdm_stack(d, name) -> tuple[np.ndarray, bool]:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        return d[None, :], True
    if d.ndim == 2:
        return d, False
    raise InputError(f"{name} must be a condensed RDM (n_pairs,) or a stack (m, n_pairs); got shape {d.shape}")


@functools.lru_cache(maxsize=4)
def _pair_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each condensed entry (scipy order), cached per n (read-only)."""
    ii, jj = np.triu_indices(n, 1)
    ii = ii.astype(np.intp)
    jj = jj.astype(np.intp)
    ii.flags.writeable = False
    jj.flags.writeable = False
    return ii, jj


def _double_centred(V: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Whitened representation of condensed RDMs V (m, P): off-diagonal and diagonal parts of
    G = -1/2 H D H, the off-diagonal scaled by sqrt(2) (each appears twice in G)."""
    ii, jj = _pair_index(n)
    W = -0.5 * V
    off = np.empty_like(W)
    diag = np.empty((W.shape[0], n))
    for r, w in enumerate(W):
        rmean = (np.bincount(ii, weights=w, minlength=n) + np.bincount(jj, weights=w, minlength=n)) / n
        gmean = rmean.mean()
        off[r] = (w - rmean[ii] - rmean[jj] + gmean) * np.sqrt(2)
        diag[r] = -2 * rmean + gmean
    return off, diag


def _cosine_rows(A: np.ndarray, B: np.ndarray, what: str) -> np.ndarray:
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise InputError(f"an RDM is constant (zero {what}); the comparison is undefined")
    return np.inner(A, B) / na[:, None] / nb[None, :]  # np.inner: BLAS even for single rows


def _average_ranks(V: np.ndarray) -> np.ndarray:
    """Row-wise ranks 1..P with ties given their average rank (= scipy ``rankdata(method="average")``)."""
    out = np.empty(V.shape, dtype=np.float64)
    P = V.shape[1]
    for r, v in enumerate(V):
        o = np.argsort(v)
        sv = v[o]
        new = np.empty(P, dtype=bool)
        new[0] = True
        np.not_equal(sv[1:], sv[:-1], out=new[1:])
        group = np.cumsum(new) - 1
        starts = np.r_[np.flatnonzero(new), P]
        avg = (starts[:-1] + starts[1:] + 1) / 2.0  # mean of 1-based ranks start+1 .. end
        out[r, o] = avg[group]
    return out


def _kendall_tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-a in O(P log P): (concordant - discordant) / (P(P-1)/2).

    Discordant pairs are counted by merge sort on dense ranks (Knight 1966), with
    scipy's compiled counter when available (as rsatoolbox does); otherwise from
    scipy's public tau-b: tau_a = tau_b sqrt((T - t_x)(T - t_y)) / T.
    """
    P = x.size
    tot = P * (P - 1) // 2
    perm = np.argsort(y, kind="mergesort")
    x, y = x[perm], y[perm]
    y = np.r_[True, y[1:] != y[:-1]].cumsum(dtype=np.intp)
    perm = np.argsort(x, kind="mergesort")
    x, y = x[perm], y[perm]
    x = np.r_[True, x[1:] != x[:-1]].cumsum(dtype=np.intp)

    def tied(r):
        c = np.bincount(r).astype(np.int64)
        return int((c * (c - 1) // 2).sum())

    xtie, ytie = tied(x), tied(y)
    if xtie == tot or ytie == tot:
        raise InputError("an RDM is constant (all dissimilarities tied); Kendall's tau-a is undefined")
    try:
        from scipy.stats._stats import _kendall_dis
    except ImportError:  # pragma: no cover - private scipy API moved
        from scipy.stats import kendalltau

        tau_b = kendalltau(x, y, variant="b", method="asymptotic").statistic
        return float(np.clip(tau_b * np.sqrt((tot - xtie) * (tot - ytie)) / tot, -1.0, 1.0))
    dis = int(_kendall_dis(x, y))
    obs = np.r_[True, (x[1:] != x[:-1]) | (y[1:] != y[:-1]), True]
    cnt = np.diff(np.nonzero(obs)[0]).astype(np.int64)
    ntie = int((cnt * (cnt - 1) // 2).sum())  # pairs tied in both
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    return float(np.clip(con_minus_dis / tot, -1.0, 1.0))


def compare_rdms(a, b, method: str = "spearman"):
    """Similarity between RDMs (vectorised: one against many, or many against many).

    Parameters
    ----------
    a : array of shape (n_pairs,) or (m, n_pairs)
    b : array of shape (n_pairs,) or (k, n_pairs)
        Condensed RDMs (scipy order) over the same stimuli.
    method : {"spearman", "pearson", "kendall_tau_a", "cosine", "cosine_whitened", "pearson_whitened"}
        See the module docstring; each matches the rsatoolbox ``compare`` method
        named there. rsatoolbox's names (``"corr"``, ``"tau-a"``, ``"cosine_cov"``,
        ``"corr_cov"``) are accepted as aliases.

    Returns
    -------
    float if both are 1-D; (m,) if only ``a`` is a stack; (k,) if only ``b`` is;
    (m, k) if both are stacks. float64.

    Raises
    ------
    InputError
        Different lengths, NaN/inf entries, or a constant RDM (the score would be undefined).
    """
    method = COMPARE_ALIASES.get(method, method)
    if method not in COMPARE_METHODS:
        raise InputError(f"unknown RDM comparison {method!r}; choose one of {', '.join(COMPARE_METHODS)}")
    A, a1 = _as_rdm_stack(a, "a")
    B, b1 = _as_rdm_stack(b, "b")
    if A.shape[1] != B.shape[1]:
        raise InputError(f"RDMs have different lengths ({A.shape[1]} vs {B.shape[1]} pairs): not the same stimuli")
    for M, nm in ((A, "a"), (B, "b")):
        if not np.isfinite(M).all():
            raise InputError(f"RDM {nm} has {int((~np.isfinite(M)).sum())} NaN/inf entries")
    if A.shape[1] < 2:
        raise InputError("RDM comparison needs at least 2 pairs (3 stimuli)")
    if method == "cosine":
        S = _cosine_rows(A, B, "norm")
    elif method == "pearson":
        S = _cosine_rows(A - A.mean(1, keepdims=True), B - B.mean(1, keepdims=True), "variance")
    elif method == "spearman":
        RA = _average_ranks(A)
        RB = _average_ranks(B)
        S = _cosine_rows(RA - RA.mean(1, keepdims=True), RB - RB.mean(1, keepdims=True), "variance")
    elif method == "kendall_tau_a":
        S = np.array([[_kendall_tau_a(x, y) for y in B] for x in A])
    else:  # whitened
        n = n_from_condensed(A.shape[1])
        if method == "pearson_whitened":
            A = A - A.mean(1, keepdims=True)
            B = B - B.mean(1, keepdims=True)
        oa, da = _double_centred(A, n)
        ob, db = _double_centred(B, n)
        S = _cosine_rows(np.hstack([oa, da]), np.hstack([ob, db]), "norm after double centring")
    if a1 and b1:
        return float(S[0, 0])
    if b1:
        return S[:, 0]
    if a1:
        return S[0]
    return S


def rsa_timecourse(responses, reference, *, rdm_method: str = "correlation", compare: str = "spearman",
                   reference_rdm_method: str | None = None, **rdm_kwargs) -> np.ndarray:
    """RSA score per time point.

    Parameters
    ----------
    responses : array of shape (n_stimuli, n_units, n_times) or (n_stimuli, n_reps, n_units, n_times)
        Time-resolved brain responses.
    reference : array
        What each time point is compared with: a condensed RDM (n_pairs,), features
        without time (n_stimuli, n_features) -> one RDM for all times, or a stack of RDMs
        (n_times, n_pairs) / time-resolved features (n_stimuli, n_features, n_times),
        which must have the same number of time points.
    rdm_method, compare : str
        See :func:`rdm` and :func:`compare_rdms`.
    reference_rdm_method : str or None
        RDM method for feature references (default: ``rdm_method``, or
        ``"correlation"`` when that is ``"crossnobis"``).

    Returns
    -------
    scores : ndarray of shape (n_times,) float64
    """
    R = rdm_timecourse(responses, rdm_method, **rdm_kwargs)
    n_t, P = R.shape
    n = n_from_condensed(P)
    ref = np.asarray(reference)
    ref_method = reference_rdm_method or ("correlation" if rdm_method == "crossnobis" else rdm_method)
    if ref.ndim == 1:
        refR = ref
    elif ref.ndim == 2 and ref.shape == (n_t, P) and ref.shape[0] != n:
        refR = ref
    elif ref.ndim == 2:
        if ref.shape[0] != n:
            raise InputError(f"reference has {ref.shape[0]} stimuli (rows) but the responses have {n}")
        refR = rdm(ref, ref_method)
    elif ref.ndim == 3:
        if ref.shape[0] != n:
            raise InputError(f"reference has {ref.shape[0]} stimuli (rows) but the responses have {n}")
        if ref.shape[2] != n_t:
            raise InputError(f"reference has {ref.shape[2]} time points but the responses have {n_t}")
        refR = rdm_timecourse(ref, ref_method)
    else:
        raise InputError(f"cannot use a reference of shape {ref.shape}")
    if refR.shape[-1] != P:
        raise InputError(f"reference RDM has {refR.shape[-1]} pairs but the responses' RDMs have {P}")
    if refR.ndim == 1:
        return compare_rdms(R, refR, compare)
    return np.array([compare_rdms(R[t], refR[t], compare) for t in range(n_t)])
