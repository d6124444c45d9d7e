"""Calibration of encoding scores against simulated known truth (issue 14: encoding half).

Every check compares the REAL scoring path (:func:`brainlid.scoring.cell.score_layer`, or the
cell's own ``fit_encoding`` + ``encoding_rows`` that build every encoding row) with a quantity known
from the simulation, never with the code's own formula:

* the true model's ``normalised`` is 1 (±0.05 where the half-split reliability is >= 0.5, ±0.1 down
  to 0.15), volume and time-resolved; no row exceeds 1 by more than its sampling error;
* a model of pure noise scores 0 within its interval;
* rows are invariant to X → cX and Y → cY;
* the stimulus-bootstrap intervals cover the fitted model's population score at the nominal rate.

Simulation: responses ``trials = S + ε`` with S = F W (standardised per unit) the true signal of
low-dimensional true features F (d = 4), ε ~ N(0, 1/snr²) per trial. The scored data average
``n_reps`` trials, so the explainable fraction is NC = snr² / (snr² + 1/n_reps) — the NSD ncsnr
formula (:func:`brainlid.alignment.ceiling.nc_from_ncsnr`) — and the half-split reliability (the
correlation of two averages of n_reps/2 trials) is snr² / (snr² + 2/n_reps). A finite-sample ridge
fit of even the true features falls short of the ceiling by its estimation error (about
(1 − NC)·d / n_fit of the variance); with d = 4 features and ~500 fitting stimuli that is < 2 % of
the ceiling at the lowest reliability, so "normalises to 1" is a fair target here — with
high-dimensional features and few stimuli it would not be.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from brainlid.alignment.ceiling import nc_from_ncsnr, split_half_reliability
from brainlid.data import BrainData
from brainlid.scoring import benchmarks as bm
from brainlid.alignment.encoding import fit_encoding_params, train_pca
from brainlid.scoring import cell

HALF_RELIABILITY = (0.8, 0.5, 0.3, 0.15)  # simulated half-split reliabilities (one ROI / time point each)
N_REPS = 4
D_TRUE = 4


def _snr_for(half_rel: float, n_reps: int = N_REPS) -> float:
    """Per-trial snr giving a half-split reliability ``half_rel``: snr² / (snr² + 2/n) = h."""
    return float(np.sqrt(half_rel / (1 - half_rel) * 2 / n_reps))


def _signal(rng, n, n_targets, d=D_TRUE):
    F = rng.standard_normal((n, d))
    S = F @ rng.standard_normal((d, n_targets))
    return F.astype(np.float32), (S - S.mean(0)) / S.std(0)


def _splits(rng, ids, n_test):
    test = np.sort(ids[rng.permutation(ids.size)[:n_test]])
    return {"train": np.setdiff1d(ids, test), "test": test}


def _volume_rows(seed, n=1000, n_test=300, n_units=30):
    """One simulated subject: one ROI per reliability level; test rows of the true and a noise model."""
    rng = np.random.default_rng(seed)
    L = len(HALF_RELIABILITY)
    F, S = _signal(rng, n, L * n_units)
    snr = np.repeat([_snr_for(h) for h in HALF_RELIABILITY], n_units)
    Y = S + rng.standard_normal((n, L * n_units)) / snr / np.sqrt(N_REPS)  # the average of N_REPS trials
    nc = nc_from_ncsnr(snr, N_REPS)
    ids = np.arange(n)
    units = pd.DataFrame({f"roi:L{i}": np.repeat(np.arange(L) == i, n_units) for i in range(L)})
    brain = BrainData.from_arrays(Y, ids, units=units, noise_ceiling=nc, splits=_splits(rng, ids, n_test),
                                  subject="subj01", dataset="calib")
    rows = []
    for i in range(L):
        sub = brain.select(roi=f"L{i}")
        b = bm.benchmark_from_braindata("calib", sub, register=False, pca=None, n_boot=300)
        noise = rng.standard_normal((n, D_TRUE)).astype(np.float32)  # a new noise model per ROI
        for model, X in (("truth", F), ("noise", noise)):
            for r in cell.score_layer(X, ids, sub, b, model=model, layer="x", which=("test",)):
                rows.append({**r, "level": HALF_RELIABILITY[i], "seed": seed})
    return pd.DataFrame(rows)


def _time_rows(seed, n=1000, n_test=300, n_units=24):
    """One simulated EEG subject: time point t has half-split reliability HALF_RELIABILITY[t]; the
    ceiling is the split-half reliability of the test stimuli's repetitions (as the THINGS-EEG2 loader)."""
    rng = np.random.default_rng(1000 + seed)
    T = len(HALF_RELIABILITY)
    F, S = _signal(rng, n, n_units * T)
    S = S.reshape(n, n_units, T)
    snr = np.array([_snr_for(h) for h in HALF_RELIABILITY])
    trials = S[:, None] + rng.standard_normal((n, N_REPS, n_units, T)) / snr
    ids = np.array([f"img{i:04d}" for i in range(n)])
    splits = _splits(rng, ids, n_test)
    test_pos = np.flatnonzero(np.isin(ids, splits["test"]))
    nc = split_half_reliability(trials[test_pos], n_splits=20, seed=seed)  # (units, T)
    brain = BrainData.from_arrays(trials.mean(1), ids, times=np.arange(T) * 0.1, noise_ceiling=np.clip(nc, 0, 1),
                                  splits=splits, subject="sub-01", dataset="calib_eeg")
    b = bm.benchmark_from_braindata("calibeeg", brain, register=False, pca=None, n_boot=300)
    noise = rng.standard_normal((n, D_TRUE)).astype(np.float32)
    rows = []
    for model, X in (("truth", F), ("noise", noise)):
        for r in cell.score_layer(X, ids, brain, b, model=model, layer="x", which=("test",)):
            rows.append({**r, "level": HALF_RELIABILITY[int(round(r["time"] / 0.1))], "seed": seed})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module", params=["volume", "time-resolved"])
