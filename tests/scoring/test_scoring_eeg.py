"""Time-resolved data (THINGS-EEG2 fixture through the real loader) flow to score rows with a time column and a score-vs-time plot."""

from __future__ import annotations

import numpy as np
import pytest

from brainlid import plotting
from brainlid.scoring import get_benchmark, load_benchmark_data
from brainlid.scoring.cell import score_features


@pytest.fixture(scope="module")
def eeg_root(tmp_path_factory):
    from brainlid.data.fixtures import write_things_eeg2

    return write_things_eeg2(tmp_path_factory.mktemp("things_eeg2"), raw=False, n_train_concepts=12,
                             n_train_per_concept=4, n_test=12, n_times=30)


def test_things_eeg2_benchmark_time_resolved(eeg_root, tmp_path):
    bench = get_benchmark("things_eeg2.sub-01.posterior.encoding")
    stimuli, brain = load_benchmark_data(bench, eeg_root)
    assert brain.times is not None and brain.splits["test"].size == 12 and brain.splits["train"].size == 48
    assert stimuli is not None and len(stimuli) == brain.n_stimuli
    rng = np.random.default_rng(0)
    feats = {"a": rng.standard_normal((brain.n_stimuli, 6)).astype(np.float32),
             "b": rng.standard_normal((brain.n_stimuli, 12)).astype(np.float32)}
    scores, geom = score_features(feats, brain.stimulus_ids, bench, brain, model="rand")
    test = scores[(scores.split == "test") & (scores.metric == "encoding_r")]
    # one row per layer and time point, with the times of the data and the ceiling per time
    assert len(test) == 2 * brain.n_times
    np.testing.assert_allclose(np.sort(test[test.layer == "a"]["time"].to_numpy()), brain.times)
    assert test["ceiling"].notna().all()
    assert scores.loc[scores.selected, "layer"].nunique() == 1
    assert len(geom) and set(geom["stimulus_set"]) == {"things_eeg2.sub-01.test"}
    png = tmp_path / "time.png"
    plotting.score_vs_time(scores, benchmark=bench.id, stem=tmp_path / "time")
    assert png.exists() and png.with_suffix(".svg").exists()


def test_missing_subject_names_what_to_fetch(eeg_root):
    from brainlid.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="sub-03"):
        load_benchmark_data("things_eeg2.sub-03.posterior.encoding", eeg_root)
