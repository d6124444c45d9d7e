"""Encoding models: the ridge CV solver against scikit-learn, planted maps, time, backends, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from brainlid.alignment._ridge import RELATIVE_ALPHAS, kfold_indices
from brainlid.alignment.encoding import (
    banded_encoding_scores,
    brain_encoding_scores,
    encoding_scores,
    pearson_r_columns,
    r2_columns,
    ridge_cv_fit_predict,
)
from brainlid.errors import InputError, StimulusMismatchError

BACKENDS = ["numpy", "torch"]


def _problem(n, p, t, n_test=20, seed=0, noise=None, offset=3.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_test, p)) + offset  # non-zero means: centring matters
    W = rng.normal(size=(p, t))
    noise = np.linspace(0.5, 20.0, t) if noise is None else noise
    Y = X @ W + rng.normal(size=(n + n_test, t)) * noise + 2.0
    return X[:n], Y[:n], X[n:], Y[n:]


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(80, 12), (40, 150)], ids=["primal", "dual"])
def test_predictions_equal_sklearn_ridge_float64(backend, shape):
    n, p = shape
    X, Y, Xt, _ = _problem(n, p, 6)
    for alpha in (0.1, 30.0):
        res = ridge_cv_fit_predict(X, Y, Xt, alphas=[alpha], dtype="float64", backend=backend)
        ref = Ridge(alpha=alpha).fit(X, Y).predict(Xt)
        np.testing.assert_allclose(res.predictions, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
        assert res.solver == ("primal" if p < n else "dual")
        np.testing.assert_array_equal(res.best_alphas, alpha)


def test_predictions_without_centering_equal_sklearn_no_intercept():
    X, Y, Xt, _ = _problem(60, 8, 3)
    res = ridge_cv_fit_predict(X, Y, Xt, alphas=[2.0], dtype="float64", center=False)
    ref = Ridge(alpha=2.0, fit_intercept=False).fit(X, Y).predict(Xt)
    np.testing.assert_allclose(res.predictions, ref, rtol=1e-6)


@pytest.mark.parametrize("shape", [(200, 30), (60, 300)], ids=["primal", "dual"])
def test_float32_within_conditioning_tolerance(shape):
    n, p = shape
    X, Y, Xt, _ = _problem(n, p, 5, seed=3)
    alpha = 1.0
    res = ridge_cv_fit_predict(X, Y, Xt, alphas=[alpha])
    assert res.predictions.dtype == np.float32
    ref = Ridge(alpha=alpha).fit(X, Y).predict(Xt)
    Xc = X - X.mean(axis=0)
    s = np.linalg.eigvalsh(Xc.T @ Xc if p < n else Xc @ Xc.T)
    cond = (s.max() + alpha) / (max(s.min(), 0.0) + alpha)
    tol = 50 * np.finfo(np.float32).eps * cond  # error bound of a float32 solve, with slack
    err = np.abs(res.predictions - ref).max() / np.abs(ref).max()
    assert err <= tol, (err, tol, cond)


def test_alpha_per_target_equals_brute_force_kfold():
    n, p, t = 90, 10, 8
    X, Y, Xt, _ = _problem(n, p, t, seed=1, noise=np.geomspace(0.3, 60, t))
    alphas = np.logspace(-2, 4, 7)
    res = ridge_cv_fit_predict(X, Y, Xt, alphas=alphas, n_folds=4, dtype="float64", seed=7)
    folds = kfold_indices(n, 4, seed=7)
    sse = np.zeros((alphas.size, t))
    for val in folds:
        tr = np.setdiff1d(np.arange(n), val)
        for i, a in enumerate(alphas):
            pred = Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[val])
            sse[i] += ((pred - Y[val]) ** 2).sum(axis=0)
    best = alphas[np.argmin(sse, axis=0)]
    np.testing.assert_array_equal(res.best_alphas, best)
    assert np.unique(best).size > 1  # the test is informative: targets chose different alphas
    # cv_scores is the pooled R2 of the same criterion: its argmax is the chosen alpha
    np.testing.assert_array_equal(alphas[np.argmax(res.cv_scores, axis=0)], best)
    # and the refit uses each target's alpha
    ref = np.column_stack([Ridge(alpha=best[j]).fit(X, Y[:, j]).predict(Xt) for j in range(t)])
    np.testing.assert_allclose(res.predictions, ref, rtol=1e-6, atol=1e-8)
    # float32 picks the same alphas on this well-conditioned problem
    np.testing.assert_array_equal(ridge_cv_fit_predict(X, Y, Xt, alphas=alphas, n_folds=4, seed=7).best_alphas, best)


def test_target_batches_do_not_change_results():
    X, Y, Xt, _ = _problem(70, 9, 11, seed=2)
    a = ridge_cv_fit_predict(X, Y, Xt, dtype="float64")
    b = ridge_cv_fit_predict(X, Y, Xt, dtype="float64", n_targets_batch=3)
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-10)
    np.testing.assert_array_equal(a.best_alphas, b.best_alphas)


def test_numpy_and_torch_agree():
    X, Y, Xt, _ = _problem(150, 25, 40, seed=4)
    a = ridge_cv_fit_predict(X, Y, Xt, backend="numpy")
    b = ridge_cv_fit_predict(X, Y, Xt, backend="torch")
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-4, atol=1e-4 * np.abs(a.predictions).max())
    assert np.mean(a.best_alphas == b.best_alphas) > 0.95


# ----------------------------------------------------------------------------- scale of alpha
@pytest.mark.parametrize("shape", [(120, 10), (40, 150)], ids=["primal", "dual"])
def test_relative_alphas_are_scale_invariant_and_reproducible_with_sklearn(shape):
    """alpha_scale="relative": X -> cX and Y -> cY give the same fit; the absolute alphas it reports
    reproduce it with scikit-learn's Ridge (himalaya's convention) on the original X."""
    n, p = shape
    X, Y, Xt, _ = _problem(n, p, 6, seed=5)
    grid = np.logspace(-3, 3, 7)
    ref = ridge_cv_fit_predict(X, Y, Xt, alphas=grid, alpha_scale="relative", dtype="float64")
    Xc = X - X.mean(0)
    assert ref.alpha_scale == pytest.approx(np.trace(Xc.T @ Xc) / p, rel=1e-10)  # mean eigenvalue of the Gram
    np.testing.assert_allclose(ref.alphas, grid * ref.alpha_scale, rtol=1e-12)
    sk = np.column_stack([Ridge(alpha=ref.best_alphas[j]).fit(X, Y[:, j]).predict(Xt) for j in range(6)])
    np.testing.assert_allclose(ref.predictions, sk, rtol=1e-6, atol=1e-8 * np.abs(sk).max())
    for cx, cy in [(1e-3, 1.0), (1e3, 1e3), (1e20, 1e-3)]:
        got = ridge_cv_fit_predict(X * cx, Y * cy, Xt * cx, alphas=grid, alpha_scale="relative", dtype="float64")
        np.testing.assert_allclose(got.predictions / cy, ref.predictions, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got.best_alphas / got.alpha_scale, ref.best_alphas / ref.alpha_scale, rtol=1e-12)
    # the absolute grid is not invariant: the same penalties mean much less for features x 1000
    a = ridge_cv_fit_predict(X, Y, Xt, alphas=[10.0], dtype="float64")
    b = ridge_cv_fit_predict(X * 1e3, Y, Xt * 1e3, alphas=[10.0], dtype="float64")
    assert not np.allclose(a.predictions, b.predictions, rtol=1e-3)
    with pytest.raises(InputError, match="alpha_scale"):
        ridge_cv_fit_predict(X, Y, Xt, alpha_scale="percent")


def test_unbracketed_alphas_flag_grids_that_miss_the_optimum():
    """A grid far below the features' spectrum (every α ≈ 0) or one that still improves at its end is
    flagged; noise units at the top of the default relative grid (a constant prediction) are not."""
    rng = np.random.default_rng(2)
    n, p = 200, 40
    X = rng.normal(size=(n, p))
    signal = X @ rng.normal(size=(p, 6)) * 0.15
    Y = np.column_stack([signal + rng.normal(size=(n, 6)) * 2.0, rng.normal(size=(n, 6))])  # 6 weak, 6 noise
    ok = ridge_cv_fit_predict(X, Y, X[:5], alphas=RELATIVE_ALPHAS, alpha_scale="relative", dtype="float64")
    assert ok.at_grid_edge[6:].sum() >= 3  # most noise units choose the largest α ...
    assert not ok.unbracketed().any()  # ... on a plateau: not a grid problem
    low = ridge_cv_fit_predict(X, Y, X[:5], alphas=np.logspace(-12, -9, 4), alpha_scale="relative", dtype="float64")
    assert low.unbracketed().all()  # every α is effectively 0: the grid says nothing
    short = ridge_cv_fit_predict(X, Y, X[:5], alphas=np.logspace(-4, -1, 4), alpha_scale="relative", dtype="float64")
    assert short.unbracketed()[6:].sum() >= 4  # noise units still improve at the top end


def test_encoding_scores_invariant_to_scale_and_edge_fraction_reported():
    X, Y = _planted(300, 12, 8, r2_target=0.3, seed=9)
    tr, te = np.arange(220), np.arange(220, 300)
    ref = encoding_scores(X, Y, train=tr, test=te, pca=6)
    for cx, cy in [(1e-3, 1e3), (1e3, 1e-3)]:
        got = encoding_scores(X * np.float32(cx), Y * np.float32(cy), train=tr, test=te, pca=6)
        np.testing.assert_allclose(got.r2, ref.r2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.r, ref.r, rtol=1e-5, atol=1e-6)
        assert got.info["alpha_edge_fraction"] == ref.info["alpha_edge_fraction"]
    assert ref.info["alpha_scale"] == "relative" and 0 <= ref.info["alpha_edge_fraction"] <= 1
    assert ref.info["alpha_edge_fraction"] == pytest.approx(ref.alpha_at_edge.mean())
    with pytest.warns(RuntimeWarning, match="does not bracket"):
        encoding_scores(X, Y, train=tr, test=te, alphas=np.logspace(-14, -12, 3))


# ----------------------------------------------------------------------------- encoding scores
def _planted(n, p, u, r2_target, seed=0, n_times=None):
    """Y = XW + noise with noise variance set so the explainable fraction is r2_target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    tail = (u,) if n_times is None else (u, n_times)
    W = rng.normal(size=(p, int(np.prod(tail))))
    W /= np.linalg.norm(W, axis=0)  # signal variance exactly 1 per target
    noise_var = (1 - r2_target) / r2_target
    Y = X @ W + rng.normal(size=(n, W.shape[1])) * np.sqrt(noise_var)
    return X, Y.reshape(n, *tail).astype(np.float32)


