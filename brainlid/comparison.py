"""Paired comparisons of two models on the same brain data (``brainlid compare``).

Two models scored on one benchmark were evaluated on the **same** test stimuli, so their scores
are correlated: an easy stimulus is easy for both. Comparing their two intervals ignores that
(overlapping intervals do not mean "no difference"); the paired bootstrap resamples the
stimuli once and recomputes both models' scores on every resample, so the interval and p-value
are those of the difference ``A − B`` itself.

Pure functions over arrays, then a thin reader of the results store:

* :func:`holm` — Holm's step-down adjustment of p-values (several benchmarks compared);
* :func:`paired_summary` — estimate, interval and two-sided p-value of a difference from its
  bootstrap replicates (basic interval; optional variance correction);
* :func:`dual_bootstrap_variance`, :func:`group_summary` — the group-level difference over
  several subjects seen on the same stimuli, resampling subjects and stimuli together with the
  variance correction of Schütt et al. (2023) (rsatoolbox's ``eval_dual_bootstrap``);
* :func:`encoding_replicates`, :func:`rsa_replicates` — both models' scores on the original and
  on the resampled stimuli (held-out predictions, or model RDMs);
* :func:`compare_models` — reads rows and arrays from a :class:`~brainlid.scoring.store.ResultsStore`
  and returns the tidy comparison table (:data:`COMPARISON_COLUMNS`).

Conventions
-----------
* **Interval**: basic bootstrap interval ``(2d̂ − q_hi, 2d̂ − q_lo)`` of the replicates d* of the
  difference (as the encoding rows' intervals, :func:`brainlid.alignment.uncertainty.basic_interval`).
* **p-value** (two-sided): ``min(1, 2 (1 + #{b : 2d̂ − d*_b on the other side of 0 or at 0}) / (1 + B))``
  — the share of reflected replicates beyond 0, doubled, with the +1 that keeps it valid; 0 is
  outside the (1 − α) basic interval about when p < α. Identical models: d̂ = 0 and p = 1.
* **RSA**: resampling stimuli counts the residual of each stimulus *pair* three times
  (:func:`brainlid.alignment.rsa_bootstrap.second_order_excess`); the replicates of a difference
  are shrunk about d̂ by ``√(max(V − excess, V/4) / V)`` with the excess of the difference.
* **Group level** (several subjects, same stimuli): the mean over subjects of the per-subject
  difference. Replicates resample subjects (counts over S) and stimuli (the same stimulus counts
  for every subject) together; the plain two-factor bootstrap double-counts the subject ×
  stimulus noise (Schütt et al. 2023), so the variance is the dual-bootstrap combination of the
  subjects-only, stimuli-only and both bootstraps (:func:`dual_bootstrap_variance`), and the
  both-bootstrap replicates are shrunk to it.
* **Several benchmarks**: ``p_holm`` — Holm's adjustment over the rows of one metric and level
  (every benchmark and time point compared).

References
----------
Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 and 16. Davison & Hinkley
(1997), §5.2 (basic interval). Holm (1979), Scand. J. Stat. 6:65. Schütt, Kipnis, Diedrichsen,
Kriegeskorte (2023), "Statistical inference on representational geometries", eLife 12:e82566.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from .alignment.encoding import unit_scores
from .alignment.rsa import compare_rdms, n_from_condensed
from .alignment.rsa_bootstrap import excess_shrink, rdm_bootstrap_ci, second_order_excess
from .alignment.uncertainty import bootstrap_counts, bootstrap_unit_sums
from .errors import FileFormatError, InputError
from .scoring.benchmarks import get_benchmark
from .scoring.store import ResultsStore

__all__ = ["COMPARISON_COLUMNS", "holm", "paired_summary", "dual_bootstrap_variance", "group_summary",
           "encoding_replicates", "encoding_replicates_by_units", "rsa_replicates", "compare_models", "CI_METHOD_PAIRED", "CI_METHOD_GROUP"]

CI_METHOD_PAIRED = "paired-stimulus-bootstrap"  #: ``ci_method`` of one benchmark's rows
CI_METHOD_GROUP = "dual-bootstrap-subjects-stimuli"  #: ``ci_method`` of group-level rows (Schütt et al. 2023)

#: Columns of the comparison table, in order.
COMPARISON_COLUMNS = [
    "model_a", "model_b", "layer_a", "layer_b", "benchmark", "benchmark_version", "dataset", "subject", "roi",
    "metric", "time", "level", "n_subjects", "n_stimuli", "value_a", "value_b", "difference", "ci_low", "ci_high",
    "p_value", "p_holm", "normalised_a", "normalised_b", "normalised_difference", "normalised_ci_low",
    "normalised_ci_high", "ci_method", "n_boot", "seed", "data_source",
]


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


# ----------------------------------------------------------------------------------- the store
def _rerun(store, model: str, bench: str, layer_choice: str) -> str:
    extra = "" if layer_choice == "selected" else " (other layers than the selected one: brainlid.score(..., keep_arrays='all'))"
    return (f"re-run `brainlid score --model <spec of {model}> --benchmark {bench} --store {store.path} --replace`"
            f"{extra}")


def _pick_rows(store, models: Sequence[str], bench: str, layer: str) -> dict:
    """model → its test rows of ``bench`` (newest version it has, the chosen layer)."""
    rows = store.scores(model=list(dict.fromkeys(models)), benchmark=bench, split="test", versions="all")
    out = {}
    for m in models:
        r = rows[rows["model"] == m]
        if r.empty:
            raise InputError(f"the store {store.path} has no test scores of model {m!r} on {bench}; "
                             f"score it first (brainlid score --model <spec> --benchmark {bench} --store {store.path})")
        r = r[r["benchmark_version"] == r["benchmark_version"].max()]
        r = r[r["selected"].astype(bool)] if layer == "selected" else r[r["layer"] == layer]
        if r.empty:
            have = sorted(rows.loc[rows["model"] == m, "layer"].astype(str).unique())
            raise InputError(f"model {m!r} has no {'selected layer' if layer == 'selected' else f'layer {layer!r}'} "
                             f"on {bench} in {store.path} (layers: {', '.join(have)})")
        out[m] = r.reset_index(drop=True)
    a, b = models
    va, vb = (int(out[m]["benchmark_version"].iloc[0]) for m in models)
    if va != vb:
        raise InputError(f"cannot compare on {bench}: {a!r} was scored on benchmark version {va} and {b!r} on version "
                         f"{vb} (the scores mean different things); re-score the older one with --replace")
    sa, sb = ("/".join(sorted(set(out[m]["data_source"].astype(str)))) for m in models)
    if sa != sb:
        raise InputError(f"cannot compare on {bench}: {a!r} was scored on {sa} data and {b!r} on {sb} data")
    return out


def _load(store, model: str, layer: str, bench: str, version: int, need: Sequence[str], layer_choice: str) -> dict:
    try:
        arrs = store.load_arrays(model, layer, bench, version)
    except FileFormatError as exc:  # e.g. the store file copied without its arrays folder
        raise InputError(f"{exc}; {_rerun(store, model or '<model>', bench, layer_choice)}") from exc
    if not any(k in arrs for k in need):
        what = f"held-out predictions of {model!r} (layer {layer})" if model else "observed test data"
        raise InputError(f"the store {store.path} has no {what} on {bench} version {version} (scored before "
                         f"`brainlid compare` existed, or without a store); {_rerun(store, model or '<model>', bench, layer_choice)}")
    return arrs


def _check_value(stored, recomputed, model: str, bench: str, store, layer_choice: str) -> None:
    s = np.asarray(stored, dtype=np.float64).reshape(-1)
    r = np.asarray(recomputed, dtype=np.float64).reshape(-1)
    if s.shape != r.shape or not np.allclose(s, r, atol=2e-4, rtol=1e-3, equal_nan=True):
        raise InputError(f"the stored arrays of {model!r} on {bench} do not reproduce its stored score "
                         f"({s[:3].round(4).tolist()} vs {r[:3].round(4).tolist()}); {_rerun(store, model, bench, layer_choice)}")


def _bench_record(store, a: str, b: str, bench: str, layer: str, n_boot: int, seed: int) -> dict:
    """One benchmark's per-metric estimates and difference replicates (see :func:`compare_models`)."""
    rows = _pick_rows(store, (a, b), bench, layer)
    ra, rb = rows[a], rows[b]
    version = int(ra["benchmark_version"].iloc[0])
    la, lb = str(ra["layer"].iloc[0]), str(rb["layer"].iloc[0])
    shared = _load(store, "", "", bench, version, ("responses", "brain_rdms"), layer)
    own_a = _load(store, a, la, bench, version, ("pred", "model_rdm"), layer)
    own_b = _load(store, b, lb, bench, version, ("pred", "model_rdm"), layer)
    try:
        params = get_benchmark(bench).params
    except Exception:  # a benchmark no longer registered: the defaults
        params = {}
    first = ra.iloc[0]
    rec = {"benchmark": bench, "benchmark_version": version, "dataset": str(first["dataset"]), "roi": str(first["roi"]),
           "subject": str(first["subject"]), "layer_a": la, "layer_b": lb,
           "data_source": str(first["data_source"]), "ids": np.asarray(shared["stimulus_ids"]), "metrics": {}}
    if "pred" in own_a:
        y, pa, pb = shared["responses"], own_a["pred"], own_b["pred"]
        n = int(y.shape[0])
        counts = bootstrap_counts(n, n_boot, np.random.default_rng(seed))
        nc = shared.get("noise_ceiling")
        unit_sets = [None]
        if nc is not None:  # the units above the ceiling floor (normalised difference), from the same pass
            ncz = np.nan_to_num(np.asarray(nc, dtype=np.float64), nan=0.0)
            unit_sets.append(ncz > float(params.get("ceiling_floor", 0.1)))
        allu, kept = (encoding_replicates_by_units(y, pa, pb, counts, unit_sets) + [None])[:2]
        for metric, key in (("encoding_r2", "r2"), ("encoding_r", "r")):
            xa, xb = ra[ra["metric"] == metric], rb[rb["metric"] == metric]
            ea, eb, rpa, rpb = allu[key]
            _check_value(xa["value"], ea, a, bench, store, layer)
            _check_value(xb["value"], eb, b, bench, store, layer)
            q = {"time": xa["time"].to_numpy(dtype=np.float64), "value": (ea, eb, rpa - rpb, 0.0), "norm": None}
            if kept is not None:
                ceil = xa["ceiling"].to_numpy(dtype=np.float64).reshape(np.shape(ea))
                ka, kb, kra, krb = kept[key]
                q["norm"] = (ka / ceil, kb / ceil, (kra - krb) / ceil, 0.0)
            rec["metrics"][metric] = q
        rec["n_stimuli"] = n
        return rec
    compare = str(params.get("rdm_compare", "spearman"))
    M_a, M_b, Bk = own_a["model_rdm"], own_b["model_rdm"], shared["brain_rdms"]
    est, dist, n = rsa_replicates(M_a, M_b, Bk, compare=compare, n_boot=n_boot, seed=seed)
    rec["n_stimuli"] = n
    metric = str(ra["metric"].iloc[0])
    subjects = [str(s) for s in shared["subjects"]] if "subjects" in shared else None
    if subjects is None:  # a single subject's responses (one RDM per time point)
        idx = slice(None)
        sel_a, sel_b = ra, rb
    else:  # an RDM benchmark: the stored test row is the group-mean RDM's (last row)
        idx = slice(len(subjects) - 1, len(subjects))
        sel_a, sel_b = ra[ra["subject"] == "mean"], rb[rb["subject"] == "mean"]
    ea, eb = est[0, idx], est[1, idx]
    _check_value(sel_a["value"], ea, a, bench, store, layer)
    _check_value(sel_b["value"], eb, b, bench, store, layer)
    ex = _difference_excess(M_a, M_b, np.asarray(Bk)[idx], n, compare)
    q = {"time": sel_a["time"].to_numpy(dtype=np.float64), "value": (ea, eb, dist[:, 0, idx] - dist[:, 1, idx], ex),
         "norm": None}
    if subjects is not None:  # normalised = value / ceiling (the group-split-half ceiling of the test half)
        ceil = sel_a["ceiling"].to_numpy(dtype=np.float64)
        if np.all(np.isfinite(ceil)):
            q["norm"] = (ea / ceil, eb / ceil, (dist[:, 0, idx] - dist[:, 1, idx]) / ceil, ex / ceil**2)
        rec["subject"] = "mean"
        S = len(subjects) - 1
        if S >= 2:  # group level over the benchmark's subjects (dual bootstrap)
            rec["within_group"] = {
                "metric": metric, "n_subjects": S,
                "d": est[0, :S] - est[1, :S], "a": est[0, :S].mean(), "b": est[1, :S].mean(),
                "reps": dist[:, 0, :S] - dist[:, 1, :S],
                "excess": _difference_excess(M_a, M_b, np.asarray(Bk)[:S], n, compare, np.full(S, 1.0 / S))[0]}
    rec["metrics"][metric] = q
    return rec


