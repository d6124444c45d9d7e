"""Voxelwise (unit-wise) encoding models: features → brain responses by cross-validated ridge.

One topic: the one encoding pipeline (:func:`fit_encoding`, which the scoring cell and
:func:`encoding_scores` both call) and the ways to run it (explicit split or outer folds, time-resolved,
joined to a :class:`~brainlid.data.BrainData`, banded over several feature spaces).

Pipeline (METHODS.md §6)
------------------------
1. Split the stimuli into training and test rows: an explicit ``train``/``test`` split,
   or ``n_outer_folds`` shuffled outer folds (every stimulus is predicted once).
2. Rescale the features by the RMS of the centred training rows and optionally reduce them to
   ``pca`` principal components fitted on the **training rows only** (Yu et al. 2026 used 300;
   :func:`train_pca` — ``pca >= min(n_train, n_features)`` keeps every feature).
3. Fit a ridge per unit with α chosen per unit by inner K-fold CV over a log grid
   and refit on all training rows (:func:`ridge_cv_fit_predict`, centring on the
   training split = an intercept). The grid is **relative** by default
   (``alpha_scale="relative"``, :data:`RELATIVE_ALPHAS`): α = grid × trace(XᵀX)/n_features of
   the (PCA-reduced, centred) training features, so scores do not change when the features
   or the responses are multiplied by a constant. The fraction of units whose α is an end
   of the grid is reported (``EncodingScores.info["alpha_edge_fraction"]``), and a
   RuntimeWarning is raised when more than half of the units sit at an end where the
   inner-CV score still improves (:func:`warn_alpha_edges`; the grid does not bracket their
   optimum; an end reached on a plateau — a constant prediction at the top, least squares at the
   bottom — is fine).
4. Score the held-out predictions per unit (:func:`unit_scores`): Pearson r and
   R² = 1 − SS_res/SS_tot (SS_tot around the mean of the held-out responses, as scikit-learn's
   ``r2_score``); a constant prediction or truth has r = 0. With outer folds, the out-of-fold
   predictions of all stimuli are pooled and scored once (``outer_aggregate="pooled"`` [ours]) or
   scored per fold and averaged (``"mean"``).

Time-resolved responses ``(n_stimuli, n_units, n_times)`` are handled as
``n_units × n_times`` independent targets (the same as looping over time); scores
come back as ``(n_units, n_times)``. Time-resolved features ``(n, p, n_times)`` fit one
model per time point and need time-resolved responses with the same times.

Unit hygiene (:func:`encoding_scores`): units with NaN/inf responses or constant responses (in the
training or the test rows) cannot be scored; they are dropped with a warning and counted in
``n_dropped`` — scores are never NaN.

:func:`brain_encoding_scores` joins features and a :class:`brainlid.data.BrainData` on
stimulus ids and returns a tidy table with raw, ceiling and normalised scores.
:func:`banded_encoding_scores` fits several feature spaces jointly with one α per space
(himalaya's ``MultipleKernelRidgeCV``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..backend import resolve_backend_name
from ..errors import InputError
from ._ridge import (DEFAULT_ALPHAS, RELATIVE_ALPHAS, RidgeResult, alpha_edge_fraction, check_alpha_scale,
                     kfold_indices, ridge_cv_fit_predict)
from ..data.ids import ids_in, match_ids
from ..data.reliability import pearson_columns
from ..features.pooling import fit_pca
from .ceiling import normalise_r, normalise_r2
from .uncertainty import bootstrap_counts, bootstrap_unit_sums

__all__ = [
    "ridge_cv_fit_predict",
    "RidgeResult",
    "DEFAULT_ALPHAS",
    "RELATIVE_ALPHAS",
    "alpha_edge_fraction",
    "EncodingScores",
    "encoding_scores",
    "brain_encoding_scores",
    "banded_encoding_scores",
    "pearson_r_columns",
    "r2_columns",
    "pca_fit_transform",
    "unit_scores",
    "train_pca",
    "EncodeResult",
    "fit_encoding",
    "fit_encoding_params",
    "warn_alpha_edges",
    "ALPHA_EDGE_WARN",
]


# ----------------------------------------------------------------------------- per-column scores
#: Pearson r between matching columns (:func:`brainlid.data.reliability.pearson_columns`: float64 sums,
#: r = 0 for a constant column, float32 result); the name of the one per-column Pearson in this module
pearson_r_columns = pearson_columns


def r2_columns(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per column: ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (scikit-learn's ``r2_score``).

    Columns with a constant truth must be removed first (they raise :class:`InputError`).
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    sst = np.einsum("ij,ij->j", a - a.mean(axis=0), a - a.mean(axis=0))
    if np.any(sst <= 0):
        raise InputError(f"{int(np.sum(sst <= 0))} column(s) have constant held-out responses; R² is undefined")
    d = a - b
    return 1.0 - np.einsum("ij,ij->j", d, d) / sst


# ----------------------------------------------------------------------------- PCA on the training rows
def pca_fit_transform(train, test, n_components: int, seed: int | None = 0):
    """Deprecated: :func:`train_pca`, the one train-only PCA policy of encoding (rescaled features; a
    number of components >= ``min(n_train, n_features)`` keeps every feature, without a warning)."""
    warnings.warn("brainlid.alignment.encoding.pca_fit_transform is deprecated; use train_pca (same train-only "
                  "PCA, features rescaled first)", DeprecationWarning, stacklevel=2)
    return train_pca(np.asarray(train), np.asarray(test), n_components, seed)


# ----------------------------------------------------------------------------- the one encoding fit
def unit_scores(Y_true: np.ndarray, Y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out Pearson r and R² per unit (and time).

    ``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` with ȳ the mean over the evaluated stimuli; r is Pearson's
    correlation over the evaluated stimuli. Constant units get r = 0 and R² = 0 (no variance to
    explain). Shapes ``(n_stimuli, n_units[, n_times])`` → ``(n_units[, n_times])`` float32.
    """
    y = np.asarray(Y_true, dtype=np.float64)
    p = np.asarray(Y_pred, dtype=np.float64)
    yc = y - y.mean(axis=0)
    sst = (yc**2).sum(axis=0)
    sse = ((y - p) ** 2).sum(axis=0)
    ok = sst > 1e-12
    r2 = np.where(ok, 1.0 - sse / np.where(ok, sst, 1.0), 0.0)
    return pearson_columns(y, p), r2.astype(np.float32)


