"""THINGS-fMRI loader on fixtures in the real formats (pandas fixed-format HDF store, metadata CSVs, betas_vol)."""

from __future__ import annotations

import os
import pickle
import tracemalloc
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from brainlid.data.reliability import split_half_reliability
from brainlid.data import things_fmri
from brainlid.data.fixtures import read_truth, write_things_fmri
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError

CSV = "derivatives/betas_csv"


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("things_fmri")
    images = tmp_path_factory.mktemp("things")
    write_things_fmri(root, images_root=images, seed=3)
    return root, images


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """More test images and sessions, for the noise-ceiling check."""
    root = tmp_path_factory.mktemp("things_fmri_big")
    write_things_fmri(root, n_train_concepts=10, n_sessions=6, n_test=40, grid=(6, 6, 5), betas_vol=False, seed=5)
    return root


def _reference(root):
    """Independent reference: pandas reads the whole (small) table; average trials per image with groupby."""
    table = pd.read_hdf(root / CSV / "sub-01_ResponseData.h5", key="ResponseData")
    stim = pd.read_csv(root / CSV / "sub-01_StimulusMetadata.csv")
    vox = pd.read_csv(root / CSV / "sub-01_VoxelMetadata.csv")
    values = table.drop(columns="voxel_id").to_numpy().T  # (trials, voxels)
    stems = stim["stimulus"].str.replace(".jpg", "", regex=False)
    means = pd.DataFrame(values).groupby(stems.to_numpy()).mean()
    return table, stim, vox, values, stems, means


def test_ids_pair_with_rows_and_reps_are_averaged(fx):
    root, _ = fx
    table, stim, vox, values, stems, means = _reference(root)
    stimuli, brain = things_fmri.load(root, subject=1)
    assert brain.responses.dtype == np.float32
    assert brain.responses.shape == (stems.nunique(), len(vox))
    np.testing.assert_allclose(brain.responses, means.loc[brain.stimulus_ids].to_numpy(), rtol=1e-5, atol=1e-7)
    counts = stems.value_counts()
    np.testing.assert_array_equal(brain.n_reps, counts.loc[brain.stimulus_ids].to_numpy())
    # splits from trial_type: train images once, test images once per session
    train = set(stems[stim.trial_type == "train"])
    test = set(stems[stim.trial_type == "test"])
    assert set(brain.splits["train"]) == train and set(brain.splits["test"]) == test
    assert np.all(brain.n_reps[np.isin(brain.stimulus_ids, list(test))] == stim.session.nunique())
    assert np.all(brain.n_reps[np.isin(brain.stimulus_ids, list(train))] == 1)
    # the stimulus set has the same ids in the same order, and its images are the THINGS files
    np.testing.assert_array_equal(stimuli.ids, brain.stimulus_ids)
    assert stimuli.reader is None  # no THINGS images under the default root
    np.testing.assert_array_equal(brain.units["voxel_id"], table["voxel_id"])


def test_images_join_through_the_things_folder(fx):
    root, images = fx
    stimuli, brain = things_fmri.load(root, subject=1, roi="V1", images=images)
    assert stimuli.reader is not None
    i = int(np.nonzero(stimuli.ids == brain.splits["test"][0])[0][0])
    img = stimuli.image(i)
    assert img.dtype == np.uint8 and img.shape == (16, 16, 3)
    assert os.path.basename(stimuli.reader.paths[i]).startswith(brain.splits["test"][0])


def test_kept_reps_and_split_selection(fx):
    root, _ = fx
    _, _, _, values, stems, means = _reference(root)
    brain = things_fmri.load_brain(root, 1, average_reps=False, split="test")
    n_ses = 4
    assert brain.has_reps and brain.responses.shape[:2] == (len(brain.splits["test"]), n_ses)
    assert list(brain.splits) == ["test"]
    np.testing.assert_allclose(np.nanmean(brain.responses, axis=1), means.loc[brain.stimulus_ids].to_numpy(), rtol=1e-5, atol=1e-7)
    # each kept repetition is one trial of that image, in trial order
    sid = brain.stimulus_ids[0]
    trials = np.nonzero(stems.to_numpy() == sid)[0]
    np.testing.assert_allclose(brain.responses[0], values[trials], rtol=1e-6)
    train = things_fmri.load_brain(root, 1, average_reps=False, split="train")
    assert train.responses.shape[1] == 1 and list(train.splits) == ["train"]
    assert train.meta["noise_ceiling_column"] == "nc_singletrial"


