"""Score rows of RDM benchmarks: published brain RDMs (k92, Algonauts 2019) against every layer of a model.

Datasets such as Kriegeskorte et al. (2008)'s 92 images or the Algonauts 2019 fMRI/MEG sets are
released as RDMs (:class:`~brainlid.data.rdms.BrainRDMs`), not responses: there is nothing to
fit, and no train/validation/test split of responses. Their benchmarks
(``kind="rdms"``: ``k92.human.IT.rsa``, ``k92.monkey.IT.rsa``,
``algonauts2019.{92,118}.{EVC,IT,MEG_early,MEG_late}.rsa``) are scored here:

* ``split = "all"`` — **every layer on every image**: exactly
  :func:`brainlid.alignment.brain_rdms.score_brain_rdms` (model RDM ``rdm(X, "correlation")``
  compared by Spearman with each subject's RDM and with the group-mean RDM, ``subject =
  "mean"``), the number papers report per layer. The same layer's ``all`` rows include the images
  the best layer was chosen on, so they are *not* a held-out score of the selected layer.
* **Best layer: stimulus split-half.** The images are split once, by the benchmark's seed, into
  two halves (:func:`brainlid.alignment.rsa_bootstrap.split_half`). ``split = "val"`` rows score
  every layer on the pairs *within* the first half (group-mean RDM) and choose the layer
  (:func:`brainlid.scoring.cell.select_best_layer`); ``split = "test"`` rows score every layer on
  the pairs within the *other* half. No image — hence no dissimilarity — of the test half enters
  the choice (pairs between the halves are used by neither), so the selected layer's ``test`` row
  is an honest held-out score, at the price of half the images. Subject cross-validation was not
  chosen because the monkey IT RDM has one subject.
* Ceilings on the scored images (:mod:`brainlid.alignment.brain_rdms`), ``normalised = value /
  ceiling`` on every row. Per-subject rows (split ``all``): ``ceiling`` = √(upper · lower) of the
  leave-one-subject-out bounds (``ceiling_method = "loso-geometric-mean"``; the lower bound is in
  ``ceiling_lower``, the upper bound is ``ceiling² / ceiling_lower``). Group-mean rows (every split):
  the split-half-over-subjects reliability of the group-mean RDM stepped up to the whole group, as
  a correlation ceiling √r_sb (``ceiling_method = "group-split-half"``, ``ceiling_lower`` NaN). NaN
  with one subject (k92's monkey IT). Version 2 of these benchmarks (version 1 divided every row,
  the group-mean ones included, by the LOSO upper bound, so a perfect model scored 0.5–0.9 per
  subject and group-mean rows could exceed 1). The ceilings depend on the brain RDMs and the scored
  images only, so they are computed once per (benchmark, split, images) and reused for every model
  (a small cache keyed by the benchmark, the images' id digest and a digest of the brain RDMs).
* ``ci_low``/``ci_high``: 95 % bootstrap interval over **stimuli**, variance-corrected
  (:func:`brainlid.alignment.rsa_bootstrap.rdm_bootstrap_ci`, ``ci_method =
  "stimulus-bootstrap-corrected"``).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Mapping

import numpy as np
import pandas as pd

from ...alignment.brain_rdms import brain_rdm_ceilings, score_brain_rdms
from ...alignment.rsa import rdm
from ...alignment.rsa_bootstrap import BOOTSTRAP_METHODS, CI_METHOD, rdm_bootstrap_ci, split_half
from ...data.ids import ids_digest, ids_in
from ...data.provenance import data_source_of
from ...errors import InputError
from ..benchmarks import Benchmark, get_benchmark, load_benchmark_rdms
from ..tables import geometry_frame, score_frame
from .geometry import geometry_rows
from .responses import base_row, id_positions, lid_positions
from .selection import keep_arrays, prune_kept, select_best_layer

__all__ = ["rdm_score_rows", "score_rdm_features"]

#: (benchmark id, version, compare, ids digest, brain-RDM digest) → ceilings (:func:`brain_rdm_ceilings`)
_CEILINGS: dict[tuple, tuple] = {}
_CEILINGS_MAX = 64  # entries kept (oldest dropped): a few benchmarks × 3 splits
_CEILINGS_LOCK = threading.Lock()  # Dask workers score several cells in threads


def _ceilings(bench: Benchmark, sub, compare: str) -> tuple:
    """The ceilings of the brain RDMs ``sub`` (already restricted to the scored images), computed once per
    benchmark, images and brain RDMs."""
    subject_rdms = np.ascontiguousarray(sub.subject_rdms())
    key = (bench.id, bench.version, compare, ids_digest(sub.stimulus_ids),
           hashlib.sha256(f"{subject_rdms.dtype.str}|{subject_rdms.shape}|".encode() + subject_rdms.tobytes()).hexdigest())
    with _CEILINGS_LOCK:
        hit = _CEILINGS.get(key)
    if hit is None:
        hit = brain_rdm_ceilings(subject_rdms, compare)
        with _CEILINGS_LOCK:
            while len(_CEILINGS) >= _CEILINGS_MAX:
                _CEILINGS.pop(next(iter(_CEILINGS)))
            _CEILINGS[key] = hit
    return hit


def _layer_keys(feature_cache_key: str | Mapping[str, str], features) -> Mapping[str, str]:
    """Layer → feature-cache key (one key for every layer when a string is given)."""
    return feature_cache_key if isinstance(feature_cache_key, Mapping) else {k: feature_cache_key for k in features}


def rdm_score_rows(features: Mapping[str, np.ndarray], feature_ids, bench: Benchmark | str, brain_rdms, *,
                   model: str, layer_index: Mapping[str, int] | None = None,
                   feature_cache_key: str | Mapping[str, str] = "", keep: dict | None = None) -> list[dict]:
    """Score rows of every layer on an RDM benchmark: splits ``val`` / ``test`` (split-half,
    group mean) and ``all`` (every image; every subject and the group mean).

    Parameters
    ----------
    features : mapping layer → array (n_stimuli, n_features)
    feature_ids : array (n_stimuli,)
        Ids of the feature rows; only ids shared with the RDMs are scored.
    bench : Benchmark (``kind="rdms"``) or id
    brain_rdms : BrainRDMs
    model : str
    layer_index : mapping layer → int or None (default: the order of ``features``)
    feature_cache_key : str or mapping layer → str
    keep : dict or None
        Collector of the ``test`` half's comparison arrays (``brainlid compare``): each layer's
        condensed ``model_rdm`` (float32) and, once, the ``brain_rdms`` of every subject and the group
        mean (last row) with their ``subjects`` and ``stimulus_ids``
        (:func:`brainlid.scoring.cell.keep_arrays`).

    Returns
    -------
    list of dict in :data:`brainlid.scoring.tables.SCORE_COLUMNS` (``selected`` not yet set).
    """
    bench = get_benchmark(bench)
    p = bench.params
    if not features:
        raise InputError("no layers to score")
    fids = np.asarray(feature_ids)
    shared = np.sort(fids[ids_in(fids, brain_rdms.stimulus_ids, names=("features", "brain RDMs"))])
    if shared.size < 6:
        raise InputError(f"benchmark {bench.id}: only {shared.size} stimuli have both features and brain RDMs (need >= 6)")
    sel, held = split_half(shared, p["seed"])
    layer_index = layer_index or {k: i for i, k in enumerate(features)}
    keys = _layer_keys(feature_cache_key, features)
    rows: list[dict] = []
    for split, ids in (("val", sel), ("test", held), ("all", shared)):
        pos = id_positions(fids, ids, "RDM-benchmark")
        sub = brain_rdms.select(stimulus_ids=ids)
        feats = {}
        for layer, X in features.items():
            X = np.asarray(X, dtype=np.float32)
            if X.ndim != 2 or X.shape[0] != fids.size:
                raise InputError(f"features of layer {layer!r} have shape {X.shape}; expected ({fids.size}, n_features)")
            if not np.all(np.isfinite(X)):
                raise InputError(f"features of layer {layer!r} of {model!r} contain NaN/inf")
            feats[layer] = X[pos]
        df = score_brain_rdms(feats, ids, sub, rdm_method=p["rdm_method"], compare=p["rdm_compare"],
                              ceiling=_ceilings(bench, sub, p["rdm_compare"]))
        subjects = ["mean"] if split != "all" else list(sub.subjects) + ["mean"]
        kept = keep is not None and split == "test"
        boot = split != "val" and p["rdm_compare"] in BOOTSTRAP_METHODS and p["rsa_n_boot"] >= 10
        M = np.stack([rdm(feats[layer], p["rdm_method"]) for layer in feats]) if kept or boot else None
        if kept:
            for layer, Ml in zip(feats, M):
                keep_arrays(keep, {"model_rdm": Ml.astype(np.float32)}, model, layer, bench, split)
            keep_arrays(keep, {"brain_rdms": np.vstack([sub.subject_rdms(), sub.mean_rdm()[None]]).astype(np.float32),
                               "subjects": np.array(list(sub.subjects) + ["mean"]), "stimulus_ids": ids},
                        "", "", bench, split)
        lo = hi = None
        if boot:
            Bk = np.vstack([sub.subject_rdms()[[sub.subjects.index(s) for s in subjects if s != "mean"]],
                            sub.mean_rdm()[None]])
            lo, hi = rdm_bootstrap_ci(M, Bk, ids.size, compare=p["rdm_compare"], n_boot=p["rsa_n_boot"], seed=p["seed"])
        layers = list(feats)
        for rec in df[df["subject"].isin(subjects)].itertuples(index=False):
            li, si = layers.index(rec.layer), subjects.index(rec.subject)
            rows.append({
                **base_row(bench, brain_rdms, model=model, layer=rec.layer, layer_index=int(layer_index[rec.layer]),
                           feature_cache_key=keys.get(rec.layer, "")),
                "subject": rec.subject, "metric": rec.metric, "split": split, "time": np.nan, "value": float(rec.value),
                "ci_low": float(lo[li, si]) if lo is not None else np.nan,
                "ci_high": float(hi[li, si]) if hi is not None else np.nan,
                "ci_method": CI_METHOD if lo is not None else "",
                "ceiling": float(rec.ceiling), "ceiling_lower": float(rec.ceiling_lower),
                "ceiling_method": rec.ceiling_method, "normalised": float(rec.normalised), "n_units": pd.NA,
                "n_stimuli": int(rec.n_stimuli),
            })
    return rows


def score_rdm_features(features: Mapping[str, np.ndarray], feature_ids, bench: Benchmark | str, brain_rdms=None, *,
                       model: str = "model", root=None, feature_cache_key: str | Mapping[str, str] = "",
                       geometry: bool = True, keep: dict | None = None,
                       keep_layers: str = "selected") -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`brainlid.scoring.cell.score_features` for RDM benchmarks: score rows of every layer
    (:func:`rdm_score_rows`), the best layer marked from the ``val`` rows, and geometry rows (LID
    K-sweep and global measures) on all the benchmark's images (its ``stimulus_set``).

    Parameters
    ----------
    features : mapping layer → array (n_stimuli, n_features)
    feature_ids : array (n_stimuli,)
    bench : Benchmark (``kind="rdms"``) or id
    brain_rdms : BrainRDMs or None
        Default: :func:`brainlid.scoring.benchmarks.load_benchmark_rdms` of ``bench`` from ``root``.
    model : str
    root : path-like or None
        The dataset's folder (only without ``brain_rdms``).
    feature_cache_key : str or mapping layer → str
    geometry : bool
        Also the geometry rows.
    keep : dict or None
        Collector of the comparison arrays (:func:`rdm_score_rows`).
    keep_layers : {"selected", "all"}
        Keep the arrays of the selected layer only, or of every layer.

    Returns
    -------
    (scores, geometry) : DataFrames in :data:`brainlid.scoring.tables.SCORE_COLUMNS` /
    :data:`~brainlid.scoring.tables.GEOMETRY_COLUMNS`.
    """
    bench = get_benchmark(bench)
    if bench.kind != "rdms":
        raise InputError(f"benchmark {bench.id} is not an RDM benchmark")
    if brain_rdms is None:
        brain_rdms = load_benchmark_rdms(bench, root)
    rows = rdm_score_rows(features, feature_ids, bench, brain_rdms, model=model, feature_cache_key=feature_cache_key,
                          keep=keep)
    scores = select_best_layer(score_frame(rows))
    if keep_layers == "selected":
        prune_kept(keep, scores, model, bench.id)
    grows: list[dict] = []
    if geometry:
        keys = _layer_keys(feature_cache_key, features)
        pos = lid_positions(feature_ids, bench, brain_rdms)
        for li, (layer, X) in enumerate(features.items()):
            grows += geometry_rows(np.asarray(X, dtype=np.float32)[pos], model=model, layer=layer, layer_index=li,
                                   stimulus_set=bench.lid_stimulus_set, ks=bench.params["lid_ks"],
                                   estimators=bench.params["lid_estimators"], benchmark_version=bench.version,
                                   feature_cache_key=keys.get(layer, ""), data_source=data_source_of(brain_rdms))
    return scores, geometry_frame(grows)
