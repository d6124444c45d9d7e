"""Noise ceilings and ceiling-normalised scores (one topic: the one module that owns these formulas).

Conventions (METHODS.md §6)
---------------------------
* A noise ceiling is stored as a **fraction of explainable variance in [0, 1]**
  (NSD's percent ÷ 100; THINGS-fMRI's percent columns ÷ 100). Split-half
  reliabilities after Spearman–Brown (EEG/MEG, RDMs) are reported as ``r_sb`` and used
  as ``NC = r_sb`` where a variance fraction is needed.
* Normalised scores: ``R² / NC`` for R², ``r / √NC`` for Pearson r, per unit; for an ROI,
  a **ratio of means** over the units whose NC exceeds a floor (default 0.1): mean R² ÷
  mean NC, mean r ÷ mean √NC. A model equal to the true signal has E[R²_u] ≈ NC_u and
  E[r_u] ≈ √NC_u per unit, so both ratios are ≈ 1 (the mean of per-unit ratios, also
  reported, is noisier: units near the floor divide by a small number). Raw, ceiling and
  normalised values are always reported together (:class:`NormalisedScores`).

Functions
---------
:func:`nc_from_ncsnr`
    NSD / Algonauts 2023 ceiling from the noise-ceiling SNR.
:func:`split_half_reliability`, :func:`spearman_brown_factor`
    Random split-half reliability of repeated presentations, Spearman–Brown stepped up by
    k = mean(1/⌊n_i/2⌋) / mean(1/n_i) to the repetitions actually averaged. These formulas live
    in :mod:`brainlid.data.reliability` (loaders need them too) and are re-exported here.
:func:`normalise_r2`, :func:`normalise_r`
    Ceiling-normalised scores with the ROI summary.
:func:`rdm_split_half`, :func:`rdm_split_half_reliability`
    Split-half statistics of one subject's RDM: √r_sb is the ceiling of single-subject RSA
    scores, and model scores against the half RDMs give the half-level normalisation.
:func:`rsa_noise_ceiling`
    Leave-one-subject-out lower/upper bounds for RDM comparisons (rsatoolbox convention).
:func:`group_split_half_reliability`
    Reliability of a group-mean RDM (split-half over subjects, stepped up to the group).
:func:`rdm_session_reliability`
    Split-session reliability of each subject's RDMs (session against session).

References
----------
Allen et al. (2022), "A massive 7T fMRI dataset to bridge cognitive neuroscience and
artificial intelligence", Nat. Neurosci. (NSD noise ceiling, ncsnr).
Gifford et al. (2023), "The Algonauts Project 2023 Challenge" (mixture of repetition counts).
Nili et al. (2014), "A toolbox for representational similarity analysis", PLoS Comput. Biol.
(RDM noise ceiling); rsatoolbox ``inference.boot_noise_ceiling`` / ``pool_rdm``.
Spearman (1910), Brown (1910): r_sb = k r / (1 + (k − 1) r), k = 2 for two equal halves.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from itertools import combinations
from math import comb
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..data.rdms import BrainRDMs
from ..data.reliability import (
    nc_from_ncsnr,
    spearman_brown,
    spearman_brown_factor,
    split_half_reliability,
    split_half_weights,
)
from ..errors import InputError
from .rsa import compare_rdms, rdm

__all__ = [
    "nc_from_ncsnr",
    "split_half_reliability",
    "spearman_brown",
    "spearman_brown_factor",
    "NormalisedScores",
    "normalise_r2",
    "normalise_r",
    "rsa_noise_ceiling",
    "pool_rdms",
    "rdm_split_half_reliability",
    "rdm_split_half",
    "RDMSplitHalf",
    "group_split_half_reliability",
    "rdm_session_reliability",
]


# --------------------------------------------------------------------------- normalised scores
@dataclass
class NormalisedScores:
    """Raw, ceiling and ceiling-normalised scores, per unit and summarised over an ROI.

    Attributes
    ----------
    metric : str
        ``"r2"`` (normalised = R²/NC) or ``"r"`` (normalised = r/√NC).
    raw, ceiling, normalised : ndarray of shape (n_units[, ...]) float32
        Per unit values. ``normalised`` is NaN only where the ceiling is 0 or unknown
        (NaN in the input); the ROI summary never uses such units.
    kept : ndarray of bool, same shape
        Units with ``ceiling > floor`` (the ones averaged in the summary).
    floor : float
        The ceiling floor.
    n_units : int
        Number of units (along axis 0).
    n_kept : int or ndarray
        Units kept (per trailing index, e.g. per time point).
    roi_raw : float or ndarray
        Mean raw score over the kept units (per trailing index); ``roi_raw_all`` over all units.
    roi_ceiling : float or ndarray
        Mean over the kept units of the ceiling in the metric's units: NC for R², √NC for r.
    roi_normalised : float or ndarray
        ``roi_raw / roi_ceiling`` — the ROI's normalised score (a ratio of means; NaN when no
        unit is kept).
    roi_normalised_unit_mean : float or ndarray
        Mean over the kept units of the per-unit ``normalised`` values (a mean of ratios).
    """

    metric: str
    raw: np.ndarray
    ceiling: np.ndarray
    normalised: np.ndarray
    kept: np.ndarray
    floor: float
    n_units: int
    n_kept: object
    roi_raw: object
    roi_raw_all: object
    roi_ceiling: object
    roi_normalised: object
    roi_normalised_unit_mean: object = None

    def summary(self) -> dict:
        """The ROI summary as a plain dict (scalars when there is no trailing axis)."""
        d = asdict(self)
        for key in ("raw", "ceiling", "normalised", "kept"):
            d.pop(key)
        return d


def _normalise(raw, nc, floor: float, metric: str) -> NormalisedScores:
    raw = np.asarray(raw, dtype=np.float64)
    nc = np.asarray(nc, dtype=np.float64)
    try:
        raw, nc = np.broadcast_arrays(raw, nc)
    except ValueError:
        raise InputError(f"scores {raw.shape} and noise ceilings {nc.shape} do not have compatible shapes") from None
    if raw.ndim == 0:
        raw, nc = raw[None], nc[None]
    if not np.all(np.isfinite(raw)):
        raise InputError(f"scores contain {int(np.sum(~np.isfinite(raw)))} non-finite values")
    if np.any(np.isinf(nc)):
        raise InputError(f"noise ceilings contain {int(np.sum(np.isinf(nc)))} infinite values")
    known = ~np.isnan(nc)  # NaN = ceiling unknown for that unit: never kept, normalised NaN
    if np.any(nc[known] < -1e-6) or np.any(nc[known] > 1 + 1e-6):
        raise InputError(
            f"noise ceilings must be fractions in [0, 1] (got range [{np.nanmin(nc):g}, {np.nanmax(nc):g}]); "
            "divide percentages by 100"
        )
    if not 0 <= floor < 1:
        raise InputError(f"floor must be in [0, 1), got {floor}")
    nc = np.clip(nc, 0.0, 1.0)  # NaN stays NaN
    pos = known & (np.nan_to_num(nc) > 0)
    denom = nc if metric == "r2" else np.sqrt(nc)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(pos, raw / np.where(pos, denom, 1.0), np.nan)
    kept = known & (np.nan_to_num(nc) > floor)
    n_kept = kept.sum(axis=0)
    if np.any(n_kept == 0):
        warnings.warn(
            f"no unit has a noise ceiling above the floor {floor}: the ROI normalised score is undefined (NaN)",
            RuntimeWarning,
            stacklevel=3,
        )

    def kmean(v):
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(kept, v, 0.0).sum(axis=0) / np.where(n_kept > 0, n_kept, np.nan)
        return m.item() if m.ndim == 0 else m.astype(np.float32)

    raw_all = raw.mean(axis=0)
    roi_raw, roi_ceil = kmean(raw), kmean(np.nan_to_num(denom))
    with np.errstate(invalid="ignore", divide="ignore"):
        roi_norm = np.asarray(roi_raw, dtype=np.float64) / np.asarray(roi_ceil, dtype=np.float64)
    return NormalisedScores(
        metric=metric,
        raw=raw.astype(np.float32),
        ceiling=nc.astype(np.float32),
        normalised=normalised.astype(np.float32),
        kept=kept,
        floor=float(floor),
        n_units=int(raw.shape[0]),
        n_kept=n_kept.item() if n_kept.ndim == 0 else n_kept,
        roi_raw=roi_raw,
        roi_raw_all=raw_all.item() if raw_all.ndim == 0 else raw_all.astype(np.float32),
        roi_ceiling=roi_ceil,
        roi_normalised=roi_norm.item() if roi_norm.ndim == 0 else roi_norm.astype(np.float32),
        roi_normalised_unit_mean=kmean(np.nan_to_num(normalised)),
    )


def normalise_r2(r2, nc, floor: float = 0.1) -> NormalisedScores:
    """Ceiling-normalised R²: ``R² / NC`` per unit; for the ROI, mean R² ÷ mean NC over units with ``NC > floor``.

    Parameters
    ----------
    r2 : array-like of shape (n_units[, n_times])
        Held-out R² per unit (may be negative).
    nc : array-like, broadcastable to ``r2``
        Noise ceiling as a fraction of explainable variance in [0, 1].
    floor : float
        Units with ``nc <= floor`` are left out of the ROI summary (default 0.1).
    """
    return _normalise(r2, nc, floor, "r2")


def normalise_r(r, nc, floor: float = 0.1) -> NormalisedScores:
    """Ceiling-normalised Pearson r: ``r / √NC`` per unit; for the ROI, mean r ÷ mean √NC over units with ``NC > floor``.

    ``√NC`` is the highest correlation a perfect model can reach with noisy data whose
    explainable-variance fraction is NC, so the true model's ROI ratio is ≈ 1 (the ratio of
    means, not √(mean NC): mean √NC ≤ √mean NC). Parameters as in :func:`normalise_r2`.
    """
    return _normalise(r, nc, floor, "r")


# --------------------------------------------------------------------------- RSA noise ceiling
_RANK_METHODS = {"spearman", "rho-a", "rho_a", "kendall", "tau-a", "tau_a", "kendall_tau_a", "tau-b"}
_CORR_METHODS = {"pearson", "corr", "correlation"}
_COSINE_METHODS = {"cosine"}


def _rankdata_rows(x: np.ndarray) -> np.ndarray:
    return rankdata(x, axis=1)


def pool_rdms(rdms, method: str = "spearman") -> np.ndarray:
    """Average RDMs into the one best suited to ``method`` (rsatoolbox's ``pool_rdm`` rule).

    Rank-based methods (Spearman, Kendall τ) average the ranks; Pearson averages
    z-scored RDMs; cosine averages RDMs scaled to unit root-mean-square; every other
    method averages the raw RDMs. (rsatoolbox scales each RDM by its whitened norm
    before pooling for ``cosine_cov``/``corr_cov``; here whitened comparisons pool the
    raw RDMs, which differs from rsatoolbox only when subjects' RDMs differ in scale.)

    Parameters
    ----------
    rdms : array-like of shape (n_subjects, n_pairs)
        Condensed RDMs (upper triangles), one per subject.

    Returns
    -------
    pooled : ndarray of shape (n_pairs,) float64
    """
    v = np.asarray(rdms, dtype=np.float64)
    m = method.lower()
    if m in _RANK_METHODS:
        v = _rankdata_rows(v)
    elif m in _CORR_METHODS:
        v = v - v.mean(axis=1, keepdims=True)
        sd = v.std(axis=1, keepdims=True)
        v = v / np.where(sd > 0, sd, 1.0)
    elif m in _COSINE_METHODS:
        rms = np.sqrt(np.mean(v**2, axis=1, keepdims=True))
        v = v / np.where(rms > 0, rms, 1.0)
    return v.mean(axis=0)


def rsa_noise_ceiling(
    rdms,
    method: str = "spearman",
    compare: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> tuple[float, float]:
    """Leave-one-subject-out noise ceiling of an RDM comparison (rsatoolbox's convention).

    For each subject s, its RDM is compared with

    * the pooled RDM of **all** subjects including s → upper bound (an overestimate of
      the best possible model's score, as the pool contains s's noise);
    * the pooled RDM of the **other** subjects → lower bound (no leakage of s).

    Both are averaged over subjects. Pooling follows :func:`pool_rdms`, as in
    rsatoolbox's ``boot_noise_ceiling`` / ``pool_rdm``.

    Parameters
    ----------
    rdms : array-like of shape (n_subjects, n_pairs)
        Condensed RDMs (same stimulus order for every subject), n_subjects >= 2.
    method : str
        Comparison method name passed to ``compare`` (and used to choose the pooling):
        e.g. ``"spearman"``, ``"pearson"``/``"corr"``, ``"kendall_tau_a"``, ``"cosine"``.
    compare : callable ``(a, b) -> float`` or None
        Comparison of two condensed RDMs. Default:
        ``brainlid.alignment.rsa.compare_rdms(a, b, method=method)``.

    Returns
    -------
    (lower, upper) : tuple of float
    """
    v = np.asarray(rdms, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"rdms must have shape (n_subjects, n_pairs); got {v.shape}")
    n_sub, n_pairs = v.shape
    if n_sub < 2:
        raise InputError(f"a leave-one-subject-out ceiling needs >= 2 subjects; got {n_sub}")
    if n_pairs < 3:
        raise InputError(f"RDMs need >= 3 stimulus pairs to be compared; got {n_pairs}")
    if not np.all(np.isfinite(v)):
        raise InputError(f"rdms contain {int(np.sum(~np.isfinite(v)))} non-finite values")
    if compare is None:
        def compare(a, b):
            return compare_rdms(a, b, method=method)

    pooled_all = pool_rdms(v, method)
    upper, lower = [], []
    for s in range(n_sub):
        others = np.delete(v, s, axis=0)
        upper.append(float(np.asarray(compare(pooled_all, v[s])).squeeze()))
        lower.append(float(np.asarray(compare(pool_rdms(others, method), v[s])).squeeze()))
    return float(np.mean(lower)), float(np.mean(upper))


@dataclass
class RDMSplitHalf:
    """Split-half statistics of one subject's RDM (:func:`rdm_split_half`).

    Attributes
    ----------
    r_half : float or ndarray of shape (n_times,)
        Mean over splits of ``compare(d_A, d_B)``: the agreement of two half-data RDMs.
    ceiling_half : float or ndarray of shape (n_times,)
        Mean over splits of ``√max(compare(d_A, d_B), 0)``: the expected score of a perfect model
        against one half RDM (the denominator of the half-level normalisation).
    k : float
        Spearman–Brown step-up factor from a half to all repetitions (:func:`spearman_brown_factor`).
    r_sb : float or ndarray of shape (n_times,)
        ``spearman_brown(r_half, k)``: the estimated reliability of the full-data RDM.
    model_half : ndarray of shape (n_models[, n_times]) or None
        Mean over splits and both halves of ``compare(model RDM, half RDM)``.
    n_splits : int
    """

    r_half: object
    ceiling_half: object
    k: float
    r_sb: object
    model_half: np.ndarray | None
    n_splits: int

    def normalised(self, floor: float = 0.0) -> np.ndarray:
        """Half-level disattenuated model scores: ``model_half / ceiling_half`` (a ratio of
        means over splits), NaN where ``r_sb <= floor`` or no positive half agreement."""
        if self.model_half is None:
            raise InputError("no model RDMs were given to rdm_split_half")
        ch = np.asarray(self.ceiling_half, dtype=np.float64)
        ok = (ch > 0) & (np.asarray(self.r_sb, dtype=np.float64) > floor)
        return np.where(ok, self.model_half / np.where(ok, ch, 1.0), np.nan)


def rdm_split_half(
    responses,
    rdm_method: str = "correlation",
    compare: str = "spearman",
    n_splits: int = 5,
    seed: int | None = 0,
    rep_axis: int = 1,
    model_rdms=None,
) -> RDMSplitHalf:
    """Split-half statistics of one subject's RDM, optionally with model RDMs compared to the halves.

    For each of ``n_splits`` seeded random splits, each stimulus's present repetitions are
    shuffled and divided into two halves of ``⌊n_i/2⌋`` repetitions (one left out when ``n_i`` is
    odd, so both halves have the same noise level); the half-means give two RDMs ``d_A``, ``d_B``
    (``rdm(·, rdm_method)``), compared with each other and with every model RDM.

    Why the half level: an RDM's dissimilarities are quadratic in the noise, so the classical
    step-up ``value / √r_sb`` over-corrects at low reliability (a perfect model scores 1.1–1.3
    at a half-split reliability of 0.15). Comparing the model with each half RDM and dividing by
    √r(d_A, d_B) — the perfect model's expected score against a half RDM, as the halves are
    independent replications at the same noise level — stays within a few percent of 1
    (tests/test_calibration_rsa.py).

    Parameters
    ----------
    responses : array-like of shape (n_stimuli, n_reps, n_units[, n_times])
        Repeated presentations (repetition axis ``rep_axis``); ragged repetitions are
        NaN-padded (a repetition is missing when all its values are NaN).
    rdm_method : str
        :func:`brainlid.alignment.rsa.rdm` method of the half RDMs.
    compare : str
        :func:`brainlid.alignment.rsa.compare_rdms` method.
    n_splits : int
        Random splits averaged (>= 1).
    seed : int or None
        Seed of the splits.
    model_rdms : array of shape (n_pairs,) or (n_models, n_pairs), or None
        Condensed model RDMs over the same stimuli (same order) to compare with each half RDM.

    Returns
    -------
    RDMSplitHalf
        Scalars without a time axis, arrays of shape (n_times,) with one; ``model_half`` of
        shape (n_models[, n_times]) (``(n_times,)``/scalar when ``model_rdms`` is 1-D).

    Raises
    ------
    InputError
        Wrong shape, a stimulus with fewer than 2 repetitions (each stimulus of the RDM needs a
        repetition in both halves), fewer than 3 stimuli, NaN inside a present repetition,
        n_splits < 1, model RDMs of another length.
    """
    x = np.asarray(responses)
    if x.ndim not in (3, 4) or not np.issubdtype(x.dtype, np.number):
        raise InputError(
            f"responses must be numeric with shape (stimulus, rep, unit[, time]); got {x.dtype} {x.shape}"
        )
    if n_splits < 1:
        raise InputError(f"n_splits must be >= 1, got {n_splits}")
    x = np.moveaxis(x, rep_axis % x.ndim, 1).astype(np.float64)
    finite = np.isfinite(x.reshape(x.shape[0], x.shape[1], -1))
    present = finite.any(axis=2)
    if np.any(present[:, :, None] & ~finite):
        raise InputError("responses have NaN/inf inside a present repetition; only whole missing repetitions "
                         "may be NaN-padded")
    n_i = present.sum(axis=1)
    if np.any(n_i < 2):
        raise InputError(
            f"an RDM split-half reliability needs >= 2 repetitions of every scored stimulus; "
            f"{int(np.sum(n_i < 2))} of {n_i.size} stimuli have fewer"
        )
    if x.shape[0] < 3:
        raise InputError(f"an RDM needs >= 3 stimuli; got {x.shape[0]}")
    n = x.shape[0]
    M = None
    if model_rdms is not None:
        M = np.atleast_2d(np.asarray(model_rdms, dtype=np.float64))
        if M.ndim != 2 or M.shape[1] != n * (n - 1) // 2:
            raise InputError(f"model RDMs have shape {np.shape(model_rdms)}; expected (n_models, {n * (n - 1) // 2})")
    weights = split_half_weights(present, n_i // 2, np.random.default_rng(seed), n_splits)
    xz = np.nan_to_num(x, nan=0.0)
    timed = x.ndim == 4
    n_t = x.shape[-1] if timed else 1
    r_ab = np.zeros((n_splits, n_t))
    mod = np.zeros((M.shape[0], n_t)) if M is not None else None
    for s in range(n_splits):
        means = [np.einsum("sr,sr...->s...", w[s], xz) for w in weights]
        for t in range(n_t):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # non-finite units dropped by rdm(): reported by the caller
                d = np.stack([rdm(m[..., t] if timed else m, rdm_method, dtype=np.float64) for m in means])
            r_ab[s, t] = compare_rdms(d[0], d[1], method=compare)
            if M is not None:
                mod[:, t] += np.atleast_2d(compare_rdms(M, d, method=compare)).mean(axis=1)
    r_half = r_ab.mean(axis=0)
    ceiling_half = np.sqrt(np.clip(r_ab, 0.0, None)).mean(axis=0)
    k = spearman_brown_factor(n_i)
    r_sb = spearman_brown(r_half, k)
    if mod is not None:
        mod /= n_splits
        if np.ndim(model_rdms) == 1:
            mod = mod[0]
        if not timed:
            mod = mod[..., 0] if mod.ndim > 1 else float(mod[0])
    out = (lambda a: np.asarray(a, dtype=np.float64)) if timed else (lambda a: float(np.asarray(a).reshape(-1)[0]))
    return RDMSplitHalf(r_half=out(r_half), ceiling_half=out(ceiling_half), k=k, r_sb=out(r_sb),
                        model_half=mod, n_splits=int(n_splits))


def rdm_split_half_reliability(
    responses,
    rdm_method: str = "correlation",
    compare: str = "spearman",
    n_splits: int = 5,
    seed: int | None = 0,
    rep_axis: int = 1,
) -> np.ndarray | float:
    """Split-half reliability of one subject's RDM, Spearman–Brown stepped up to all repetitions.

    The mean over ``n_splits`` seeded random splits of ``compare(d_A, d_B)`` (half RDMs of
    ``⌊n_i/2⌋`` repetitions each, :func:`rdm_split_half`), stepped up with
    ``k = mean(1/⌊n_i/2⌋) / mean(1/n_i)`` (:func:`spearman_brown_factor`): the expected agreement
    of the full-data RDM with an independent replication. Its square root is the correlation
    ceiling of single-subject RSA scores (the ``ceiling`` column); the rows' ``normalised`` is
    disattenuated at the half level instead (:meth:`RDMSplitHalf.normalised`), which calibrates
    where ``value / √r_sb`` does not.

    Parameters and errors as :func:`rdm_split_half`.

    Returns
    -------
    float (no time axis) or ndarray of shape (n_times,) float64 — r_sb per time point.
    """
    return rdm_split_half(responses, rdm_method, compare, n_splits=n_splits, seed=seed, rep_axis=rep_axis).r_sb


def group_split_half_reliability(subject_rdms, compare: str = "spearman", n_splits: int = 50,
                                 seed: int | None = 0) -> tuple[float, float, float]:
    """Reliability of a group-mean RDM: split-half over subjects, stepped up to the whole group.

    Every split of the subjects into two disjoint halves of ``⌊S/2⌋`` (one left out when S is
    odd) is used when there are at most 1000 ordered pairs of halves (S <= 10) — each split once,
    as the comparison is symmetric — else ``n_splits`` seeded random ones; each half's RDMs are
    averaged (the plain mean, as the group RDM is) and the two half-group RDMs compared. The mean over splits ``r_half`` is stepped
    up by ``k = S/⌊S/2⌋``. Subject RDMs add independent noise around a shared RDM, so the
    classical step-up holds here; ``√r_sb`` is the correlation ceiling of a model compared with
    the group-mean RDM (a row of its own kind, never the per-subject LOSO bound).

    Parameters
    ----------
    subject_rdms : array of shape (n_subjects, n_pairs)
        Condensed RDMs, n_subjects >= 2.
    compare : str
        :func:`brainlid.alignment.rsa.compare_rdms` method.
    n_splits : int
    seed : int or None

    Returns
    -------
    (r_sb, r_half, k) : tuple of float
    """
    v = np.asarray(subject_rdms, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise InputError(f"a split-half over subjects needs >= 2 subject RDMs (n_subjects, n_pairs); got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError(f"subject RDMs contain {int(np.sum(~np.isfinite(v)))} non-finite values")
    if n_splits < 1:
        raise InputError(f"n_splits must be >= 1, got {n_splits}")
    n_sub = v.shape[0]
    h = n_sub // 2
    if comb(n_sub, h) * comb(n_sub - h, h) <= 1000:
        # each unordered split once (A holds the lower first subject): (B, A) would compare the same RDMs
        pairs = [(a, b) for a in combinations(range(n_sub), h)
                 for b in combinations(sorted(set(range(n_sub)) - set(a)), h) if a[0] < b[0]]
    else:
        rng = np.random.default_rng(seed)
        perms = [rng.permutation(n_sub) for _ in range(n_splits)]
        pairs = [(q[:h], q[h:2 * h]) for q in perms]
    r = [compare_rdms(v[list(a)].mean(axis=0), v[list(b)].mean(axis=0), method=compare) for a, b in pairs]
    r_half = float(np.mean(r))
    k = n_sub / h
    return float(spearman_brown(r_half, k)), r_half, float(k)


def rdm_session_reliability(brain_rdms: BrainRDMs, compare: str = "spearman") -> pd.DataFrame:
    """Split-session reliability: each subject's RDM of one session against another's (all session pairs).

    Parameters
    ----------
    brain_rdms : BrainRDMs
        One ROI's RDMs, ``(n_subjects, n_sessions, n_pairs)``.
    compare : str
        A :func:`brainlid.alignment.rsa.compare_rdms` method.

    Returns
    -------
    DataFrame with columns ``subject, session_a, session_b, method, r`` (one row per subject and
    pair of sessions); empty when there is a single session.
    """
    b = brain_rdms
    rows = []
    for s, subj in enumerate(b.subjects):
        for i in range(b.n_sessions):
            for j in range(i + 1, b.n_sessions):
                r = compare_rdms(b.rdms[s, i], b.rdms[s, j], method=compare)
                rows.append((subj, b.sessions[i], b.sessions[j], compare, float(r)))
    return pd.DataFrame(rows, columns=["subject", "session_a", "session_b", "method", "r"])