def test_planted_map_recovers_snr():
    X, Y = _planted(3000, 10, 40, r2_target=0.5)
    s = encoding_scores(X, Y, train=np.arange(2000), test=np.arange(2000, 3000))
    assert s.r2.shape == (40,) and s.n_dropped == 0
    assert abs(float(s.r2.mean()) - 0.5) < 0.03
    assert abs(float(s.r.mean()) - np.sqrt(0.5)) < 0.03
    # per-unit scores equal the independent scoring of the returned predictions
    s2 = encoding_scores(X, Y, train=np.arange(2000), test=np.arange(2000, 3000), return_predictions=True)
    yt = Y[2000:]
    np.testing.assert_allclose(s2.r, [np.corrcoef(yt[:, j], s2.predictions[:, j])[0, 1] for j in range(40)], rtol=1e-4)
    from sklearn.metrics import r2_score

    np.testing.assert_allclose(s2.r2, r2_score(yt, s2.predictions, multioutput="raw_values"), rtol=1e-4, atol=1e-5)


def test_outer_folds_pooled_and_mean():
    X, Y = _planted(600, 8, 10, r2_target=0.4, seed=1)
    pooled = encoding_scores(X, Y, n_outer_folds=4, return_predictions=True)
    assert sorted(pooled.test_index.tolist()) == list(range(600))  # every stimulus predicted once
    mean = encoding_scores(X, Y, n_outer_folds=4, outer_aggregate="mean")
    assert abs(float(pooled.r2.mean()) - 0.4) < 0.06
    assert abs(float(mean.r2.mean()) - float(pooled.r2.mean())) < 0.02
    assert not np.allclose(mean.r2, pooled.r2)  # they are different aggregations