def test_roi_selection_including_names_with_newlines(fx):
    root, _ = fx
    truth = read_truth(root, "things_fmri", 1)
    names = list(truth["roi_names"])
    full = things_fmri.load_brain(root, 1)
    v1 = things_fmri.load_brain(root, 1, roi="V1")
    mask = truth[f"roi_{names.index('V1')}"]
    assert v1.n_units == mask.sum() and np.all(v1.units["voxel_x"] == 0)
    np.testing.assert_array_equal(v1.responses, full.responses[:, mask])
    k = names.index("glasser-p9-46v")
    g = things_fmri.load_brain(root, 1, roi="glasser-p9-46v")  # the column is 'glasser-p9-\n46v'
    np.testing.assert_array_equal(g.units["voxel_id"], full.units["voxel_id"][truth[f"roi_{k}"]])
    assert "roi:glasser-p9-46v" in full.units.columns and "roi:LO1 (prf)" in full.units.columns
    both = things_fmri.load_brain(root, 1, roi=["V1", "v2"])  # union, case-insensitive
    assert both.n_units == (mask | truth[f"roi_{names.index('V2')}"]).sum()
    # ROI columns survive: BrainData.select works on them
    np.testing.assert_array_equal(full.select(roi="V1").responses, v1.responses)
    with pytest.raises(InputError, match="available: .*glasser-p9-46v"):
        things_fmri.load_brain(root, 1, roi="V7")


def test_noise_ceiling_percent_to_fraction(fx):
    root, _ = fx
    truth = read_truth(root, "things_fmri", 1)
    snr = truth["snr"]
    n = int(truth["n_test_reps"])
    avg = things_fmri.load_brain(root, 1)
    np.testing.assert_allclose(avg.noise_ceiling, snr**2 / (snr**2 + 1 / n), rtol=1e-5)
    assert avg.meta["noise_ceiling_column"] == "nc_testset"
    single = things_fmri.load_brain(root, 1, noise_ceiling="singletrial")
    np.testing.assert_allclose(single.noise_ceiling, snr**2 / (snr**2 + 1), rtol=1e-5)
    assert things_fmri.load_brain(root, 1, noise_ceiling=None).noise_ceiling is None


def test_metadata_ceiling_agrees_with_the_data(big):
    """The test-set ceiling the loader attaches matches the split-half reliability of the test repetitions."""
    brain = things_fmri.load_brain(big, 1, average_reps=False, split="test")
    rel = split_half_reliability(brain.responses, rep_axis=1, n_splits=50, seed=0)
    nc = things_fmri.load_brain(big, 1).noise_ceiling
    assert np.corrcoef(rel, nc)[0, 1] > 0.85
    assert abs(float(np.mean(np.clip(rel, 0, 1)) - np.mean(nc))) < 0.08


def test_betas_vol_gives_the_same_object(fx):
    root, _ = fx
    a = things_fmri.load_brain(root, 1, roi=["V1", "IT"])
    b = things_fmri.load_brain(root, 1, roi=["V1", "IT"], source="betas_vol")
    np.testing.assert_array_equal(a.stimulus_ids, b.stimulus_ids)
    np.testing.assert_allclose(a.responses, b.responses, rtol=1e-6)
    np.testing.assert_array_equal(a.n_reps, b.n_reps)
    assert {k: list(v) for k, v in a.splits.items()} == {k: list(v) for k, v in b.splits.items()}
    kept = things_fmri.load_brain(root, 1, source="betas_vol", average_reps=False, split="test")
    np.testing.assert_allclose(kept.responses, things_fmri.load_brain(root, 1, average_reps=False, split="test").responses, rtol=1e-6)


def test_read_response_rows_matches_pandas_in_any_order(fx):
    root, _ = fx
    path = root / CSV / "sub-01_ResponseData.h5"
    table = pd.read_hdf(path, key="ResponseData").drop(columns="voxel_id").to_numpy()
    rows = np.array([40, 3, 4, 5, 70, 3, 0])
    for chunk in (1, 8 * table.shape[1] * 2, 1 << 20):  # one row per batch, 2 rows per batch, all at once
        out = things_fmri.read_response_rows(path, rows, chunk_bytes=chunk)
        np.testing.assert_allclose(out, table[rows], rtol=1e-6)
    out = things_fmri.read_response_rows(path, np.arange(10, 20), trials=[5, 1])
    np.testing.assert_allclose(out, table[10:20][:, [5, 1]], rtol=1e-6)
    info = things_fmri.response_table_info(path)
    assert info == {"n_voxels": table.shape[0], "n_trials": table.shape[1], "dtype": "float64"}


