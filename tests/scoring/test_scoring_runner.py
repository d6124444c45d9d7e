"""Scoring cells on planted truth: own features near the ceiling, shuffled near zero, val-only selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainlid.data import BrainData
from brainlid.errors import InputError
from brainlid.scoring import benchmarks as bm
from brainlid.alignment.encoding import unit_scores
from brainlid.scoring import cell
from brainlid.scoring.cell import responses
from brainlid.scoring.baselines import random_weights_spec, shuffle_features


def planted(n=400, d=8, n_units=60, n_reps=3, seed=0):
    """Y = standardised(F W) + noise/snr, averaged over n_reps trials; NC known per unit."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    W = rng.standard_normal((d, n_units))
    S = F @ W
    S = (S - S.mean(0)) / S.std(0)
    snr = rng.uniform(0.4, 1.5, n_units)
    trials = S[:, None, :] + rng.standard_normal((n, n_reps, n_units)) / snr
    Y = trials.mean(1)
    nc = snr**2 / (snr**2 + 1 / n_reps)
    ids = np.arange(1000, 1000 + n)
    test = ids[rng.permutation(n)[: n // 5]]
    units = pd.DataFrame({"roi:EBA": np.arange(n_units) < n_units // 2, "roi:V1v": np.arange(n_units) >= n_units // 2})
    brain = BrainData.from_arrays(Y, ids, units=units, noise_ceiling=nc, subject="subj01", dataset="synthetic",
                                  splits={"train": np.setdiff1d(ids, test), "test": np.sort(test)})
    return F.astype(np.float32), ids, brain, rng


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture
def bench(data):
    _, _, brain, _ = data
    b = bm.benchmark_from_braindata("synthetic", brain, roi="EBA", pca=None, n_boot=200, overwrite=True)
    yield b
    bm.unregister_benchmark(b.id)


def test_own_features_reach_the_ceiling_and_shuffled_do_not(data, bench):
    F, ids, brain, rng = data
    junk = rng.standard_normal((F.shape[0], 16)).astype(np.float32)
    feats = {"junk": junk, "truth": F}
    scores, _ = cell.score_features(feats, ids, bench, model="planted", geometry=False)
    test = scores[(scores.split == "test") & (scores.metric == "encoding_r2")].set_index("layer")
    # the generative model's own features explain (almost) all explainable variance: the ceiling is the
    # simulated NC (mean over the EBA units, all above the floor) and the truth normalises to 1 within
    # its sampling error (80 test stimuli)
    eba = brain.units["roi:EBA"].to_numpy()
    nc = brain.noise_ceiling[eba]
    assert test.loc["truth", "ceiling"] == pytest.approx(nc.mean(), rel=1e-6)
    assert test.loc["truth", "n_units"] == eba.sum()
    half = (test.loc["truth", "ci_high"] - test.loc["truth", "ci_low"]) / 2 / test.loc["truth", "ceiling"]
    assert abs(test.loc["truth", "normalised"] - 1) < max(0.08, 1.5 * half)
    assert test.loc["truth", "ci_low"] < test.loc["truth", "value"] < test.loc["truth", "ci_high"]
    r_row = scores[(scores.split == "test") & (scores.metric == "encoding_r") & (scores.layer == "truth")].iloc[0]
    assert r_row.ceiling == pytest.approx(np.sqrt(nc).mean(), rel=1e-6)  # mean √NC, not √(mean NC)
    assert r_row.normalised == pytest.approx(1.0, abs=0.05)
    assert abs(test.loc["junk", "value"]) < 0.05
    assert (scores.ci_method == "stimulus-bootstrap").all() and (scores.ceiling_method == "data").all()
    assert scores.alpha_edge_fraction.between(0, 1).all()
    # best layer chosen on val
    assert scores.loc[scores.selected, "layer"].unique().tolist() == ["truth"]
    assert set(scores["split"]) == {"val", "test"}
    assert (test["n_stimuli"] == 80).all()
    # shuffled control: zero
    sh = shuffle_features(feats, seed=1)
    s2, _ = cell.score_features(sh, ids, bench, model="planted#shuffled", geometry=False)
    t2 = s2[(s2.split == "test")].set_index(["layer", "metric"])
    assert t2.loc[("truth", "encoding_r2"), "value"] < 0.02
    assert abs(t2.loc[("truth", "encoding_r"), "value"]) < 0.1
    assert t2.loc[("truth", "encoding_r"), "ci_low"] <= 0 <= t2.loc[("truth", "encoding_r"), "ci_high"]


def test_best_layer_selection_never_sees_test_data(data, bench, monkeypatch):
    F, ids, brain, rng = data
    splits = cell.make_splits(brain, bench)
    assert not set(splits["val"]) & set(splits["test"]) and not set(splits["fit"]) & set(splits["test"])
    assert set(splits["fit"]) | set(splits["val"]) == set(splits["train"])
    seen = []
    real = responses.fit_encoding_params

    def spy(X_fit, Y_fit, X_eval, Y_eval, params):
        seen.append((X_fit.shape[0], X_eval.shape[0]))
        return real(X_fit, Y_fit, X_eval, Y_eval, params)

    monkeypatch.setattr(responses, "fit_encoding_params", spy)
    feats = {"a": F[:, :3], "b": F}
    rows = cell.score_layer(F, ids, brain.select(roi="EBA"), bench, model="m", layer="b", splits=splits, which=("val",))
    assert seen == [(splits["fit"].size, splits["val"].size)]
    assert {r["split"] for r in rows} == {"val"}
    # corrupt every test response: the selected layer must not change
    scores, _ = cell.score_features(feats, ids, bench, model="m", geometry=False)
    bad = brain.responses.copy()
    test_pos = np.isin(brain.stimulus_ids, splits["test"])
    bad[test_pos] = rng.standard_normal(bad[test_pos].shape) * 100
    brain_bad = BrainData.from_arrays(bad, brain.stimulus_ids, units=brain.units, noise_ceiling=brain.noise_ceiling,
                                      subject="subj01", dataset="synthetic", splits=brain.splits)
    scores_bad, _ = cell.score_features(feats, ids, bench, brain_bad.select(roi="EBA"), model="m", geometry=False)
    sel = lambda s: s.loc[s.selected, "layer"].unique().tolist()  # noqa: E731
    assert sel(scores) == sel(scores_bad) == ["b"]
    val = lambda s: s[s.split == "val"].sort_values(["layer", "metric"])["value"].to_numpy()  # noqa: E731
    np.testing.assert_allclose(val(scores), val(scores_bad))
    # ...while the test scores did change
    assert not np.allclose(scores[scores.split == "test"]["value"], scores_bad[scores_bad.split == "test"]["value"])
    with pytest.raises(InputError, match="without the test split"):
        cell.select_best_layer(scores[scores.split == "test"])


def test_rsa_benchmark(data):
    F, ids, brain, rng = data
    b = bm.benchmark_from_braindata("synthetic", brain, roi="EBA", metric="rsa", overwrite=True)
    try:
        feats = {"junk": rng.standard_normal((F.shape[0], 16)).astype(np.float32), "truth": F}
        scores, _ = cell.score_features(feats, ids, b, model="m", geometry=False)
    finally:
        bm.unregister_benchmark(b.id)
    t = scores[scores.split == "test"].set_index("layer")
    assert set(t["metric"]) == {"rsa_spearman"}
    assert t.loc["truth", "value"] > 0.3 and abs(t.loc["junk", "value"]) < 0.1
    assert scores.loc[scores.selected, "layer"].unique().tolist() == ["truth"]
    assert scores["ceiling"].isna().all() and scores["normalised"].isna().all()  # averaged data: no reps, no ceiling


def test_rsa_split_half_ceiling_from_repetitions():
    """Rep-level data → RSA rows get the split-half RDM ceiling (√r_sb) and a normalised score that calibrates:
    the noise-free signal itself scores ≈ 1, a random model ≈ 0 (more in tests/test_calibration_rsa.py)."""
    from brainlid.alignment.ceiling import rdm_split_half_reliability

    rng = np.random.default_rng(3)
    n, d, n_units, n_reps = 120, 6, 40, 4
    F = rng.standard_normal((n, d)).astype(np.float32)
    S = (F @ rng.standard_normal((d, n_units))).astype(np.float32)
    trials = S[:, None, :] + 1.5 * rng.standard_normal((n, n_reps, n_units))
    trials[:5, 3] = np.nan  # ragged: 5 stimuli with 3 repetitions
    ids = np.arange(n)
    brain = BrainData.from_arrays(trials.astype(np.float32), ids, has_reps=True, subject="subj01", dataset="synthetic")
    b = bm.benchmark_from_braindata("synthreps", brain, metric="rsa", overwrite=True)
    try:
        _, loaded = bm.load_benchmark_data(b)
        assert not loaded.has_reps and loaded.meta[bm.REPS_META_KEY].has_reps
        scores, _ = cell.score_features({"truth": S, "junk": rng.standard_normal((n, 20)).astype(np.float32)}, ids, b,
                                          model="m", geometry=False)
    finally:
        bm.unregister_benchmark(b.id)
    test_ids = np.sort(b.loader()[1].splits["test"])
    want = rdm_split_half_reliability(trials[test_ids].astype(np.float32), "correlation", "spearman", n_splits=5,
                                      seed=b.params["seed"])
    t = scores[scores.split == "test"].set_index("layer")
    assert 0.3 < want < 1
    assert t.loc["truth", "ceiling"] == pytest.approx(np.sqrt(want), abs=1e-6)
    assert t.loc["truth", "ceiling_method"] == "rdm-split-half-disattenuated"
    assert t.loc["truth", "normalised"] == pytest.approx(1.0, abs=0.1)
    assert abs(t.loc["junk", "normalised"]) < 0.15
    assert np.isnan(t.loc["truth", "ceiling_lower"])
    assert scores[scores.split == "val"]["ceiling"].notna().all()


def test_unit_scores_against_sklearn():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 4))
    p = y + rng.standard_normal((50, 4))
    r, r2 = unit_scores(y, p)
    np.testing.assert_allclose(r2, r2_score(y, p, multioutput="raw_values"), atol=1e-6)
    np.testing.assert_allclose(r, [np.corrcoef(y[:, j], p[:, j])[0, 1] for j in range(4)], atol=1e-6)


def test_time_resolved_rows():
    rng = np.random.default_rng(3)
    n, d, u, T = 200, 5, 12, 4
    F = rng.standard_normal((n, d)).astype(np.float32)
    gain = np.array([0.0, 0.5, 1.0, 2.0])  # signal grows over time
    Y = np.einsum("nd,du,t->nut", F, rng.standard_normal((d, u)), gain) + rng.standard_normal((n, u, T))
    ids = np.arange(n)
    brain = BrainData.from_arrays(Y, ids, times=np.array([-0.1, 0.0, 0.1, 0.2]), subject="sub-01", dataset="eeg")
    b = bm.benchmark_from_braindata("eeg", brain, pca=None, n_boot=50, overwrite=True)
    try:
        scores, _ = cell.score_features({"f": F}, ids, b, model="m", geometry=False)
    finally:
        bm.unregister_benchmark(b.id)
    t = scores[(scores.split == "test") & (scores.metric == "encoding_r")].sort_values("time")
    assert t["time"].tolist() == pytest.approx([-0.1, 0.0, 0.1, 0.2])
    assert abs(t["value"].iloc[0]) < 0.15 and t["value"].iloc[-1] > 0.8
    assert np.all(np.diff(t["value"].to_numpy()[1:]) > 0)
    # per-time stimulus-bootstrap intervals: the signal-free first time point covers 0, the others exclude it
    assert t["ci_low"].iloc[0] <= 0 <= t["ci_high"].iloc[0] and (t["ci_low"].iloc[1:] > 0).all()
    assert (t.ci_method == "stimulus-bootstrap").all() and t.alpha_edge_fraction.notna().all()


def test_registry_errors_and_random_spec(data):
    with pytest.raises(bm.UnknownBenchmarkError, match="did you mean nsd.subj01.EBA.encoding"):
        bm.get_benchmark("nsd.subj01.EBA.encodign")
    with pytest.raises(InputError, match="scheme"):
        bm.Benchmark(id="bad-id", dataset="x", subject="s", space="", roi="r", metric="encoding")
    with pytest.raises(InputError, match="unknown benchmark parameter"):
        bm.Benchmark(id="a.b.c.encoding", dataset="a", subject="b", space="", roi="c", metric="encoding", params={"pcaa": 3})
    lst = bm.list_benchmarks("nsd")
    assert {"nsd.subj01.EBA.encoding", "nsd.subj08.V1v.rsa"} <= set(lst["id"])
    with pytest.raises(InputError, match="no benchmarks for dataset"):
        bm.list_benchmarks("nope")
    assert random_weights_spec("torchvision:resnet18") == "torchvision:resnet18@random"
    assert random_weights_spec("module:net.py:Net@w.pt") == "module:net.py:Net@random"
    assert random_weights_spec("torchvision:resnet18@random") is None
    _, _, brain, _ = data
    with pytest.raises(InputError, match="unknown ROI"):
        bm.benchmark_from_braindata("x", brain, roi="FFA", register=False)


def test_unit_batches_join_to_the_whole_cell(data, bench):
    """The Dask runner's voxel batches (unit_scores_batch + batched_encoding_rows) give score_layer's rows."""
    F, ids, brain, _ = data
    sub = brain.select(roi="EBA")
    splits = cell.make_splits(sub, bench)
    whole = cell.score_layer(F, ids, sub, bench, model="m", layer="l", splits=splits, feature_cache_key="k")
    n = sub.responses.shape[1]
    parts = [cell.unit_scores_batch(F, ids, sub, bench, splits, (a, min(a + 7, n))) for a in range(0, n, 7)]
    base = cell.base_row(bench, sub, model="m", layer="l", feature_cache_key="k")
    joined = cell.batched_encoding_rows(bench, sub, base, parts)
    a, b = pd.DataFrame(whole), pd.DataFrame(joined)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == 4
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)


def test_finish_tables_concatenates_deduplicates_and_writes(tmp_path):
    from brainlid.scoring.tables import finish_tables, geometry_frame, score_frame

    g = {"model": "m", "layer": "l", "stimulus_set": "s", "estimator": "mle", "K": 5.0, "value": 3.0, "n": 10}
    geoms = [geometry_frame([g]), geometry_frame([{**g, "value": 9.0}]), geometry_frame([])]
    row = {"model": "m", "layer": "l", "benchmark": "b", "metric": "encoding_r2", "split": "test", "value": 0.5}
    scores, geom, paths = finish_tables([score_frame([row]), score_frame([])], geoms, out=tmp_path)
    assert len(scores) == 1 and len(geom) == 1 and geom["value"].iloc[0] == 3.0  # the first measurement kept
    assert sorted(p.name for p in paths) == ["geometry.csv", "geometry.parquet", "scores.csv", "scores.parquet"]
    empty_scores, empty_geom, none = finish_tables([], [])
    assert empty_scores.empty and empty_geom.empty and none == []
