"""Time-resolved plumbing: THINGS-EEG2 BrainData → encoding and RSA scores per time point.

Images of a THINGS-EEG2 fixture are read through the loader's StimulusSet, turned into features by
the fixture's known pixel → feature map, shuffled (so only the stimulus-id join can pair them with
the EEG rows), and scored against the time-resolved responses. The generative model has no
stimulus information before onset and most around 100–300 ms; the scores must show that, per time point.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainlid.alignment.encoding import brain_encoding_scores, encoding_scores
from brainlid.alignment.rsa import rdm, rsa_timecourse
from brainlid.data import match_ids, things_eeg2
from brainlid.data.fixtures import write_things_eeg2
from brainlid.data.fixtures._model import feature_map


@pytest.fixture(scope="module")
def eeg(tmp_path_factory):
    root = tmp_path_factory.mktemp("things_eeg2_tr")
    write_things_eeg2(root, n_train_concepts=30, n_train_per_concept=4, n_test=30, n_train_reps=4, n_test_reps=20, n_times=20, sfreq=20.0, raw=False, seed=4)
    stimuli, brain = things_eeg2.load(root, split="both")
    images = np.stack(stimuli.images())
    # the fixture's feature map on the decoded JPEGs (the writer saw the exact pixels); its seed is the writer's
    F = feature_map(images, 8, seed=4)
    perm = np.random.default_rng(0).permutation(len(stimuli))
    return brain, F[perm].astype(np.float32), stimuli.ids[perm]


ALPHAS = np.logspace(-1, 3, 5)


@pytest.fixture(scope="module")
def enc(eeg):
    brain, X, ids = eeg
    return brain_encoding_scores(X, ids, brain, n_folds=3, alphas=ALPHAS)


def test_encoding_scores_per_time_point(eeg, enc):
    brain, X, ids = eeg
    df = enc
    n_ch, n_t = brain.n_units, brain.n_times
    assert len(df) == n_ch * n_t and set(df["time"]) == set(range(n_t))
    r = df.pivot(index="unit", columns="time", values="r").to_numpy()  # (channel, time index)
    times = brain.times  # the table's `time` is the index into brain.times
    post = (times >= 0.08) & (times <= 0.32)
    pre = times < -0.02
    assert r[:, post].mean() > 0.6, r[:, post].mean()
    assert abs(r[:, pre].mean()) < 0.15
    # the ceiling is per channel and time: normalised scores exist where it is above the floor
    assert df["ceiling"].notna().all()
    kept = df[df["kept"]]
    assert len(kept) > 0 and np.isfinite(kept["normalised"]).all()
    ceiling = df.pivot(index="unit", columns="time", values="ceiling").to_numpy()
    assert ceiling[:, post].mean() > 0.5 > ceiling[:, pre].mean()


def test_join_is_by_id_not_row_order(eeg, enc):
    brain, X, ids = eeg
    # by hand: brain rows put in the features' order with a dict (not the library's join), explicit split
    row_of = {sid: i for i, sid in enumerate(brain.stimulus_ids)}
    Yf = brain.responses[[row_of[sid] for sid in ids]]
    train = np.isin(ids, brain.splits["train"])
    s = encoding_scores(X, Yf, train=np.flatnonzero(train), test=np.flatnonzero(~train), n_folds=3, alphas=ALPHAS)
    assert s.r.shape == (brain.n_units, brain.n_times)
    np.testing.assert_allclose(enc.pivot(index="unit", columns="time", values="r").to_numpy(), s.r, atol=1e-5)


def test_rsa_per_time_point(eeg):
    brain, X, ids = eeg
    is_test = np.isin(brain.stimulus_ids, brain.splits["test"])
    idx_f, idx_b = match_ids(ids, brain.stimulus_ids[is_test])
    Y = brain.responses[is_test][idx_b]
    scores = rsa_timecourse(Y, X[idx_f], rdm_method="correlation", compare="spearman")
    assert scores.shape == (brain.n_times,)
    times = brain.times
    assert scores[(times >= 0.08) & (times <= 0.32)].mean() > 0.3
    assert abs(scores[times < -0.02].mean()) < 0.15
    # a time point's score is the Spearman correlation of that time point's RDM with the feature RDM
    from scipy.stats import spearmanr

    t = int(np.argmin(np.abs(times - 0.17)))
    ref = spearmanr(rdm(Y[:, :, t], "correlation"), rdm(X[idx_f], "correlation"))[0]
    assert scores[t] == pytest.approx(ref, abs=1e-6)
