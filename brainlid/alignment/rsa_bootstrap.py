"""The stimulus bootstrap of RDM comparisons, its variance correction, and the split-half of stimuli.

RSA scores (an RDM of model features compared with a brain RDM over the same stimuli) get their
intervals by resampling **stimuli**: :func:`rdm_bootstrap_ci` (``ci_method`` :data:`CI_METHOD`),
corrected for the variance the bootstrap double-counts (:func:`second_order_excess`,
:func:`excess_shrink`; also used by the paired comparisons of :mod:`brainlid.comparison`).
:func:`split_half` is the seeded split of stimulus ids into a selection and a held-out half of
the RDM benchmarks (:mod:`brainlid.scoring.cell.rdms`).

Stimulus bootstrap of an RDM comparison
---------------------------------------
Resampling ``n`` stimuli with replacement (counts ``c_i``) and recomputing both RDMs on the
resample gives, for every pair of *distinct* draws, the original dissimilarity of that pair of
stimuli; pairs of a stimulus with its own copy are excluded (their dissimilarity is 0 by
construction in one RDM and undefined noise in the other). The resampled pair set is therefore
the multiset in which original pair ``(i, j)`` appears ``w_ij = c_i c_j`` times. Pearson and
cosine on that multiset are the ``w``-weighted statistics; Spearman is the weighted Pearson of the
multiset's average ranks, ``rank = (weight of smaller values) + (weight of tied values + 1) / 2``.
:func:`rdm_bootstrap_ci` computes these in O(rows × pairs) per resample from one sort per RDM
(no resampled RDMs are materialised) and matches a brute force that builds them (tests).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse import csr_matrix

from ..errors import InputError
from .rsa import COMPARE_ALIASES, n_from_condensed
from .uncertainty import bootstrap_counts

__all__ = ["split_half", "rdm_bootstrap_ci", "second_order_excess", "excess_shrink", "BOOTSTRAP_METHODS", "CI_METHOD"]

#: RDM comparisons the stimulus bootstrap supports (others get NaN intervals, documented)
BOOTSTRAP_METHODS = ("spearman", "pearson", "cosine")
#: ``ci_method`` of RSA rows: the stimulus bootstrap with the variance correction of :func:`rdm_bootstrap_ci`
CI_METHOD = "stimulus-bootstrap-corrected"


def split_half(ids, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of stimulus ids into a selection half and a held-out half (both sorted).

    The selection half has ``n // 2`` ids drawn by ``np.random.default_rng(seed)`` from the
    sorted ids; the held-out half is the rest (``n - n // 2``). Same ids and seed → same halves,
    whatever the order the ids come in.

    Parameters
    ----------
    ids : array-like of shape (n_stimuli,)
        Stimulus ids (at least 6).
    seed : int

    Returns
    -------
    (selection, held_out) : sorted arrays of shape (n // 2,) and (n - n // 2,)
    """
    ids = np.sort(np.asarray(ids))
    if ids.size < 6:
        raise InputError(f"a split-half needs at least 6 stimuli (3 per half), got {ids.size}")
    rng = np.random.default_rng(seed)
    sel = np.sort(rng.choice(ids, size=ids.size // 2, replace=False))
    return sel, np.setdiff1d(ids, sel)


# ------------------------------------------------------------------------------- stimulus bootstrap
def _tie_groups(V: np.ndarray):
    """Sort order of each row of V (R, P) and, per sorted position, flat indices (into a row-wise
    cumulative sum padded with a leading 0) of the weight before its tie group and at its end."""
    R, P = V.shape
    order = np.argsort(V, axis=1, kind="stable")
    sv = np.take_along_axis(V, order, axis=1)
    ar = np.arange(P)
    start = np.ones(V.shape, dtype=bool)
    start[:, 1:] = sv[:, 1:] != sv[:, :-1]
    end = np.ones(V.shape, dtype=bool)
    end[:, :-1] = start[:, 1:]
    gs = np.maximum.accumulate(np.where(start, ar, 0), axis=1)  # first position of the tie group
    ge = np.minimum.accumulate(np.where(end, ar, P - 1)[:, ::-1], axis=1)[:, ::-1]  # last position
    base = (np.arange(R) * (P + 1))[:, None]
    return order, base + gs, base + ge + 1


def _weighted_ranks(w: np.ndarray, order, before_idx, end_idx) -> np.ndarray:
    """Average ranks of every row's values in the multiset where entry p appears w[p] times:
    ``(weight of smaller values) + (weight of the tie group + 1) / 2``."""
    R, P = order.shape
    cw = np.zeros((R, P + 1))
    np.cumsum(w[order], axis=1, out=cw[:, 1:])
    flat = cw.ravel()
    before = flat[before_idx]
    rank_sorted = before + (flat[end_idx] - before + 1.0) / 2.0
    out = np.empty(order.shape, dtype=np.float64)
    np.put_along_axis(out, order, rank_sorted, axis=1)
    return out


def _plain_ranks(V: np.ndarray, groups) -> np.ndarray:
    """Average ranks of the rows of V (every weight 1) from :func:`_tie_groups` of V."""
    return _weighted_ranks(np.ones(V.shape[1]), *groups)


def _weighted_similarity(Z: np.ndarray, w: np.ndarray, m: int, centre: bool) -> np.ndarray:
    """w-weighted Pearson (``centre``) or cosine between rows Z[:m] and Z[m:] → (m, R - m)."""
    Zw = Z * w
    num = np.inner(Zw[:m], Z[m:])  # np.inner: BLAS even for one row (a transposed view is not)
    ss = np.einsum("ij,ij->i", Zw, Z)
    if centre:  # Σw(a-ā)(b-b̄) = Σwab - (Σwa)(Σwb)/Σw; no cancellation problem for ranks or distances in float64
        s1, W = Zw.sum(axis=1), w.sum()
        num = num - np.outer(s1[:m], s1[m:]) / W
        ss = ss - s1**2 / W
    den = np.sqrt(np.clip(np.outer(ss[:m], ss[m:]), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _pair_incidence(n: int):
    """Sparse (n_pairs, n) matrix with a 1 at each pair's two stimuli (scipy condensed order)."""
    ii, jj = np.triu_indices(n, 1)
    P = ii.size
    return csr_matrix((np.ones(2 * P), (np.repeat(np.arange(P), 2), np.column_stack([ii, jj]).ravel())), shape=(P, n))


def second_order_excess(model_rdms, brain_rdms, n_stimuli: int, compare: str = "spearman", *,
                        weights=None) -> np.ndarray:
    """Variance the stimulus bootstrap of an RDM comparison adds on top of the true sampling variance.

    An RDM comparison is, to first order, a mean over stimulus pairs of influence values
    ``h_ij = g_i + g_j + e_ij`` (a U-statistic of degree 2; for a correlation of standardised
    vectors u, v with value r, ``h = u v − r (u² + v²)/2``; ranks for Spearman, no centring for
    cosine). Its sampling variance over stimuli is ``4 ζ₁/n + 2 σ₂²/n²`` (ζ₁ the variance of the
    stimulus effects g, σ₂² that of the pair residuals e). Resampling stimuli with replacement
    counts the pair residuals three times: the bootstrap variance is ``4 ζ₁/n + 6 σ₂²/n²``, so it
    is too wide where σ₂² matters — near zero, or when the brain RDM is noisy (≈ 99 % coverage
    of nominal 95 % intervals, 1.5–1.7× too wide at the null). This returns the excess
    ``4 σ̂₂²/n²`` with σ̂₂² the mean square of the doubly (U-)centred influence values (the
    bootstrap's own plug-in value). The same over-counting of a second factor's variance is what
    Schütt et al. (2023) correct in rsatoolbox's dual bootstrap (``eval_dual_bootstrap``); here
    the two factors are the two stimuli of each pair.

    Parameters
    ----------
    model_rdms : array (m, n_pairs)
    brain_rdms : array (k, n_pairs)
    n_stimuli : int (>= 4)
    compare : {"spearman", "pearson", "cosine"}
    weights : (model weights (m,), brain weights (k,)) or None
        The excess of one contrast ``Σ_a Σ_j wm_a wb_j · compare(model a, brain j)`` instead (its
        influence values are the same combination of the pairs' influence values), e.g. ``([1, −1],
        [1])`` for the paired difference of two models (:mod:`brainlid.comparison`).

    Returns
    -------
    excess : ndarray of shape (m, k) float64 (zeros when n_stimuli < 4); shape (1, 1) with ``weights``.

    References
    ----------
    Hoeffding (1948), Ann. Math. Stat. 19:293 (U-statistics). Schütt, Kipnis, Diedrichsen,
    Kriegeskorte (2023), "Statistical inference on representational geometries", eLife 12:e82566.
    """
    A = np.atleast_2d(np.asarray(model_rdms, dtype=np.float64))
    B = np.atleast_2d(np.asarray(brain_rdms, dtype=np.float64))
    n = int(n_stimuli)
    out = np.zeros((A.shape[0], B.shape[0]) if weights is None else (1, 1))
    if n < 4:
        return out

    def standardise(V):
        if compare == "spearman":
            V = _plain_ranks(V, _tie_groups(V))
        if compare != "cosine":
            V = V - V.mean(axis=1, keepdims=True)
        rms = np.sqrt(np.mean(V**2, axis=1, keepdims=True))
        return V / np.where(rms > 0, rms, 1.0)

    UA, UB = standardise(A), standardise(B)
    inc = _pair_incidence(n)
    ii, jj = np.triu_indices(n, 1)
    step = max(1, int(2**24 // max(1, UB.shape[1])))  # brain RDMs per block: ~128 MB of float64 temporaries

    def excess(H):  # (k, P) influence values → (k,) 4 σ̂₂² / n² of their doubly centred residuals
        rs = np.asarray((inc.T @ H.T).T)  # (k, n) row sums of the symmetric pair matrix
        tot = 2.0 * H.sum(axis=1, keepdims=True)
        E = H - (rs[:, ii] + rs[:, jj]) / (n - 2) + tot / ((n - 1) * (n - 2))
        return 4.0 * np.mean(E**2, axis=1) / n**2

    def influence(a, U):  # (k, P) influence values of model a against the brain RDMs U
        r = (U @ UA[a]) / UA.shape[1]  # (k,)
        return U * UA[a] - 0.5 * r[:, None] * (U**2 + UA[a] ** 2)

    if weights is not None:
        wm, wb = (np.asarray(w, dtype=np.float64).reshape(-1) for w in weights)
        if wm.size != UA.shape[0] or wb.size != UB.shape[0]:
            raise InputError(f"weights must have {UA.shape[0]} model and {UB.shape[0]} brain entries")
        Hs = np.zeros((1, UA.shape[1]))
        for a in np.flatnonzero(wm):
            for k0 in range(0, UB.shape[0], step):
                Hs += wm[a] * (wb[k0:k0 + step] @ influence(a, UB[k0:k0 + step]))
        return excess(Hs)[None]
    for a in range(UA.shape[0]):
        for k0 in range(0, UB.shape[0], step):
            out[a, k0:k0 + step] = excess(influence(a, UB[k0:k0 + step]))
    return out


def excess_shrink(reps, excess) -> np.ndarray:
    """Scale ``√(max(V − excess, V/4) / V)`` of bootstrap replicates' deviations from the estimate.

    ``reps`` (n_boot, ...) with variance V (NaN replicates left out), ``excess`` (...) the variance
    the bootstrap double-counts (:func:`second_order_excess`); 1 where V is 0 or undefined.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices → NaN
        v = np.nanvar(np.asarray(reps, dtype=np.float64), axis=0)
    vc = np.maximum(v - np.asarray(excess, dtype=np.float64), v / 4)
    return np.sqrt(np.where(v > 0, vc / np.where(v > 0, v, 1.0), 1.0))


def rdm_bootstrap_ci(model_rdms, brain_rdms, n_stimuli: int, *, compare: str = "spearman", n_boot: int = 1000,
                     seed: int = 0, level: float = 0.95, return_distribution: bool = False, correct: bool = True):
    """Bootstrap interval over stimuli of RDM comparisons (module docstring), variance-corrected by default.

    Parameters
    ----------
    model_rdms : array (m, n_pairs) or (n_pairs,)
    brain_rdms : array (k, n_pairs) or (n_pairs,)
        Condensed RDMs (scipy order) over the same ``n_stimuli`` stimuli.
    compare : {"spearman", "pearson", "cosine"}
        As :func:`brainlid.alignment.rsa.compare_rdms` (ties: average ranks).
    n_boot : int
        Resamples (the same resamples for every model × brain pair: intervals of different layers
        or models are paired).
    seed : int
    level : float
        Confidence level.
    return_distribution : bool
        Also return the ``(n_boot, m, k)`` replicates (uncorrected).
    correct : bool
        Shrink the percentile interval about the observed value by ``√(V_c / V_boot)``, where
        ``V_boot`` is the replicates' variance and ``V_c = max(V_boot − excess, V_boot/4)`` removes
        the variance the bootstrap double-counts (:func:`second_order_excess`; Schütt et al. 2023).
        Measured on simulated RSA (Spearman; 250–400 replications per setting, the population
        value from 1,200-stimulus samples): nominal 95 % intervals cover 91–94 % at 60–80 stimuli
        (uncorrected: 96–100 %, up to 1.6× too wide near zero), but 89–90 % at 40 stimuli with a
        strong model (r ≈ 0.6–0.8; uncorrected 95 %), where terms of higher order than the
        correction's make the plain bootstrap about right. ``False``: the plain percentile interval.

    Returns
    -------
    (low, high) : arrays of shape (m, k) float64 (squeezed like ``compare_rdms``), NaN where a
    resample left an RDM constant in every replicate; with ``return_distribution`` a third item.

    Raises
    ------
    InputError
        Unsupported ``compare``, mismatched lengths, fewer than 3 stimuli, ``n_boot < 10``.
    """
    method = COMPARE_ALIASES.get(compare, compare)
    if method not in BOOTSTRAP_METHODS:
        raise InputError(f"the stimulus bootstrap supports RDM comparisons {BOOTSTRAP_METHODS}, not {compare!r}")
    A = np.atleast_2d(np.asarray(model_rdms, dtype=np.float64))
    B = np.atleast_2d(np.asarray(brain_rdms, dtype=np.float64))
    if A.shape[1] != B.shape[1]:
        raise InputError(f"RDMs have different lengths ({A.shape[1]} vs {B.shape[1]} pairs)")
    n = n_from_condensed(A.shape[1])
    if n != int(n_stimuli) or n < 3:
        raise InputError(f"condensed RDMs of {A.shape[1]} pairs are over {n} stimuli, not {n_stimuli} (need >= 3)")
    if int(n_boot) < 10 or not 0 < level < 1:
        raise InputError(f"need n_boot >= 10 and 0 < level < 1, got {n_boot}, {level}")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise InputError("RDMs with NaN/inf entries cannot be bootstrapped")
    m = A.shape[0]
    V = np.vstack([A, B])
    ii, jj = np.triu_indices(n, 1)
    counts = bootstrap_counts(n, int(n_boot), np.random.default_rng(seed))
    groups = _tie_groups(V) if method == "spearman" else None
    dist = np.empty((int(n_boot), m, B.shape[0]))
    for b in range(int(n_boot)):
        w = counts[b, ii] * counts[b, jj]
        Z = _weighted_ranks(w, *groups) if groups is not None else V
        dist[b] = _weighted_similarity(Z, w, m, centre=method != "cosine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices → NaN
        lo, hi = np.nanquantile(dist, [(1 - level) / 2, (1 + level) / 2], axis=0)
        if correct:
            est = _weighted_similarity(_plain_ranks(V, groups) if groups is not None else V, np.ones(ii.size), m,
                                       centre=method != "cosine")
            f = excess_shrink(dist, second_order_excess(A, B, n, method))
            lo, hi = est - f * (est - lo), est + f * (hi - est)
    squeeze = (lambda x: x) if (np.ndim(model_rdms) == 2 and np.ndim(brain_rdms) == 2) else (
        lambda x: x.reshape(-1) if x.size > 1 else float(x.reshape(-1)[0]))
    out = (squeeze(lo), squeeze(hi))
    return (*out, dist) if return_distribution else out
