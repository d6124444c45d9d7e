"""One scoring cell on response benchmarks: a model layer × an encoding or RSA benchmark → score rows.

Everything here is a pure function of arrays (the drivers, :func:`brainlid.scoring.serial.score` and
:func:`brainlid.scoring.distributed.score_distributed`, load data and features and call these):

* :func:`make_splits` — fit / val / train / test stimulus ids of a benchmark (val is a seeded
  part of train; the test split is never touched by layer selection);
* :func:`score_layer` — one **cell** (one model layer on one benchmark) → rows for the
  ``val`` and ``test`` splits. A cell is independent of every other cell, so a parallel
  scheduler can map cells onto workers and concatenate the rows;
* :func:`base_row` — the provenance columns every score row of a cell carries.

Encoding (METHODS §6): :func:`brainlid.alignment.encoding.fit_encoding` with the benchmark's
parameters — features → PCA (``params["pca"]`` components, fitted on the fitting stimuli only)
→ ridge with a per-unit α chosen by inner CV (α relative to the mean eigenvalue of the fit
features' Gram, so the scores do not depend on the scale of X or Y) → held-out Pearson r and R²
per unit → ROI means; ceiling-normalised with :mod:`brainlid.alignment.ceiling` as a ratio of
means over the units with NC > floor (mean R² ÷ mean NC, mean r ÷ mean √NC); 95 % interval =
basic bootstrap of the ROI mean over ``params["n_boot"]`` resamples of the evaluated stimuli;
``alpha_edge_fraction`` per row.
RSA: correlation-distance RDMs of features and responses on the evaluated stimuli, compared
by Spearman's rho (:mod:`brainlid.alignment.rsa`); when the data keep repetitions
(:func:`rsa_split_half_ceiling`), ceiling = √ of the split-half reliability of the subject's RDM
(Spearman–Brown stepped up to the repetitions scored) and normalised = the model's score against
half-data RDMs ÷ √ of the halves' agreement (:func:`_rsa_rows`).
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np

from ..._docs import DOCS, fill_doc
from ..._version import __version__
from ...alignment.ceiling import normalise_r, normalise_r2, rdm_split_half
from ...alignment.encoding import alpha_edge_fraction, fit_encoding_params, warn_alpha_edges
from ...alignment.rsa import compare_rdms, rdm
from ...alignment.rsa_bootstrap import BOOTSTRAP_METHODS, CI_METHOD, rdm_bootstrap_ci
from ...alignment.uncertainty import basic_interval
from ...data.ids import match_ids, positions_of
from ...data.provenance import data_source_of
from ...errors import InputError
from ..benchmarks import REPS_META_KEY, RSA_CEILING, Benchmark, get_benchmark
from ..plan import lid_ids
from .selection import keep_arrays

DOCS.setdefault("bench", """bench : Benchmark or str
        The benchmark, or its id (:func:`~brainlid.scoring.benchmarks.get_benchmark`).""")
DOCS.setdefault("brain", """brain : BrainData
        The benchmark's responses ``(stimulus, unit[, time])`` with its splits, ROI already selected
        (:func:`~brainlid.scoring.benchmarks.load_benchmark_data`).""")
DOCS.setdefault("splits", """splits : mapping str → array
        Stimulus ids of the ``fit``, ``val``, ``train`` and ``test`` splits (:func:`make_splits`).""")

__all__ = [
    "make_splits", "split_ids", "base_row", "id_positions", "lid_positions", "score_layer", "encoding_rows",
    "unit_scores_for_layer", "rsa_split_half_ceiling", "RSA_CEILING_METHOD",
]


# --------------------------------------------------------------------------- splits
@fill_doc
def make_splits(brain, bench: Benchmark) -> dict[str, np.ndarray]:
    """Stimulus ids of the fit, val, train (= fit ∪ val) and test splits.

    ``val`` is a seeded ``params["val_fraction"]`` of the train split (at least 3 ids), used
    only to choose the best layer; ``fit`` is the rest. Ids present in both train and test are
    removed from train (test wins), so no stimulus is fitted and scored.

    Parameters
    ----------
    %(brain)s
    bench : Benchmark
        Its ``split`` names the test split; ``params["seed"]`` and ``params["val_fraction"]`` draw ``val``.

    Returns
    -------
    dict str → ndarray
        ``fit``, ``val``, ``train``, ``test``: sorted stimulus ids.

    Raises
    ------
    InputError
        The data lack a split, or have fewer than 6 train or 3 test stimuli.
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


