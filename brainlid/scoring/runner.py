"""The scoring grid: model × layer × benchmark → tidy score and geometry rows.

Everything here is a pure function of arrays except :func:`score`, the thin driver that
loads data, extracts (cached) features, calls the pure functions and writes the results:

* :func:`make_splits` — fit / val / train / test stimulus ids of a benchmark (val is a seeded
  part of train; the test split is never touched by layer selection);
* :func:`score_layer` — one **cell** (one model layer on one benchmark) → rows for the
  ``val`` and ``test`` splits. A cell is independent of every other cell, so a parallel
  scheduler can map cells onto workers and concatenate the rows;
* :func:`select_best_layer` — picks the layer from ``val`` rows only and marks it;
* :func:`geometry_rows` — LID K-sweep and global measures of one layer on the benchmark's LID
  stimulus set;
* :func:`model_model_rows` — model–model alignment on a shared stimulus set;
* :func:`score_features` — all layers of one model's features on one benchmark;
* :func:`score` — the Python API behind ``brainlid score``.

Encoding (METHODS §6): features → PCA (``params["pca"]`` components, fitted on the fitting
stimuli only) → ridge with a per-unit α chosen by inner CV (himalaya, through
:func:`brainlid.alignment.encoding.ridge_cv_fit_predict`; X and Y centred on the fitting
stimuli; ``params["alphas"]`` relative to the mean eigenvalue of the fit features' Gram, so the
scores do not depend on the scale of X or Y) → held-out Pearson r and R² per unit → ROI means;
ceiling-normalised with :mod:`brainlid.alignment.ceiling` as a ratio of means over the units with
NC > floor (mean R² ÷ mean NC, mean r ÷ mean √NC); 95 % interval = basic bootstrap of the ROI mean
over ``params["n_boot"]`` resamples of the evaluated stimuli; ``alpha_edge_fraction`` per row.
RSA: correlation-distance RDMs of features and responses on the evaluated stimuli, compared
by Spearman's rho (:mod:`brainlid.alignment.rsa`); when the data keep repetitions
(:func:`rsa_split_half_ceiling`), ceiling = √ of the split-half reliability of the subject's RDM
(Spearman–Brown stepped up to the repetitions scored) and normalised = the model's score against
half-data RDMs ÷ √ of the halves' agreement (:func:`_rsa_rows`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .._version import __version__
from ..data.provenance import data_source_of
from ..errors import InputError
from .benchmarks import RSA_CEILING, Benchmark, get_benchmark, load_benchmark_data
from .plan import default_layers  # noqa: F401  (re-exported: brainlid.leaderboard.scoring imports it from here)
from .plan import lid_ids as _lid_ids, mm_benchmark_id, mm_benchmark_version, plan_grid
from .tables import geometry_frame, score_frame, write_table

__all__ = [
    "make_splits",
    "score_layer",
    "select_best_layer",
    "geometry_rows",
    "model_model_rows",
    "score_features",
    "score",
    "ScoreResult",
    "unit_scores",
    "unit_scores_for_layer",
    "encoding_rows",
    "rsa_split_half_ceiling",
    "keep_arrays",
    "prune_kept",
    "KEEP_ARRAYS",
]



# --------------------------------------------------------------------------- splits
def make_splits(brain, bench: Benchmark) -> dict[str, np.ndarray]:
    """Stimulus ids of the fit, val, train (= fit ∪ val) and test splits.

    ``val`` is a seeded ``params["val_fraction"]`` of the train split (at least 3 ids), used
    only to choose the best layer; ``fit`` is the rest. Ids present in both train and test are
    removed from train (test wins), so no stimulus is fitted and scored.
    """
    p = bench.params
    if "train" not in brain.splits or bench.split not in brain.splits:
        raise InputError(f"benchmark {bench.id}: data need 'train' and {bench.split!r} splits; have {list(brain.splits)}")
    test = np.sort(np.asarray(brain.splits[bench.split]))
    train = np.setdiff1d(np.asarray(brain.splits["train"]), test)
    if train.size < 6 or test.size < 3:
        raise InputError(f"benchmark {bench.id}: too few stimuli (train {train.size}, test {test.size})")
    rng = np.random.default_rng(p["seed"])
    n_val = min(train.size - 3, max(3, int(round(p["val_fraction"] * train.size))))
    val = np.sort(rng.choice(train, size=n_val, replace=False))
    fit = np.setdiff1d(train, val)
    return {"fit": fit, "val": val, "train": train, "test": test}


# --------------------------------------------------------------------------- per-unit encoding scores
def _pca(X_fit: np.ndarray, X_eval: np.ndarray, n_components, seed: int):
    # one global rescaling first (the RMS of the centred fit features, in float64): the PCA and the
    # ridge see O(1) numbers whatever the features' units (no float32 overflow at 1e20, X → cX gives
    # the same fit to float32 rounding); encoding scores do not depend on a global scale
    mean = X_fit.mean(axis=0, dtype=np.float64)
    msq = float(np.mean(np.square(X_fit - mean)))
    sx = np.sqrt(msq) if msq > 0 and np.isfinite(msq) else 1.0
    if n_components is None or n_components >= min(X_fit.shape):
        return ((X_fit - mean) / sx).astype(np.float32), ((X_eval - mean) / sx).astype(np.float32)
    from ..features.pooling import fit_pca

    Xs, Es = ((X_fit - mean) / sx).astype(np.float32), ((X_eval - mean) / sx).astype(np.float32)
    m, comps = fit_pca(Xs, int(n_components), seed=seed)
    return (Xs - m) @ comps.T, (Es - m) @ comps.T


def unit_scores(Y_true: np.ndarray, Y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out Pearson r and R² per unit (and time).

    ``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` with ȳ the mean over the evaluated stimuli; r is Pearson's
    correlation over the evaluated stimuli. Constant units get r = 0 and R² = 0 (no variance to
    explain). Shapes ``(n_stimuli, n_units[, n_times])`` → ``(n_units[, n_times])`` float32.
    """
    y = np.asarray(Y_true, dtype=np.float64)
    p = np.asarray(Y_pred, dtype=np.float64)
    yc = y - y.mean(axis=0)
    pc = p - p.mean(axis=0)
    sst = (yc**2).sum(axis=0)
    sse = ((y - p) ** 2).sum(axis=0)
    den = np.sqrt(sst * (pc**2).sum(axis=0))
    ok = sst > 1e-12
    r = np.where(den > 1e-300, (yc * pc).sum(axis=0) / np.where(den > 1e-300, den, 1.0), 0.0)
    r2 = np.where(ok, 1.0 - sse / np.where(ok, sst, 1.0), 0.0)
    return r.astype(np.float32), r2.astype(np.float32)