def test_time_resolved_equals_loop_over_time():
    X, Y = _planted(300, 6, 5, r2_target=0.3, seed=2, n_times=4)
    tr, te = np.arange(200), np.arange(200, 300)
    s = encoding_scores(X, Y, train=tr, test=te, dtype="float64")
    assert s.r.shape == (5, 4) and s.times == 4
    for j in range(4):
        sj = encoding_scores(X, Y[:, :, j], train=tr, test=te, dtype="float64")
        np.testing.assert_allclose(s.r[:, j], sj.r, rtol=1e-5)
        np.testing.assert_allclose(s.r2[:, j], sj.r2, rtol=1e-5)
        np.testing.assert_array_equal(s.alpha[:, j], sj.alpha)
    # time-resolved features: one model per time point
    Xt3 = np.repeat(X[:, :, None], 4, axis=2)
    s3 = encoding_scores(Xt3, Y, train=tr, test=te, dtype="float64")
    np.testing.assert_allclose(s3.r, s.r, rtol=1e-5)
    df = s.to_frame()
    assert len(df) == 20 and set(df.columns) >= {"unit", "time", "r", "r2", "alpha"}


def test_pca_is_fitted_on_training_rows_only():
    X, Y = _planted(400, 30, 6, r2_target=0.5, seed=3)
    tr, te = np.arange(300), np.arange(300, 400)
    s = encoding_scores(X, Y, train=tr, test=te, pca=5, dtype="float64", return_predictions=True)
    pca = PCA(5).fit(X[tr])
    res = ridge_cv_fit_predict(pca.transform(X[tr]), Y[tr], pca.transform(X[te]), dtype="float64",
                               alphas=RELATIVE_ALPHAS, alpha_scale="relative")
    np.testing.assert_allclose(s.predictions, res.predictions, rtol=1e-3, atol=1e-4)
    assert s.info["pca"] == 5