@fill_doc
def split_ids(splits: Mapping[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, eval) stimulus ids of a scored split.

    Parameters
    ----------
    %(splits)s
    split : {"val", "test"}
        ``"val"`` fits on ``fit`` and scores ``val``; ``"test"`` fits on ``train`` (= fit ∪ val) and
        scores ``test``.

    Returns
    -------
    fit_ids, eval_ids : ndarray
    """
    if split not in ("val", "test"):
        raise InputError(f"split must be 'val' or 'test', got {split!r}")
    return (splits["fit"], splits["val"]) if split == "val" else (splits["train"], splits["test"])


@fill_doc
def base_row(bench: Benchmark, brain, *, model: str, layer: str, layer_index: int = 0,
             feature_cache_key: str = "") -> dict:
    """The provenance columns of a cell's score rows.

    Parameters
    ----------
    bench : Benchmark
    %(brain)s
    model, layer : str
        Names written in the rows.
    layer_index : int
        Position of the layer in the requested order.
    feature_cache_key : str
        The features' cache key (``""`` for features not from the cache).

    Returns
    -------
    dict
        model, layer, layer_index, benchmark, dataset, subject, roi, brainlid_version,
        benchmark_version, feature_cache_key and the data's ``data_source``
        (:func:`brainlid.data.provenance.data_source_of`).
    """
    return {
        "model": model, "layer": layer, "layer_index": layer_index, "benchmark": bench.id, "dataset": bench.dataset,
        "subject": bench.subject, "roi": bench.roi, "brainlid_version": __version__,
        "benchmark_version": bench.version, "feature_cache_key": feature_cache_key, "data_source": data_source_of(brain),
    }


# --------------------------------------------------------------------------- stimulus ids
def _aligned(X: np.ndarray, feature_ids, brain):
    ix, ib = match_ids(feature_ids, brain.stimulus_ids, names=("features", f"{brain.dataset} {brain.subject}"))
    ids = np.asarray(brain.stimulus_ids)[ib]
    return X[ix], brain.responses[ib], ids


def id_positions(ids, want, what: str) -> np.ndarray:
    """Positions in ``ids`` (the features' stimulus ids) of each id in ``want``, in ``want``'s order.

    The one id join (:func:`brainlid.data.ids.positions_of`); :class:`InputError` naming ``what`` (e.g.
    ``"test"``, ``"LID"``) when some of ``want`` have no features. Returns int64 ``(n_want,)``.
    """
    return positions_of(ids, want, where=f"the features (the {what} stimuli)", names=("features", f"{what} stimuli"))


@fill_doc
def lid_positions(ids, bench: Benchmark, brain) -> np.ndarray:
    """Positions in ``ids`` of the benchmark's LID stimuli, where the geometry of a layer is measured.

    Parameters
    ----------
    ids : array-like of shape (n_stimuli,)
        The features' stimulus ids.
    bench : Benchmark
    brain : BrainData or BrainRDMs
        The benchmark's data (:func:`brainlid.scoring.plan.lid_ids` reads the LID split or the RDM images).

    Returns
    -------
    ndarray of int64, shape (n_lid,)
        ``ids[pos]`` are the LID stimuli in sorted order.
    """
    return id_positions(np.asarray(ids), lid_ids(bench, brain), "LID")


def _fit_eval_positions(ids: np.ndarray, splits, split: str) -> tuple[np.ndarray, np.ndarray]:
    fit_ids, eval_ids = split_ids(splits, split)
    return id_positions(ids, fit_ids, f"{split}-fit"), id_positions(ids, eval_ids, split)


# --------------------------------------------------------------------------- one cell
@fill_doc
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
        Stimulus ids of the rows of ``X``; joined with the data on ids, never on row order.
    %(brain)s
    %(bench)s
    model, layer, layer_index : provenance of the rows (:func:`base_row`)
    %(splits)s
        Computed when None.
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
    base = base_row(bench, brain, model=model, layer=layer, layer_index=layer_index, feature_cache_key=feature_cache_key)
    rows: list[dict] = []
    for split in which:
        fi, ei = _fit_eval_positions(ids, splits, split)
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


def _encoding_rows(X_fit, Y_fit, X_eval, Y_eval, nc, times, p, base, keep: dict | None = None) -> list[dict]:
    fit = fit_encoding_params(X_fit, Y_fit, X_eval, Y_eval, p)
    if keep is not None:
        keep["pred"] = fit.pred
    if base.get("split") == "test":  # one warning per cell: the fit whose scores are reported
        warn_alpha_edges(fit.unbracketed, f"{base.get('model')} {base.get('layer')} on {base.get('benchmark')}")
    return encoding_rows(fit.r, fit.r2, nc, times, p, base, int(X_eval.shape[0]), at_edge=fit.at_edge,
                         n_alphas=fit.n_alphas, boot=fit.boot)


def encoding_rows(r, r2, nc, times, p, base: dict, n_stimuli: int, *, at_edge=None, n_alphas: int = 0,
                  boot: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """Score rows (``encoding_r2`` and ``encoding_r``, per time point) from per-unit held-out scores.

    Parameters
    ----------
    r, r2 : arrays of shape (n_units[, n_times])
        Per-unit Pearson r and R² (:func:`brainlid.alignment.encoding.unit_scores`).
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
        Σ over units of ``r2`` / ``r`` per stimulus resample (:class:`~brainlid.alignment.encoding.EncodeResult`); ``ci_low`` /
        ``ci_high`` are the basic 95 % bootstrap interval of the ROI mean, 2·value − the 97.5 / 2.5 %
        quantiles of the resampled ROI means (:func:`brainlid.alignment.uncertainty.basic_interval`;
        ``ci_method = "stimulus-bootstrap"``), NaN without it.
    """
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
    reps = (brain.meta or {}).get(REPS_META_KEY)
    if reps is None:
        return None
    eval_ids = np.asarray(eval_ids)
    if not np.all(np.isin(eval_ids, reps.stimulus_ids)):
        return None
    sub = reps.select(stimuli=eval_ids)
    pos = id_positions(np.asarray(sub.stimulus_ids), eval_ids, "ceiling")
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
    (:func:`brainlid.alignment.rsa_bootstrap.rdm_bootstrap_ci`). ``keep``: a dict that receives the
    condensed ``model_rdm`` and the ``brain_rdms`` (n_times or 1, n_pairs), both float32.
    """
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


@fill_doc
def unit_scores_for_layer(X, feature_ids, brain, bench: Benchmark | str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Per-unit held-out (r, R²) of one layer on an encoding benchmark, e.g. for a brain map.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features)
    feature_ids : array-like of shape (n_stimuli,)
        Stimulus ids of the rows of ``X``.
    %(brain)s
    %(bench)s
    split : {"test", "val"}
        ``"test"`` fits on the train split and scores the test split; ``"val"`` fits on the fit
        split and scores the validation split (:func:`split_ids`).

    Returns
    -------
    r, r2 : float32 arrays of shape (n_units[, n_times])
    """
    bench = get_benchmark(bench)
    splits = make_splits(brain, bench)
    Xa, Ya, ids = _aligned(np.asarray(X, dtype=np.float32), feature_ids, brain)
    fi, ei = _fit_eval_positions(ids, splits, split)
    fit = fit_encoding_params(Xa[fi], Ya[fi], Xa[ei], Ya[ei], {**bench.params, "n_boot": 0})
    return fit.r, fit.r2