class EncodeResult(NamedTuple):
    """What one encoding fit of a cell returns (:func:`_encode`).

    ``r``, ``r2``: per-unit held-out scores ``(n_units[, n_times])`` float32; ``at_edge``: the
    unit's α is an end of the grid (same shape, bool); ``unbracketed``: at an end where the inner-CV
    score still improves (:meth:`RidgeResult.unbracketed`); ``n_alphas``: grid size; ``boot``: metric →
    ``(n_boot[, n_times])`` sums over units of the score on each stimulus resample
    (:func:`brainlid.alignment.uncertainty.bootstrap_unit_sums`), or None without a bootstrap;
    ``pred``: the held-out predictions (what ``brainlid compare`` resamples).
    """

    r: np.ndarray
    r2: np.ndarray
    at_edge: np.ndarray
    unbracketed: np.ndarray
    n_alphas: int
    boot: dict | None
    pred: np.ndarray | None = None  #: held-out predictions (n_eval, n_units[, n_times]) float32 (kept for comparisons)


def _encode(X_fit, Y_fit, X_eval, Y_eval, params) -> EncodeResult:
    """Fit the encoding model on (X_fit, Y_fit), score on the eval stimuli: per-unit (r, R²), the
    α-edge mask and the stimulus-bootstrap sums of the ROI mean.

    α: ``params["alphas"]`` relative to the mean eigenvalue of the (PCA-reduced, centred) fit
    features' Gram matrix (``alpha_scale="relative"`` of :func:`ridge_cv_fit_predict`), so the fit
    is invariant to rescaling X or Y. Bootstrap: ``params["n_boot"]`` multinomial resamples of the
    evaluated stimuli drawn with ``params["seed"]`` (the same draws for every unit, time point and
    voxel batch of the cell).
    """
    from ..alignment.encoding import ridge_cv_fit_predict
    from ..alignment.uncertainty import bootstrap_counts, bootstrap_unit_sums

    Xf, Xe = _pca(X_fit, X_eval, params["pca"], params["seed"])
    shape = Y_eval.shape
    Yf = Y_fit.reshape(Y_fit.shape[0], -1)
    n_cv = int(min(params["cv"], Xf.shape[0]))
    res = ridge_cv_fit_predict(
        np.ascontiguousarray(Xf, dtype=np.float32), np.ascontiguousarray(Yf, dtype=np.float32),
        np.ascontiguousarray(Xe, dtype=np.float32), alphas=np.asarray(params["alphas"]), n_folds=n_cv, center=True,
        alpha_scale="relative",
    )
    pred = np.asarray(res.predictions, dtype=np.float32).reshape(shape)
    r, r2 = unit_scores(Y_eval, pred)
    n_eval, n_boot = int(shape[0]), int(params["n_boot"])
    boot = None
    if n_eval >= 2 and n_boot >= 10:
        counts = bootstrap_counts(n_eval, n_boot, np.random.default_rng(params["seed"]))
        boot = bootstrap_unit_sums(Y_eval, pred, counts, metrics=("r2", "r"))
    return EncodeResult(r, r2, res.at_grid_edge.reshape(shape[1:]), res.unbracketed().reshape(shape[1:]),
                        int(res.alphas.size), boot, pred)


ALPHA_EDGE_WARN = 0.5  #: warn when more than this fraction of a cell's units have an unbracketed α


def _warn_alpha_edges(unbracketed: np.ndarray, what: str) -> None:
    """One RuntimeWarning for a cell where more than :data:`ALPHA_EDGE_WARN` of the units (at any time
    point) chose an end of the α grid while the inner-CV score was still improving towards it."""
    u = np.asarray(unbracketed, dtype=np.float64)
    worst = float(np.max(u.mean(axis=0))) if u.size else 0.0
    if worst > ALPHA_EDGE_WARN:
        warnings.warn(
            f"{what}: for {worst:.0%} of the units the ridge α is an end of the grid and the inner CV still improves "
            "towards it (the grid does not bracket the optimum; see alpha_edge_fraction); widen params['alphas']",
            RuntimeWarning, stacklevel=4,
        )


# --------------------------------------------------------------------------- one cell
def _aligned(X: np.ndarray, feature_ids, brain):
    from ..data.ids import match_ids

    ix, ib = match_ids(feature_ids, brain.stimulus_ids, names=("features", f"{brain.dataset} {brain.subject}"))
    ids = np.asarray(brain.stimulus_ids)[ib]
    return X[ix], brain.responses[ib], ids


def _positions(ids: np.ndarray, want: np.ndarray, what: str) -> np.ndarray:
    order = np.argsort(ids)
    pos = np.searchsorted(ids, want, sorter=order)
    pos = np.clip(pos, 0, ids.size - 1)
    found = order[pos]
    hit = ids[found] == want
    if not hit.all():
        missing = want[~hit]
        raise InputError(f"{missing.size} {what} stimulus id(s) have no features, e.g. {list(missing[:5])}")
    return found