def train_pca(X_fit: np.ndarray, X_eval: np.ndarray, n_components: int | None, seed: int | None = 0,
              dtype=np.float32):
    """The one train-only PCA policy of encoding: rescale, then project on the fit rows' PCs.

    One global rescaling first (the RMS of the centred fit features, in float64): the PCA and the
    ridge see O(1) numbers whatever the features' units (no float32 overflow at 1e20; X → cX gives
    the same fit to float32 rounding). ``n_components`` None or ``>= min(n_fit, n_features)``
    keeps every (centred, rescaled) feature — a full PCA would only rotate them; otherwise the
    first ``n_components`` PCs of the fit rows (:func:`brainlid.features.pooling.fit_pca`,
    ``random_state=seed``).

    Parameters
    ----------
    X_fit : array of shape (n_fit, n_features)
    X_eval : array of shape (n_eval, n_features)
    n_components : int or None
    seed : int or None
    dtype : numpy dtype
        Of the rescaled features (the PCs are float32, :func:`~brainlid.features.pooling.fit_pca`).

    Returns
    -------
    fit, eval : arrays of shape (n_fit, k), (n_eval, k)
    """
    return _train_pca(X_fit, X_eval, n_components, seed, dtype)[:2]


def _train_pca(X_fit, X_eval, n_components, seed, dtype):
    """:func:`train_pca` and the rescaling factor ``sx`` (features / sx were projected)."""
    mean = X_fit.mean(axis=0, dtype=np.float64)
    msq = _mean_square_deviation(X_fit)
    sx = np.sqrt(msq) if msq > 0 and np.isfinite(msq) else 1.0
    Xs, Es = ((X_fit - mean) / sx).astype(dtype), ((X_eval - mean) / sx).astype(dtype)
    if n_components is None or n_components >= min(X_fit.shape):
        return Xs, Es, sx
    m, comps = fit_pca(Xs, int(n_components), seed=seed)
    return (Xs - m) @ comps.T, (Es - m) @ comps.T, sx


class EncodeResult(NamedTuple):
    """What one encoding fit returns (:func:`fit_encoding`).

    ``r``, ``r2``: per-unit held-out scores ``(n_units[, n_times])`` float32; ``at_edge``: the
    unit's α is an end of the grid (same shape, bool); ``unbracketed``: at an end where the inner-CV
    score still improves (:meth:`RidgeResult.unbracketed`); ``n_alphas``: grid size; ``boot``: metric →
    ``(n_boot[, n_times])`` sums over units of the score on each stimulus resample
    (:func:`brainlid.alignment.uncertainty.bootstrap_unit_sums`), or None without a bootstrap;
    ``pred``: the held-out predictions ``(n_eval, n_units[, n_times])`` (float32; float64 with
    ``dtype="float64"``); ``alpha``: the chosen α per unit as a penalty in the units of the input
    features (float64, same shape as ``r``); ``solver``: the ridge form used.
    """

    r: np.ndarray
    r2: np.ndarray
    at_edge: np.ndarray
    unbracketed: np.ndarray
    n_alphas: int
    boot: dict | None
    pred: np.ndarray | None = None
    alpha: np.ndarray | None = None
    solver: str = ""


