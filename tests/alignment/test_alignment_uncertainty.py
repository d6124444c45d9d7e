"""Bootstrap intervals and the paired bootstrap test: exactness, coverage, power and size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from brainlid.alignment.uncertainty import (
    basic_interval,
    bootstrap_ci,
    bootstrap_counts,
    bootstrap_scores,
    bootstrap_unit_sums,
    paired_bootstrap_test,
)
from brainlid.errors import InputError


def _correlated(n, units, rho, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, units))
    p = rho * y + np.sqrt(1 - rho**2) * rng.normal(size=(n, units))
    return y, p


def test_vectorised_replicates_equal_brute_force():
    y, p = _correlated(40, 3, 0.6, seed=0)
    res = bootstrap_scores(y, p, metric="r", n_boot=30, chunk=30, seed=5, return_distribution=True)
    res2 = bootstrap_scores(y, p, metric="r2", n_boot=30, chunk=30, seed=5, return_distribution=True)
    W = bootstrap_counts(40, 30, np.random.default_rng(5))  # the same draws
    for b in range(30):
        idx = np.repeat(np.arange(40), W[b].astype(int))
        for u in range(3):
            assert res.distribution[b, u] == pytest.approx(stats.pearsonr(y[idx, u], p[idx, u])[0], abs=1e-10)
            yy, pp = y[idx, u], p[idx, u]
            r2 = 1 - np.sum((yy - pp) ** 2) / np.sum((yy - yy.mean()) ** 2)
            assert res2.distribution[b, u] == pytest.approx(r2, abs=1e-10)
    np.testing.assert_allclose(res.estimate, [stats.pearsonr(y[:, u], p[:, u])[0] for u in range(3)], atol=1e-12)


def test_bootstrap_scores_coverage_of_correlation():
    # 400 independent data sets (columns); true rho = 0.5; nominal 95 %
    rho = 0.5
    y, p = _correlated(150, 400, rho, seed=1)
    res = bootstrap_scores(y, p, metric="r", n_boot=1000, seed=2)
    cover = np.mean((res.low <= rho) & (rho <= res.high))
    assert 0.90 <= cover <= 0.98, cover
    # the bootstrap SE agrees with the asymptotic SE of r: (1 - rho^2) / sqrt(n)
    assert np.median(res.se) == pytest.approx((1 - rho**2) / np.sqrt(150), rel=0.15)


def test_bootstrap_ci_generic_coverage_of_a_mean():
    hits = 0
    n_sets = 200
    for s in range(n_sets):
        x = np.random.default_rng(100 + s).exponential(1.0, size=60)  # true mean 1
        res = bootstrap_ci(lambda idx: x[idx].mean(), 60, n_boot=300, seed=s)
        hits += res.low <= 1.0 <= res.high
        if s == 0:
            assert res.estimate == pytest.approx(x.mean())
            assert res.se == pytest.approx(x.std(ddof=1) / np.sqrt(60), rel=0.2)
    assert 0.88 <= hits / n_sets <= 0.99, hits / n_sets


def test_bootstrap_is_deterministic_and_aggregates():
    y, p = _correlated(80, 5, 0.4, seed=3)
    a = bootstrap_scores(y, p, n_boot=100, seed=9, aggregate="mean")
    b = bootstrap_scores(y, p, n_boot=100, seed=9, aggregate="mean")
    assert a.low == b.low and a.high == b.high
    per_unit = bootstrap_scores(y, p, n_boot=100, seed=9)
    assert a.estimate == pytest.approx(np.mean(per_unit.estimate))
    assert a.low < a.estimate < a.high


def test_paired_test_detects_planted_difference():
    rng = np.random.default_rng(4)
    n, u = 300, 20
    y = rng.normal(size=(n, u))
    good = y + 0.8 * rng.normal(size=(n, u))  # r ~ 0.78
    poor = y + 1.5 * rng.normal(size=(n, u))  # r ~ 0.55
    out = paired_bootstrap_test(y, good, poor, n_boot=500, seed=0)
    assert out["difference"] > 0.15
    assert out["p_value"] < 0.01
    assert out["low"] > 0
    assert out["score_a"] == pytest.approx(np.mean([stats.pearsonr(y[:, j], good[:, j])[0] for j in range(u)]))


def test_paired_test_size_on_equal_models():
    # equal models (same noise level, independent noise): per-unit p-values below 0.05 about 5 % of the time
    rng = np.random.default_rng(5)
    n, u = 200, 300
    y = rng.normal(size=(n, u))
    a = y + rng.normal(size=(n, u))
    b = y + rng.normal(size=(n, u))
    out = paired_bootstrap_test(y, a, b, metric="r2", n_boot=400, seed=1, aggregate=None)
    rate = np.mean(out["p_value"] < 0.05)
    assert 0.01 <= rate <= 0.11, rate
    agg = paired_bootstrap_test(y, a, b, n_boot=400, seed=1)
    assert agg["p_value"] > 0.05


def test_bad_input():
    y, p = _correlated(20, 2, 0.5, seed=0)
    with pytest.raises(InputError, match="same shape"):
        bootstrap_scores(y, p[:, :1])
    with pytest.raises(InputError, match="metric"):
        bootstrap_scores(y, p, metric="auc")
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_scores(y, p, n_boot=3)
    with pytest.raises(InputError, match="ci"):
        bootstrap_ci(lambda i: 0.0, 20, ci=1.5)
    with pytest.raises(InputError, match="finite"):
        bootstrap_scores(np.full((20, 1), np.nan), p[:, :1])
    with pytest.raises(InputError, match="non-finite"):
        bootstrap_ci(lambda i: np.nan, 20, n_boot=20)


# ----------------------------------------------------------------------------- ROI-mean sums (encoding rows)
def test_unit_sums_equal_brute_force_and_do_not_depend_on_the_block_size():
    """Per resample, Σ over units of R² and r equals the scores recomputed on the drawn stimuli (scipy /
    plain numpy), for (stimulus, unit, time) arrays; blocks of 1 unit give the same sums as one block."""
    rng = np.random.default_rng(4)
    n, u, T = 30, 5, 3
    y = rng.normal(size=(n, u, T))
    p = 0.7 * y + rng.normal(size=(n, u, T))
    W = bootstrap_counts(n, 25, np.random.default_rng(1))
    sums = bootstrap_unit_sums(y, p, W)
    tiny = bootstrap_unit_sums(y, p, W, memory_budget=1)  # one unit per block
    assert sums["r2"].shape == (25, T) and sums["r"].shape == (25, T)
    for b in range(25):
        idx = np.repeat(np.arange(n), W[b].astype(int))
        yy, pp = y[idx], p[idx]
        r2 = 1 - ((yy - pp) ** 2).sum(0) / ((yy - yy.mean(0)) ** 2).sum(0)
        r = np.array([[stats.pearsonr(yy[:, i, t], pp[:, i, t])[0] for t in range(T)] for i in range(u)])
        np.testing.assert_allclose(sums["r2"][b], r2.sum(0), rtol=1e-10)
        np.testing.assert_allclose(sums["r"][b], r.sum(0), rtol=1e-10)
    for k in sums:
        np.testing.assert_allclose(tiny[k], sums[k], rtol=1e-12)
    # units split in two batches (the Dask runner's voxel batches): the sums add up
    a, b2 = bootstrap_unit_sums(y[:, :2], p[:, :2], W), bootstrap_unit_sums(y[:, 2:], p[:, 2:], W)
    np.testing.assert_allclose(a["r"] + b2["r"], sums["r"], rtol=1e-12)
    with pytest.raises(InputError, match="counts"):
        bootstrap_unit_sums(y, p, W[:, :5])
    with pytest.raises(InputError, match="metric"):
        bootstrap_unit_sums(y, p, W, metrics=("auc",))



def test_unit_sums_over_masks_in_one_pass():
    """masks: the sums over each mask's units (or (unit, time) cells) from one pass; every unit's mask gives
    the unmasked sums bit for bit, a subset the sums over the subset's units."""
    rng = np.random.default_rng(5)
    n, u, T = 30, 6, 3
    y = rng.normal(size=(n, u, T))
    p = 0.5 * y + rng.normal(size=(n, u, T))
    W = bootstrap_counts(n, 20, np.random.default_rng(2))
    keep = np.array([True, False, True, True, False, True])
    cells = rng.random((u, T)) > 0.5
    masks = np.stack([np.ones((u, T), bool), np.broadcast_to(keep[:, None], (u, T)), cells])
    got = bootstrap_unit_sums(y, p, W, masks=masks, memory_budget=1)
    plain = bootstrap_unit_sums(y, p, W, memory_budget=1)
    sub = bootstrap_unit_sums(y[:, keep], p[:, keep], W)
    zeroed = bootstrap_unit_sums(np.where(cells, y, 0), np.where(cells, p, 0), W)  # cells outside score 0
    for k in ("r2", "r"):
        assert got[k].shape == (3, 20, T)
        np.testing.assert_array_equal(got[k][0], plain[k])
        np.testing.assert_allclose(got[k][1], sub[k], rtol=1e-12)
        np.testing.assert_allclose(got[k][2], zeroed[k], rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="masks"):
        bootstrap_unit_sums(y, p, W, masks=keep)

def test_basic_interval_reflects_the_quantiles_around_the_estimate():
    dist = np.arange(1001, dtype=float) / 1000  # quantiles 0.025 and 0.975 are exactly these values
    lo, hi = basic_interval(0.3, dist, 0.95)
    assert lo == pytest.approx(2 * 0.3 - 0.975) and hi == pytest.approx(2 * 0.3 - 0.025)
    # a biased estimator: replicates sit below the estimate by the same shift the estimate sits below the
    # truth, so the reflected interval is centred on the truth (the percentile one is shifted twice)
    rng = np.random.default_rng(0)
    truth, bias = 0.5, -0.05
    est = truth + bias
    reps = est + bias + 0.02 * rng.standard_normal(4000)
    lo, hi = basic_interval(est, reps)
    assert lo < truth < hi and abs((lo + hi) / 2 - truth) < 0.005
    with pytest.raises(InputError, match="ci"):
        basic_interval(0.0, reps, ci=0.0)
