"""brainlid.stats against scipy, closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from brainlid import stats
from brainlid.errors import InputError


@pytest.fixture
def xy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=25)
    y = -0.6 * x + rng.normal(scale=0.8, size=25)
    return x, y


def test_correlation_matches_scipy(xy):
    x, y = xy
    r, p = stats.correlation(x, y, "pearson")
    ref = st.pearsonr(x, y)
    assert r == pytest.approx(ref[0], abs=1e-12) and p == pytest.approx(ref[1], rel=1e-9)
    r, p = stats.correlation(x, y, "spearman")
    ref = st.spearmanr(x, y)
    assert r == pytest.approx(ref[0], abs=1e-12) and p == pytest.approx(ref[1], rel=1e-9)
    assert r < -0.4


def test_bootstrap_ci_matches_brute_force(xy):
    x, y = xy
    lo, hi = stats.bootstrap_corr_ci(x, y, "pearson", n_boot=500, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, x.size, size=(500, x.size))
    rs = [np.corrcoef(x[i], y[i])[0, 1] for i in idx]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(rs, [0.025, 0.975])), abs=1e-9)
    r = stats.correlation(x, y)[0]
    assert lo < r < hi
    slo, shi = stats.bootstrap_corr_ci(x, y, "spearman", n_boot=500, seed=3)
    srs = [st.spearmanr(x[i], y[i])[0] for i in idx]
    assert (slo, shi) == pytest.approx(tuple(np.quantile(srs, [0.025, 0.975])), abs=1e-9)


def test_partial_correlation_closed_form():
    rng = np.random.default_rng(2)
    z = rng.normal(size=40)
    x = z + rng.normal(scale=0.5, size=40)
    y = z + rng.normal(scale=0.5, size=40)
    rxy, rxz, ryz = np.corrcoef([x, y, z])[[0, 0, 1], [1, 2, 2]]
    want = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    r, p = stats.partial_correlation(x, y, z)
    assert r == pytest.approx(want, abs=1e-10)
    t = want * np.sqrt((40 - 3) / (1 - want**2))
    assert p == pytest.approx(2 * st.t.sf(abs(t), 37), rel=1e-9)
    # x and y share only z: raw r is large, partial r small
    assert rxy > 0.6 and abs(r) < 0.35
    # spearman partial = pearson partial of ranks
    rs, _ = stats.partial_correlation(x, y, z, "spearman")
    rr, _ = stats.partial_correlation(st.rankdata(x), st.rankdata(y), st.rankdata(z))
    assert rs == pytest.approx(rr, abs=1e-12)


def test_max_over_k_single_k_matches_parametric():
    rng = np.random.default_rng(4)
    x = rng.normal(size=30)
    y = 0.35 * x + rng.normal(size=30)
    df = stats.max_over_k_test(x[:, None], y, ks=[20], n_perm=20000, seed=0)
    assert df["p_corrected"].iloc[0] == pytest.approx(df["p"].iloc[0], abs=0.015)
    assert df["r"].iloc[0] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_max_over_k_corrects_for_many_k():
    rng = np.random.default_rng(5)
    y = rng.normal(size=20)
    V = rng.normal(size=(20, 12))  # 12 unrelated "K" columns
    df = stats.max_over_k_test(V, y, ks=np.arange(12), n_perm=3000, seed=1)
    best = df["p"].idxmin()
    assert df.loc[best, "p_corrected"] > df.loc[best, "p"]
    assert (df["p_corrected"] >= df["p"] - 0.02).all()
    # a planted relation survives the correction
    V[:, 3] = y + rng.normal(scale=0.3, size=20)
    df = stats.max_over_k_test(V, y, n_perm=3000, seed=1)
    assert df.loc[3, "p_corrected"] < 0.01


def test_summary_and_errors(xy):
    x, y = xy
    s = stats.correlation_summary(x, y, log_params=np.log(np.arange(1, 26)), n_boot=200)
    assert s["n_models"] == 25 and s["pearson_ci_low"] < s["pearson_r"] < s["pearson_ci_high"]
    assert np.isfinite(s["partial_spearman_r"])
    with pytest.raises(InputError, match="at least 3"):
        stats.correlation([1, 2], [2, 3])
    with pytest.raises(InputError, match="constant"):
        stats.correlation([1, 1, 1, 1], [1, 2, 3, 4])
    with pytest.raises(InputError, match="non-finite"):
        stats.correlation([1, np.nan, 2, 3], [1, 2, 3, 4])
    with pytest.raises(InputError, match="unknown correlation"):
        stats.correlation(x, y, "kendall")


def test_family_max_over_k_without_families_is_the_plain_test():
    rng = np.random.default_rng(4)
    V = rng.normal(size=(12, 4))
    y = V[:, 1] + rng.normal(size=12)
    plain = stats.max_over_k_test(V, y, ks=[5, 10, 20, 50], n_perm=300, seed=2)
    fam = stats.family_max_over_k_test(V, y, None, "pooled", ks=[5, 10, 20, 50], n_perm=300, seed=2)
    pd.testing.assert_frame_equal(fam[plain.columns], plain)
    assert set(fam.scope) == {"pooled"} and (fam.n_families == 12).all()
