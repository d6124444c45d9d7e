"""THINGS-fMRI and Algonauts 2023 benchmarks: registry, split rules, end to end on the fixtures; RSA time rows."""

from __future__ import annotations

import numpy as np
import pytest

from brainlid.scoring import cell, serial
from brainlid.scoring.benchmarks import (ALGONAUTS2023_TEST_FRACTION, get_benchmark, hash_split, list_benchmarks,
                                         load_benchmark_data)

SMALL_MODEL = "cifar_resnet:20@random:0"


def test_registered():
    tf = list_benchmarks("things_fmri").set_index("id")
    assert len(tf) == 3 * 17 * 2
    r = tf.loc["things_fmri.sub-02.IT.encoding"]
    assert r.ceiling == "data" and r.lid_stimulus_set == "things_fmri.sub-02.test" and r.space == "T1w"
    al = list_benchmarks("algonauts2023").set_index("id")
    assert {"algonauts2023.subj01.lh.encoding", "algonauts2023.subj08.all.encoding", "algonauts2023.subj03.FFA-1.encoding"} <= set(al.index)
    assert (al.ceiling == "none").all() and set(al.split) == {"test"}


def test_hash_split_depends_on_the_id_only():
    ids = np.arange(20000)
    m = hash_split(ids, 0.2, salt="x:")
    assert abs(m.mean() - 0.2) < 0.01
    np.testing.assert_array_equal(hash_split(ids[5000:5100], 0.2, salt="x:"), m[5000:5100])
    assert not np.array_equal(hash_split(ids, 0.2, salt="y:"), m)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from brainlid.data.fixtures import write_algonauts, write_things_fmri

    d = tmp_path_factory.mktemp("data")
    write_things_fmri(d / "things_fmri", images_root=d / "things", betas_vol=False)
    write_algonauts(d / "algonauts_2023_challenge_data", n_train=60)
    return d