def test_bad_units_dropped_and_bad_input_rejected():
    X, Y = _planted(100, 5, 6, r2_target=0.5, seed=4)
    Y = Y.copy()
    Y[3, 1] = np.nan
    Y[:, 4] = 2.0
    with pytest.warns(RuntimeWarning, match="dropped 2 of 6"):
        s = encoding_scores(X, Y, n_outer_folds=3)
    assert s.n_dropped == 2 and s.units.tolist() == [0, 2, 3, 5]
    assert np.all(np.isfinite(s.r)) and np.all(np.isfinite(s.r2))
    with pytest.raises(InputError, match="too few"):
        encoding_scores(X[:8], Y[:8, [0]], n_outer_folds=5)
    with pytest.raises(InputError, match="too few"):
        ridge_cv_fit_predict(X[:7], Y[:7, [0]], X[:2], n_folds=5)
    with pytest.raises(InputError, match="time axis"):
        encoding_scores(np.repeat(X[:, :, None], 3, axis=2), Y[:, [0]])
    with pytest.raises(InputError, match="time points"):
        encoding_scores(np.repeat(X[:, :, None], 3, axis=2), np.repeat(Y[:, [0], None], 2, axis=2))
    Xn = X.copy()
    Xn[5, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        encoding_scores(Xn, Y[:, [0]])
    with pytest.raises(InputError, match="rows"):
        encoding_scores(X[:50], Y[:, [0]])
    with pytest.raises(InputError, match="share"):
        encoding_scores(X, Y[:, [0]], train=np.arange(60), test=np.arange(50, 100))
    with pytest.raises(InputError, match="positive"):
        ridge_cv_fit_predict(X, Y[:, [0]], X, alphas=[0.0, 1.0])
    with pytest.raises(InputError, match="no unit"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoding_scores(X, np.ones((100, 2)))


def test_score_helpers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = a + rng.normal(size=(50, 3))
    b[:, 2] = 1.0  # constant prediction -> r = 0, not NaN
    r = pearson_r_columns(a, b)
    assert r[2] == 0.0
    assert r.dtype == np.float32  # the one per-column Pearson (data.reliability.pearson_columns): float32 result
    np.testing.assert_allclose(r[:2], [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(2)], rtol=1e-6)
    with pytest.raises(InputError, match="constant"):
        r2_columns(np.ones((5, 1)), np.zeros((5, 1)))


# ----------------------------------------------------------------------------- BrainData join
def test_brain_encoding_scores_joins_on_ids():
    from brainlid.data import BrainData

    X, Y = _planted(240, 6, 5, r2_target=0.5, seed=5)
    ids = np.array([f"img{i:04d}" for i in range(240)])
    nc = np.array([0.8, 0.5, 0.05, 0.9, 0.6], dtype=np.float32)
    brain = BrainData(
        responses=Y, stimulus_ids=ids, noise_ceiling=nc, splits={"train": ids[:180], "test": ids[180:]}
    )
    rng = np.random.default_rng(0)
    order = rng.permutation(240)[:230]  # features in another order, 10 stimuli missing
    df = brain_encoding_scores(X[order], ids[order], brain, dtype="float64")
    # reference: arrays aligned by hand, rows in the features' order (the join keeps it),
    # the split restricted to the stimuli that have features
    rows = order
    tr = np.flatnonzero(np.isin(ids[rows], ids[:180]))
    te = np.flatnonzero(np.isin(ids[rows], ids[180:]))
    ref = encoding_scores(X[rows], Y[rows], train=tr, test=te, dtype="float64")
    np.testing.assert_allclose(df["r2"].to_numpy(), ref.r2, rtol=1e-5)
    np.testing.assert_allclose(df["normalised"].to_numpy(), ref.r2 / nc, rtol=1e-5)
    np.testing.assert_allclose(df["r_normalised"].to_numpy(), ref.r / np.sqrt(nc), rtol=1e-5)
    assert df["kept"].tolist() == [True, True, False, True, True]
    summ = df.attrs["summary"]
    assert summ["n_kept"] == 4
    keep = [0, 1, 3, 4]  # ROI score: ratio of means over the kept units; the mean of ratios is separate
    assert summ["roi_normalised"] == pytest.approx(ref.r2[keep].sum() / nc[keep].sum(), rel=1e-5)
    assert summ["roi_normalised_unit_mean"] == pytest.approx(np.mean((ref.r2 / nc)[keep]), rel=1e-5)
    assert df.attrs["split"] == "explicit"
    import json

    json.dumps(df.attrs)  # attrs must survive Parquet metadata (JSON)
    with pytest.raises(StimulusMismatchError):
        brain_encoding_scores(X[:5], ids[:5], brain, min_overlap=10)


# ----------------------------------------------------------------------------- banded ridge
def test_banded_ridge_two_spaces():
    rng = np.random.default_rng(6)
    n = 160
    A = rng.normal(size=(n, 8)).astype(np.float32)
    Bf = rng.normal(size=(n, 12)).astype(np.float32)
    Y = A @ rng.normal(size=(8, 5)) + 0.5 * rng.normal(size=(n, 5))  # only space A carries signal
    out = banded_encoding_scores([A, Bf], Y, train=np.arange(110), test=np.arange(110, 160), n_iter=3, backend="numpy")
    assert out["r2"].shape == (5,) and out["r2_split"].shape == (2, 5)
    assert np.all(out["r2"] > 0.7)
    # the variance is attributed to space A
    assert np.all(out["r2_split"][0] > 5 * np.abs(out["r2_split"][1]))
    with pytest.raises(InputError, match="at least 2"):
        banded_encoding_scores([A], Y, train=np.arange(110), test=np.arange(110, 160))


def test_brain_encoding_scores_time_resolved_with_reps():
    from brainlid.data import BrainData

    rng = np.random.default_rng(8)
    n, p, u, T = 120, 5, 4, 3
    X = rng.normal(size=(n, p)).astype(np.float32)
    Y = (X @ rng.normal(size=(p, u * T))).reshape(n, u, T)
    reps = (Y[:, None] + rng.normal(size=(n, 2, u, T))).astype(np.float32)
    nc = np.full((u, T), 0.5, np.float32)
    nc[0, 2] = 0.05
    brain = BrainData(responses=reps, stimulus_ids=np.arange(n), times=np.array([0.0, 0.01, 0.02]), has_reps=True,
                      noise_ceiling=nc)
    df = brain_encoding_scores(X, np.arange(n), brain, dtype="float64")
    ref = encoding_scores(X, reps.mean(axis=1), n_outer_folds=5, dtype="float64")  # no splits -> outer folds
    assert len(df) == u * T
    np.testing.assert_allclose(df["r2"].to_numpy(), ref.r2.ravel(), rtol=1e-5)
    np.testing.assert_allclose(df["time_s"].to_numpy(), np.tile([0.0, 0.01, 0.02], u))
    assert df.attrs["summary"]["n_kept"] == [4, 4, 3]


def test_encoding_scores_and_the_scoring_cell_share_one_pipeline():
    """encoding_scores with an explicit split is fit_encoding on those rows (the scoring cell's fit)."""
    from brainlid.alignment.encoding import fit_encoding, train_pca

    X, Y, Xt, Yt = _problem(120, 30, 6, n_test=40, seed=3)
    F, R = np.vstack([X, Xt]).astype(np.float32), np.vstack([Y, Yt]).astype(np.float32)
    tr, te = np.arange(120), np.arange(120, 160)
    s = encoding_scores(F, R, train=tr, test=te, pca=10, seed=0, return_predictions=True)
    fit = fit_encoding(F[tr], R[tr], F[te], R[te], pca=10, seed=0)
    np.testing.assert_array_equal(s.r, fit.r)
    np.testing.assert_array_equal(s.r2, fit.r2)
    np.testing.assert_array_equal(s.predictions, fit.pred)
    # the one PCA policy: pca >= min(n_train, n_features) keeps every (rescaled) feature, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = train_pca(F[tr], F[te], 500)
    assert a.shape == (120, 30) and b.shape == (40, 30)