def calib(request):
    make = _volume_rows if request.param == "volume" else _time_rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.concat([make(s) for s in range(6)], ignore_index=True)


def test_true_model_normalises_to_one(calib):
    truth = calib[calib.model == "truth"]
    assert (truth.ci_method == "stimulus-bootstrap").all() and truth.ceiling_method.isin(["data"]).all()
    mean = truth.groupby(["metric", "level"])["normalised"].mean()
    for (metric, level), v in mean.items():
        tol = 0.05 if level >= 0.5 else 0.1
        assert abs(v - 1) <= tol, (metric, level, v)
    # no row above 1 by more than its sampling error (3 bootstrap standard errors, in normalised units)
    se = (truth.ci_high - truth.ci_low) / (2 * 1.96) / truth.ceiling
    assert (truth.normalised - 1 <= 3 * se).all(), truth.loc[truth.normalised - 1 > 3 * se, ["metric", "level", "normalised"]]
    # where every unit is above the 0.1 floor the row reads value / ceiling = normalised (an estimated
    # split-half ceiling can drop a unit below the floor at the lowest reliability)
    full = truth[truth.n_units == truth.n_units.max()]
    assert len(full) >= len(truth) // 2
    np.testing.assert_allclose(full.value / full.ceiling, full.normalised, rtol=1e-5)


def test_noise_model_scores_zero_within_its_interval(calib):
    noise = calib[calib.model == "noise"]
    r = noise[noise.metric == "encoding_r"]
    covered = (r.ci_low <= 0) & (0 <= r.ci_high)
    assert covered.mean() >= 0.85, covered.mean()  # nominal 0.95 over 24 rows
    assert r.normalised.abs().max() < 0.15
    # R²: the population score of a fitted noise model is not 0 but minus its estimation error
    # (−(‖β̂‖² + ĉ²)/Var y < 0), and a resampled R² of a near-constant prediction is <= 0, so the
    # interval sits just below 0; the check is that the score is ~0 on the normalised scale
    r2 = noise[noise.metric == "encoding_r2"]
    assert (r2.value <= 0.005).all() and (r2.value > -0.02).all() and (r2.ci_high > -0.02).all()
    assert r2.normalised.abs().max() < 0.1