def test_things_fmri_end_to_end(data_dir, tmp_path, monkeypatch):
    from brainlid.data import things_fmri
    from brainlid.features import extract

    monkeypatch.setenv("BRAINLID_DATA", str(data_dir))
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    stim, brain = load_benchmark_data("things_fmri.sub-01.V1.encoding")
    _, full = things_fmri.load(data_dir / "things_fmri", subject=1)
    np.testing.assert_array_equal(np.sort(brain.splits["test"]), np.sort(full.splits["test"]))  # test = the test images
    assert brain.n_units == int(full.units["roi:V1"].sum()) and brain.noise_ceiling is not None
    res = serial.score(SMALL_MODEL, ["things_fmri.sub-01.V1.encoding", "things_fmri.sub-01.V1.rsa"], layers=["layer2", "layer3"],
                       store=False, baselines=False, return_result=True)
    s = res.scores
    enc = s[(s.metric == "encoding_r2") & (s.split == "test")]
    assert len(enc) == 2 and (enc.n_stimuli == brain.splits["test"].size).all()
    # the encoding ceiling is the fixture's true NC (snr² / (snr² + 1/n_test_reps)) averaged over the V1
    # voxels above the 0.1 floor; r rows divide by the mean of √NC
    from brainlid.data.fixtures import read_truth

    truth = read_truth(data_dir / "things_fmri", "things_fmri", 1)
    v1 = truth[f"roi_{list(truth['roi_names']).index('V1')}"]
    snr2 = truth["snr"][v1].astype(np.float64) ** 2
    nc = snr2 / (snr2 + 1.0 / int(truth["n_test_reps"]))
    kept = nc > 0.1
    assert (enc.n_units == kept.sum()).all()
    np.testing.assert_allclose(enc.ceiling, nc[kept].mean(), rtol=1e-4)
    enc_r = s[(s.metric == "encoding_r") & (s.split == "test")]
    np.testing.assert_allclose(enc_r.ceiling, np.sqrt(nc[kept]).mean(), rtol=1e-4)
    assert (enc.ceiling_method == "data").all() and (enc.ci_method == "stimulus-bootstrap").all()
    assert (enc.ci_low < enc.ci_high).all()
    rsa = s[(s.metric == "rsa_spearman") & (s.split == "test")]
    assert len(rsa) == 2 and (rsa.ci_low < rsa.value).all() and (rsa.value < rsa.ci_high).all()
    # the test images' repetitions give the split-half RDM ceiling
    from brainlid.alignment.ceiling import rdm_split_half_reliability

    _, rb = load_benchmark_data("things_fmri.sub-01.V1.rsa")
    reps = rb.meta["responses_with_reps"].select(stimuli=np.sort(rb.splits["test"]))
    want = rdm_split_half_reliability(reps.responses, "correlation", "spearman", n_splits=5, seed=0)
    assert np.allclose(rsa.ceiling, np.sqrt(max(want, 0)), atol=1e-6)  # a correlation ceiling: √r_sb
    assert (rsa.ceiling_method == "rdm-split-half-disattenuated").all()
    assert (rsa.ci_method == "stimulus-bootstrap-corrected").all()
    for bid, part in (("things_fmri.sub-01.V1.encoding", enc), ("things_fmri.sub-01.V1.rsa", rsa)):
        assert set(part.ceiling_method) == set(get_benchmark(bid).ceiling_methods)  # the definition says what rows do
    # normalised is disattenuated at the half level; that it calibrates is tested in test_calibration_rsa.py
    assert rsa.normalised.notna().all() == (want > 0.1)
    # the runner's numbers are those of the pure per-layer function on the same features
    feats = extract(SMALL_MODEL, stim, ["layer3"], progress=False)
    direct, _ = cell.score_features({"layer3": feats["layer3"]}, feats.stimulus_ids, "things_fmri.sub-01.V1.encoding", brain,
                                      model="m", geometry=False)
    want = direct[(direct.metric == "encoding_r2") & (direct.split == "test")].value.iloc[0]
    assert enc[enc.layer == "layer3"].value.iloc[0] == pytest.approx(want, abs=1e-6)
    assert set(res.geometry.stimulus_set) == {"things_fmri.sub-01.test"}
    assert (res.geometry.n == brain.splits["test"].size).all()


def test_algonauts2023_end_to_end(data_dir, tmp_path, monkeypatch):
    from brainlid.data import algonauts

    monkeypatch.setenv("BRAINLID_DATA", str(data_dir))
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    _, lh = load_benchmark_data("algonauts2023.subj01.lh.encoding")
    _, full = algonauts.load(data_dir / "algonauts_2023_challenge_data", subject=1)
    assert set(lh.units.hemisphere) == {"lh"} and lh.n_units == int((full.units.hemisphere == "lh").sum())
    ids = np.asarray(full.stimulus_ids)
    test = hash_split(ids, ALGONAUTS2023_TEST_FRACTION, salt="algonauts2023:")
    np.testing.assert_array_equal(lh.splits["test"], np.sort(ids[test]))
    np.testing.assert_array_equal(lh.splits["train"], np.sort(ids[~test]))
    _, v1 = load_benchmark_data("algonauts2023.subj01.V1v.encoding")
    assert v1.n_units == int(full.units["roi:V1v"].sum()) and v1.units["roi:V1v"].all()
    res = serial.score(SMALL_MODEL, "algonauts2023.subj01.lh.encoding", layers=["layer3"], store=False,
                       baselines=("shuffled",), return_result=True)
    s = res.scores[res.scores.split == "test"]
    assert set(s.metric) == {"encoding_r2", "encoding_r"} and (s.n_stimuli == test.sum()).all()
    assert s.ceiling.isna().all() and s.normalised.isna().all() and (s.ceiling_method == "none").all()
    # intervals resample the test stimuli; the stimulus-shuffled baseline's r interval covers 0
    assert (s.ci_method == "stimulus-bootstrap").all() and (s.ci_low < s.ci_high).all()
    sh = s[s.model.str.endswith("#shuffled") & (s.metric == "encoding_r")]
    assert len(sh) == 1 and sh.ci_low.iloc[0] <= 0 <= sh.ci_high.iloc[0]
    assert set(res.geometry.stimulus_set) == {"algonauts2023.subj01.test"}
    assert get_benchmark("algonauts2023.subj01.lh.encoding").ceiling == "none"


