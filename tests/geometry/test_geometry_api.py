"""Global measures, the plain-function API (lid, lid_sweep, global_dimension, summarize) and input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

import brainlid.geometry as geo
from brainlid.errors import InputError
from brainlid.geometry import (
    DuplicatePointsWarning,
    covariance_eigenvalues,
    global_dimension,
    lid,
    lid_pointwise,
    lid_sweep,
    participation_ratio,
    pca_dimensions,
    summarize,
    twonn_from_distances,
)


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    Z = rng.random((600, 4))
    return (np.c_[np.sin(3 * Z), Z ** 2] @ rng.standard_normal((8, 20))).astype(np.float32)


def test_covariance_eigenvalues_match_sklearn_pca(X):
    lam = covariance_eigenvalues(X)
    ref = PCA().fit(X.astype(np.float64)).explained_variance_
    np.testing.assert_allclose(lam[: ref.size], ref, rtol=1e-5, atol=1e-6 * ref[0])
    # Gram path (n < d) gives the same non-zero spectrum
    Xs = X[:12]
    lam_g = covariance_eigenvalues(Xs)
    ref_g = np.linalg.eigvalsh(np.cov(Xs.astype(np.float64), rowvar=False))[::-1][:12]
    np.testing.assert_allclose(lam_g[:11], ref_g[:11], rtol=1e-6, atol=1e-9 * ref_g[0])


def test_participation_ratio_and_pca_dimensions_closed_forms():
    assert participation_ratio([1, 1, 1, 1]) == pytest.approx(4.0)
    assert participation_ratio([3, 1]) == pytest.approx(16 / 10)
    # ten equal eigenvalues: exactly 9 reach 90 %, 10 reach 95 % and 99 %
    assert pca_dimensions(np.ones(10)) == {0.9: 9, 0.95: 10, 0.99: 10}
    lam = np.array([50.0, 30, 15, 4, 1])
    assert pca_dimensions(lam) == {0.9: 3, 0.95: 3, 0.99: 4}


def test_twonn_closed_forms():
    rng = np.random.default_rng(1)
    r1 = rng.random(500) + 0.1
    mu = np.exp(rng.exponential(1 / 3.0, size=500))  # Pareto(3) ratios
    r2 = r1 * mu
    logmu = np.log(mu)
    assert twonn_from_distances(r1, r2, "mle") == pytest.approx(499 / logmu.sum(), rel=1e-12)
    x = np.sort(logmu)[:450]
    y = -np.log(1 - np.arange(1, 451) / 500)
    assert twonn_from_distances(r1, r2, "linear") == pytest.approx((x @ y) / (x @ x), rel=1e-12)
    with pytest.raises(InputError, match="duplicates"):
        twonn_from_distances(np.r_[0.0, r1[1:]], r2)


def test_global_dimension_keys_and_full_mle(X):
    g = global_dimension(X)
    assert set(g) >= {"n", "dim", "participation_ratio", "pca90", "pca95", "pca99", "twonn", "twonn_mle", "mle_full"}
    lam = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False))
    assert g["participation_ratio"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-5)
    assert g["pca90"] <= g["pca95"] <= g["pca99"] <= 20
    # MLE at K = N - 1 against a brute force
    D = np.sort(cdist(X.astype(np.float64), X.astype(np.float64)), axis=1)[:, 1:]
    S = np.log(D[:, -1:] / D[:, :-1]).sum(axis=1)
    assert g["mle_full"] == pytest.approx(np.mean((D.shape[1] - 1) / S), rel=1e-9)
    assert global_dimension(X, memory_budget=100_000)["mle_full"] is None  # infeasible: skipped
    with pytest.raises(InputError, match="memory budget"):
        global_dimension(X, memory_budget=100_000, full_mle=True)


def test_lid_sweep_is_tidy_and_consistent(X):
    df = lid_sweep(X, estimators=("mle", "mom", "mada", "twonn"))
    assert isinstance(df, pd.DataFrame)
    assert {"estimator", "K", "value", "n", "dim"} <= set(df.columns)
    assert sorted(df.K.unique()) == [5, 10, 20, 50, 100, 200, 500]  # default sweep ∩ [2, n-1]
    assert len(df) == 4 * 7
    for est in ("mle", "mom", "mada", "twonn"):
        for k in (5, 50):
            v = df.query("estimator == @est and K == @k").value.item()
            assert v == pytest.approx(lid(X, k, est), rel=1e-12)
    small = lid_sweep(X[:30], ks=[2, 3, 29], estimators="mle", norm="k-2")
    assert list(small.K) == [3, 29]  # K = 2 is undefined for the k-2 normalisation


def test_summarize_matches_parts(X):
    s = summarize(X, k=15, estimator="mom", ks=[5, 40])
    assert s["lid"] == pytest.approx(lid(X, 15, "mom"), rel=1e-12)
    assert set(s["sweep"]) == {5, 15, 40}
    assert s["sweep"][40] == pytest.approx(lid(X, 40, "mom"), rel=1e-12)
    g = global_dimension(X, full_mle=False)
    for key in ("participation_ratio", "pca95", "twonn", "twonn_mle"):
        assert s["global"][key] == pytest.approx(g[key], rel=1e-12)


def test_duplicates_removed_with_warning(X):
    Xd = np.vstack([X, X[:5], X[:2]])
    with pytest.warns(DuplicatePointsWarning, match=r"12 of 607 points .* 7 duplicate rows are removed"):
        val = lid(Xd, 10)
    assert val == pytest.approx(lid(X, 10), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicatePointsWarning)
        pw = lid_pointwise(Xd, 10)
        g = global_dimension(Xd, full_mle=False)
    assert pw.shape == (607,) and np.isfinite(pw).all()
    np.testing.assert_allclose(pw[600:605], pw[:5])
    assert g["n"] == 607 and g["n_distinct"] == 600


def test_bad_inputs_give_clear_errors(X):
    with pytest.raises(InputError, match=r"reshape\(-1, 1\)"):
        lid(X[:, 0])
    Xn = X.copy()
    Xn[[3, 9, 11]] = np.inf
    with pytest.raises(InputError, match=r"3 row\(s\) with NaN or inf values \(rows 3, 9, 11\)"):
        lid(Xn)
    with pytest.raises(InputError, match="largest valid k is 9"):
        lid(X[:10], k=10)
    with pytest.raises(InputError, match="identical"):
        lid(np.ones((50, 4)), k=5)
    with pytest.raises(InputError, match=r"too large for 3 distinct points \(X has 30 rows\): the largest valid k is 2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DuplicatePointsWarning)
            lid(np.repeat(X[:3], 10, axis=0), k=5)
    with pytest.raises(InputError, match="unknown estimator"):
        lid(X, estimator="pca")
    with pytest.raises(InputError, match="numeric"):
        lid(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError, match="zero variance"):
        covariance_eigenvalues(np.ones((5, 3)))


def test_integer_and_float16_inputs_are_converted(X):
    Xi = np.round(X * 100).astype(np.int32)
    assert lid(Xi, 10) == pytest.approx(lid(Xi.astype(np.float32), 10), rel=1e-12)
    Xh = X.astype(np.float16)
    assert lid(Xh, 10) == pytest.approx(lid(Xh.astype(np.float32), 10), rel=1e-12)


def test_public_names_exported():
    for name in ("knn", "lid", "lid_pointwise", "lid_sweep", "global_dimension", "MLE", "MOM", "MADA", "TwoNN"):
        assert hasattr(geo, name)
    assert callable(geo.lid)


@pytest.mark.filterwarnings("ignore::brainlid.geometry.DuplicatePointsWarning")
def test_sweep_drops_k_beyond_distinct_points_with_warning(X):
    Xd = np.vstack([X[:20], X[:20]])  # 40 rows, 20 distinct
    with pytest.warns(UserWarning, match="K = 25, 39 dropped from the sweep: X has 20 distinct points"):
        df = lid_sweep(Xd, ks=[5, 19, 25, 39])
    assert list(df.K) == [5, 19]
    assert df.value.iloc[1] == pytest.approx(lid(X[:20], 19), rel=1e-12)


def test_registries_are_the_one_vocabulary(X):
    import inspect

    assert list(geo.ESTIMATORS) == ["mle", "mom", "mada", "twonn"]
    assert geo.ESTIMATORS["mle"] is geo.mle_pointwise and geo.ESTIMATORS["twonn"] is geo.twonn_pointwise
    assert list(geo.AGGREGATES) == ["mean", "median", "harmonic"] and list(geo.NORMS) == ["k-1", "k-2", "k"]
    g = global_dimension(X, full_mle=False)
    assert tuple(k for k in g if k not in ("n", "n_distinct", "dim")) == geo.GLOBAL_MEASURES
    assert geo.DEFAULT_K == 20 and geo.DEFAULT_KS == (5, 10, 20, 50, 100, 200, 500, 1000)
    for fn in (lid, lid_pointwise, summarize):
        assert inspect.signature(fn).parameters["k"].default == geo.DEFAULT_K
    for cls in (geo.MLE, geo.MOM, geo.MADA, geo.TwoNN):
        assert cls().n_neighbors == geo.DEFAULT_K
    with pytest.raises(InputError, match="unknown aggregate 'mode'; choose one of mean, median, harmonic"):
        geo.check_options("mle", aggregate="mode")


def test_check_k_is_one_check_with_one_message(X):
    assert geo.check_k(20.0, 30) == 20 and type(geo.check_k(np.int64(3), 30)) is int
    with pytest.raises(InputError, match=r"k=30 is too large for 30 points: the largest valid k is 29 \(self"):
        geo.check_k(30, 30)
    with pytest.raises(InputError, match="k=1 is too small: the smallest valid k is 2"):
        geo.check_k(1, 30, min_k=2)
    with pytest.raises(InputError, match="k must be an integer, got 2.5"):
        geo.check_k(2.5, 30)
    # the entry points and the pointwise functions all say it the same way
    nb = geo.neighbours(X[:50], 10)
    with pytest.raises(InputError, match="k=11 is too large for 10 neighbour distances per point: the largest valid k is 10"):
        geo.mle_pointwise(nb.dists, 11)
    with pytest.raises(InputError, match="k=2 is too small: the smallest valid k is 3"):
        geo.mle_pointwise(nb.dists, 2, norm="k-2")
    for call in (lambda: lid(X[:10], k=10), lambda: geo.MLE(n_neighbors=10).fit(X[:10]),
                 lambda: summarize(X[:10], k=10), lambda: geo.knn(X[:10], 10)):
        with pytest.raises(InputError, match=r"k=10 is too large for 10 points: the largest valid k is 9"):
            call()
    assert lid(X, 10.0) == lid(X, 10)


def test_functions_moved_out_of_estimators_keep_their_old_path():
    import brainlid.geometry.dimension as dim
    import brainlid.geometry.estimators as old

    for name in ("lid", "lid_pointwise", "lid_sweep", "global_dimension", "summarize", "neighbours", "Neighbours"):
        with pytest.warns(DeprecationWarning, match=f"import {name} from brainlid.geometry.dimension"):
            assert getattr(old, name) is getattr(dim, name)


def test_registry_modules_import_neither_torch_nor_sklearn_nor_pandas():
    import subprocess
    import sys

    code = ("import sys, brainlid.geometry as g; g.ESTIMATORS, g.DEFAULT_K, g.check_k; "
            "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