def test_read_rows_memory_is_bounded(tmp_path):
    """Reading an ROI allocates the float32 output plus one bounded float64 buffer (tracemalloc sees numpy)."""
    n_vox, n_trials = 4000, 300
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((n_vox, n_trials)), columns=list(range(n_trials)))
    frame.insert(0, "voxel_id", np.arange(n_vox))
    path = tmp_path / "sub-01_ResponseData.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_hdf(path, key="ResponseData", mode="w")
    rows = np.sort(rng.choice(n_vox, 1500, replace=False))
    out_bytes = rows.size * n_trials * 4
    tracemalloc.start()
    out = things_fmri.read_response_rows(path, rows)  # default buffer: min(64 MB, output / 8)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_allclose(out, frame.drop(columns="voxel_id").to_numpy()[rows], rtol=1e-6)
    assert peak <= 2 * out_bytes, (peak, out_bytes)


def test_label_unpickler_refuses_code():
    payload = pickle.dumps(os.system)
    import io

    with pytest.raises(pickle.UnpicklingError):
        things_fmri._LabelUnpickler(io.BytesIO(payload)).load()
    labels = pickle.dumps(np.array(["voxel_id", 0, 1], dtype=object))
    assert list(things_fmri._LabelUnpickler(io.BytesIO(labels)).load()) == ["voxel_id", 0, 1]


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_bad_copies_give_specific_errors(fx, tmp_path):
    root, _ = fx
    bad = _copy(root, tmp_path / "bad")
    stim_path = bad / CSV / "sub-01_StimulusMetadata.csv"
    pd.read_csv(stim_path).iloc[:-1].to_csv(stim_path, index=False)
    with pytest.raises(StimulusMismatchError, match="sub-01_StimulusMetadata.csv"):
        things_fmri.load_brain(bad, 1)
    bad2 = _copy(root, tmp_path / "bad2")
    vox_path = bad2 / CSV / "sub-01_VoxelMetadata.csv"
    pd.read_csv(vox_path).iloc[:-2].to_csv(vox_path, index=False)
    with pytest.raises(StimulusMismatchError, match="sub-01_VoxelMetadata.csv"):
        things_fmri.load_brain(bad2, 1, roi="V1")
    bad3 = _copy(root, tmp_path / "bad3")
    table = pd.read_hdf(bad3 / CSV / "sub-01_ResponseData.h5")
    table.columns = [str(c) for c in table.columns]
    table.to_hdf(bad3 / CSV / "sub-01_ResponseData.h5", key="ResponseData", mode="w", format="table")
    with pytest.raises(FileFormatError, match="table"):
        things_fmri.load_brain(bad3, 1)
    with h5py.File(bad3 / CSV / "sub-01_ResponseData.h5", "w") as f:
        f.create_dataset("other", data=np.zeros(3))
    with pytest.raises(FileFormatError, match="no key 'ResponseData'"):
        things_fmri.load_brain(bad3, 1)
    with pytest.raises(DatasetNotFoundError, match="things_fmri"):
        things_fmri.load_brain(root, 2)
    with pytest.raises(InputError):
        things_fmri.load_brain(root, 1, source="csv")
    stim = pd.read_csv(root / CSV / "sub-01_StimulusMetadata.csv")
    stim.loc[0, "trial_type"] = "catch"
    bad4 = _copy(root, tmp_path / "bad4")
    stim.to_csv(bad4 / CSV / "sub-01_StimulusMetadata.csv", index=False)
    with pytest.raises(FileFormatError, match="trial_type"):
        things_fmri.load_brain(bad4, 1)


def test_check_reports_files(fx, tmp_path):
    root, _ = fx
    df = things_fmri.check(root, subject=1)
    assert list(df.columns) == ["subject", "space", "item", "status", "detail"]
    assert (df["status"] == "present").all()
    assert df.loc[df["item"].str.endswith("ResponseData.h5"), "detail"].iloc[0].endswith("(float64)")
    empty = things_fmri.check(tmp_path, subject=1)
    assert (empty["status"] == "missing").all()
