"""RSA of model features (or model RDMs) against brain RDM datasets (:class:`~brainlid.data.rdms.BrainRDMs`).

For each layer, the model RDM (``rdm(X, rdm_method)``, condensed float32) is compared
(``compare_rdms(..., compare)``) with

* each subject's RDM (the mean over that subject's sessions) → one row per subject;
* the group RDM (plain mean of the subject RDMs, as in Kriegeskorte et al. 2008) → ``subject = "mean"``.

Ceilings (METHODS §6; ``normalised = value / ceiling`` on every row, how in ``ceiling_method``):

* per-subject rows report the leave-one-subject-out bounds of the brain RDMs as they are
  (:func:`brainlid.alignment.ceiling.rsa_noise_ceiling`, rsatoolbox conventions: the upper bound
  compares each subject with the pool of all subjects, the lower bound with the pool of the
  others) in ``ceiling_upper`` / ``ceiling_lower``, and normalise by their geometric mean,
  ``ceiling = √(upper · lower)`` (``ceiling_method = "loso-geometric-mean"``). Neither bound
  calibrates on its own: the true model divided by the upper bound scores 0.87 at moderate noise
  and 0.5–0.75 at low SNR; the geometric mean gives ≈ 1 (tests/test_calibration_rsa.py).
  A lower bound <= 0 leaves the ceiling NaN.
* the group-mean row (``subject = "mean"``) has a ceiling of its own kind: the split-half
  reliability over subjects of the group-mean RDM, stepped up to the whole group
  (:func:`brainlid.alignment.ceiling.group_split_half_reliability`), as a correlation ceiling
  ``√r_sb`` (``ceiling_method = "group-split-half"``); its ``ceiling_lower``/``ceiling_upper`` are NaN.

With a single subject neither exists: the ceiling and normalised columns are NaN and
``ceiling_note`` says why.

The RDM benchmarks of ``brainlid score`` (``k92.human.IT.rsa``, ``algonauts2019.92.IT.rsa``, ...)
are registered in :mod:`brainlid.scoring.benchmarks` (:data:`~brainlid.scoring.benchmarks.RDM_BENCHMARKS`,
:func:`~brainlid.scoring.benchmarks.load_benchmark_rdms`) and scored by :mod:`brainlid.scoring.cell.rdms`
with the functions here; the old names ``RDM_BENCHMARKS`` and ``load_rdm_benchmark`` still import from
this module, with a ``DeprecationWarning``.

Stimuli are joined by id (never by row order): the features' rows are named by
``stimulus_ids``; only stimuli present on both sides are scored, and the RDMs are
restricted to them in the features' order.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import pandas as pd

from .._deprecate import forward
from .._version import __version__
from ..data.ids import as_ids, match_ids
from ..data.rdms import BrainRDMs, condensed_positions
from ..errors import InputError
from .ceiling import group_split_half_reliability, rsa_noise_ceiling
from .rsa import compare_rdms, n_from_condensed, rdm

__all__ = ["score_brain_rdms", "score_model_rdms", "brain_rdm_ceilings", "PER_SUBJECT_CEILING", "GROUP_CEILING"]

# the columns of score_model_rdms / score_brain_rdms tables, in order (not a score-table schema: scoring frames
# these rows into brainlid.scoring.tables.SCORE_COLUMNS)
_COLUMNS = [
    "layer", "subject", "dataset", "roi", "metric", "rdm_method", "compare", "value", "ceiling",
    "ceiling_lower", "ceiling_upper", "ceiling_method", "normalised", "n_stimuli", "n_subjects", "ceiling_note",
    "brainlid_version",
]

#: ``ceiling_method`` of per-subject and group-mean rows
PER_SUBJECT_CEILING = "loso-geometric-mean"
GROUP_CEILING = "group-split-half"


def brain_rdm_ceilings(subject_rdms: np.ndarray, compare: str = "spearman") -> tuple[float, float, float, str]:
    """The ceilings of brain RDMs (module docstring): LOSO bounds and the group-mean ceiling.

    Parameters
    ----------
    subject_rdms : array (n_subjects, n_pairs)
        Condensed RDM of each subject (:meth:`BrainRDMs.subject_rdms`).
    compare : str
        RDM comparison (:func:`brainlid.alignment.rsa.compare_rdms`).

    Returns
    -------
    (lower, upper, group, note) : the leave-one-subject-out lower and upper bounds, the group-mean RDM's
    correlation ceiling √r_sb (floats; NaN with one subject, ``note`` then says why; ``group`` NaN when
    r_sb <= 0), and the note (``""`` otherwise).
    """
    if subject_rdms.shape[0] < 2:
        nan = float("nan")
        return nan, nan, nan, "single subject: no leave-one-subject-out or split-half-over-subjects ceiling"
    lo, hi = rsa_noise_ceiling(subject_rdms, method=compare)
    return float(lo), float(hi), _group_ceiling(subject_rdms, compare), ""


def _group_ceiling(subject_rdms: np.ndarray, compare: str) -> float:
    """Correlation ceiling √r_sb of the group-mean RDM (NaN with one subject or when r_sb <= 0)."""
    if subject_rdms.shape[0] < 2:
        return float("nan")
    r_sb = group_split_half_reliability(subject_rdms, compare=compare)[0]
    return float(np.sqrt(r_sb)) if r_sb > 0 else float("nan")


def _ratio(value: float, ceiling: float) -> float:
    return float(value) / ceiling if np.isfinite(ceiling) and ceiling > 0 else float("nan")


def score_model_rdms(model_rdms: Mapping[str, np.ndarray], brain_rdms: BrainRDMs, *, compare: str = "spearman",
                     rdm_method: str = "given", ceiling: tuple | None = None) -> pd.DataFrame:
    """Compare ready-made model RDMs with brain RDMs (per subject and on the group mean).

    Parameters
    ----------
    model_rdms : mapping name -> array (n_pairs,)
        Condensed RDMs over ``brain_rdms.stimulus_ids`` (same order), e.g. ``RDMDataset.models``.
    brain_rdms : BrainRDMs
    compare : str
        Comparison method of :func:`brainlid.alignment.rsa.compare_rdms`.
    rdm_method : str
        Recorded in the ``rdm_method`` column (how the model RDMs were made).
    ceiling : (lower, upper[, group]) or None
        Precomputed LOSO bounds and group-mean ceiling (module docstring; default: computed
        from ``brain_rdms``; without ``group`` it is computed).

    Returns
    -------
    DataFrame
        DataFrame, one row per (model RDM, subject) and (model RDM, ``"mean"``), columns ``layer, subject,
        dataset, roi, metric, rdm_method, compare, value, ceiling, ceiling_lower, ceiling_upper,
        ceiling_method, normalised, n_stimuli, n_subjects, ceiling_note, brainlid_version``; the model name
        is in ``layer``. Per-subject rows:
        ``ceiling = √(ceiling_upper · ceiling_lower)``; the ``"mean"`` row: the group-mean RDM's own
        split-half ceiling; ``normalised = value / ceiling`` on both.
    """
    if not isinstance(brain_rdms, BrainRDMs):
        raise InputError(f"brain_rdms must be a BrainRDMs, got {type(brain_rdms).__name__}")
    if not model_rdms:
        raise InputError("no model RDMs given")
    subj = brain_rdms.subject_rdms()
    group = brain_rdms.mean_rdm()
    if ceiling is None:
        lo, hi, grp, note = brain_rdm_ceilings(subj, compare)
    elif len(ceiling) == 2:  # (lower, upper) only: the group-mean ceiling still comes from the subject RDMs
        (lo, hi), note = (float(c) for c in ceiling), ""
        grp = _group_ceiling(subj, compare)
    elif len(ceiling) == 3:
        (lo, hi, grp), note = (float(c) for c in ceiling), ""
    else:
        raise InputError(f"ceiling must be (lower, upper) or (lower, upper, group); got {len(ceiling)} values")
    per_subject_ceiling = float(np.sqrt(lo * hi)) if np.isfinite(lo) and lo > 0 and hi > 0 else float("nan")
    names = list(model_rdms)
    M = np.stack([np.asarray(model_rdms[k], dtype=np.float64).ravel() for k in names])
    if M.shape[1] != brain_rdms.n_pairs:
        raise InputError(
            f"model RDMs have {M.shape[1]} pairs but the brain RDMs {brain_rdms.n_pairs} "
            f"({brain_rdms.n_stimuli} stimuli): not the same stimuli"
        )
    per_subject = np.atleast_2d(compare_rdms(M, subj, method=compare))  # (n_models, n_subjects)
    on_mean = np.atleast_1d(compare_rdms(M, group, method=compare))  # (n_models,)
    rows = []
    for i, name in enumerate(names):
        entries = [(s, per_subject[i, j]) for j, s in enumerate(brain_rdms.subjects)] + [("mean", on_mean[i])]
        for s, score in entries:
            is_mean = s == "mean"
            ceil = grp if is_mean else per_subject_ceiling
            rows.append({
                "layer": name, "subject": s, "dataset": brain_rdms.dataset, "roi": brain_rdms.roi,
                "metric": f"rsa_{compare}", "rdm_method": rdm_method, "compare": compare, "value": float(score),
                "ceiling": ceil, "ceiling_lower": float("nan") if is_mean else lo,
                "ceiling_upper": float("nan") if is_mean else hi,
                "ceiling_method": "" if not np.isfinite(ceil) else GROUP_CEILING if is_mean else PER_SUBJECT_CEILING,
                "normalised": _ratio(score, ceil),
                "n_stimuli": brain_rdms.n_stimuli, "n_subjects": brain_rdms.n_subjects, "ceiling_note": note,
                "brainlid_version": __version__,
            })
    return pd.DataFrame(rows, columns=_COLUMNS)


def score_brain_rdms(features: Mapping[str, np.ndarray], stimulus_ids, brain_rdms: BrainRDMs,
                     rdm_method: str = "correlation", compare: str = "spearman", *,
                     min_stimuli: int = 3, ceiling: tuple | None = None) -> pd.DataFrame:
    """RSA of model features against brain RDMs, per subject and on the mean, with the LOSO ceiling.

    Parameters
    ----------
    features : mapping layer -> array (n_stimuli, n_features), or :class:`brainlid.features.Features`
        One feature matrix per layer, rows named by ``stimulus_ids`` (any order).
    stimulus_ids : array-like (n_stimuli,) or None
        Ids of the feature rows (default: ``features.stimulus_ids``).
    brain_rdms : BrainRDMs
        The brain RDMs (``stimulus_ids`` must share at least ``min_stimuli`` ids with them).
    rdm_method : str
        Dissimilarity of the model RDMs (:func:`brainlid.alignment.rsa.rdm`); ``"correlation"``
        (1 - Pearson r) matches how most brain RDMs were made.
    compare : str
        RDM comparison (:func:`brainlid.alignment.rsa.compare_rdms`), e.g. ``"spearman"``.
    min_stimuli : int
        Fewest shared stimuli accepted.
    ceiling : (lower, upper, group, note) or None
        The :func:`brain_rdm_ceilings` of ``brain_rdms`` restricted to the shared stimuli, when the
        caller has them already (the RDM benchmarks reuse them for every model); default: computed.

    Returns
    -------
    DataFrame, one row per (layer, subject) plus (layer, ``"mean"``), columns as :func:`score_model_rdms`:
    ``value`` (the comparison value), ``ceiling_lower`` / ``ceiling_upper`` (per-subject rows: LOSO
    noise ceiling of the brain RDMs over the scored stimuli), ``ceiling`` (the denominator:
    √(upper · lower) per subject, the group-mean RDM's split-half ceiling on the ``"mean"`` row),
    ``ceiling_method``, ``normalised`` (value / ceiling), ``n_stimuli``. Column names follow the
    scoring tables (:mod:`brainlid.scoring.tables`: ``value``, ``ceiling``, ``normalised``).

    Raises
    ------
    InputError
        No layers, a feature matrix whose row count differs from ``stimulus_ids``.
    StimulusMismatchError
        Fewer than ``min_stimuli`` shared stimulus ids.
    """
    if not isinstance(brain_rdms, BrainRDMs):
        raise InputError(f"brain_rdms must be a BrainRDMs, got {type(brain_rdms).__name__}")
    if features is None or len(features) == 0:
        raise InputError("no feature layers given")
    if stimulus_ids is None:
        stimulus_ids = getattr(features, "stimulus_ids", None)
        if stimulus_ids is None:
            raise InputError("pass stimulus_ids (the ids of the feature rows)")
    ids = as_ids(stimulus_ids, "feature stimulus ids")
    idx_feat, idx_brain = match_ids(ids, brain_rdms.stimulus_ids, min_overlap=max(3, min_stimuli),
                                    names=("features", f"{brain_rdms.dataset} {brain_rdms.roi} RDMs"))
    if idx_brain.size == brain_rdms.n_stimuli and np.array_equal(idx_brain, np.arange(brain_rdms.n_stimuli)):
        sub = brain_rdms
    else:
        sub = BrainRDMs(brain_rdms.rdms[..., condensed_positions(idx_brain, brain_rdms.n_stimuli)],
                        brain_rdms.stimulus_ids[idx_brain], brain_rdms.subjects, brain_rdms.sessions,
                        brain_rdms.roi, brain_rdms.dataset, brain_rdms.dissimilarity, None, dict(brain_rdms.info))
    model = {}
    for layer in features:
        X = np.asarray(features[layer])
        if X.ndim != 2 or X.shape[0] != ids.size:
            raise InputError(f"features[{layer!r}] has shape {X.shape}; expected ({ids.size}, n_features) rows per stimulus id")
        model[str(layer)] = rdm(X[idx_feat], rdm_method)
    n_from_condensed(next(iter(model.values())).size)
    if ceiling is None:
        ceiling = brain_rdm_ceilings(sub.subject_rdms(), compare)
    out = score_model_rdms(model, sub, compare=compare, rdm_method=rdm_method, ceiling=ceiling[:3])
    out["ceiling_note"] = ceiling[3]
    return out


_moved = forward(__name__, {"RDM_BENCHMARKS": "brainlid.scoring.benchmarks",
                            "load_rdm_benchmark": "brainlid.scoring.benchmarks:load_benchmark_rdms"})


def __getattr__(name: str):
    """Old names: the RDM-benchmark registry (moved to :mod:`brainlid.scoring.benchmarks`) and
    ``SCORE_COLUMNS`` (the columns of :func:`score_model_rdms`; score tables have one schema,
    :data:`brainlid.scoring.tables.SCORE_COLUMNS`), each with a ``DeprecationWarning``."""
    if name == "SCORE_COLUMNS":
        warnings.warn(f"{__name__}.SCORE_COLUMNS is deprecated: it lists the columns of score_brain_rdms' table "
                      "(list(df.columns)); the score-table schema is brainlid.scoring.tables.SCORE_COLUMNS",
                      DeprecationWarning, stacklevel=2)
        return list(_COLUMNS)
    return _moved(name)
