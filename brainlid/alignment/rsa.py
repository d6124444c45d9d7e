"""Representational similarity analysis: RDMs (computed in :mod:`~brainlid.alignment.dissimilarity`, re-exported here) and RDM comparisons.

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

import numpy as np

from ..data.condensed import n_from_condensed, square_rdm
from ..errors import InputError
from .dissimilarity import RDM_METHODS, check_features, noise_precision_from_residuals, rdm, rdm_timecourse

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

COMPARE_METHODS = ("spearman", "pearson", "kendall_tau_a", "cosine", "cosine_whitened", "pearson_whitened")
#: rsatoolbox's names for the same comparisons, accepted as aliases
COMPARE_ALIASES = {"corr": "pearson", "tau-a": "kendall_tau_a", "cosine_cov": "cosine_whitened",
                   "corr_cov": "pearson_whitened"}



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
        from scipy.stats._stats import _kendall_dis  # start-up: scipy.stats (0.7 s) stays out of `brainlid align`
    except ImportError:  # pragma: no cover - private scipy API moved
        from scipy.stats import kendalltau  # start-up: as above

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