def fit_encoding(X_fit, Y_fit, X_eval, Y_eval, *, pca: int | None = None, alphas=RELATIVE_ALPHAS,
                 n_folds: int = 5, seed: int | None = 0, n_boot: int = 0, cv_seed: int | None = 0,
                 alpha_scale: str = "relative", center: bool = True, backend: str = "auto",
                 dtype: str = "float32", n_targets_batch: int | None = None) -> EncodeResult:
    """The one encoding pipeline: fit on (X_fit, Y_fit), score per unit on the eval stimuli.

    Features → :func:`train_pca` (fit rows only) → ridge with a per-unit α by inner CV
    (:func:`ridge_cv_fit_predict`; ``alphas`` relative to the mean eigenvalue of the fit features'
    Gram by default, so the fit is invariant to rescaling X or Y) → held-out Pearson r and R² per
    unit (:func:`unit_scores`: a constant unit scores 0) → with ``n_boot >= 10`` the per-resample
    sums over units of the scores on ``n_boot`` multinomial resamples of the evaluated stimuli,
    drawn with ``seed`` (the same draws for every unit, time point and voxel batch).

    Parameters
    ----------
    X_fit : array of shape (n_fit, n_features)
    Y_fit : array of shape (n_fit, n_units[, n_times])
    X_eval : array of shape (n_eval, n_features)
    Y_eval : array of shape (n_eval, n_units[, n_times])
    pca : int or None
        Principal components of the fit features kept (:func:`train_pca`).
    alphas : array-like
        The α grid (relative with ``alpha_scale="relative"``).
    n_folds : int
        Inner CV folds (capped at ``n_fit``).
    seed : int or None
        Seed of the randomized PCA and of the bootstrap draws.
    n_boot : int
        Stimulus resamples of the bootstrap (none below 10 or with fewer than 2 eval stimuli).
    cv_seed : int or None
        Seed of the inner fold shuffle (scoring keeps 0 whatever the benchmark's seed).
    alpha_scale : {"relative", "absolute"}
        ``"absolute"``: ``alphas`` are penalties in the units of the input features (the rescaling
        of :func:`train_pca` is undone on them: the same fit as without it).
    center, backend, dtype, n_targets_batch
        As in :func:`ridge_cv_fit_predict`.

    Returns
    -------
    EncodeResult
    """
    check_alpha_scale(alpha_scale)
    fdtype = np.float32 if dtype == "float32" else np.float64
    Xf, Xe, sx = _train_pca(X_fit, X_eval, pca, seed, fdtype)
    alphas = np.asarray(alphas)
    if alpha_scale == "absolute":  # the ridge sees features / sx: penalties / sx² give the same fit
        alphas = alphas / (sx * sx)
    shape = Y_eval.shape
    Yf = Y_fit.reshape(Y_fit.shape[0], -1)
    n_cv = int(min(n_folds, Xf.shape[0]))
    res = ridge_cv_fit_predict(
        np.ascontiguousarray(Xf, dtype=fdtype), np.ascontiguousarray(Yf, dtype=fdtype),
        np.ascontiguousarray(Xe, dtype=fdtype), alphas=alphas, n_folds=n_cv, center=center,
        alpha_scale=alpha_scale, backend=backend, dtype=dtype, n_targets_batch=n_targets_batch, seed=cv_seed,
    )
    pred = np.asarray(res.predictions, dtype=fdtype).reshape(shape)
    r, r2 = unit_scores(Y_eval, pred)
    n_eval, n_boot = int(shape[0]), int(n_boot)
    boot = None
    if n_eval >= 2 and n_boot >= 10:
        counts = bootstrap_counts(n_eval, n_boot, np.random.default_rng(seed))
        boot = bootstrap_unit_sums(Y_eval, pred, counts, metrics=("r2", "r"))
    return EncodeResult(r, r2, res.at_grid_edge.reshape(shape[1:]), res.unbracketed().reshape(shape[1:]),
                        int(res.alphas.size), boot, pred, (res.best_alphas * (sx * sx)).reshape(shape[1:]), res.solver)


def fit_encoding_params(X_fit, Y_fit, X_eval, Y_eval, params) -> EncodeResult:
    """:func:`fit_encoding` with a benchmark's parameters (``pca``, ``alphas``, ``cv``, ``seed``, ``n_boot``)."""
    return fit_encoding(X_fit, Y_fit, X_eval, Y_eval, pca=params["pca"], alphas=params["alphas"],
                        n_folds=params["cv"], seed=params["seed"], n_boot=params["n_boot"])


ALPHA_EDGE_WARN = 0.5  #: warn when more than this fraction of the units have an unbracketed α


