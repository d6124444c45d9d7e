"""Paired-comparison statistics over arrays: intervals and p-values of a difference, the dual bootstrap,
Holm, and both models' replicates on the same stimulus resamples (conventions in :mod:`brainlid.comparison`).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..alignment.encoding import unit_scores
from ..alignment.rsa import compare_rdms, n_from_condensed
from ..alignment.rsa_bootstrap import excess_shrink, rdm_bootstrap_ci, second_order_excess
from ..alignment.uncertainty import bootstrap_unit_sums
from ..errors import InputError

__all__ = ["holm", "paired_summary", "dual_bootstrap_variance", "group_summary", "encoding_replicates",
           "encoding_replicates_by_units", "rsa_replicates"]


# ----------------------------------------------------------------------------------- pure maths
def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as ``p``; NaN stays NaN and is not counted).

    With the m finite p-values sorted, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    v = p[ok]
    order = np.argsort(v, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * v[order]))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def paired_summary(d_hat, reps, *, shrink=1.0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Basic interval and two-sided p-value of a difference from its bootstrap replicates.

    Parameters
    ----------
    d_hat : float or array of shape (...)
        The difference on the original stimuli.
    reps : array of shape (n_boot, ...)
        The difference on each resample (NaN replicates — e.g. a resample where an RDM is constant —
        are left out).
    shrink : float or array of shape (...)
        Scale of the replicates' deviations from ``d_hat`` (a variance correction, ≤ 1); 1: none.
    level : float
        Confidence level.

    Returns
    -------
    (low, high, p) : arrays of the shape of ``d_hat`` (module docstring: basic interval; p =
    ``min(1, 2 (1 + #{reflected replicate on the other side of 0}) / (1 + B))``, 1 when d̂ = 0).
    """
    d = np.asarray(d_hat, dtype=np.float64)
    R = d + np.asarray(shrink, dtype=np.float64) * (np.asarray(reps, dtype=np.float64) - d)
    if R.ndim != d.ndim + 1:
        raise InputError(f"replicates must have shape (n_boot, *{d.shape}); got {R.shape}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices → NaN
        q_lo, q_hi = np.nanquantile(R, [(1 - level) / 2, (1 + level) / 2], axis=0)
    low, high = 2 * d - q_hi, 2 * d - q_lo
    n = np.sum(np.isfinite(R), axis=0)
    beyond = np.sum(np.where(np.isfinite(R), np.sign(d) * (R - d) >= np.abs(d), False), axis=0)
    p = np.where(d == 0, 1.0, np.minimum(1.0, 2.0 * (1.0 + beyond) / (1.0 + n)))
    p = np.where(np.isfinite(d) & (n > 0), p, np.nan)
    return low, high, p


def dual_bootstrap_variance(v_both, v_subjects, v_stimuli, n_subjects: int, n_stimuli: int):
    """Variance of a mean over subjects and stimuli from three bootstraps (Schütt et al. 2023).

    The small-sample formula of rsatoolbox (``rsatoolbox.util.inference_util._dual_bootstrap``
    with both counts): with S subjects, N stimuli and the variances of the replicates when
    resampling both factors, subjects only and stimuli only,
    ``V = S/(S−1)·V_subj + N/(N−1)·V_stim − SN/((S−1)(N−1))·(V_both − V_subj − V_stim)``,
    bounded below by each one-factor term and above by ``V_both``. The plain two-factor
    bootstrap (``V_both``) counts the subject × stimulus variance about three times.
    """
    S, N = float(n_subjects), float(n_stimuli)
    if S < 2 or N < 2:
        raise InputError(f"the dual bootstrap needs >= 2 subjects and >= 2 stimuli, got {n_subjects}, {n_stimuli}")
    vb, vs, vt = (np.asarray(v, dtype=np.float64) for v in (v_both, v_subjects, v_stimuli))
    a, b = S / (S - 1), N / (N - 1)
    v = a * vs + b * vt - a * b * (vb - vs - vt)
    v = np.maximum(np.maximum(v, a * vs), b * vt)
    return np.minimum(v, vb)


def group_summary(d_subjects, reps, subject_counts, n_stimuli: int, *, excess=0.0, level: float = 0.95,
                  correct: bool = True) -> dict:
    """Group-level difference (mean over subjects) with subjects and stimuli resampled together.

    Parameters
    ----------
    d_subjects : array of shape (S, ...)
        Each subject's difference on the original stimuli.
    reps : array of shape (n_boot, S, ...)
        Each subject's difference on stimulus resample b (**the same stimulus counts for every
        subject**: the stimuli are shared).
    subject_counts : array of shape (n_boot, S)
        Multinomial subject counts of each resample (paired with the stimulus resample b).
    n_stimuli : int
        Number of stimuli resampled (N of the dual-bootstrap formula).
    excess : float or array of shape (...)
        Variance the stimulus resampling adds on top of the truth (RSA pairs; 0 for encoding),
        removed from the stimuli-only and the both bootstrap before the combination.
    correct : bool
        False: the plain two-factor bootstrap (``V_both``), to show what the correction does.

    Returns
    -------
    dict with ``estimate``, ``low``, ``high``, ``p`` (arrays of shape (...)) and the variances
    ``v_both``, ``v_subjects``, ``v_stimuli``, ``v`` (the combination).
    """
    D = np.asarray(d_subjects, dtype=np.float64)
    R = np.asarray(reps, dtype=np.float64)
    C = np.asarray(subject_counts, dtype=np.float64)
    S = D.shape[0]
    if R.shape[1:] != D.shape or C.shape != (R.shape[0], S):
        raise InputError(f"replicates {R.shape} / subject counts {C.shape} do not match {S} subjects {D.shape}")
    extra = (1,) * (D.ndim - 1)
    est = D.mean(axis=0)
    both = np.einsum("bs,bs...->b...", C, np.nan_to_num(R)) / S
    ok = np.isfinite(R).reshape(R.shape[0], -1).all(axis=1)
    both = np.where(ok.reshape(-1, *extra), both, np.nan)
    subj = (C @ D.reshape(S, -1)).reshape(-1, *D.shape[1:]) / S
    stim = R.mean(axis=1)
    vb, vs, vt = (np.nanvar(x, axis=0, ddof=1) for x in (both, subj, stim))
    ex = np.asarray(excess, dtype=np.float64)
    vb_c, vt_c = np.maximum(vb - ex, vb / 4), np.maximum(vt - ex, vt / 4)
    v = dual_bootstrap_variance(vb_c, vs, vt_c, S, n_stimuli) if correct else vb
    f = np.sqrt(np.where(vb > 0, v / np.where(vb > 0, vb, 1.0), 1.0))
    low, high, p = paired_summary(est, both, shrink=f, level=level)
    return {"estimate": est, "low": low, "high": high, "p": p, "v_both": vb, "v_subjects": vs, "v_stimuli": vt,
            "v": v}



# ----------------------------------------------------------------------------------- replicates
def encoding_replicates(y, pred_a, pred_b, counts, *, units=None) -> dict:
    """Both models' ROI-mean held-out R² and r on the original stimuli and on every resample.

    Parameters
    ----------
    y : array of shape (n_stimuli, n_units[, n_times])
        Observed test responses.
    pred_a, pred_b : arrays of the same shape
        The two models' held-out predictions of ``y``.
    counts : array of shape (n_boot, n_stimuli)
        Multinomial stimulus counts (:func:`brainlid.alignment.uncertainty.bootstrap_counts`): the
        same resamples for both models.
    units : bool array of shape (n_units[, n_times]) or None
        Average over these units only (the units with a noise ceiling above the floor, for the
        normalised difference); default every unit.

    Returns
    -------
    dict ``"r2"`` / ``"r"`` → ``(est_a, est_b, reps_a, reps_b)`` with estimates of shape
    ``([n_times])`` and replicates ``(n_boot[, n_times])`` (ROI means; NaN with no unit).
    """
    return encoding_replicates_by_units(y, pred_a, pred_b, counts, [units])[0]


def encoding_replicates_by_units(y, pred_a, pred_b, counts, unit_sets) -> list[dict]:
    """:func:`encoding_replicates` for several unit sets (``None``: every unit), one bootstrap pass per model.

    Parameters
    ----------
    y, pred_a, pred_b, counts
        As :func:`encoding_replicates`.
    unit_sets : sequence of (bool array of shape (n_units[, n_times]) or None)

    Returns
    -------
    list of dict, one per unit set, as :func:`encoding_replicates` returns.
    """
    y, a, b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    if not (y.shape == a.shape == b.shape) or y.ndim not in (2, 3):
        raise InputError(f"responses {y.shape} and predictions {a.shape}, {b.shape} must have one shape "
                         "(n_stimuli, n_units[, n_times])")
    masks = []
    for units in unit_sets:  # a unit subset (n_units,) or kept (unit, time) cells, as a (n_units[, n_times]) mask
        u = np.ones(y.shape[1:], dtype=bool) if units is None else np.asarray(units, dtype=bool)
        masks.append(np.broadcast_to(u.reshape(u.shape + (1,) * (y.ndim - 1 - u.ndim)), y.shape[1:]))
    masks = np.stack(masks)
    n_units = masks.sum(axis=1).astype(np.float64)  # (n_sets[, n_times])
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(n_units > 0, 1.0 / np.where(n_units > 0, n_units, 1.0), np.nan)
        per = {}
        for label, P in (("a", a), ("b", b)):
            scores = dict(zip(("r", "r2"), unit_scores(y, P)))
            sums = bootstrap_unit_sums(y, P, counts, metrics=("r2", "r"), masks=masks)
            per[label] = {m: [((scores[m] * mask).sum(axis=0, dtype=np.float64) * inv[j], sums[m][j] * inv[j])
                              for j, mask in enumerate(masks)] for m in ("r2", "r")}
    return [{m: (per["a"][m][j][0], per["b"][m][j][0], per["a"][m][j][1], per["b"][m][j][1]) for m in ("r2", "r")}
            for j in range(len(masks))]


def rsa_replicates(model_a, model_b, brain_rdms, *, compare: str = "spearman", n_boot: int = 1000, seed: int = 0):
    """Both models' RDM comparisons with each brain RDM, on the stimuli and on every stimulus resample.

    Parameters
    ----------
    model_a, model_b : arrays of shape (n_pairs,)
        Condensed model RDMs over the same stimuli as ``brain_rdms``.
    brain_rdms : array of shape (k, n_pairs)
    compare : {"spearman", "pearson", "cosine"}
    n_boot, seed
        Resamples drawn as :func:`brainlid.alignment.uncertainty.bootstrap_counts` with
        ``default_rng(seed)`` (the encoding comparisons' resamples for the same number of stimuli).

    Returns
    -------
    (est, reps, n) : est (2, k) float64, reps (n_boot, 2, k) (uncorrected; pairs of a stimulus with its
    own copy left out, :func:`brainlid.alignment.rsa_bootstrap.rdm_bootstrap_ci`), n the number of stimuli.
    """
    M = np.stack([np.asarray(model_a, dtype=np.float64), np.asarray(model_b, dtype=np.float64)])
    B = np.atleast_2d(np.asarray(brain_rdms, dtype=np.float64))
    n = n_from_condensed(M.shape[1])
    est = np.asarray(compare_rdms(M, B, method=compare), dtype=np.float64).reshape(2, B.shape[0])
    *_, dist = rdm_bootstrap_ci(M, B, n, compare=compare, n_boot=n_boot, seed=seed, return_distribution=True,
                                correct=False)
    return est, dist, n


def _difference_excess(model_a, model_b, brain_rdms, n: int, compare: str, brain_weights=None) -> np.ndarray:
    """Bootstrap excess variance (:func:`~brainlid.alignment.rsa_bootstrap.second_order_excess`) of A − B against
    each brain RDM (k,), or of the ``brain_weights`` combination (a scalar in a (1,) array)."""
    M = np.stack([np.asarray(model_a), np.asarray(model_b)])
    B = np.atleast_2d(np.asarray(brain_rdms))
    if brain_weights is not None:
        return second_order_excess(M, B, n, compare, weights=([1.0, -1.0], brain_weights))[0]
    return np.array([second_order_excess(M, B[j:j + 1], n, compare, weights=([1.0, -1.0], [1.0]))[0, 0]
                     for j in range(B.shape[0])])


def _shrink(reps, excess):
    """:func:`~brainlid.alignment.rsa_bootstrap.excess_shrink` of the replicates (1.0 with no excess)."""
    return excess_shrink(reps, excess) if np.any(excess) else 1.0