def _subject_counts(n_subjects: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, S) multinomial subject counts, from a stream independent of the stimulus counts."""
    return bootstrap_counts(n_subjects, n_boot, np.random.default_rng([int(seed), 18]))


def compare_models(store, model_a: str, model_b: str, benchmarks, *, layer: str = "selected", n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Paired comparison ``A − B`` of two models on benchmarks, from the arrays kept in a results store.

    Parameters
    ----------
    store : ResultsStore or path
    model_a, model_b : str
        Model names as in the store's ``model`` column.
    benchmarks : str or sequence of str
        Benchmark ids; each must hold both models' test rows of one benchmark version and data source.
    layer : "selected" or a layer name
        The layer chosen on the validation split (default), or a named layer (both models).
    n_boot, seed, level
        Stimulus resamples (the same for both models, and for every benchmark with the same number of
        test stimuli), their seed, the confidence level.

    Returns
    -------
    DataFrame
        DataFrame with :data:`COMPARISON_COLUMNS`: one row per benchmark × metric [× time] (``level =
        "subject"``; for an RDM benchmark the group-mean RDM's row, ``subject = "mean"``), and
        ``level = "group"`` rows (``subject = "group"``) for the mean over subjects seen on the same
        stimuli — the subjects of an RDM benchmark, or several benchmarks of one dataset, ROI and
        metric (e.g. ``nsd.subj01.EBA.encoding`` … ``nsd.subj08.EBA.encoding``) with the same test
        stimuli — with the dual bootstrap (module docstring). ``p_holm``: Holm over the rows of each
        (metric, level).

    Raises
    ------
    InputError
        A model or layer missing, different benchmark versions or data sources, arrays missing (the
        message says what to re-run) or not reproducing the stored score.
    """
    st = store if isinstance(store, ResultsStore) else ResultsStore(store)
    benches = [benchmarks] if isinstance(benchmarks, str) else list(dict.fromkeys(benchmarks))
    if not benches:
        raise InputError("give at least one benchmark")
    if int(n_boot) < 10:
        raise InputError(f"n_boot must be >= 10, got {n_boot}")
    recs = [_bench_record(st, model_a, model_b, b, layer, int(n_boot), int(seed)) for b in benches]
    common = {"model_a": model_a, "model_b": model_b, "n_boot": int(n_boot), "seed": int(seed)}
    rows: list[dict] = []

    def emit(meta, metric, times, ea, eb, low, high, p, norm, level_name, n_subjects, method):
        for t in range(np.size(ea)):
            pick = (lambda x: float(np.ravel(x)[t]) if x is not None and np.size(x) > 1 else
                    (float(np.ravel(x)[0]) if x is not None and np.size(x) else np.nan))
            row = {**common, **meta, "metric": metric, "time": pick(times) if np.size(times) else np.nan,
                   "level": level_name, "n_subjects": n_subjects, "value_a": pick(ea), "value_b": pick(eb),
                   "difference": pick(ea) - pick(eb), "ci_low": pick(low), "ci_high": pick(high), "p_value": pick(p),
                   "ci_method": method}
            if norm is not None:
                na, nb, nlo, nhi = norm
                row.update(normalised_a=pick(na), normalised_b=pick(nb), normalised_difference=pick(na) - pick(nb),
                           normalised_ci_low=pick(nlo), normalised_ci_high=pick(nhi))
            rows.append(row)

    for rec in recs:
        meta = {k: rec[k] for k in ("benchmark", "benchmark_version", "dataset", "subject", "roi", "layer_a",
                                    "layer_b", "data_source", "n_stimuli")}
        for metric, q in rec["metrics"].items():
            ea, eb, reps, ex = q["value"]
            f = _shrink(reps, ex)
            low, high, p = paired_summary(ea - eb, reps, shrink=f, level=level)
            norm = None
            if q["norm"] is not None:
                na, nb, nreps, nex = q["norm"]
                nlo, nhi, _ = paired_summary(na - nb, nreps, shrink=_shrink(nreps, nex), level=level)
                norm = (na, nb, nlo, nhi)
            emit(meta, metric, q["time"], ea, eb, low, high, p, norm, "subject", 1, CI_METHOD_PAIRED)
        g = rec.get("within_group")
        if g is not None:
            res = group_summary(g["d"], g["reps"], _subject_counts(g["n_subjects"], int(n_boot), seed),
                                rec["n_stimuli"], excess=g["excess"], level=level)
            emit({**meta, "subject": "group"}, g["metric"], np.array([np.nan]), np.array([g["a"]]),
                 np.array([g["b"]]), res["low"], res["high"], res["p"], None, "group", g["n_subjects"],
                 CI_METHOD_GROUP)
    rows += _across_benchmark_groups(recs, common, level, int(n_boot), int(seed))
    df = pd.DataFrame(rows)
    for c in COMPARISON_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    df = df[COMPARISON_COLUMNS]
    df["p_holm"] = np.nan
    for _, part in df.groupby(["metric", "level"], sort=False):
        df.loc[part.index, "p_holm"] = holm(part["p_value"].to_numpy())
    return df