def warn_alpha_edges(unbracketed: np.ndarray, what: str, stacklevel: int = 4) -> None:
    """One RuntimeWarning when more than :data:`ALPHA_EDGE_WARN` of the units (at any time point) chose an
    end of the α grid while the inner-CV score was still improving towards it.

    ``unbracketed``: bool array ``(n_units[, n_times])`` (:attr:`EncodeResult.unbracketed`); ``what``
    names the fit in the message."""
    u = np.asarray(unbracketed, dtype=np.float64)
    worst = float(np.max(u.mean(axis=0))) if u.size else 0.0
    if worst > ALPHA_EDGE_WARN:
        warnings.warn(
            f"{what}: for {worst:.0%} of the units the ridge α is an end of the grid and the inner CV still improves "
            "towards it (the grid does not bracket the optimum; see alpha_edge_fraction); widen the α grid (alphas)",
            RuntimeWarning, stacklevel=stacklevel,
        )


# ----------------------------------------------------------------------------- results
@dataclass
class EncodingScores:
    """Held-out encoding scores.

    Attributes
    ----------
    r, r2 : ndarray of shape (n_kept_units[, n_times]) float32
        Held-out Pearson r and R² per scored unit (and time).
    alpha : ndarray of shape (n_kept_units[, n_times]) float64
        α chosen by the inner CV, absolute (with outer folds: the geometric mean over folds).
    alpha_at_edge : ndarray of bool, same shape, or None
        The unit's α is the smallest or largest of the grid (in any outer fold).
    units : ndarray of int64, shape (n_kept_units,)
        Positions (in the input's unit axis) of the scored units.
    n_units : int
        Units in the input.
    n_dropped : int
        Units dropped (NaN/inf or constant responses).
    times : int or None
        Number of time points (time-resolved responses) or None.
    predictions : ndarray of shape (n_test, n_kept_units[, n_times]) or None
        Held-out predictions (``return_predictions=True``), rows ordered as ``test_index``.
    test_index : ndarray or None
        Rows of the input the predictions belong to.
    info : dict
        Settings used (split, pca, folds, aggregation, solver).
    """

    r: np.ndarray
    r2: np.ndarray
    alpha: np.ndarray
    units: np.ndarray
    n_units: int
    n_dropped: int
    times: int | None = None
    predictions: np.ndarray | None = None
    test_index: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    alpha_at_edge: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per (unit[, time]) with columns unit, time, r, r2, alpha."""
        n_k = self.units.size
        if self.times is None:
            return pd.DataFrame(
                {"unit": self.units, "time": np.zeros(n_k, dtype=np.int64), "r": self.r, "r2": self.r2, "alpha": self.alpha}
            )
        nt = self.times
        return pd.DataFrame(
            {
                "unit": np.repeat(self.units, nt),
                "time": np.tile(np.arange(nt), n_k),
                "r": self.r.ravel(),
                "r2": self.r2.ravel(),
                "alpha": self.alpha.ravel(),
            }
        )


# ----------------------------------------------------------------------------- the main function
def _as_rows(sel, n: int, name: str) -> np.ndarray:
    a = np.asarray(sel)
    if a.dtype == bool:
        if a.shape != (n,):
            raise InputError(f"{name} mask must have shape ({n},), got {a.shape}")
        return np.flatnonzero(a)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{name} must be a boolean mask or an array of row positions")
    if a.size and (a.min() < -n or a.max() >= n):
        raise InputError(f"{name} has row positions outside [0, {n})")
    a = a % n
    if np.unique(a).size != a.size:
        raise InputError(f"{name} has repeated rows")
    return a


def _mean_square_deviation(X: np.ndarray, chunk_elems: int = 2**22) -> float:
    """Mean over all entries of ``(X − column mean)²`` in float64, by row chunks (32 MB temporaries,
    not two float64 copies of X)."""
    mean = X.mean(axis=0, dtype=np.float64)
    step = max(1, chunk_elems // max(1, mean.size))
    acc = 0.0
    for s in range(0, X.shape[0], step):
        D = (X[s:s + step] - mean).ravel()
        acc += float(D @ D)
    return acc / max(1, X.size)


def _usable_units(Y: np.ndarray, row_sets: list[np.ndarray]) -> np.ndarray:
    """Boolean (n_targets,): finite everywhere and non-constant within every row set."""
    ok = np.isfinite(Y).all(axis=0)
    for rows in row_sets:
        sub = Y[rows]
        with np.errstate(invalid="ignore"):
            ok &= (np.nanmax(sub, axis=0) - np.nanmin(sub, axis=0)) > 0
    return ok


def encoding_scores(
    features,
    responses,
    *,
    train=None,
    test=None,
    n_outer_folds: int | None = None,
    pca: int | None = None,
    alphas=RELATIVE_ALPHAS,
    n_folds: int = 5,
    center: bool = True,
    backend: str = "auto",
    return_predictions: bool = False,
    outer_aggregate: str = "pooled",
    seed: int | None = 0,
    dtype: str = "float32",
    n_targets_batch: int | None = None,
    alpha_scale: str = "relative",
) -> EncodingScores:
    """Held-out encoding scores per unit (and time): ridge with per-unit α by inner CV.

    Parameters
    ----------
    features : array-like of shape (n_stimuli, n_features) or (n_stimuli, n_features, n_times)
        Model features, rows aligned with ``responses`` (use :func:`brain_encoding_scores`
        to join on stimulus ids). Time-resolved features fit one model per time point.
    responses : array-like of shape (n_stimuli, n_units) or (n_stimuli, n_units, n_times)
        Brain responses (repetitions already averaged).
    train, test : array of row positions or boolean masks, optional
        An explicit split (both or neither). Without it, ``n_outer_folds`` shuffled outer
        folds (default 5) are used and every stimulus is predicted once.
    n_outer_folds : int or None
        Outer folds when no explicit split is given.
    pca : int or None
        Reduce features to this many PCs fitted on the training rows only (the paper: 300).
    alphas : array-like
        Ridge α grid (default :data:`RELATIVE_ALPHAS`, ``np.logspace(-4, 4, 9)``).
    alpha_scale : {"relative", "absolute"}
        ``"relative"`` (default): ``alphas`` are multiples of the mean eigenvalue of the training
        features' Gram matrix, trace(XᵀX)/n_features, after PCA and centring — scores are
        invariant to X → cX and Y → cY. ``"absolute"``: penalties in the units of X, as in
        scikit-learn and himalaya.
    n_folds : int
        Inner CV folds for choosing α.
    center : bool
        Centre on the training rows (an intercept).
    backend : str
        Array backend (:mod:`brainlid.backend`).
    return_predictions : bool
        Keep the held-out predictions.
    outer_aggregate : {"pooled", "mean"}
        With outer folds: score the pooled out-of-fold predictions once, or average the
        per-fold scores.
    seed : int or None
        Seed of the outer and inner fold shuffles and of randomized PCA.
    dtype : {"float32", "float64"}
        Precision of the solver's products.
    n_targets_batch : int or None
        Targets per solver batch (default: by memory budget).

    Returns
    -------
    EncodingScores

    Raises
    ------
    InputError
        Shapes that do not match, NaN in the features, a time axis on the features only
        (or different numbers of times), too few stimuli for the folds, no scorable unit.
    """
    X = np.asarray(features)
    Y = np.asarray(responses)
    if X.ndim not in (2, 3):
        raise InputError(f"features must have shape (n_stimuli, n_features[, n_times]); got {X.shape}")
    if Y.ndim not in (2, 3):
        raise InputError(f"responses must have shape (n_stimuli, n_units[, n_times]); got {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"features have {X.shape[0]} rows but responses have {Y.shape[0]}")
    if X.ndim == 3 and Y.ndim == 2:
        raise InputError(
            "features have a time axis but responses do not: give time-resolved responses "
            "(n_stimuli, n_units, n_times), or 2-D features shared by every time point"
        )
    if X.ndim == 3 and X.shape[2] != Y.shape[2]:
        raise InputError(f"features have {X.shape[2]} time points but responses have {Y.shape[2]}")
    if not np.issubdtype(X.dtype, np.number) or not np.issubdtype(Y.dtype, np.number):
        raise InputError("features and responses must be numeric")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X.reshape(X.shape[0], -1)).all(axis=1))
        raise InputError(f"features have NaN/inf in {bad.size} stimuli (first rows: {bad[:5].tolist()})")
    if outer_aggregate not in ("pooled", "mean"):
        raise InputError(f"outer_aggregate must be 'pooled' or 'mean', got {outer_aggregate!r}")
    check_alpha_scale(alpha_scale)
    if pca is not None and int(pca) < 1:
        raise InputError(f"pca must be a positive number of components, got {pca}")
    n = X.shape[0]
    n_units = Y.shape[1]
    n_times = Y.shape[2] if Y.ndim == 3 else None

    # outer split(s)
    if (train is None) != (test is None):
        raise InputError("give both train and test, or neither (then n_outer_folds is used)")
    if train is not None:
        if n_outer_folds is not None:
            raise InputError("give either an explicit train/test split or n_outer_folds, not both")
        tr = _as_rows(train, n, "train")
        te = _as_rows(test, n, "test")
        if np.intersect1d(tr, te).size:
            raise InputError(f"train and test share {np.intersect1d(tr, te).size} rows")
        if te.size < 2:
            raise InputError(f"the test split needs >= 2 stimuli to compute a correlation; got {te.size}")
        splits = [(tr, te)]
    else:
        k = 5 if n_outer_folds is None else int(n_outer_folds)
        if k < 2:
            raise InputError(f"n_outer_folds must be >= 2, got {k}")
        if n < 2 * k:
            raise InputError(f"{n} stimuli are too few for {k} outer folds (need at least {2 * k})")
        outer = kfold_indices(n, k, seed=seed, shuffle=True)
        splits = [(np.setdiff1d(np.arange(n), te), te) for te in outer]
    for tr, _ in splits:
        if tr.size < 2 * n_folds:
            raise InputError(
                f"a training split has {tr.size} stimuli, too few for {n_folds}-fold inner CV "
                f"(need at least {2 * n_folds}); lower n_folds or use more stimuli"
            )

    # unit hygiene on the flattened targets (unit x time)
    Yf = Y.reshape(n, -1)
    row_sets = [r for s in splits for r in s]
    ok_t = _usable_units(Yf, row_sets)
    ok_units = ok_t.reshape(n_units, -1).all(axis=1)
    n_dropped = int(n_units - ok_units.sum())
    if n_dropped:
        warnings.warn(
            f"dropped {n_dropped} of {n_units} unit(s) with NaN/inf or constant responses; they are not scored",
            RuntimeWarning,
            stacklevel=2,
        )
    if not ok_units.any():
        raise InputError("no unit can be scored: every unit has NaN/inf or constant responses")
    kept = np.flatnonzero(ok_units)
    Yk = Y[:, kept].reshape(n, -1)  # (n, kept * times)

    def fit_one(Xs, Ys, tr, te):  # the one encoding pipeline (scoring's): train-only PCA, ridge, scores
        fit = fit_encoding(Xs[tr], Ys[tr], Xs[te], Ys[te], pca=pca, alphas=alphas, n_folds=n_folds, seed=seed,
                           cv_seed=seed, alpha_scale=alpha_scale, center=center, backend=backend, dtype=dtype,
                           n_targets_batch=n_targets_batch)
        return fit.pred, fit.alpha, fit.solver, fit.at_edge, fit.unbracketed

    n_t = Yk.shape[1]
    fold_preds, fold_alphas, solver = [], [], None
    edge = np.zeros(n_t, dtype=bool)
    unbr = np.zeros(n_t, dtype=bool)
    for tr, te in splits:
        if X.ndim == 2:
            pred, alph, solver, e, ub = fit_one(X, Yk, tr, te)
            edge |= e
            unbr |= ub
        else:  # one model per time point: targets of time j are columns j, j+T, ...
            T = n_times
            pred = np.empty((te.size, n_t), dtype=np.float32)
            alph = np.empty(n_t)
            for j in range(T):
                cols = np.arange(j, n_t, T)
                pj, aj, solver, e, ub = fit_one(X[:, :, j], Yk[:, cols], tr, te)
                pred[:, cols], alph[cols] = pj, aj
                edge[cols] |= e
                unbr[cols] |= ub
        fold_preds.append(pred)
        fold_alphas.append(alph)

    te_all = np.concatenate([te for _, te in splits])
    pred_all = np.concatenate(fold_preds, axis=0)
    if len(splits) == 1 or outer_aggregate == "pooled":
        r, r2 = unit_scores(Yk[te_all], pred_all)
    else:
        per_fold = [unit_scores(Yk[te], p) for (_, te), p in zip(splits, fold_preds)]
        r, r2 = (np.mean([f[i] for f in per_fold], axis=0) for i in (0, 1))
    alpha = np.exp(np.mean(np.log(np.stack(fold_alphas)), axis=0))

    shape = (kept.size,) if n_times is None else (kept.size, n_times)
    edge_fraction = alpha_edge_fraction(edge.reshape(shape), np.size(alphas))
    warn_alpha_edges(unbr.reshape(shape), "encoding_scores", stacklevel=3)
    out = EncodingScores(
        r=r.reshape(shape).astype(np.float32),
        r2=r2.reshape(shape).astype(np.float32),
        alpha=alpha.reshape(shape),
        alpha_at_edge=edge.reshape(shape),
        units=kept.astype(np.int64),
        n_units=int(n_units),
        n_dropped=n_dropped,
        times=n_times,
        info={
            "split": "explicit" if train is not None else f"{len(splits)}-fold",
            "pca": pca,
            "inner_folds": int(n_folds),
            "outer_aggregate": outer_aggregate,
            "solver": solver,
            "n_test": int(te_all.size),
            "seed": seed,
            "alpha_scale": alpha_scale,
            "alpha_edge_fraction": edge_fraction,
        },
    )
    if return_predictions:
        out.predictions = pred_all.reshape((te_all.size, *shape))
        out.test_index = te_all
    return out


# ----------------------------------------------------------------------------- BrainData convenience
def brain_encoding_scores(
    features,
    stimulus_ids,
    brain,
    *,
    split: tuple[str, str] | None = ("train", "test"),
    roi: str | None = None,
    floor: float = 0.1,
    min_overlap: int = 10,
    **kwargs,
) -> pd.DataFrame:
    """Encoding scores of ``features`` against a :class:`~brainlid.data.BrainData`, joined on stimulus ids.

    Parameters
    ----------
    features : array-like of shape (n_stimuli, n_features)
        Model features, one row per id in ``stimulus_ids``.
    stimulus_ids : array-like of shape (n_stimuli,)
        Ids of the feature rows; joined with ``brain.stimulus_ids`` (never by row order)
        through :func:`brainlid.data.ids.match_ids`.
    brain : BrainData
        Responses (repetitions are averaged first), splits and noise ceiling.
    split : (str, str) or None
        Names of the train and test splits in ``brain.splits``; used when both exist,
        otherwise outer K-fold CV (``n_outer_folds`` in ``kwargs``, default 5). ``None``
        always uses outer folds.
    roi : str or None
        Restrict to the units of this ROI (``brain.select(roi=...)``).
    floor : float
        Noise-ceiling floor of the normalised ROI summary (see :mod:`.ceiling`).
    min_overlap : int
        Fewest shared stimulus ids accepted.
    **kwargs
        Passed to :func:`encoding_scores` (``pca``, ``alphas``, ``n_folds``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per (unit, time) with columns ``unit`` (the unit's position in
        ``brain``, after ``roi`` selection), ``time``, ``r``, ``r2``, ``alpha``,
        ``ceiling`` (NaN when the data carry no ceiling), ``normalised`` (R²/NC),
        ``r_normalised`` (r/√NC), ``kept`` (NC above ``floor``), and ``time_s`` (seconds)
        for time-resolved data. ``df.attrs`` holds the ROI summary of R² (``roi_normalised`` =
        mean R² ÷ mean NC over the kept units, ``roi_normalised_unit_mean`` = the mean of their
        per-unit ratios, their number, units dropped, ``alpha_edge_fraction``) as plain
        JSON-serialisable values.
    """
    if roi is not None:
        brain = brain.select(roi=roi)
    if getattr(brain, "has_reps", False):
        brain = brain.average_reps()
    X = np.asarray(features)
    ids = np.asarray(stimulus_ids)
    if X.shape[0] != ids.shape[0]:
        raise InputError(f"{X.shape[0]} feature rows for {ids.shape[0]} stimulus ids")
    idx_f, idx_b = match_ids(ids, brain.stimulus_ids, min_overlap=min_overlap, names=("features", "brain data"))
    Xj = X[idx_f]
    Yj = brain.responses[idx_b]
    joined_ids = brain.stimulus_ids[idx_b]
    kw = dict(kwargs)
    if split is not None and split[0] in brain.splits and split[1] in brain.splits and "n_outer_folds" not in kw:
        kw["train"] = np.flatnonzero(ids_in(joined_ids, brain.splits[split[0]]))
        kw["test"] = np.flatnonzero(ids_in(joined_ids, brain.splits[split[1]]))
        if kw["train"].size == 0 or kw["test"].size == 0:
            raise InputError(
                f"after joining on stimulus ids, split {split[0]!r} has {kw['train'].size} and "
                f"{split[1]!r} has {kw['test'].size} stimuli with features"
            )
    scores = encoding_scores(Xj, Yj, **kw)
    df = scores.to_frame()
    nc = brain.noise_ceiling
    if nc is not None:
        nc = np.asarray(nc, dtype=np.float64)[scores.units]
        if scores.times is not None and nc.ndim == 1:
            nc = np.repeat(nc[:, None], scores.times, axis=1)
        nc_flat = nc.ravel() if scores.times is not None else nc
        nr2 = normalise_r2(df["r2"].to_numpy(), nc_flat, floor=floor)
        nr = normalise_r(df["r"].to_numpy(), nc_flat, floor=floor)
        df["ceiling"] = nr2.ceiling
        df["normalised"] = nr2.normalised
        df["r_normalised"] = nr.normalised
        df["kept"] = nr2.kept
        summary = normalise_r2(scores.r2, nc, floor=floor).summary()
    else:
        df["ceiling"] = np.nan
        df["normalised"] = np.nan
        df["r_normalised"] = np.nan
        df["kept"] = False
        summary = {"metric": "r2", "roi_raw_all": np.mean(scores.r2, axis=0)}
    if scores.times is not None and getattr(brain, "times", None) is not None:
        df["time_s"] = np.asarray(brain.times)[df["time"].to_numpy()]
    attrs = {"summary": summary, "n_dropped": scores.n_dropped, "n_units": scores.n_units, **scores.info}
    df.attrs.update(_jsonable(attrs))  # plain types: pandas writes attrs into Parquet metadata as JSON
    return df


def _jsonable(obj):
    """Nested dicts/lists of numpy values -> plain Python types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- banded ridge
def banded_encoding_scores(
    feature_spaces,
    responses,
    *,
    train,
    test,
    n_iter: int = 20,
    alphas=DEFAULT_ALPHAS,
    n_folds: int = 5,
    backend: str = "auto",
    seed: int | None = 0,
) -> dict:
    """Banded ridge over several feature spaces (e.g. two layers) with himalaya's ``MultipleKernelRidgeCV``.

    Each feature space gets its own regularisation (learned per unit by random search
    over kernel weights, Dupré la Tour et al. 2022); X and Y are centred on the training
    rows. Scores are held-out Pearson r and R² per unit; the per-space split of the
    explained variance uses himalaya's ``score_split``.

    Parameters
    ----------
    feature_spaces : sequence of array-like, each (n_stimuli, n_features_i)
    responses : array-like of shape (n_stimuli, n_units)
    train, test : row positions or boolean masks
    n_iter : int
        Random-search iterations over kernel weights.

    Returns
    -------
    dict with ``r``, ``r2`` (n_units,), ``r2_split`` (n_spaces, n_units), ``deltas``
    (n_spaces, n_units) log kernel weights.
    """
    # heavy: himalaya and scikit-learn (~1 s to import), needed by banded ridge only
    from himalaya.backend import get_backend as _hget, set_backend
    from himalaya.kernel_ridge import ColumnKernelizer, Kernelizer, MultipleKernelRidgeCV
    from himalaya.scoring import r2_score_split
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline

    spaces = [np.asarray(f, dtype=np.float32) for f in feature_spaces]
    if len(spaces) < 2:
        raise InputError("banded ridge needs at least 2 feature spaces; use encoding_scores for one")
    Y = np.asarray(responses, dtype=np.float32)
    n = Y.shape[0]
    if Y.ndim != 2:
        raise InputError(f"responses must be (n_stimuli, n_units); got {Y.shape}")
    if any(f.ndim != 2 or f.shape[0] != n for f in spaces):
        raise InputError("every feature space must be 2-D with one row per stimulus")
    if not all(np.isfinite(f).all() for f in spaces) or not np.isfinite(Y).all():
        raise InputError("feature spaces and responses must be finite")
    tr = _as_rows(train, n, "train")
    te = _as_rows(test, n, "test")
    if tr.size < 2 * n_folds:
        raise InputError(f"{tr.size} training stimuli are too few for {n_folds}-fold CV")
    ok = _usable_units(Y, [tr, te])
    if not ok.all():
        raise InputError(f"{int((~ok).sum())} unit(s) have constant or non-finite responses; drop them first")

    X = np.concatenate(spaces, axis=1)
    mu_x = X[tr].mean(axis=0)
    mu_y = Y[tr].mean(axis=0)
    Xc, Yc = X - mu_x, Y - mu_y
    bounds = np.cumsum([0] + [f.shape[1] for f in spaces])
    kernelizers = [(f"space{i}", Kernelizer(), slice(int(bounds[i]), int(bounds[i + 1]))) for i in range(len(spaces))]
    previous = _hget().name
    set_backend(resolve_backend_name(backend))
    try:
        model = make_pipeline(
            ColumnKernelizer(kernelizers),
            MultipleKernelRidgeCV(
                kernels="precomputed",
                solver="random_search",
                solver_params={"n_iter": n_iter, "alphas": np.asarray(alphas), "progress_bar": False},
                cv=KFold(n_folds, shuffle=True, random_state=seed),
                random_state=seed,
            ),
        )
        model.fit(Xc[tr], Yc[tr])
        hb = _hget()
        pred = hb.to_numpy(model.predict(Xc[te])) + mu_y
        split_pred = hb.to_numpy(model[-1].predict(model[0].transform(Xc[te]), split=True))
        deltas = hb.to_numpy(model[-1].deltas_)
    finally:
        set_backend(previous)
    Yte = Y[te]
    r, r2 = unit_scores(Yte, pred)
    # per-space split of R² (himalaya's r2_score_split convention: sums to the total R²);
    # himalaya's split needs zero-mean y_true: centre truth and each space's prediction on the test rows
    split_c = split_pred - split_pred.mean(axis=1, keepdims=True)
    r2_split = np.asarray(r2_score_split(Yte - Yte.mean(axis=0), split_c, include_correlation=True))
    return {"r": r.astype(np.float32), "r2": r2.astype(np.float32), "r2_split": r2_split.astype(np.float32), "deltas": deltas}