def test_time_resolved_rsa_rows_in_seconds_with_intervals():
    from brainlid.data import BrainData
    from brainlid.scoring.benchmarks import benchmark_from_braindata, unregister_benchmark

    rng = np.random.default_rng(0)
    n, d = 40, 6
    F = rng.standard_normal((n, d)).astype(np.float32)
    times = np.array([-0.1, 0.0, 0.1, 0.2])
    Y = np.stack([F @ rng.standard_normal((d, 12)) * (t > 0) + rng.standard_normal((n, 12)) for t in times], axis=-1)
    ids = np.array([f"s{i:02d}" for i in range(n)])
    brain = BrainData.from_arrays(Y.astype(np.float32), ids, times=times,
                                  splits={"train": ids[:20], "test": ids[20:]})
    b = benchmark_from_braindata("tr.sub-01.all.rsa", brain, metric="rsa", rsa_n_boot=100)
    try:
        scores, _ = cell.score_features({"f": F}, ids, b, brain, model="m", geometry=False)
    finally:
        unregister_benchmark(b.id)
    test = scores[scores.split == "test"].sort_values("time")
    np.testing.assert_allclose(test.time.to_numpy(), times)  # seconds from BrainData.times, not sample indices
    assert test.ci_low.notna().all() and (test.ci_low <= test.value).all() and (test.value <= test.ci_high).all()
    assert test.value.iloc[-1] > 0.3 and test.ci_high.iloc[0] < test.value.iloc[-1]


@pytest.mark.parametrize("bid, dataset", [("nsd.subj01.nsdgeneral.rsa", "nsd"), ("things_eeg2.sub-01.occipital.rsa", "things_eeg2")])
def test_rsa_rows_get_split_half_rdm_ceiling(bid, dataset, tmp_path, monkeypatch):
    """NSD and THINGS-EEG2 (per time point) RSA rows: ceiling = split-half RDM reliability of the test reps."""
    import pandas as pd

    from brainlid.alignment.ceiling import rdm_split_half_reliability
    from brainlid.data import fixtures
    from brainlid.scoring import benchmarks as bm

    getattr(fixtures, f"write_{dataset}")(tmp_path / dataset)
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path))
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    _, brain = load_benchmark_data(bid)
    reps = brain.meta[bm.REPS_META_KEY]
    assert reps.has_reps and not brain.has_reps and reps.n_units == brain.n_units
    _, enc = load_benchmark_data(bid.replace(".rsa", ".encoding"))
    assert bm.REPS_META_KEY not in enc.meta  # only RSA benchmarks keep the repetitions
    np.testing.assert_array_equal(brain.responses, enc.responses)  # keeping them leaves the averaged data unchanged
    X = np.random.default_rng(0).standard_normal((brain.n_stimuli, 12)).astype(np.float32)
    rows = pd.DataFrame(cell.score_layer(X, brain.stimulus_ids, brain, bid, model="m", layer="l", which=("test",)))
    test_ids = cell.make_splits(brain, bm.get_benchmark(bid))["test"]
    want = np.atleast_1d(rdm_split_half_reliability(reps.select(stimuli=test_ids).responses, n_splits=5, seed=0))
    assert len(rows) == want.size and np.allclose(rows["ceiling"], np.sqrt(np.clip(want, 0, None)), atol=1e-6)
    assert (rows["ceiling_method"] == "rdm-split-half-disattenuated").all()
    ok = want > 0.1  # the METHODS §6 floor; calibration of normalised: tests/test_calibration_rsa.py
    assert rows["normalised"][ok].notna().all() and rows["normalised"][~ok].isna().all()
