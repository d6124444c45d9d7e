"""Noise ceilings: closed forms, planted reliabilities and rsatoolbox's RDM ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from brainlid.alignment.ceiling import (
    nc_from_ncsnr,
    normalise_r,
    normalise_r2,
    pool_rdms,
    rsa_noise_ceiling,
    spearman_brown,
    split_half_reliability,
)
from brainlid.errors import InputError


# ----------------------------------------------------------------------------- nc_from_ncsnr
def test_nc_from_ncsnr_scalar_closed_form():
    snr = np.array([0.0, 0.5, 1.0, 2.0])
    nc = nc_from_ncsnr(snr, 3)
    expected = snr**2 / (snr**2 + 1 / 3)
    np.testing.assert_allclose(nc, expected, rtol=1e-6)
    assert nc.dtype == np.float32
    # NSD's documented example: ncsnr = 1 with 3 trials -> NC% = 75
    assert nc[2] * 100 == pytest.approx(75.0, rel=1e-6)


def test_nc_from_ncsnr_mixture_of_repetitions():
    snr = np.array([0.3, 0.8, 1.7])
    n = np.array([1, 2, 3, 3, 3, 2])
    a = np.mean(1.0 / n)  # Algonauts 2023 convention
    np.testing.assert_allclose(nc_from_ncsnr(snr, n), snr**2 / (snr**2 + a), rtol=1e-6)
    # all equal counts reduce to the scalar form
    np.testing.assert_allclose(nc_from_ncsnr(snr, np.full(7, 3)), nc_from_ncsnr(snr, 3), rtol=1e-7)


@pytest.mark.parametrize(
    "snr, n",
    [([-0.1, 1.0], 3), ([np.nan, 1.0], 3), ([1.0], 0), ([1.0], []), ([1.0], [1, 0, 2])],
)
def test_nc_from_ncsnr_bad_input(snr, n):
    with pytest.raises(InputError):
        nc_from_ncsnr(snr, n)


# ----------------------------------------------------------------------------- split-half reliability
def _planted(n_stim, n_rep, n_units, signal_sd, noise_sd, seed, n_times=None):
    rng = np.random.default_rng(seed)
    tail = (n_units,) if n_times is None else (n_units, n_times)
    signal = rng.normal(0, 1, (n_stim, 1, *tail)) * signal_sd
    noise = rng.normal(0, 1, (n_stim, n_rep, *tail)) * noise_sd
    return (signal + noise).astype(np.float32)


def test_split_half_matches_theory():
    # r_sb = s^2 / (s^2 + sigma^2 / n) for the mean of n repetitions
    s, sigma, n = 1.0, np.array([0.5, 1.0, 2.0, 4.0]), 4
    units = np.repeat(sigma, 50)  # 50 units per noise level
    x = _planted(800, n, units.size, s, units[None, None, :], seed=1)
    r_sb = split_half_reliability(x, n_splits=10, seed=0)
    theory = s**2 / (s**2 + sigma**2 / n)
    got = r_sb.reshape(4, 50).mean(axis=1)
    np.testing.assert_allclose(got, theory, atol=0.02)
    # without Spearman-Brown: the half-split correlation
    r_half = split_half_reliability(x, n_splits=10, seed=0, spearman_brown=False).reshape(4, 50).mean(axis=1)
    np.testing.assert_allclose(r_half, s**2 / (s**2 + sigma**2 / (n / 2)), atol=0.02)
    r_half_units = split_half_reliability(x, n_splits=10, seed=0, spearman_brown=False)
    np.testing.assert_allclose(spearman_brown(r_half_units), r_sb, atol=1e-5)


def test_split_half_ragged_time_and_axes():
    x = _planted(600, 6, 20, 1.0, 2.0, seed=2, n_times=3)
    x[::3, 4:] = np.nan  # a third of the stimuli have only 4 repetitions
    r = split_half_reliability(x, n_splits=8, seed=3)
    assert r.shape == (20, 3)
    assert np.all(np.isfinite(r))
    # halves of 2 reps (4-rep stimuli) and 3 reps (6-rep ones): theory lies between the two
    lo, hi = 1 / (1 + 4 / 4), 1 / (1 + 4 / 6)
    assert lo - 0.04 < r.mean() < hi + 0.04
    # the same data with swapped axes gives the same answer
    r2 = split_half_reliability(np.swapaxes(x, 0, 1), rep_axis=0, stimulus_axis=1, n_splits=8, seed=3)
    np.testing.assert_allclose(r, r2, rtol=1e-6)
    # deterministic with a seed; chunking does not change the answer
    r3 = split_half_reliability(x, n_splits=8, seed=3, chunk_bytes=1)
    np.testing.assert_allclose(r, r3, rtol=1e-6)


def test_split_half_identical_and_independent_repetitions():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 4))
    # identical repetitions: perfectly reliable whatever the split
    x = np.stack([a, a, a, a], axis=1)
    np.testing.assert_allclose(split_half_reliability(x, n_splits=3, seed=0), 1.0, rtol=1e-6)
    # pure noise: reliability near 0 (n_stim = 2000: SE of r ~ 0.022 per unit, averaged over 40 units)
    y = rng.normal(size=(2000, 4, 40))
    r = split_half_reliability(y, n_splits=5, seed=0, spearman_brown=False)
    assert abs(r.mean()) < 0.02


def test_split_half_bad_input():
    x = np.random.default_rng(0).normal(size=(10, 3, 5))
    with pytest.raises(InputError, match="dimensions"):
        split_half_reliability(x[:, 0])
    y = x.copy()
    y[2, 1, 3] = np.nan  # NaN inside a present repetition
    with pytest.raises(InputError, match="present repetitions"):
        split_half_reliability(y)
    z = x.copy()
    z[:, 1:] = np.nan  # nobody has two repetitions
    with pytest.raises(InputError, match=">= 2 repetitions"):
        split_half_reliability(z)


def test_split_half_constant_unit_warns_zero():
    x = np.random.default_rng(0).normal(size=(20, 4, 3))
    x[:, :, 1] = 5.0
    with pytest.warns(RuntimeWarning, match="constant"):
        r = split_half_reliability(x, n_splits=3)
    assert r[1] == 0.0 and np.all(np.isfinite(r))


# ----------------------------------------------------------------------------- normalisation
def test_normalise_r2_and_r():
    raw = np.array([0.05, 0.2, 0.3, -0.01])
    nc = np.array([0.05, 0.4, 0.6, 0.5])
    out = normalise_r2(raw, nc, floor=0.1)
    np.testing.assert_allclose(out.normalised, raw / nc, rtol=1e-6)
    np.testing.assert_array_equal(out.kept, [False, True, True, True])
    assert out.n_kept == 3 and out.n_units == 4
    # the ROI score is a ratio of means over kept units (0.49 / 1.5); the mean of ratios is separate
    assert out.roi_normalised == pytest.approx(0.49 / 1.5, rel=1e-6)
    assert out.roi_ceiling == pytest.approx(0.5, rel=1e-6)
    assert out.roi_normalised_unit_mean == pytest.approx(np.mean([0.5, 0.5, -0.02]), rel=1e-6)
    assert out.roi_raw == pytest.approx(np.mean(raw[1:]), rel=1e-6)
    assert out.roi_raw_all == pytest.approx(np.mean(raw), rel=1e-6)
    assert out.summary()["floor"] == 0.1
    r = normalise_r(raw, nc, floor=0.1)
    np.testing.assert_allclose(r.normalised, raw / np.sqrt(nc), rtol=1e-6)
    # r is divided by the mean of √NC (a true model has r ≈ √NC per unit), not by √(mean NC)
    assert r.roi_ceiling == pytest.approx(np.mean(np.sqrt([0.4, 0.6, 0.5])), rel=1e-6)
    assert r.roi_normalised == pytest.approx(0.49 / np.sqrt([0.4, 0.6, 0.5]).sum(), rel=1e-6)


def test_normalise_per_time_and_zero_ceiling():
    raw = np.array([[0.1, 0.2], [0.3, 0.1], [0.0, 0.0]])
    nc = np.array([[0.5, 0.05], [0.6, 0.5], [0.0, 0.0]])
    out = normalise_r2(raw, nc)
    np.testing.assert_array_equal(out.n_kept, [2, 1])
    np.testing.assert_allclose(out.roi_normalised, [0.4 / 1.1, 0.2], rtol=1e-6)
    assert np.isnan(out.normalised[2, 0])  # undefined, and never in the summary


def test_normalise_bad_input():
    with pytest.raises(InputError, match="percent"):
        normalise_r2([0.1], [45.0])
    with pytest.raises(InputError, match="non-finite"):
        normalise_r2([np.nan], [0.5])
    with pytest.raises(InputError, match="infinite"):
        normalise_r2([0.1], [np.inf])
    # an unknown (NaN) ceiling: that unit is not kept and has no normalised value
    out = normalise_r2([0.1, 0.2, 0.3], [np.nan, 0.5, 0.6])
    assert out.kept.tolist() == [False, True, True] and np.isnan(out.normalised[0])
    assert out.roi_normalised == pytest.approx(0.5 / 1.1, rel=1e-6)
    with pytest.raises(InputError, match="compatible"):
        normalise_r2([0.1, 0.2], [0.5, 0.5, 0.5])
    with pytest.warns(RuntimeWarning, match="floor"):
        out = normalise_r2([0.1, 0.2], [0.05, 0.05])
    assert out.n_kept == 0


# ----------------------------------------------------------------------------- RSA noise ceiling
def _compare_fn(method):
    if method == "spearman":
        return lambda a, b: stats.spearmanr(a, b)[0]
    if method == "corr":
        return lambda a, b: stats.pearsonr(a, b)[0]
    if method == "cosine":
        return lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    raise AssertionError(method)


@pytest.mark.parametrize("method", ["spearman", "corr", "cosine"])
def test_rsa_noise_ceiling_matches_rsatoolbox(method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(11)
    n_cond, n_sub = 12, 6
    n_pairs = n_cond * (n_cond - 1) // 2
    truth = rng.random(n_pairs)
    rdms = truth[None] + 0.4 * rng.random((n_sub, n_pairs))
    lo, hi = rsa_noise_ceiling(rdms, method=method, compare=_compare_fn(method))
    ref = rsatoolbox.rdm.RDMs(rdms, rdm_descriptors={"subject": np.arange(n_sub)})
    ref_lo, ref_hi = rsatoolbox.inference.boot_noise_ceiling(ref, method=method, rdm_descriptor="subject")
    assert lo == pytest.approx(ref_lo, abs=1e-10)
    assert hi == pytest.approx(ref_hi, abs=1e-10)
    assert lo < hi


def test_rsa_noise_ceiling_default_compare_and_errors():
    rng = np.random.default_rng(0)
    rdms = rng.random((4, 15))
    lo, hi = rsa_noise_ceiling(rdms, method="spearman")  # the default compare: brainlid.alignment.rsa
    ref = rsa_noise_ceiling(rdms, method="spearman", compare=_compare_fn("spearman"))
    assert (lo, hi) == pytest.approx(ref, abs=1e-6)
    with pytest.raises(InputError, match="2 subjects"):
        rsa_noise_ceiling(rdms[:1], compare=_compare_fn("spearman"))
    bad = rdms.copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        rsa_noise_ceiling(bad, compare=_compare_fn("spearman"))


def test_pool_rdms_rank_average():
    rdms = np.array([[1.0, 5.0, 2.0], [10.0, 30.0, 20.0]])
    np.testing.assert_allclose(pool_rdms(rdms, "spearman"), [1.0, 3.0, 2.0])
    np.testing.assert_allclose(pool_rdms(rdms, "euclidean"), rdms.mean(axis=0))


# --------------------------------------------------------------------------- RDM split-half reliability
def _rdm_planted(rng, n_stim=40, n_rep=4, n_units=60, noise=1.0, n_times=None):
    shape = (n_stim, 1, n_units) + ((n_times,) if n_times else ())
    signal = rng.standard_normal(shape)
    return signal + noise * rng.standard_normal((n_stim, n_rep, n_units) + ((n_times,) if n_times else ()))


def test_rdm_split_half_identical_and_noise():
    from brainlid.alignment.ceiling import rdm_split_half_reliability

    rng = np.random.default_rng(0)
    same = np.repeat(rng.standard_normal((20, 1, 30)), 4, axis=1)
    assert rdm_split_half_reliability(same, "correlation", "spearman", n_splits=3) == pytest.approx(1.0, abs=1e-9)
    # pure-noise repetitions: ≈ 0 (sampling sd of r over ~n_stim effective pairs ≈ 0.1 each)
    vals = [rdm_split_half_reliability(rng.standard_normal((60, 6, 50)), "euclidean", "pearson", n_splits=3)
            for _ in range(6)]
    assert abs(np.mean(vals)) < 0.12


@pytest.mark.parametrize("n_rep", [3, 4, 5])
def test_rdm_split_half_matches_simulated_replication(n_rep):
    """r_sb estimates the agreement of the full-data RDM with an independent replication (odd counts:
    stepped up by k = n/⌊n/2⌋, not 2)."""
    from brainlid.alignment.ceiling import rdm_split_half_reliability
    from brainlid.alignment.rsa import compare_rdms, rdm

    rng = np.random.default_rng(1)
    n_stim, n_units, noise = 40, 60, 2.0 * np.sqrt(n_rep / 4)
    signal = rng.standard_normal((n_stim, 1, n_units))
    est, truth = [], []
    for i in range(8):
        a = signal + noise * rng.standard_normal((n_stim, n_rep, n_units))
        b = signal + noise * rng.standard_normal((n_stim, n_rep, n_units))
        est.append(rdm_split_half_reliability(a, "euclidean", "pearson", n_splits=4, seed=i))
        truth.append(compare_rdms(rdm(a.mean(1), "euclidean", dtype=np.float64), rdm(b.mean(1), "euclidean", dtype=np.float64), "pearson"))
    assert 0.2 < np.mean(truth) < 0.9  # a non-trivial regime
    assert np.mean(est) == pytest.approx(np.mean(truth), abs=0.06), (np.mean(est), np.mean(truth))


def test_rdm_split_half_time_resolved_and_errors():
    from brainlid.alignment.ceiling import rdm_split_half_reliability

    rng = np.random.default_rng(2)
    x = _rdm_planted(rng, n_stim=15, n_rep=4, n_units=10, noise=0.5, n_times=3)
    x[:, :, :, 2] = rng.standard_normal(x[:, :, :, 2].shape)  # time 2: pure noise
    x[0, 3] = np.nan  # one missing (NaN-padded) repetition
    r = rdm_split_half_reliability(x, n_splits=4)
    assert r.shape == (3,)
    assert r[0] > 0.8 and r[1] > 0.8 and abs(r[2]) < 0.35
    # matches the per-time-point call on the time slice
    assert r[1] == pytest.approx(rdm_split_half_reliability(x[..., 1], n_splits=4), abs=1e-12)
    with pytest.raises(InputError, match=">= 2 repetitions"):
        rdm_split_half_reliability(rng.standard_normal((10, 1, 5)))
    with pytest.raises(InputError, match="shape"):
        rdm_split_half_reliability(rng.standard_normal((10, 5)))
    with pytest.raises(InputError, match="n_splits"):
        rdm_split_half_reliability(rng.standard_normal((10, 2, 5)), n_splits=0)


@pytest.mark.parametrize("n_sub", [4, 5, 6])
def test_group_split_half_matches_brute_force_over_every_ordered_split(n_sub):
    """Every ordered pair of disjoint half-groups, scipy's Spearman, classical step-up k = S/⌊S/2⌋: the same
    r_half and r_sb (each unordered split is evaluated once inside, as the comparison is symmetric)."""
    from itertools import combinations

    from brainlid.alignment.ceiling import group_split_half_reliability

    rng = np.random.default_rng(n_sub)
    shared = rng.random(45)
    v = shared + 0.5 * rng.standard_normal((n_sub, 45))
    h = n_sub // 2
    r = [stats.spearmanr(v[list(a)].mean(0), v[list(b)].mean(0))[0]
         for a in combinations(range(n_sub), h) for b in combinations(sorted(set(range(n_sub)) - set(a)), h)]
    k = n_sub / h
    r_sb, r_half, got_k = group_split_half_reliability(v)
    assert r_half == pytest.approx(np.mean(r), rel=1e-12) and got_k == k
    assert r_sb == pytest.approx(k * np.mean(r) / (1 + (k - 1) * np.mean(r)), rel=1e-12)


def test_reliability_formulas_live_in_data_and_are_re_exported():
    import brainlid.alignment.ceiling as ceiling
    import brainlid.data.reliability as reliability

    for name in ("nc_from_ncsnr", "spearman_brown", "spearman_brown_factor", "split_half_reliability"):
        assert getattr(ceiling, name) is getattr(reliability, name)