def score_layer(
    X,
    feature_ids,
    brain,
    bench: Benchmark | str,
    *,
    model: str,
    layer: str,
    layer_index: int = 0,
    splits: Mapping[str, np.ndarray] | None = None,
    which: Sequence[str] = ("val", "test"),
    feature_cache_key: str = "",
    keep: dict | None = None,
) -> list[dict]:
    """Score one layer's features on one benchmark: rows for each split in ``which``.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features) float32
        The layer's features, one row per id in ``feature_ids``.
    feature_ids : array-like of shape (n_stimuli,)
    brain : BrainData
        The benchmark's responses ``(stimulus, unit[, time])`` (ROI already selected).
    bench : Benchmark or id
    model, layer, layer_index : provenance of the rows
    splits : mapping or None
        From :func:`make_splits` (computed when None).
    which : sequence of {"val", "test"}
        ``"val"`` fits on ``fit`` and scores ``val`` (for layer selection); ``"test"`` fits on
        ``train`` (= fit ∪ val) and scores ``test``.
    keep : dict or None
        When given, the ``test`` split's arrays a paired comparison needs are added to it, keyed
        ``(model, layer, benchmark, benchmark_version, "test", name)``: the held-out predictions
        (``pred``, float32 ``(n_test, n_units[, n_times])``) or the model RDM (``model_rdm``, condensed
        float32), and once per benchmark (``model = layer = ""``) the observed ``responses`` and
        ``noise_ceiling`` or the ``brain_rdms``, with the ``stimulus_ids``
        (:meth:`brainlid.scoring.store.ResultsStore.add_arrays`; no copy beyond references).

    Returns
    -------
    list of dict — score rows (:data:`brainlid.scoring.tables.SCORE_COLUMNS`).
    """
    bench = get_benchmark(bench)
    p = bench.params
    splits = make_splits(brain, bench) if splits is None else splits
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise InputError(f"features of layer {layer!r} must be 2-D (n_stimuli, n_features), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise InputError(f"features of layer {layer!r} of {model!r} contain NaN/inf")
    Xa, Ya, ids = _aligned(X, feature_ids, brain)
    times = brain.times
    nc = brain.noise_ceiling
    base = {
        "model": model, "layer": layer, "layer_index": layer_index, "benchmark": bench.id, "dataset": bench.dataset,
        "subject": bench.subject, "roi": bench.roi, "brainlid_version": __version__,
        "benchmark_version": bench.version, "feature_cache_key": feature_cache_key, "data_source": data_source_of(brain),
    }
    rows: list[dict] = []
    for split in which:
        if split not in ("val", "test"):
            raise InputError(f"split must be 'val' or 'test', got {split!r}")
        fit_ids, eval_ids = (splits["fit"], splits["val"]) if split == "val" else (splits["train"], splits["test"])
        fi = _positions(ids, fit_ids, f"{split}-fit")
        ei = _positions(ids, eval_ids, split)
        got = {} if (keep is not None and split == "test") else None
        Ye = Ya[ei]
        if bench.metric == "encoding":
            rows += _encoding_rows(Xa[fi], Ya[fi], Xa[ei], Ye, nc, times, p,
                                   {**base, "split": split, "ceiling_method": bench.ceiling}, keep=got)
        else:
            ceiling = rsa_split_half_ceiling(brain, ids[ei], p, bench.id, warn=split == "test")
            rows += _rsa_rows(Xa[ei], Ye, times, p, {**base, "split": split}, ceiling=ceiling, keep=got)
        if got is not None:
            own = {k: got.pop(k) for k in ("pred", "model_rdm") if k in got}
            shared = {"stimulus_ids": ids[ei], **got}
            if bench.metric == "encoding":
                shared["responses"] = Ye
                if nc is not None:
                    shared["noise_ceiling"] = np.asarray(nc, dtype=np.float32)
            keep_arrays(keep, own, model, layer, bench, "test")
            keep_arrays(keep, shared, "", "", bench, "test")
    return rows


def keep_arrays(keep: dict, arrays: Mapping[str, np.ndarray], model: str, layer: str, bench: Benchmark,
                split: str) -> None:
    """Add ``arrays`` (name → array) to a ``keep`` collector under ``(model, layer, benchmark, version, split,
    name)``; a benchmark's own arrays (``model = ""``) are added once."""
    for name, a in arrays.items():
        keep.setdefault((model, layer, bench.id, int(bench.version), split, name), a)


def prune_kept(keep: dict | None, scores: pd.DataFrame, model: str, bench_id: str) -> None:
    """Drop from ``keep`` the arrays of ``model``'s layers on ``bench_id`` that are not the selected layer of
    ``scores`` (rows with ``selected`` set by :func:`select_best_layer`): only the selected layer's
    predictions stay in memory and reach the store."""
    if not keep:
        return
    sel = set(scores.loc[scores["selected"].astype(bool), "layer"].astype(str))
    for k in [k for k in keep if k[0] == model and k[0] != "" and k[2] == bench_id and k[1] not in sel]:
        del keep[k]


def _encoding_rows(X_fit, Y_fit, X_eval, Y_eval, nc, times, p, base, keep: dict | None = None) -> list[dict]:
    fit = _encode(X_fit, Y_fit, X_eval, Y_eval, p)
    if keep is not None:
        keep["pred"] = fit.pred
    if base.get("split") == "test":  # one warning per cell: the fit whose scores are reported
        _warn_alpha_edges(fit.unbracketed, f"{base.get('model')} {base.get('layer')} on {base.get('benchmark')}")
    return encoding_rows(fit.r, fit.r2, nc, times, p, base, int(X_eval.shape[0]), at_edge=fit.at_edge,
                         n_alphas=fit.n_alphas, boot=fit.boot)


def encoding_rows(r, r2, nc, times, p, base: dict, n_stimuli: int, *, at_edge=None, n_alphas: int = 0,
                  boot: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """Score rows (``encoding_r2`` and ``encoding_r``, per time point) from per-unit held-out scores.

    Parameters
    ----------
    r, r2 : arrays of shape (n_units[, n_times])
        Per-unit Pearson r and R² (:func:`unit_scores`).
    nc : array of shape (n_units[, n_times]) or None
        Noise ceilings (fraction). ``value`` is the mean over all units; over the units with
        NC > ``p["ceiling_floor"]`` (``n_units`` of them), ``ceiling`` is the mean NC (mean √NC for
        r), ``normalised`` = (mean R² over them) ÷ ``ceiling`` (mean r ÷ mean √NC) — a ratio of
        means, 1 for the true model — and ``normalised_unit_mean`` the mean of per-unit ratios.
    p : mapping
        Benchmark parameters (``ceiling_floor``).
    base : dict
        Provenance columns copied into every row (including ``ceiling_method``).
    n_stimuli : int
        Number of evaluated stimuli.
    at_edge : bool array of shape (n_units[, n_times]) or None
        Units whose α is an end of the grid → ``alpha_edge_fraction`` (NaN when None or when the grid
        has fewer than 3 values, ``n_alphas``).
    boot : mapping metric → (n_boot[, n_times]) or None
        Σ over units of ``r2`` / ``r`` per stimulus resample (:class:`EncodeResult`); ``ci_low`` /
        ``ci_high`` are the basic 95 % bootstrap interval of the ROI mean, 2·value − the 97.5 / 2.5 %
        quantiles of the resampled ROI means (:func:`brainlid.alignment.uncertainty.basic_interval`;
        ``ci_method = "stimulus-bootstrap"``), NaN without it.
    """
    from ..alignment.encoding import alpha_edge_fraction
    from ..alignment.ceiling import normalise_r, normalise_r2
    from ..alignment.uncertainty import basic_interval

    n_units = r.shape[0]
    edge = (np.full(r.shape[1:], np.nan) if at_edge is None
            else np.asarray(alpha_edge_fraction(np.asarray(at_edge).reshape(r.shape), n_alphas), dtype=np.float64))
    rows = []
    for metric, key, raw, norm in (("encoding_r2", "r2", r2, normalise_r2), ("encoding_r", "r", r, normalise_r)):
        nan = np.full(raw.shape[1:], np.nan)
        lo = hi = nan
        value = raw.mean(axis=0, dtype=np.float64)
        if boot is not None and key in boot:
            lo, hi = basic_interval(value, np.asarray(boot[key], dtype=np.float64) / n_units, 0.95)
        if nc is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ncz = np.nan_to_num(nc, nan=0.0)
                ns = norm(raw, ncz if ncz.ndim == raw.ndim else ncz[:, None], floor=p["ceiling_floor"])
            ceil = np.asarray(ns.roi_ceiling, dtype=np.float64)
            normd = np.asarray(ns.roi_normalised, dtype=np.float64)
            unit_mean = np.asarray(ns.roi_normalised_unit_mean, dtype=np.float64)
            kept = np.asarray(ns.n_kept)
        else:
            ceil = normd = unit_mean = nan
            kept = np.full(np.shape(value), n_units)
        value = np.atleast_1d(value)
        for t in range(value.size):
            pick = (lambda a: float(np.atleast_1d(a)[t] if np.size(a) > 1 else np.atleast_1d(a)[0]))
            rows.append({
                **base, "metric": metric, "time": float(times[t]) if times is not None else np.nan,
                "value": float(value[t]), "ci_low": pick(lo), "ci_high": pick(hi),
                "ci_method": "stimulus-bootstrap" if boot is not None else "",
                "ceiling": pick(ceil), "normalised": pick(normd), "normalised_unit_mean": pick(unit_mean),
                "alpha_edge_fraction": pick(edge),
                "n_units": int(pick(kept)) if nc is not None else n_units, "n_stimuli": int(n_stimuli),
            })
    return rows


def rsa_split_half_ceiling(brain, eval_ids, p, bench_id: str = "", warn: bool = True) -> np.ndarray | None:
    """Repetition-level responses behind the ceiling of single-subject RSA rows.

    The repetition-level responses that :func:`load_benchmark_data` keeps in
    ``brain.meta[REPS_META_KEY]`` for RSA benchmarks, restricted to the evaluated stimuli
    ``eval_ids`` (in that order). :func:`_rsa_rows` passes them, with the model RDM, to
    :func:`brainlid.alignment.ceiling.rdm_split_half` (``p["rdm_method"]`` RDMs compared by
    ``p["rdm_compare"]``, ``p["rsa_ceiling_splits"]`` seeded splits, default 5).

    Returns None (the rows' ``ceiling`` and ``normalised`` stay NaN) when the data carry no
    repetitions (a loader that averages them, e.g. a user benchmark built from averaged responses,
    or the train-split stimuli of THINGS-EEG2 whose repetitions are not kept), or when an
    evaluated stimulus has fewer than 2 repetitions (a stimulus absent from one half has no RDM
    row; e.g. the once-shown THINGS-fMRI train images of the ``val`` rows); with ``warn`` a
    RuntimeWarning says why in the second case. Otherwise an array of shape
    (n_eval, n_reps, n_units[, n_times]) (ragged repetitions NaN-padded).
    """
    from .benchmarks import REPS_META_KEY

    reps = (brain.meta or {}).get(REPS_META_KEY)
    if reps is None:
        return None
    eval_ids = np.asarray(eval_ids)
    if not np.all(np.isin(eval_ids, reps.stimulus_ids)):
        return None
    sub = reps.select(stimuli=eval_ids)
    pos = _positions(np.asarray(sub.stimulus_ids), eval_ids, "ceiling")
    n_reps = sub.n_reps[pos] if sub.n_reps is not None else np.full(eval_ids.size, sub.responses.shape[1])
    if np.any(n_reps < 2):
        if not warn:
            return None
        warnings.warn(
            f"{bench_id}: {int(np.sum(n_reps < 2))} evaluated stimuli have < 2 repetitions; the RSA split-half "
            "ceiling is left NaN", RuntimeWarning, stacklevel=3,
        )
        return None
    return sub.responses[pos]


#: ``ceiling_method`` of single-subject RSA rows (:func:`_rsa_rows`)
RSA_CEILING_METHOD = RSA_CEILING  # (the benchmarks' ``ceiling`` says the same)


def _rsa_rows(X_eval, Y_eval, times, p, base, ceiling=None, keep: dict | None = None) -> list[dict]:
    """RSA score rows (one per time point).

    ``value`` = compare(model RDM, RDM of the evaluated responses). ``ceiling``: the
    repetition-level responses of :func:`rsa_split_half_ceiling`, or None (ceiling and normalised
    NaN). From them, :func:`brainlid.alignment.ceiling.rdm_split_half` gives

    * ``ceiling`` = √r_sb, the split-half reliability of the subject's RDM stepped up to the
      repetitions scored (k = mean(1/⌊n_i/2⌋)/mean(1/n_i)): the correlation ceiling of ``value``;
    * ``normalised`` = mean over splits of compare(model RDM, half RDM) ÷ mean over splits of
      √compare(half A, half B) — disattenuated at the half level, which calibrates (true model ≈ 1)
      where ``value / ceiling`` is biased upward at low reliability (RDM distances are quadratic
      in the noise). NaN where r_sb <= ``p["ceiling_floor"]``. ``ceiling_method`` records it.

    ``ci_low``/``ci_high``: the variance-corrected stimulus bootstrap of ``value``
    (:func:`brainlid.scoring.rdm_benchmarks.rdm_bootstrap_ci`). ``keep``: a dict that receives the
    condensed ``model_rdm`` and the ``brain_rdms`` (n_times or 1, n_pairs), both float32.
    """
    from ..alignment.ceiling import rdm_split_half
    from ..alignment.rsa import compare_rdms, rdm
    from .rdm_benchmarks import BOOTSTRAP_METHODS, CI_METHOD, rdm_bootstrap_ci

    model_rdm = rdm(X_eval, method=p["rdm_method"])
    Ys = [Y_eval] if times is None else [Y_eval[..., t] for t in range(Y_eval.shape[-1])]
    brain_rdms = []
    with warnings.catch_warnings(record=True) as caught:  # one message, not one per time point
        warnings.simplefilter("always", UserWarning)
        for Y in Ys:
            brain_rdms.append(rdm(Y, method=p["rdm_method"]))
    if caught:
        warnings.warn(f"{base.get('benchmark', 'RSA')}: {caught[0].message}" + (
            f" (at {len(caught)} time points)" if len(caught) > 1 else ""), UserWarning, stacklevel=3)
    brain_rdms = np.stack(brain_rdms)
    if keep is not None:
        keep["model_rdm"] = np.asarray(model_rdm, dtype=np.float32)
        keep["brain_rdms"] = np.asarray(brain_rdms, dtype=np.float32)
    values = np.atleast_1d(compare_rdms(model_rdm, brain_rdms, method=p["rdm_compare"]))
    # 95 % CI: bootstrap over the evaluated stimuli (pairs of a stimulus with its own copy excluded)
    lo = hi = np.full(values.shape, np.nan)
    ci_method = ""
    if p["rdm_compare"] in BOOTSTRAP_METHODS and p["rsa_n_boot"] >= 10:
        lo, hi = (a[0] for a in rdm_bootstrap_ci(model_rdm[None], brain_rdms, int(X_eval.shape[0]),
                                                  compare=p["rdm_compare"], n_boot=p["rsa_n_boot"], seed=p["seed"]))
        ci_method = CI_METHOD
    ceil = normd = np.full(values.shape, np.nan)
    method = ""
    if ceiling is not None:
        sh = rdm_split_half(ceiling, p["rdm_method"], p["rdm_compare"], n_splits=int(p.get("rsa_ceiling_splits", 5)),
                            seed=p["seed"], model_rdms=model_rdm)
        r_sb = np.broadcast_to(np.asarray(sh.r_sb, dtype=np.float64), values.shape)
        ceil = np.sqrt(np.clip(r_sb, 0.0, None))
        normd = np.broadcast_to(sh.normalised(floor=p["ceiling_floor"]), values.shape)
        method = RSA_CEILING_METHOD
    rows = []
    for t, Y in enumerate(Ys):
        rows.append({
            **base, "metric": f"rsa_{p['rdm_compare']}", "time": float(times[t]) if times is not None else np.nan,
            "value": float(values[t]), "ci_low": float(lo[t]), "ci_high": float(hi[t]), "ci_method": ci_method,
            "ceiling": float(ceil[t]), "ceiling_method": method, "normalised": float(normd[t]),
            "n_units": int(Y.shape[1]), "n_stimuli": int(Y.shape[0]), "ceiling_lower": np.nan,
        })
    return rows


def unit_scores_for_layer(X, feature_ids, brain, bench: Benchmark | str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Per-unit held-out (r, R²) of one layer on an encoding benchmark, e.g. for a brain map.

    ``split="test"`` fits on the train split and scores the test split; ``"val"`` fits on the
    fit split and scores the validation split. Returns arrays of shape ``(n_units[, n_times])``.
    """
    bench = get_benchmark(bench)
    splits = make_splits(brain, bench)
    Xa, Ya, ids = _aligned(np.asarray(X, dtype=np.float32), feature_ids, brain)
    fit_ids, eval_ids = (splits["fit"], splits["val"]) if split == "val" else (splits["train"], splits["test"])
    fi, ei = _positions(ids, fit_ids, "fit"), _positions(ids, eval_ids, split)
    fit = _encode(Xa[fi], Ya[fi], Xa[ei], Ya[ei], {**bench.params, "n_boot": 0})
    return fit.r, fit.r2


# --------------------------------------------------------------------------- layer selection
def select_best_layer(rows: pd.DataFrame | list[dict], metric: str | None = None) -> pd.DataFrame:
    """Mark the best layer per (model, benchmark) using the ``val`` rows only.

    The criterion is the mean over time (if any) of the ``val`` value of ``metric`` (default:
    ``encoding_r2`` for encoding benchmarks, the RSA metric otherwise). The ``test`` rows play no
    part in the choice. Returns the table with ``selected`` set on every row (val and test) of
    the chosen layer.
    """
    df = score_frame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    df["selected"] = False
    for (_model, _bench), part in df.groupby(["model", "benchmark"], sort=False):
        val = part[part["split"] == "val"]
        if val.empty:
            raise InputError(f"no validation rows for {_model} on {_bench}: cannot select a layer without the test split")
        m = metric or ("encoding_r2" if (val["metric"] == "encoding_r2").any() else val["metric"].iloc[0])
        val = val[val["metric"] == m]
        if val.empty:
            raise InputError(f"no validation rows with metric {m!r} for {_model} on {_bench}")
        best = val.groupby("layer", sort=False)["value"].mean().idxmax()
        df.loc[part.index[part["layer"] == best], "selected"] = True
    return df


# --------------------------------------------------------------------------- geometry
def geometry_rows(
    X, *, model: str, layer: str, layer_index: int = 0, stimulus_set: str, ks=None, estimators=("mle",),
    global_measures: bool = True, benchmark_version: int = 0, feature_cache_key: str = "", data_source: str = "unknown",
) -> list[dict]:
    """LID K-sweep (:func:`brainlid.geometry.lid_sweep`) and global measures
    (:func:`brainlid.geometry.global_dimension`) of one layer's features ``X (n, d)``.

    Ks larger than ``n − 1`` are dropped. Global measures get ``K = NaN``. ``data_source`` is the
    stimuli's (the benchmark data copy's, :func:`brainlid.data.provenance.data_source_of`).
    """
    from .. import geometry

    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    ks = [k for k in (ks or (5, 10, 20, 50, 100, 200, 500, 1000)) if 2 <= k <= n - 1]
    base = {"model": model, "layer": layer, "layer_index": layer_index, "stimulus_set": stimulus_set, "n": n,
            "brainlid_version": __version__, "benchmark_version": benchmark_version,
            "feature_cache_key": feature_cache_key, "data_source": data_source}
    rows = []
    g = None
    if ks:
        if global_measures:  # one kNN serves the sweep and the global TwoNN
            summary = geometry.summarize(X, k=ks[0], estimator=estimators[0], ks=ks,
                                         sweep_estimators=tuple(estimators), full_mle=None)
            sweep, g = summary["sweep_table"], summary["global"]
        else:
            sweep = geometry.lid_sweep(X, ks=ks, estimators=tuple(estimators))
        for rec in sweep.itertuples(index=False):
            rows.append({**base, "estimator": str(rec.estimator), "K": float(rec.K), "value": float(rec.value)})
    if global_measures:
        g = geometry.global_dimension(X) if g is None else g
        for name, value in g.items():
            if name in ("n", "n_distinct", "dim") or not isinstance(value, (int, float, np.number)):
                continue
            rows.append({**base, "estimator": str(name), "K": np.nan, "value": float(value)})
    return rows


def model_model_rows(
    features: Mapping[str, np.ndarray], *, stimulus_set: str, metrics=("mutual_knn", "ridge_r2"), k: int = 10,
    layers: Mapping[str, str] | None = None, n_components: int | None = 300, seed: int = 0,
    data_source: str = "unknown",
) -> list[dict]:
    """Model–model alignment of every pair of models on one stimulus set.

    ``features`` maps model name → ``(n_stimuli, n_features)`` (same stimuli, same order).
    Each unordered pair is scored once and written twice (A's row with ``roi = B`` and B's row
    with ``roi = A``) so per-model means are plain group-bys. Metrics: ``mutual_knn``
    (Huh et al. 2024, k neighbours), ``ridge_r2`` (Yu et al. 2026: CV ridge R² averaged over
    both directions, PCA ``n_components``), ``cka`` (linear). Rows have ``dataset = "models"``,
    ``benchmark = "models.<stimulus_set>.<metric>"`` and the stimuli's ``data_source``.
    """
    from ..alignment import similarity as sim

    names = list(features)
    rows = []
    fn = {
        "mutual_knn": lambda a, b: sim.mutual_knn(a, b, k=min(k, a.shape[0] - 1)),
        "ridge_r2": lambda a, b: sim.ridge_r2(a, b, n_components=min(n_components or 10**9, a.shape[0] // 2, a.shape[1], b.shape[1]), seed=seed),
        "cka": lambda a, b: sim.cka(a, b),
    }
    for m in metrics:
        if m not in fn:
            raise InputError(f"unknown model–model metric {m!r}; choose from {', '.join(fn)}")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            A, B = features[a], features[b]
            if A.shape[0] != B.shape[0]:
                raise InputError(f"models {a} and {b} have features for different numbers of stimuli")
            for m in metrics:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*dropped .* constant across stimuli", category=UserWarning)
                    v = float(fn[m](A, B))
                for x, y in ((a, b), (b, a)):
                    rows.append({
                        "model": x, "layer": (layers or {}).get(x, ""), "benchmark": mm_benchmark_id(stimulus_set, m),
                        "dataset": "models", "subject": "", "roi": y, "metric": m, "split": "test", "time": np.nan,
                        "value": v, "n_stimuli": int(A.shape[0]), "brainlid_version": __version__,
                        "benchmark_version": mm_benchmark_version(m),
                        "data_source": data_source,
                    })
    return rows


# --------------------------------------------------------------------------- one model, one benchmark
def score_features(
    features: Mapping[str, np.ndarray],
    feature_ids,
    bench: Benchmark | str,
    brain=None,
    *,
    model: str = "model",
    root=None,
    feature_cache_key: str | Mapping[str, str] = "",
    geometry: bool = True,
    keep: dict | None = None,
    keep_layers: str = "selected",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every layer of one model's features on one benchmark; pick the best layer on val.

    Parameters
    ----------
    features : mapping layer → array (n_stimuli, n_features)
        In the order the layers were requested (that order is ``layer_index``).
    feature_ids : array-like (n_stimuli,)
    bench : Benchmark or id
    brain : BrainData or None
        The benchmark's data (loaded with :func:`load_benchmark_data` when None).
    feature_cache_key : str or mapping layer → str
    keep : dict or None
        Collector of the test split's comparison arrays (:func:`score_layer`'s ``keep``).
    keep_layers : {"selected", "all"}
        Keep the arrays of the selected layer only (default: at most two layers' predictions are
        held while the layers are scored) or of every layer.

    Returns
    -------
    (scores, geometry) : DataFrames in the tidy schemas.
    """
    bench = get_benchmark(bench)
    if bench.kind == "rdms":  # published brain RDMs: split-half selection (brainlid.scoring.rdm_benchmarks)
        from .rdm_benchmarks import score_rdm_features

        return score_rdm_features(features, feature_ids, bench, brain, model=model, root=root,
                                  feature_cache_key=feature_cache_key, geometry=geometry, keep=keep,
                                  keep_layers=keep_layers)
    if brain is None:
        _, brain = load_benchmark_data(bench, root)
    if not features:
        raise InputError("no layers to score")
    splits = make_splits(brain, bench)
    keys = feature_cache_key if isinstance(feature_cache_key, Mapping) else {l: feature_cache_key for l in features}
    fids = np.asarray(feature_ids)
    rows: list[dict] = []
    grows: list[dict] = []
    lid_ids = _lid_ids(bench, brain)
    for li, (layer, X) in enumerate(features.items()):
        X = np.asarray(X, dtype=np.float32)
        rows += score_layer(X, fids, brain, bench, model=model, layer=layer, layer_index=li, splits=splits,
                            feature_cache_key=keys.get(layer, ""), keep=keep)
        if keep and keep_layers == "selected":  # the best layer so far (select_best_layer's criterion)
            prune_kept(keep, select_best_layer(score_frame(rows)), model, bench.id)
        if geometry:
            pos = _positions(fids, lid_ids, "LID")
            grows += geometry_rows(X[pos], model=model, layer=layer, layer_index=li, stimulus_set=bench.lid_stimulus_set,
                                   ks=bench.params["lid_ks"], estimators=bench.params["lid_estimators"],
                                   benchmark_version=bench.version, feature_cache_key=keys.get(layer, ""),
                                   data_source=data_source_of(brain))
    scores = select_best_layer(score_frame(rows))
    return scores, geometry_frame(grows)


KEEP_ARRAYS = ("selected", "all", "none")  #: ``keep_arrays=`` of :func:`score`


# --------------------------------------------------------------------------- the driver
@dataclass
class ScoreResult:
    """What :func:`score` produced: the two tables and where they were written."""

    scores: pd.DataFrame
    geometry: pd.DataFrame
    paths: list[Path]
    store: object | None = None


def _features_as_layers(feats) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """A :class:`brainlid.features.Features` → (layer → float32 array, stimulus ids, layer → cache key)."""
    names = list(getattr(feats, "layers", None) or list(feats.keys()))
    arrays = {str(k): np.asarray(feats[k], dtype=np.float32) for k in names}
    ids = np.asarray(feats.stimulus_ids)
    prov = getattr(feats, "provenance", {}) or {}
    keys = prov.get("cache_keys") or {}
    return arrays, ids, {k: str(keys.get(k) or "") for k in arrays}


def score(
    model,
    benchmarks: str | Benchmark | Iterable[str | Benchmark],
    *,
    layers: Sequence[str] | None = None,
    data_root=None,
    out: str | os.PathLike | None = None,
    store: str | os.PathLike | bool | None = True,
    baselines: bool | Sequence[str] = True,
    pooling: str = "avg",
    batch_size: int = 64,
    if_exists: str = "skip",
    extract_kwargs: Mapping | None = None,
    extract_fn=None,
    mm_metrics: Sequence[str] = ("mutual_knn", "ridge_r2"),
    return_result: bool = False,
    client=None,
    keep_arrays: str = "selected",
    **distributed_options,
):
    """Score a model (and its baselines) on benchmarks: the Python API of ``brainlid score``.

    Parameters
    ----------
    model : str or torch.nn.Module, a sequence of them, or a mapping name → spec
        Model spec(s) (see :func:`brainlid.features.models.load_model`); a mapping gives the
        names used in the tables (else the model id, :func:`brainlid.scoring.plan.model_name`).
        With several models the model–model alignment on each benchmark's LID stimulus set is
        scored too.
    benchmarks : id, Benchmark or a sequence of them
    layers : sequence of str, mapping name → sequence, or None
        Layers to extract: names, globs or ``re:`` regexes, resolved in depth order (default:
        :func:`~brainlid.scoring.plan.default_layers`, the model's top-level child modules with
        module lists expanded); one selection given for several models is shared, each model
        taking the selectors that match it; a mapping is keyed like ``model`` (its keys, spec
        strings or class names).
    data_root : path or None
        Dataset root (default from the dataset card / ``$BRAINLID_DATA``).
    out : path or None
        Folder for ``scores.parquet/.csv`` and ``geometry.parquet/.csv``.
    store : path, True (the default store), False/None (no store)
    baselines : bool or sequence of {"pixels", "random", "shuffled"}
        Baselines scored beside each model: raw pixels, the same architecture with random weights
        (when the spec allows it), and stimulus-shuffled features (the zero control).
    if_exists : {"skip", "replace", "error"}
        What to do when the store already has a cell.
    extract_fn : callable or None
        ``extract_fn(model, stimuli, layers=, pooling=, batch_size=) -> Features``; default
        :func:`brainlid.features.extract` (the cached extraction path).
    client : Dask client or cluster, optional
        Run the same grid on a Dask cluster (:func:`brainlid.scoring.distributed.score_distributed`,
        which receives ``**distributed_options`` such as ``voxel_batch``); serial when None.
    keep_arrays : {"selected", "all", "none"}
        With a store: keep the test split's held-out predictions (encoding) or model RDM (RSA) of the
        selected layer (default), of every layer, or none, beside the observed responses / brain RDMs
        (once per benchmark version) — what ``brainlid compare`` resamples
        (:meth:`~brainlid.scoring.store.ResultsStore.add_arrays`). Predictions are float32
        ``n_test × n_units`` per kept layer (e.g. 1,000 NSD test images × 5,000 voxels: 20 MB).

    The grid — names, layers, baselines, where geometry and the model–model task are measured —
    is :func:`brainlid.scoring.plan.plan_grid`'s, shared with the Dask runner.

    Returns
    -------
    DataFrame of score rows (or a :class:`ScoreResult` with ``return_result=True``).
    """
    from . import baselines as bl

    if keep_arrays not in KEEP_ARRAYS:
        raise InputError(f"keep_arrays must be one of {KEEP_ARRAYS}, got {keep_arrays!r}")
    if client is not None:
        if extract_fn is not None:
            raise InputError("extract_fn cannot be used with client=: workers extract through the feature cache")
        from .distributed import score_distributed

        return score_distributed(
            client, model, benchmarks, layers=layers, data_root=data_root, out=out, store=store, baselines=baselines,
            pooling=pooling, batch_size=batch_size, if_exists=if_exists, extract_kwargs=extract_kwargs,
            mm_metrics=mm_metrics, return_result=return_result, keep_arrays=keep_arrays, **distributed_options,
        )
    if distributed_options:
        raise InputError(f"option(s) {sorted(distributed_options)} need client= (a Dask client or cluster)")
    if extract_fn is None:
        from ..features import extract as extract_fn
    ekw = {"pooling": pooling, "batch_size": batch_size, **dict(extract_kwargs or {})}
    plan = plan_grid(model, benchmarks, layers=layers, baselines=baselines, data_root=data_root,
                     allow_download=ekw.get("allow_download"))
    st = None
    if store:
        from .store import ResultsStore

        st = ResultsStore(None if store is True else store)
    all_scores, all_geom = [], []
    for bp in plan:  # one benchmark's data at a time
        bench, sub, brain = bp.bench, bp.stimuli, bp.brain
        lid_feats: dict[str, np.ndarray] = {}  # model → last layer on the LID stimuli (model–model task)
        own = None  # the last extracted model's (arrays, ids): its shuffled baseline reads them
        for g in bp.groups:
            if g.source == "pixels":
                arrays, ids, keys = {"pixels": bl.pixel_features(sub)}, np.asarray(sub.ids), {}
            elif g.source == "shuffled":
                arrays, ids = own
                last = g.layers[-1]
                arrays, keys = bl.shuffle_features({last: arrays[last]}, seed=bench.params["seed"]), {}
            else:  # "cache" (the model) or "random" (its random-weights twin): extracted through the cache
                arrays, ids, keys = _features_as_layers(extract_fn(g.spec, sub, layers=list(g.extract_layers), **ekw))
                if g.source == "cache":
                    own = (arrays, ids)
                    lid_feats[g.model] = arrays[list(arrays)[-1]][_positions(ids, bp.lid_ids, "LID")]
            kept = {} if st is not None and keep_arrays != "none" else None
            s, gm = score_features(arrays, ids, bench, brain, model=g.model, feature_cache_key=keys, geometry=g.geometry,
                                   keep=kept, keep_layers=keep_arrays)
            if kept:  # each group's arrays as soon as they exist (references without rows are never read)
                st.add_arrays(kept, data_source=data_source_of(brain), replace=if_exists == "replace")
            all_scores.append(s)
            all_geom.append(gm)
        if bp.model_model:
            all_scores.append(score_frame(model_model_rows(lid_feats, stimulus_set=bench.lid_stimulus_set,
                                                           layers=bp.mm_layers, metrics=mm_metrics,
                                                           data_source=data_source_of(brain))))
    scores = pd.concat(all_scores, ignore_index=True) if all_scores else score_frame([])
    geom = pd.concat(all_geom, ignore_index=True) if all_geom else geometry_frame([])
    geom = geom.drop_duplicates(subset=["model", "layer", "stimulus_set", "estimator", "K"]).reset_index(drop=True)
    paths: list[Path] = []
    if out is not None:
        out = Path(out)
        paths += write_table(scores, out / "scores")
        paths += write_table(geom, out / "geometry")
    if st is not None:
        st.add_frames(scores, geom, if_exists=if_exists)
    if return_result:
        return ScoreResult(scores, geom, paths, st)
    return scores