def _shrink(reps, excess):
    """:func:`~brainlid.alignment.rsa_bootstrap.excess_shrink` of the replicates (1.0 with no excess)."""
    return excess_shrink(reps, excess) if np.any(excess) else 1.0


def _across_benchmark_groups(recs, common, level, n_boot, seed) -> list[dict]:
    """Group rows over benchmarks that are subjects of one dataset/ROI/metric/version on the same test stimuli.

    (RSA benchmarks of single subjects: the pair-level excess is not removed here — the shared model
    RDM makes the subjects' pair residuals dependent — so their group interval is conservative.)"""
    groups: dict = {}
    for rec in recs:
        if rec["subject"] in ("mean", "group", ""):
            continue
        for metric, q in rec["metrics"].items():
            key = (rec["dataset"], rec["roi"], metric, rec["benchmark_version"], rec["data_source"])
            groups.setdefault(key, []).append((rec, q))
    out = []
    for (dataset, roi, metric, version, source), members in groups.items():
        subjects = {r["subject"] for r, _ in members}
        if len(members) < 2 or len(subjects) < len(members):
            continue
        ids0 = members[0][0]["ids"]
        if any(r["ids"].shape != ids0.shape or not np.array_equal(r["ids"], ids0) for r, _ in members[1:]):
            continue  # not the same stimuli: no joint stimulus resampling
        S, n = len(members), int(members[0][0]["n_stimuli"])
        C = _subject_counts(S, n_boot, seed)
        la = {r["layer_a"] for r, _ in members}
        lb = {r["layer_b"] for r, _ in members}
        meta = {**common, "benchmark": ",".join(r["benchmark"] for r, _ in members), "benchmark_version": version,
                "dataset": dataset, "subject": "group", "roi": roi, "metric": metric, "level": "group",
                "n_subjects": S, "n_stimuli": n, "layer_a": ",".join(sorted(la)), "layer_b": ",".join(sorted(lb)),
                "data_source": source, "ci_method": CI_METHOD_GROUP}
        val = [q["value"] for _, q in members]
        D = np.stack([np.atleast_1d(v[0] - v[1]) for v in val])
        R = np.stack([np.asarray(v[2]).reshape(n_boot, -1) for v in val], axis=1)
        res = group_summary(D, R, C, n, level=level)
        nres = None
        if all(q["norm"] is not None for _, q in members):
            nv = [q["norm"] for _, q in members]
            ND = np.stack([np.atleast_1d(v[0] - v[1]) for v in nv])
            NR = np.stack([np.asarray(v[2]).reshape(n_boot, -1) for v in nv], axis=1)
            nres = group_summary(ND, NR, C, n, level=level)
            na = np.mean([np.atleast_1d(v[0]) for v in nv], axis=0)
            nb = np.mean([np.atleast_1d(v[1]) for v in nv], axis=0)
        ea = np.mean([np.atleast_1d(v[0]) for v in val], axis=0)
        eb = np.mean([np.atleast_1d(v[1]) for v in val], axis=0)
        times = members[0][1]["time"]
        for t in range(ea.size):
            row = {**meta, "time": float(times[t]) if np.size(times) > t else np.nan, "value_a": float(ea[t]),
                   "value_b": float(eb[t]), "difference": float(res["estimate"][t]), "ci_low": float(res["low"][t]),
                   "ci_high": float(res["high"][t]), "p_value": float(res["p"][t])}
            if nres is not None:
                row.update(normalised_a=float(na[t]), normalised_b=float(nb[t]),
                           normalised_difference=float(nres["estimate"][t]), normalised_ci_low=float(nres["low"][t]),
                           normalised_ci_high=float(nres["high"][t]))
            out.append(row)
    return out