# ----------------------------------------------------------------------------- invariance
def test_rows_invariant_to_rescaling_features_and_responses():
    rng = np.random.default_rng(7)
    n, n_units = 400, 20
    F, S = _signal(rng, n, n_units, d=6)
    extra = rng.standard_normal((n, 10)).astype(np.float32)
    layers = {"a": np.concatenate([F[:, :3], extra], 1), "b": np.concatenate([F, extra], 1)}  # b is the better layer
    Y = S + 1.2 * rng.standard_normal((n, n_units))
    ids = np.arange(n)
    nc = np.full(n_units, 1 / (1 + 1.44), np.float32)
    splits = _splits(rng, ids, 80)

    def rows(cx, cy):
        brain = BrainData.from_arrays(Y * cy, ids, noise_ceiling=nc, splits=splits, subject="s", dataset="inv")
        b = bm.benchmark_from_braindata("inv", brain, register=False, pca=8, n_boot=200)
        feats = {k: (v * np.float32(cx)).astype(np.float32) for k, v in layers.items()}
        s, _ = cell.score_features(feats, ids, b, brain, model="m", geometry=False)
        return s.sort_values(["layer", "split", "metric"]).reset_index(drop=True)

    ref = rows(1.0, 1.0)
    assert ref.loc[ref.selected, "layer"].unique().tolist() == ["b"]
    for cx, cy in [(1e-3, 1.0), (1e3, 1.0), (1.0, 1e-3), (1.0, 1e3), (1e3, 1e-3)]:
        got = rows(cx, cy)
        # 1e-6 relative; responses are stored in float32 (BrainData), so Y × c is itself rounded by up to
        # 6e-8 per value, which the fit and the scores carry up to ~1.5e-6: 2e-6 when Y is rescaled
        rtol = 1e-6 if cy == 1.0 else 2e-6
        for col in ("value", "normalised", "normalised_unit_mean", "alpha_edge_fraction"):
            np.testing.assert_allclose(got[col], ref[col], rtol=rtol, atol=1e-7, err_msg=f"{col} at X×{cx}, Y×{cy}")
        for col in ("ci_low", "ci_high"):  # percentiles of 200 resamples: float32 rounding of Y may reorder two
            np.testing.assert_allclose(got[col], ref[col], rtol=1e-5, err_msg=f"{col} at X×{cx}, Y×{cy}")
        assert got.loc[got.selected, "layer"].tolist() == ref.loc[ref.selected, "layer"].tolist()


def test_features_times_1000_score_like_the_originals_and_grid_edges_are_reported():
    """Issue 14's case: X × 1000 turned mean R² 0.071 into −0.071 with every voxel at the α grid's edge.
    The relative grid scores the same; an absolute grid far from the features' scale is flagged."""
    rng = np.random.default_rng(3)
    n, n_units = 500, 40
    F, S = _signal(rng, n, n_units, d=30)
    Y = S + 3.0 * rng.standard_normal((n, n_units))
    ids = np.arange(n)
    brain = BrainData.from_arrays(Y, ids, splits=_splits(rng, ids, 100), subject="s", dataset="x")
    b = bm.benchmark_from_braindata("x1000", brain, register=False, pca=None, n_boot=0)
    value = {}
    for c in (1.0, 1000.0):
        rows = cell.score_layer(F * np.float32(c), ids, brain, b, model="m", layer="l", which=("test",))
        value[c] = rows[0]["value"]
        assert 0 <= rows[0]["alpha_edge_fraction"] < 0.5
    assert value[1.0] > 0.05 and value[1000.0] == pytest.approx(value[1.0], rel=1e-5)
    # a grid far below the features' spectrum (what the old absolute grid was for features × 1000): α is
    # effectively 0 for every unit, the inner CV still improves towards the top end -> every unit at the
    # edge, one warning
    b_abs = bm.benchmark_from_braindata("x1000abs", brain, register=False, pca=None, n_boot=0,
                                        alphas=tuple(np.logspace(-2, 2, 5) * 1e-8))
    with pytest.warns(RuntimeWarning, match="does not bracket") as rec:
        rows = cell.score_layer(F * np.float32(1000), ids, brain, b_abs, model="m", layer="l", which=("test",))
    assert sum("bracket" in str(w.message) for w in rec) == 1  # one warning per cell, not per unit
    assert rows[0]["alpha_edge_fraction"] == 1.0


