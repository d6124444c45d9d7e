"""Ridge regression with a per-target α chosen by K-fold cross-validation: the fast solver.

One topic: this one solver (its primal and dual forms share the fold algebra below and the α grid's
meaning, :func:`check_alpha_scale`), as himalaya keeps its solvers in one ``_solvers.py``.

:func:`ridge_cv_fit_predict` fits ``Y ≈ X β`` (one β column per target) with the
ridge penalty ``α‖β‖²``, chooses α per target from a grid by inner K-fold
cross-validation, refits on the whole training split with each target's α and
predicts the test rows. It is the engine of voxelwise encoding models
(:mod:`brainlid.alignment.encoding`) and of the model–model ridge R².

Algorithm
---------
Every quantity that does not depend on the targets is computed once, and every
quantity that depends on α is a diagonal scaling in an eigenbasis:

*Primal form* (n_features p ≤ inner-training size): the data are split into K folds
``X_g, Y_g``. One pass computes the per-fold cross products ``X_gᵀX_g`` (p×p) and
``C_g = X_gᵀY_g`` (p×t); the training-fold products are sums of the others
(``Σ_{g≠f}``), and centring on each inner training fold is a rank-one correction, so
the n×p×t work is done **once**, not K times. For fold f the centred training Gram
``G_f = V diag(s) Vᵀ`` is diagonalised once (shared by every α and every target);
``Z = Vᵀ C_f`` projects the targets once. The validation predictions for α are
``A diag(1/(s+α)) Z`` with ``A = X_val V``; their squared error is

    SSE_t(α) = ‖y_t‖² − 2 Σ_k d_k B_kt Z_kt + (D Z)_tᵀ M (D Z)_t,
    d_k = 1/(s_k + α), B = Aᵀ Y_val, M = AᵀA (p×p),

so each α costs one (p×p)·(p×t) product when p ≤ n_val ("gram" style), else one
(n_val×p)·(p×t) product and a residual norm ("direct" style).

*Dual (kernel) form* (p > inner-training size): the same with the centred linear
kernel ``K_f = X_f X_fᵀ = U diag(λ) Uᵀ`` (n_f×n_f), ``Z = Uᵀ Y_f``,
``A = K_val,f U``; centring is applied to the kernel algebraically.

The refit on the whole training split uses the same decomposition of the full
Gram (or kernel), with a per-target diagonal ``1/(s_k + α_t)``.

Products per fold (the benchmark lists them): ``X_gᵀY_g`` (p×n_g)·(n_g×t) once per
fold; ``Vᵀ[C_train | C_val]`` (p×p)·(p×2t); per α ``M (D Z)`` (p×p)·(p×t). The
criterion is the validation sum of squared errors pooled over the K folds (the
mean squared error); ``cv_scores`` reports it as a pooled R², ``1 − SSE/SST``.

Why not himalaya's ``RidgeCV`` directly: its SVD solver recomputes an SVD of
every n_f×p training fold and forms the validation predictions of every α
explicitly, and it recomputes the fold cross products K times. The algebra above
does the O(n·p·t) work once and keeps every α step at O(p²·t) while running on
himalaya's backend layer (numpy, torch CPU, torch CUDA), so it is several times
faster at the sizes of voxelwise encoding (see ``benchmarks/bench_encoding.py``).

Precision: products run in ``dtype`` (float32 by default); the eigendecompositions,
means and per-target error sums are computed in float64. X and Y
are centred on the training split before the cross products so that the fold-
centring corrections are small (no cancellation in float32), and rescaled (in float64,
before the cast) to unit mean square — X by one global factor, each target by its own
standard deviation — with α rescaled to match. Ridge with per-target α is exactly
equivariant to these scalings, so the fit is unchanged while the float32 products see
O(1) numbers: results do not depend on the units of X or Y (features at 1e20 do not
overflow), and X → cX, Y → cY give the same scores to float32 rounding.

Scale of α
----------
``alpha_scale="absolute"`` (default): α is a penalty in the units of X, as in
scikit-learn's ``Ridge`` and himalaya's ``RidgeCV``. ``alpha_scale="relative"``: α is a
multiple of the mean eigenvalue of the (centred) training Gram matrix,
``trace(XᵀX) / n_features`` (= n_train × the mean feature variance), so the grid moves with
the features' scale and the chosen fits are invariant to X → cX; ``RidgeResult.alphas`` and
``best_alphas`` report the absolute penalties used (pass them to himalaya or scikit-learn to
reproduce the fit) and ``alpha_scale`` the factor.

References
----------
Hoerl & Kennard (1970), Technometrics 12(1) — ridge regression.
Dupré la Tour, Eickenberg, Nunez-Elizalde, Gallant (2022), "Feature-space selection
with banded ridge regression", NeuroImage (himalaya).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..backend import get_backend, thread_limits
from ..errors import InputError

__all__ = ["RidgeResult", "ridge_cv_fit_predict", "DEFAULT_ALPHAS", "RELATIVE_ALPHAS", "kfold_indices",
           "alpha_edge_fraction"]

DEFAULT_ALPHAS = np.logspace(-2, 8, 11)
#: Default grid of relative α (``alpha_scale="relative"``: multiples of the mean eigenvalue of
#: the training Gram). Ridge theory puts the optimum near (n_features / n_train) / SNR, i.e.
#: 1e-3 … 1e2 for encoding models; units whose features carry no signal go to the top (an
#: effectively constant prediction: even the largest PC is shrunk ≥ 30× at p = 300).
RELATIVE_ALPHAS = np.logspace(-4, 4, 9)
_DEFAULT_BUDGET = 512_000_000


@dataclass
class RidgeResult:
    """Result of :func:`ridge_cv_fit_predict`.

    Attributes
    ----------
    predictions : ndarray of shape (n_test, n_targets), float32 (or ``dtype``)
        Test predictions of the model refitted on the whole training split.
    best_alphas : ndarray of shape (n_targets,) float64
        α chosen per target (smallest inner-CV squared error; ties → smaller α).
    cv_scores : ndarray of shape (n_alphas, n_targets) float32
        Inner-CV pooled R² per α and target: ``1 − Σ_f SSE_f(α) / Σ_f SST_f``.
    alphas : ndarray of shape (n_alphas,)
        The α grid, as absolute penalties in the units of X (with ``alpha_scale="relative"``:
        the relative grid × ``alpha_scale``).
    solver : str
        ``"primal"`` (eigendecomposition of the p×p Gram) or ``"dual"`` (of the n×n kernel).
    alpha_scale : float
        Absolute α = relative α × ``alpha_scale`` (the mean eigenvalue of the training Gram);
        1.0 with ``alpha_scale="absolute"``.
    """

    predictions: np.ndarray
    best_alphas: np.ndarray
    cv_scores: np.ndarray
    alphas: np.ndarray
    solver: str
    alpha_scale: float = 1.0

    @property
    def at_grid_edge(self) -> np.ndarray:
        """(n_targets,) bool: the chosen α is the smallest or the largest of the grid."""
        return (self.best_alphas <= self.alphas.min()) | (self.best_alphas >= self.alphas.max())

    def unbracketed(self, tol: float = 1e-3) -> np.ndarray:
        """(n_targets,) bool: α is at an end of the grid and the grid does not bracket the optimum —
        the inner-CV score still improves towards that end by more than ``tol`` (pooled R²) over the
        next α, or it is flat (within ``tol``) over the whole grid (every α is effectively the same,
        e.g. all ≈ 0 or all ≈ ∞ for these features' scale). An end reached on a plateau of an
        otherwise varying curve is not counted: the top end for units the features cannot predict
        (the prediction is already constant there), the bottom end when ridge is already least squares."""
        if self.alphas.size < 3:
            return np.zeros(self.best_alphas.shape, dtype=bool)
        order = np.argsort(self.alphas)
        cv = np.asarray(self.cv_scores, dtype=np.float64)[order]
        flat = cv.max(axis=0) - cv.min(axis=0) < tol
        lo = (self.best_alphas <= self.alphas.min()) & ((cv[0] - cv[1] > tol) | flat)
        hi = (self.best_alphas >= self.alphas.max()) & ((cv[-1] - cv[-2] > tol) | flat)
        return lo | hi


def alpha_edge_fraction(at_edge, n_alphas: int, axis=0):
    """Fraction of targets whose α sits at an end of the grid (mean of ``at_edge`` over ``axis``).

    NaN with fewer than 3 α values (no interior to choose from: the fraction says nothing).
    """
    at_edge = np.asarray(at_edge, dtype=np.float64)
    if int(n_alphas) < 3 or at_edge.shape[axis] == 0:
        return np.full(np.delete(np.shape(at_edge), axis), np.nan) if at_edge.ndim > 1 else np.nan
    return at_edge.mean(axis=axis)


ALPHA_SCALES = ("relative", "absolute")  #: the meanings of an α grid (see the module docstring)


def check_alpha_scale(alpha_scale: str) -> None:
    """Raise :class:`InputError` unless ``alpha_scale`` is one of :data:`ALPHA_SCALES`."""
    if alpha_scale not in ALPHA_SCALES:
        raise InputError(f"alpha_scale must be 'relative' or 'absolute', got {alpha_scale!r}")


def kfold_indices(n: int, n_folds: int, seed: int | None = 0, shuffle: bool = True) -> list[np.ndarray]:
    """Row indices of ``n_folds`` folds of (almost) equal size; shuffled with ``seed`` when ``shuffle``."""
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    return [np.sort(f) for f in np.array_split(order, n_folds)]


def _check_inputs(X_train, Y_train, X_test, alphas, n_folds):
    X = np.asarray(X_train)
    Y = np.asarray(Y_train)
    Xt = np.asarray(X_test)
    if X.ndim != 2:
        raise InputError(f"X_train must be 2-D (n_samples, n_features); got shape {X.shape}")
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise InputError(f"Y_train must be 2-D (n_samples, n_targets); got shape {Y.shape}")
    if Xt.ndim != 2 or Xt.shape[1] != X.shape[1]:
        raise InputError(f"X_test must have shape (n_test, {X.shape[1]}); got {Xt.shape}")
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"X_train has {X.shape[0]} rows but Y_train has {Y.shape[0]}")
    for name, a in (("X_train", X), ("Y_train", Y), ("X_test", Xt)):
        if not np.issubdtype(a.dtype, np.number):
            raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
        if a.size and not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
            raise InputError(f"{name} has NaN/inf in {bad.size} rows (first: {bad[:5].tolist()})")
    al = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if al.ndim != 1 or al.size == 0 or not np.all(np.isfinite(al)) or np.any(al <= 0):
        raise InputError(f"alphas must be a non-empty 1-D array of positive finite values; got {alphas!r}")
    n_folds = int(n_folds)
    if n_folds < 2:
        raise InputError(f"n_folds must be >= 2, got {n_folds}")
    if X.shape[0] < 2 * n_folds:
        raise InputError(
            f"{X.shape[0]} training samples are too few for {n_folds}-fold inner cross-validation "
            f"(need at least {2 * n_folds})"
        )
    if X.shape[1] == 0 or Y.shape[1] == 0:
        raise InputError(f"empty input: X_train {X.shape}, Y_train {Y.shape}")
    return X, Y, Xt, al, n_folds


def _eigh(B, G, dtype: str = "float64"):
    """Eigendecomposition of a symmetric matrix in float64, on one thread; eigenvalues ≥ 0.

    One BLAS thread on purpose: the tridiagonal reduction is memory-bound and gains
    little from threads, while multi-threaded LAPACK ``syevd`` on a busy machine was
    measured 10–50× slower (threads spinning while other processes hold the cores):
    1,024×1,024 took 0.7 s on one thread and 7–38 s on two under load.
    """
    # small matrices: LAPACK does not thread them, and setting the limit costs more than the solve
    with thread_limits(1) if G.shape[0] > 128 else contextlib.nullcontext():
        if B.name == "numpy":
            s, V = np.linalg.eigh(np.asarray(G, dtype=np.float64))
        else:
            s, V = B.eigh(B.asarray(G, dtype="float64"))
    s = B.to_numpy(s).astype(np.float64)
    return np.clip(s, 0.0, None), V


def ridge_cv_fit_predict(
    X_train,
    Y_train,
    X_test,
    *,
    alphas=DEFAULT_ALPHAS,
    n_folds: int = 5,
    center: bool = True,
    backend: str = "auto",
    n_targets_batch: int | None = None,
    seed: int | None = 0,
    shuffle: bool = True,
    dtype: str = "float32",
    solver: str = "auto",
    memory_budget: int = _DEFAULT_BUDGET,
    alpha_scale: str = "absolute",
) -> RidgeResult:
    """Ridge regression with per-target α by inner K-fold CV; refit on all training rows; predict.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
    Y_train : array-like of shape (n_train, n_targets) (or (n_train,))
    X_test : array-like of shape (n_test, n_features)
    alphas : array-like of shape (n_alphas,)
        Positive ridge penalties: absolute, as in scikit-learn's ``Ridge`` (default), or
        relative to the features' spectrum (``alpha_scale="relative"``, e.g.
        :data:`RELATIVE_ALPHAS`). Default ``np.logspace(-2, 8, 11)``.
    n_folds : int
        Inner folds for choosing α (>= 2).
    center : bool
        Centre X and Y on each (inner or outer) training split, i.e. fit an intercept
        (scikit-learn ``fit_intercept=True``). Without it the model has no intercept.
    backend : {"auto", "numpy", "torch", "torch_cuda"}
        Array backend (:func:`brainlid.backend.get_backend`).
    n_targets_batch : int or None
        Targets processed together; default: as many as fit in ``memory_budget``.
    seed : int or None
        Seed of the fold shuffle.
    shuffle : bool
        Shuffle rows before splitting into folds (default) or use contiguous folds.
    dtype : {"float32", "float64"}
        Precision of the products (float64 reproduces scikit-learn to ~1e-10).
    solver : {"auto", "primal", "dual"}
        ``"auto"``: dual (kernel) form when n_features exceeds the inner-training size.
    memory_budget : int
        Bytes for the per-batch temporaries (default 512 MB).
    alpha_scale : {"absolute", "relative"}
        ``"absolute"``: ``alphas`` are penalties in the units of X (scikit-learn, himalaya).
        ``"relative"``: multiples of ``trace(XᵀX)/n_features`` of the (centred) training
        features; the fit is then invariant to X → cX (see the module docstring).

    Returns
    -------
    RidgeResult
        ``predictions`` (n_test, n_targets), ``best_alphas`` (n_targets,), ``cv_scores``
        (n_alphas, n_targets), ``alphas``, ``solver``.

    Raises
    ------
    InputError
        Wrong shapes, NaN/inf, non-positive α, fewer than ``2 * n_folds`` training rows.
    """
    X, Y, Xt, al, n_folds = _check_inputs(X_train, Y_train, X_test, alphas, n_folds)
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    check_alpha_scale(alpha_scale)
    B = get_backend(backend)
    n, p = X.shape
    t_all = Y.shape[1]
    # rows are permuted once so that every fold is a contiguous block (views, no gathers);
    # the fit is invariant to the row order and predictions concern X_test only
    folds_rows = kfold_indices(n, n_folds, seed=seed, shuffle=shuffle)
    perm = np.concatenate(folds_rows)
    bounds = np.cumsum([0] + [len(f) for f in folds_rows])
    folds = [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(n_folds)]
    n_min_train = n - max(len(f) for f in folds_rows)
    if solver == "auto":
        solver = "dual" if p > n_min_train else "primal"
    if solver not in ("primal", "dual"):
        raise InputError(f"solver must be 'auto', 'primal' or 'dual', got {solver!r}")
    np_dtype = np.dtype(dtype)

    # global centring on the training split (float64 means) -> small fold corrections; one global
    # rescaling to unit mean square (float64, before the cast): the fit sees the same O(1) numbers
    # whatever the units of X, and α is rescaled to match (ridge is equivariant to it)
    mu_x = X.mean(axis=0, dtype=np.float64) if center else np.zeros(p)
    Xc64 = X[perm] - mu_x
    msq = float(np.einsum("ij,ij->", Xc64, Xc64)) / (n * p)
    sx = np.sqrt(msq) if msq > 0 and np.isfinite(msq) else 1.0
    Xc64 *= 1.0 / sx
    Xc = B.asarray(np.asarray(Xc64, dtype=np_dtype))
    del Xc64
    Xtc = B.asarray(np.asarray((Xt - mu_x) * (1.0 / sx), dtype=np_dtype))
    # α on the scaled features: absolute α / sx²; relative α × the scaled Gram's mean eigenvalue (n)
    scale = n * sx * sx if alpha_scale == "relative" else 1.0
    al_scaled = al * n if alpha_scale == "relative" else al / (sx * sx)
    al_out = al * scale if alpha_scale == "relative" else al

    prep = _prepare_primal(B, Xc, Xtc, folds, center, dtype) if solver == "primal" else _prepare_dual(
        B, Xc, Xtc, folds, center, dtype
    )

    r = prep["rank_dim"]
    if n_targets_batch is None:
        per_target = np_dtype.itemsize * ((n_folds + 6) * r + 3 * n + Xt.shape[0]) + 8 * (4 * al.size + n)
        n_targets_batch = max(1, int(memory_budget // max(per_target, 1)))
    n_targets_batch = int(min(max(1, n_targets_batch), t_all))

    preds = np.empty((Xt.shape[0], t_all), dtype=np_dtype)
    best = np.empty(t_all, dtype=np.float64)
    cv = np.empty((al.size, t_all), dtype=np.float32)
    for b0 in range(0, t_all, n_targets_batch):
        cols = slice(b0, min(b0 + n_targets_batch, t_all))
        # permuted rows of this batch, centred and scaled to unit mean square per target in float64
        Yb64 = np.asarray(Y[perm, cols], dtype=np.float64)
        mu_y = Yb64.mean(axis=0) if center else np.zeros(Yb64.shape[1])
        Yb64 -= mu_y
        sd_y = np.sqrt(np.einsum("ij,ij->j", Yb64, Yb64) / n)
        sd_y = np.where((sd_y > 0) & np.isfinite(sd_y), sd_y, 1.0)
        Yb64 /= sd_y
        Ybc = np.asarray(Yb64, dtype=np_dtype)
        del Yb64
        run = _batch_primal if solver == "primal" else _batch_dual
        sse, sst, pred = run(B, prep, Ybc, al_scaled, center, dtype)
        k = np.argmin(sse, axis=0)
        best[cols] = al_out[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            cv[:, cols] = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), 0.0)
        p_b = B.to_numpy(pred(al_scaled[k])).astype(np.float64)
        preds[:, cols] = p_b * sd_y + mu_y
    return RidgeResult(predictions=preds, best_alphas=best, cv_scores=cv, alphas=al_out, solver=solver,
                       alpha_scale=float(scale))


# ----------------------------------------------------------------------------- primal form
def _prepare_primal(B, Xc, Xtc, folds, center, dtype):
    """Target-independent work of the primal form: per-fold Grams, eigenbases, validation maps."""
    p = Xc.shape[1]
    n = Xc.shape[0]
    Xg = [Xc[sl] for sl in folds]
    sx = [B.to_numpy(B.sum(x, 0)).astype(np.float64) for x in Xg]
    Gg = [B.matmul(x.T, x) for x in Xg]
    G_tot = Gg[0]
    for g in Gg[1:]:
        G_tot = G_tot + g
    SX = np.sum(sx, axis=0)
    per_fold = []
    for f, sl in enumerate(folds):
        n_val = sl.stop - sl.start
        n_f = n - n_val
        mu = (SX - sx[f]) / n_f if center else np.zeros(p)
        mu_b = B.asarray(mu[:, None], dtype=dtype)
        G = G_tot - Gg[f]
        if center:
            G = G - n_f * B.matmul(mu_b, mu_b.T)
        s, V = _eigh(B, G)
        V = B.asarray(V, dtype=dtype)
        Xv = Xg[f] - mu_b.T if center else Xg[f]
        A = B.matmul(Xv, V)
        entry = {"n_val": n_val, "n_f": n_f, "mu": mu, "s": s, "V": V}
        if p <= n_val:
            entry["style"] = "gram"
            entry["M"] = B.matmul(A.T, A)
        else:
            entry["style"] = "direct"
            entry["A"] = A
        per_fold.append(entry)
    mu = SX / n if center else np.zeros(p)
    mu_b = B.asarray(mu[:, None], dtype=dtype)
    G = G_tot - n * B.matmul(mu_b, mu_b.T) if center else G_tot
    s, V = _eigh(B, G)
    V = B.asarray(V, dtype=dtype)
    A_test = B.matmul(Xtc - mu_b.T if center else Xtc, V)
    return {
        "folds": folds,
        "Xg": Xg,
        "sx": sx,
        "per_fold": per_fold,
        "full": {"mu": mu, "s": s, "V": V, "A_test": A_test},
        "rank_dim": p,
        "n": n,
    }


def _sse_for_alphas(B, entry, Z, Bm_or_Yv, yy, alphas, dtype):
    """(n_alphas, t) float64 validation SSE of one fold for every α (see the module docstring).

    "gram" style: the cross term of every α is one product ``D (B∘Z)`` with
    ``D[a, k] = 1/(s_k + α_a)``; the quadratic term costs one (r×r)(r×t) product per α.
    "direct" style: residuals ``Y_val − A (D_α Z)`` per α.
    """
    s = entry["s"]
    D = 1.0 / (s[None, :] + alphas[:, None])  # (n_alphas, r) float64
    out = np.empty((alphas.size, Z.shape[1]))
    if entry["style"] == "gram":
        cross = B.to_numpy(B.matmul(B.asarray(D, dtype=dtype), Bm_or_Yv * Z)).astype(np.float64)
        for i in range(alphas.size):
            W = B.asarray(D[i][:, None], dtype=dtype) * Z
            quad = B.to_numpy(B.einsum("ij,ij->j", W, B.matmul(entry["M"], W))).astype(np.float64)
            out[i] = yy - 2.0 * cross[i] + quad
    else:
        for i in range(alphas.size):
            W = B.asarray(D[i][:, None], dtype=dtype) * Z
            R = Bm_or_Yv - B.matmul(entry["A"], W)
            out[i] = B.to_numpy(B.einsum("ij,ij->j", R, R)).astype(np.float64)
    return np.maximum(out, 0.0)


def _sumsq_columns(Y: np.ndarray) -> np.ndarray:
    """Σ_i Y_ij² per column, accumulated in float64 (n_cols,)."""
    return np.add.reduce(np.square(Y), axis=0, dtype=np.float64)


def _batch_primal(B, prep, Ybc, alphas, center, dtype):
    folds, Xg, sx = prep["folds"], prep["Xg"], prep["sx"]
    n = prep["n"]
    t = Ybc.shape[1]
    Yg = [B.asarray(Ybc[sl]) for sl in folds]
    C = [B.matmul(x.T, y) for x, y in zip(Xg, Yg)]
    sy = [Ybc[sl].sum(axis=0, dtype=np.float64) for sl in folds]
    syy = [_sumsq_columns(Ybc[sl]) for sl in folds]
    C_tot = C[0]
    for c in C[1:]:
        C_tot = C_tot + c
    SY = np.sum(sy, axis=0)
    sse = np.zeros((alphas.size, t))
    sst = np.zeros(t)
    for f, entry in enumerate(prep["per_fold"]):
        n_val, n_f = entry["n_val"], entry["n_f"]
        mu_x = entry["mu"]
        mu_y = (SY - sy[f]) / n_f if center else np.zeros(t)
        mxb = B.asarray(mu_x[:, None], dtype=dtype)
        myb = B.asarray(mu_y[None, :], dtype=dtype)
        C_tr = C_tot - C[f]
        if center:
            C_tr = C_tr - n_f * B.matmul(mxb, myb)
        yy = syy[f] - 2.0 * mu_y * sy[f] + n_val * mu_y**2
        sst += yy
        V = entry["V"]
        if entry["style"] == "gram":
            C_val = C[f]
            if center:
                sxb = B.asarray(sx[f][:, None], dtype=dtype)
                syb = B.asarray(sy[f][None, :], dtype=dtype)
                C_val = C_val - B.matmul(sxb, myb) - B.matmul(mxb, syb) + n_val * B.matmul(mxb, myb)
            ZB = B.matmul(V.T, B.concatenate([C_tr, C_val], 1))
            Z, Bm = ZB[:, :t], ZB[:, t:]
            sse += _sse_for_alphas(B, entry, Z, Bm, yy, alphas, dtype)
        else:
            Z = B.matmul(V.T, C_tr)
            Yv = Yg[f] - myb if center else Yg[f]
            sse += _sse_for_alphas(B, entry, Z, Yv, yy, alphas, dtype)
    full = prep["full"]
    mu_y = SY / n if center else np.zeros(t)
    C_c = C_tot - n * B.matmul(B.asarray(full["mu"][:, None], dtype=dtype), B.asarray(mu_y[None, :], dtype=dtype)) if center else C_tot
    Z = B.matmul(full["V"].T, C_c)
    del C, Yg, C_tot

    def predict(best_alphas):
        D = B.asarray(1.0 / (full["s"][:, None] + best_alphas[None, :]), dtype=dtype)
        return B.matmul(full["A_test"], D * Z) + B.asarray(mu_y[None, :], dtype=dtype)

    return sse, sst, predict


# ----------------------------------------------------------------------------- dual (kernel) form
def _center_kernel_block(K_rows, m_rows, m_cols, c):
    """Centre kernel block K[i, j] with train mean: K_ij − m_i − m_j + c."""
    return K_rows - m_rows[:, None] - m_cols[None, :] + c


def _prepare_dual(B, Xc, Xtc, folds, center, dtype):
    """Target-independent work of the kernel form: linear kernel, per-fold eigenbases."""
    n = Xc.shape[0]
    K = B.to_numpy(B.matmul(Xc, Xc.T)).astype(np.float64)
    K_te = B.to_numpy(B.matmul(Xtc, Xc.T)).astype(np.float64)
    per_fold = []
    all_idx = np.arange(n)
    for f, sl in enumerate(folds):
        vidx = all_idx[sl]
        tidx = np.setdiff1d(all_idx, vidx)
        if center:
            m = K[:, tidx].mean(axis=1)
            c = m[tidx].mean()
        else:
            m, c = np.zeros(n), 0.0
        K_f = _center_kernel_block(K[np.ix_(tidx, tidx)], m[tidx], m[tidx], c)
        lam, U = _eigh(B, B.asarray(K_f))
        U = B.asarray(U, dtype=dtype)
        K_val = B.asarray(_center_kernel_block(K[np.ix_(vidx, tidx)], m[vidx], m[tidx], c), dtype=dtype)
        A = B.matmul(K_val, U)
        entry = {"n_val": len(vidx), "n_f": len(tidx), "tidx": tidx, "vidx": vidx, "s": lam, "V": U}
        if len(tidx) <= len(vidx):
            entry["style"] = "gram"
            entry["M"] = B.matmul(A.T, A)
            entry["A"] = A
        else:
            entry["style"] = "direct"
            entry["A"] = A
        per_fold.append(entry)
    if center:
        m = K.mean(axis=1)
        c = m.mean()
        m_te = K_te.mean(axis=1)
    else:
        m, c, m_te = np.zeros(n), 0.0, np.zeros(K_te.shape[0])
    lam, U = _eigh(B, B.asarray(_center_kernel_block(K, m, m, c)))
    U = B.asarray(U, dtype=dtype)
    A_test = B.matmul(B.asarray(_center_kernel_block(K_te, m_te, m, c), dtype=dtype), U)
    return {"per_fold": per_fold, "full": {"s": lam, "V": U, "A_test": A_test}, "rank_dim": n, "n": n}


def _batch_dual(B, prep, Ybc, alphas, center, dtype):
    t = Ybc.shape[1]
    sse = np.zeros((alphas.size, t))
    sst = np.zeros(t)
    for entry in prep["per_fold"]:
        Yt = Ybc[entry["tidx"]]
        Yv = Ybc[entry["vidx"]]
        mu_y = Yt.mean(axis=0, dtype=np.float64) if center else np.zeros(t)
        Ytc = B.asarray(np.asarray(Yt - mu_y, dtype=dtype))
        Yvc = np.asarray(Yv - mu_y, dtype=dtype)
        yy = _sumsq_columns(Yvc)
        sst += yy
        Z = B.matmul(entry["V"].T, Ytc)
        Yvc_b = B.asarray(Yvc)
        if entry["style"] == "gram":
            Bm = B.matmul(entry["A"].T, Yvc_b)
            sse += _sse_for_alphas(B, entry, Z, Bm, yy, alphas, dtype)
        else:
            sse += _sse_for_alphas(B, entry, Z, Yvc_b, yy, alphas, dtype)
    full = prep["full"]
    Z = B.matmul(full["V"].T, B.asarray(Ybc))  # Ybc is centred on the whole training split

    def predict(best_alphas):
        D = B.asarray(1.0 / (full["s"][:, None] + best_alphas[None, :]), dtype=dtype)
        return B.matmul(full["A_test"], D * Z)

    return sse, sst, predict
