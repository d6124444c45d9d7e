"""THINGS-EEG2 loader on fixtures: preprocessed dicts, image metadata, raw BrainVision through MNE."""

from __future__ import annotations

import re
import shutil

import mne
import numpy as np
import pytest
from scipy.io import loadmat

from brainlid.data.reliability import split_half_reliability
from brainlid.data import things_eeg2
from brainlid.data.fixtures import read_truth, write_things_eeg2
from brainlid.data.fixtures._things import EEG2_CHANNELS
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError

PREP = "eeg_dataset/preprocessed_data/sub-01"


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("things_eeg2")
    write_things_eeg2(root, seed=1)
    return root


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Enough images for the ceiling to be estimated well; no raw data."""
    root = tmp_path_factory.mktemp("things_eeg2_big")
    write_things_eeg2(root, n_train_concepts=40, n_train_per_concept=5, n_test=40, n_test_reps=20, raw=False, seed=2)
    return root


def _npy(path):
    return np.load(path, allow_pickle=True).item()  # the test's own fixture file


def test_ids_pair_with_conditions_and_reps_are_averaged(fx):
    d = _npy(fx / PREP / "preprocessed_eeg_training.npy")
    meta = _npy(fx / "image_set/image_metadata.npy")
    stimuli, brain = things_eeg2.load(fx, subject=1, split="train")
    want_ids = [f.rsplit(".", 1)[0] for f in meta["train_img_files"]]
    np.testing.assert_array_equal(brain.stimulus_ids, want_ids)
    assert brain.responses.dtype == np.float32 and brain.responses.shape == (len(want_ids), 17, 100)
    np.testing.assert_allclose(brain.responses, d["preprocessed_eeg_data"].mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(brain.times, np.arange(100) * 0.01 - 0.2, atol=1e-9)
    assert list(brain.units["channel"]) == EEG2_CHANNELS
    assert brain.units["roi:occipital"].sum() == 3 and brain.units["roi:parieto-occipital"].sum() == 5
    assert np.isfinite(brain.units.loc[brain.units.channel == "Oz", ["x", "y", "z"]].to_numpy()).all()
    np.testing.assert_array_equal(brain.n_reps, 4)
    # the stimulus set pairs each row with its image file
    np.testing.assert_array_equal(stimuli.ids, brain.stimulus_ids)
    assert stimuli.metadata["concept"].iloc[0] == meta["train_img_concepts"][0]
    assert str(stimuli.reader.paths[5]).endswith(f"{meta['train_img_concepts'][5]}/{meta['train_img_files'][5]}")
    assert stimuli.image(5).shape == (16, 16, 3)


def test_test_split_kept_reps_and_both(fx):
    d = _npy(fx / PREP / "preprocessed_eeg_test.npy")
    meta = _npy(fx / "image_set/image_metadata.npy")
    kept = things_eeg2.load_brain(fx, 1, "test", average_reps=False)
    assert kept.has_reps and kept.responses.shape == d["preprocessed_eeg_data"].shape
    np.testing.assert_allclose(kept.responses, d["preprocessed_eeg_data"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(kept.stimulus_ids, [f[:-4] for f in meta["test_img_files"]])
    both = things_eeg2.load_brain(fx, "sub-01", "both")
    assert set(both.splits) == {"train", "test"}
    is_test = np.isin(both.stimulus_ids, both.splits["test"])
    np.testing.assert_array_equal(both.stimulus_ids[is_test], kept.stimulus_ids)
    np.testing.assert_allclose(both.responses[is_test], kept.responses.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both.noise_ceiling, things_eeg2.load_brain(fx, 1, "test").noise_ceiling)
    with pytest.raises(InputError, match="average_reps"):
        things_eeg2.load_brain(fx, 1, "both", average_reps=False)


def test_noise_ceiling_vs_generative_truth(big):
    truth = read_truth(big, "things_eeg2", 1)
    times = truth["times"]
    for split in ("train", "test"):
        brain = things_eeg2.load_brain(big, 1, split)
        nc, true = brain.noise_ceiling, truth[f"nc_{split}"]
        assert nc.shape == (17, 100) and nc.min() >= 0 and nc.max() <= 1
        post = (times >= 0.08) & (times <= 0.35)
        assert np.abs(nc[:, post] - true[:, post]).mean() < 0.06, split
        assert np.corrcoef(nc.ravel(), true.ravel())[0, 1] > 0.9, split
        assert nc[:, times < -0.05].mean() < 0.1  # nothing before onset


def test_noise_ceiling_goes_through_the_ceiling_module_in_blocks(fx):
    d = _npy(fx / PREP / "preprocessed_eeg_test.npy")["preprocessed_eeg_data"]
    whole = np.clip(split_half_reliability(d, rep_axis=1, n_splits=10, seed=0), 0, 1)
    blocks = things_eeg2.eeg_noise_ceiling(d, n_splits=10, seed=0, chunk_bytes=d[:, :, 0, :7].nbytes)  # 7 samples a block
    np.testing.assert_allclose(blocks, whole, atol=1e-6)
    np.testing.assert_allclose(things_eeg2.load_brain(fx, 1, "test").noise_ceiling, whole, atol=1e-6)


def test_other_shapes_are_read_not_assumed(tmp_path):
    names = [f"E{i}" for i in range(63)]
    write_things_eeg2(tmp_path, n_train_concepts=3, n_train_per_concept=2, n_test=4, n_test_reps=6, ch_names=names, n_times=250, sfreq=250.0, raw=False)
    brain = things_eeg2.load_brain(tmp_path, 1, "test")
    assert brain.responses.shape == (4, 63, 250)
    np.testing.assert_allclose(brain.times[[0, -1]], [-0.2, 0.796], atol=1e-9)


def _rewrite(path, **changes):
    d = _npy(path)
    for k, v in changes.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    np.save(path, d, allow_pickle=True)


def test_bad_files_give_specific_errors(fx, tmp_path):
    bad = shutil.copytree(fx, tmp_path / "bad")
    p = bad / PREP / "preprocessed_eeg_test.npy"
    orig = _npy(p)
    _rewrite(p, times=None)
    with pytest.raises(FileFormatError, match=r"preprocessed_eeg_test\.npy lacks key\(s\) \['times'\]"):
        things_eeg2.load_brain(bad, 1, "test")
    _rewrite(p, times=orig["times"], ch_names=orig["ch_names"][:-1])
    with pytest.raises(FileFormatError, match=r"preprocessed_eeg_test\.npy: 16 ch_names but .* 17 channels"):
        things_eeg2.load_brain(bad, 1, "test")
    _rewrite(p, ch_names=orig["ch_names"], times=orig["times"][:-3])
    with pytest.raises(FileFormatError, match=r"preprocessed_eeg_test\.npy: 97 times but .* 100 samples"):
        things_eeg2.load_brain(bad, 1, "test")
    _rewrite(p, times=orig["times"], preprocessed_eeg_data=orig["preprocessed_eeg_data"][:-1])
    with pytest.raises(StimulusMismatchError, match="preprocessed_eeg_test.npy has 5 image conditions but the test image list has 6"):
        things_eeg2.load_brain(bad, 1, "test")
    np.save(bad / "not_a_dict.npy", np.zeros(3))
    with pytest.raises(FileFormatError, match="does not hold a dict"):
        things_eeg2.read_npy_dict(bad / "not_a_dict.npy", bad)
    with pytest.raises(InputError, match="refusing to unpickle"):
        things_eeg2.read_npy_dict(fx / PREP / "preprocessed_eeg_test.npy", bad)
    with pytest.raises(DatasetNotFoundError, match="things_eeg2"):
        things_eeg2.load_brain(fx, 7, "train")
    with pytest.raises(InputError):
        things_eeg2.load_brain(fx, 1, "validation")


# --------------------------------------------------------------------------- raw path
def _reference_raw(root, split="train", sfreq=100.0):
    """A straightforward MNE pipeline written here: epochs, baseline, resample, numpy averaging."""
    codes_all, data_all = [], []
    for vhdr in sorted((root / "eeg_dataset/source_data/sub-01").glob(f"ses-*/eeg/*task-{split}*_eeg.vhdr")):
        beh = vhdr.parent.parent / "beh" / vhdr.name.replace("_eeg.vhdr", "_beh.mat")
        raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
        events, ids = mne.events_from_annotations(raw, verbose="error")
        keep = np.isin(events[:, 2], [v for k, v in ids.items() if k.startswith("Stimulus/")])
        events = events[keep]
        codes = np.asarray(loadmat(beh)["data"][0][0][2]["tot_img_number"][0].tolist(), dtype=float).ravel().astype(int)
        events[:, 2] = codes
        events = events[codes != 0]
        raw.pick([c for c in raw.ch_names if re.match(r"^O *|^P *", c)])
        ep = mne.Epochs(raw, events, tmin=-0.2, tmax=0.8, baseline=(None, 0), preload=True, verbose="error")
        ep.resample(sfreq, verbose="error")
        data_all.append(ep.get_data())
        codes_all.append(ep.events[:, 2])
    data, codes = np.concatenate(data_all), np.concatenate(codes_all)
    conds = np.unique(codes)
    return conds, np.stack([data[codes == c].mean(axis=0) for c in conds]), ep.times, ep.ch_names


def test_raw_pipeline_matches_reference(fx):
    conds, ref, times, ch = _reference_raw(fx, "train")
    stimuli, brain = things_eeg2.load(fx, 1, "train", source="raw", mvnn=False)
    assert brain.meta["source"] == "raw" and list(brain.units["channel"]) == ch == EEG2_CHANNELS
    meta = _npy(fx / "image_set/image_metadata.npy")
    np.testing.assert_array_equal(brain.stimulus_ids, [meta["train_img_files"][c - 1][:-4] for c in conds])
    np.testing.assert_allclose(brain.times, times)
    assert brain.responses.shape == ref.shape == (18, 17, 100)
    # float32 output vs the float64 reference: within 1e-5 of the signal's range
    assert np.abs(brain.responses - ref).max() <= 1e-5 * np.abs(ref).max()
    np.testing.assert_array_equal(brain.n_reps, 2)  # once per session, 2 sessions
    np.testing.assert_array_equal(stimuli.ids, brain.stimulus_ids)


def test_raw_recovers_the_evoked_signal_and_keeps_reps(fx):
    truth = read_truth(fx, "things_eeg2", 1)
    brain = things_eeg2.load_brain(fx, 1, "test", source="raw", average_reps=False)
    assert brain.has_reps and brain.responses.shape[:2] == (6, 6)  # 3 reps per session x 2 sessions
    avg = np.nanmean(brain.responses, axis=1) * 1e6  # volts -> µV
    post = (brain.times >= 0.05) & (brain.times <= 0.5)

    def r_at(shift):  # the truth at 1 kHz, sampled at the output times shifted by `shift` samples
        idx = np.clip(np.round((brain.times + 0.2) * 1000).astype(int) + 10 * shift, 0, 999)
        return np.corrcoef(avg[:, :, post].ravel(), truth["raw_signal_test"][:, :, idx][:, :, post].ravel())[0, 1]

    # 6 repetitions only, and in RSVP (200 ms SOA) each epoch also holds its neighbours' responses
    assert r_at(0) > 0.65, r_at(0)
    assert r_at(0) > r_at(3) + 0.05 and r_at(0) > r_at(-3) + 0.05  # aligned in time


def test_mvnn_whitens_a_known_covariance():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    cov = A @ A.T + 0.5 * np.eye(5)
    L = np.linalg.cholesky(cov)
    data = np.einsum("cd,ndt->nct", L, rng.standard_normal((40, 5, 400)))
    codes = np.repeat(np.arange(1, 11), 4)
    W = things_eeg2.mvnn_whitener(data, codes, dim="epochs")
    np.testing.assert_allclose(W, W.T, atol=1e-10)
    np.testing.assert_allclose(W @ cov @ W, np.eye(5), atol=0.15)  # 400 samples per covariance: little shrinkage


def test_mvnn_matches_the_authors_recipe():
    """Reference: scikit-learn's shrinkage covariance (LDA's ``_cov(shrinkage='auto')``) averaged as
    in the THINGS-EEG2 code, then ``scipy.linalg.fractional_matrix_power(sigma, -0.5)``."""
    from scipy.linalg import fractional_matrix_power
    from sklearn.discriminant_analysis import _cov

    rng = np.random.default_rng(1)
    data = rng.standard_normal((12, 4, 30)) * np.array([1.0, 2.0, 0.5, 1.5])[None, :, None]
    data[:, 1] += 0.7 * data[:, 0]
    codes = np.repeat(np.arange(1, 5), 3)
    for dim in ("epochs", "time"):
        sig = []
        for c in np.unique(codes):
            cd = data[codes == c]
            if dim == "time":
                sig.append(np.mean([_cov(cd[:, :, t], shrinkage="auto") for t in range(cd.shape[2])], axis=0))
            else:
                sig.append(np.mean([_cov(e.T, shrinkage="auto") for e in cd], axis=0))
        ref = np.real(fractional_matrix_power(np.mean(sig, axis=0), -0.5))
        np.testing.assert_allclose(things_eeg2.mvnn_whitener(data, codes, dim=dim), ref, rtol=1e-6, atol=1e-9)


def test_raw_with_mvnn_runs_and_is_whitened(fx):
    brain = things_eeg2.load_brain(fx, 1, "test", source="raw", mvnn=True, average_reps=False)
    assert brain.meta["mvnn"] and brain.meta["units"].startswith("whitened")
    resid = brain.responses - np.nanmean(brain.responses, axis=1, keepdims=True)
    var = np.nanvar(resid, axis=(0, 1, 3))
    assert 0.2 < var.mean() < 5  # unit-scale, not volts


def test_raw_without_expected_events(fx, tmp_path):
    bad = shutil.copytree(fx, tmp_path / "bad")
    vmrk = next((bad / "eeg_dataset/source_data/sub-01/ses-01/eeg").glob("*task-test_eeg.vmrk"))
    lines = vmrk.read_text(encoding="utf-8").splitlines()
    vmrk.write_text("\n".join(l for l in lines if ",S " not in l and "Stimulus" not in l) + "\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"sub-01_ses-01_task-test_eeg\.vhdr has no stimulus events"):
        things_eeg2.load_brain(bad, 1, "test", source="raw")
    # one marker fewer than the behavioural file lists
    vmrk.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"task-test_eeg\.vhdr has \d+ stimulus events, but .*beh\.mat lists"):
        things_eeg2.load_brain(bad, 1, "test", source="raw")


def test_check_reports_files(fx, tmp_path):
    df = things_eeg2.check(fx, subject=1)
    assert (df["status"] == "present").all(), df
    assert things_eeg2.check(tmp_path, subject=1)["status"].eq("missing").all()


def test_distinct_half_splits_by_enumeration():
    from itertools import combinations

    for n in range(2, 8):
        h = n // 2
        seen = set()
        for a in combinations(range(n), h):
            rest = [i for i in range(n) if i not in a]
            for b in combinations(rest, h):
                seen.add(frozenset([a, b]))
        assert things_eeg2.distinct_half_splits(n) == len(seen), n