# ----------------------------------------------------------------------------- interval coverage
def _population_scores(F_fit, Y_fit, W, sigma, params):
    """Population R² and r per unit of the model the runner fits on (F_fit, Y_fit): predictions are
    affine in the features, so probing them at 0 and the unit vectors gives the fitted intercept c
    and weights B exactly; with F ~ N(0, I), y = F W + N(0, σ²):
    MSE = ‖W − B‖² + c² + σ², Var y = ‖W‖² + σ², cov(y, ŷ) = W·B, Var ŷ = ‖B‖²."""
    d = F_fit.shape[1]
    probe = np.vstack([np.zeros((1, d)), np.eye(d)]).astype(np.float32)
    Xf, Xe = train_pca(F_fit, probe, params["pca"], params["seed"])
    from brainlid.alignment.encoding import ridge_cv_fit_predict

    res = ridge_cv_fit_predict(np.ascontiguousarray(Xf, dtype=np.float32), Y_fit, np.ascontiguousarray(Xe, dtype=np.float32),
                               alphas=np.asarray(params["alphas"]), n_folds=params["cv"], center=True, alpha_scale="relative")
    c, B = res.predictions[0], res.predictions[1:] - res.predictions[0]
    var_y = (W**2).sum(0) + sigma**2
    r2 = 1 - (((W - B) ** 2).sum(0) + c**2 + sigma**2) / var_y
    r = (W * B).sum(0) / np.sqrt(var_y * (B**2).sum(0))
    return r2.mean(), r.mean()


def test_stimulus_bootstrap_intervals_cover_the_population_score():
    """Nominal 95 % intervals of ROI-mean R² and r cover the fitted model's population score in 90–98 %
    of 240 seeded replications (a new training and test set each time)."""
    n_rep, n_fit, n_test, d, n_units = 240, 120, 100, 3, 12
    params = {**bm.DEFAULT_PARAMS, "pca": None, "n_boot": 400}
    hits = {"encoding_r2": 0, "encoding_r": 0}
    width = []
    for rep in range(n_rep):
        rng = np.random.default_rng(rep)
        W = rng.standard_normal((d, n_units)) * 0.6
        sigma = rng.uniform(0.8, 1.6, n_units)
        F = rng.standard_normal((n_fit + n_test, d)).astype(np.float32)
        Y = (F @ W + rng.standard_normal((n_fit + n_test, n_units)) * sigma).astype(np.float32)
        fit = fit_encoding_params(F[:n_fit], Y[:n_fit], F[n_fit:], Y[n_fit:], {**params, "seed": rep})
        rows = cell.encoding_rows(fit.r, fit.r2, None, None, params, {}, n_test, boot=fit.boot)
        true_r2, true_r = _population_scores(F[:n_fit], Y[:n_fit], W, sigma, {**params, "seed": rep})
        for row in rows:
            truth = true_r2 if row["metric"] == "encoding_r2" else true_r
            hits[row["metric"]] += row["ci_low"] <= truth <= row["ci_high"]
            if row["metric"] == "encoding_r2":
                width.append(row["ci_high"] - row["ci_low"])
    for metric, h in hits.items():
        assert 0.90 <= h / n_rep <= 0.98, (metric, h / n_rep)
    assert np.mean(width) > 0.02  # intervals of stimulus resampling, not of unit resampling
