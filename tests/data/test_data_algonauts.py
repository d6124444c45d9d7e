"""Algonauts 2023 loader on fixtures in the release format (and one hand-written copy)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from brainlid.data import algonauts
from brainlid.data.fixtures import read_truth, write_algonauts
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("algo")
    return write_algonauts(r, subjects=(1, 2), n_train=24, n_test=5, n_fsaverage=120, seed=4)


def test_load_matches_files_and_truth(root):
    truth = read_truth(root, "algonauts2023", 1)
    stim, brain = algonauts.load(root, subject=1)
    np.testing.assert_array_equal(stim.ids, truth["train_ids"])
    np.testing.assert_array_equal(brain.stimulus_ids, truth["train_ids"])
    lh = np.load(root / "subj01/training_split/training_fmri/lh_training_fmri.npy")
    rh = np.load(root / "subj01/training_split/training_fmri/rh_training_fmri.npy")
    np.testing.assert_array_equal(brain.responses, np.concatenate([lh, rh], axis=1))
    assert brain.responses.dtype == np.float32 and brain.splits["train"].size == 24
    # challenge vertices: mask != 0 (2 marks overlaps and must count)
    mask = np.load(root / "subj01/roi_masks/lh.all-vertices_fsaverage_space.npy")
    assert (mask == 2).any()
    lhu = brain.units[brain.units["hemisphere"] == "lh"]
    np.testing.assert_array_equal(lhu["fsaverage_vertex"], np.flatnonzero(mask != 0))
    np.testing.assert_array_equal(lhu["vertex"], np.arange(lh.shape[1]))
    # image i is file train-{i+1:04d}_nsd-{id:05d}.png
    assert stim.metadata["file"][3] == f"train-0004_nsd-{truth['train_ids'][3]:05d}.png"
    np.testing.assert_array_equal(stim.image(3), np.asarray(Image.open(root / "subj01/training_split/training_images" / stim.metadata["file"][3]).convert("RGB")))
    test = stim_test = algonauts.load(root, subject=1).extra["test_stimuli"]
    np.testing.assert_array_equal(stim_test.ids, truth["test_ids"])
    assert len(test) == 5
    # the responses track the generative signal
    r = [np.corrcoef(brain.responses[:, u], truth["signal"][:, u])[0, 1] for u in range(brain.n_units)]
    snr = truth["snr"]
    assert np.corrcoef(r, snr)[0, 1] > 0.4 and np.mean(r) > 0.5


def test_rois(root):
    _, b = algonauts.load(root, subject=2, roi=["EBA", "V1v", "floc-faces:FFA-1"], hemisphere="rh")
    lab_b = np.load(root / "subj02/roi_masks/rh.floc-bodies_challenge_space.npy")
    lab_v = np.load(root / "subj02/roi_masks/rh.prf-visualrois_challenge_space.npy")
    lab_f = np.load(root / "subj02/roi_masks/rh.floc-faces_challenge_space.npy")
    want = (lab_b == 1) | (lab_v == 1) | (lab_f == 2)
    np.testing.assert_array_equal(b.units["vertex"], np.flatnonzero(want))
    np.testing.assert_array_equal(b.units["roi:EBA"], (lab_b == 1)[want])
    assert set(b.units["hemisphere"]) == {"rh"}
    rh = np.load(root / "subj02/training_split/training_fmri/rh_training_fmri.npy")
    np.testing.assert_array_equal(b.responses, rh[:, want])
    _, full = algonauts.load(root, subject=2)
    assert {"roi:V1v", "roi:ventral", "roi:FFA-1"} <= set(full.units.columns)
    with pytest.raises(InputError, match=r"unknown ROI 'FFA-9'.*valid:.*EBA"):
        algonauts.load(root, subject=2, roi="FFA-9")


def test_mapping_only_inside_root(root, tmp_path):
    outside = tmp_path / "mapping.npy"
    np.save(outside, {0: "Unknown"}, allow_pickle=True)
    with pytest.raises(FileFormatError, match="outside the dataset root"):
        algonauts.read_mapping(outside, root)
    link = root / "subj01/roi_masks/mapping_evil.npy"
    link.symlink_to(outside)
    try:
        with pytest.raises(FileFormatError, match="outside the dataset root"):
            algonauts.read_mapping(link, root)
    finally:
        link.unlink()
    assert algonauts.read_mapping(root / "subj01/roi_masks/mapping_streams.npy", root)[5] == "ventral"


def test_errors(tmp_path):
    r = write_algonauts(tmp_path, subjects=(1,), n_train=8, n_test=2, n_fsaverage=40, seed=1)
    with pytest.raises(InputError, match="out of range"):
        algonauts.load(r, subject=0)
    with pytest.raises(DatasetNotFoundError, match=r"subject 3 folder.*subj01"):
        algonauts.load(r, subject=3)
    imgs = sorted((r / "subj01/training_split/training_images").iterdir())
    imgs[-1].unlink()
    with pytest.raises(StimulusMismatchError, match="has 8 rows but"):
        algonauts.load(r, subject=1)
    imgs[2].unlink()
    with pytest.raises(FileFormatError, match="row numbers"):
        algonauts.load(r, subject=1)
    (r / "subj01/training_split/training_fmri/lh_training_fmri.npy").unlink()
    df = algonauts.check(r)
    assert df.loc[df["item"] == "lh_training_fmri.npy", "status"].tolist() == ["missing"]
    assert df.loc[df["item"] == "training_images", "status"].tolist() == ["unreadable"]


def test_check_summary(root):
    df = algonauts.check(root)
    assert (df["status"] == "present").all()
    lines = algonauts.summarize(df)
    assert lines[0].startswith("subject 1: 24 images, fMRI lh+rh, test 5 images, ROI classes prf-visualrois")


def test_fsaverage_and_challenge_masks_agree(root):
    _, b = algonauts.load(root, subject=1)
    fs = algonauts.read_roi_masks(root, 1, "fsaverage")
    ch = algonauts.read_roi_masks(root, 1, "challenge")
    assert fs["mappings"]["floc-faces"][2] == "FFA-1" and len(fs["masks"]) == 12
    for h in ("lh", "rh"):
        u = b.units[b.units["hemisphere"] == h]
        for cls in algonauts.ROI_CLASSES:
            np.testing.assert_array_equal(fs["masks"][(h, cls)][u["fsaverage_vertex"]], ch["masks"][(h, cls)][u["vertex"]])
            outside = np.setdiff1d(np.arange(fs["masks"][(h, cls)].size), u["fsaverage_vertex"])
            assert (fs["masks"][(h, cls)][outside] == 0).all()
        np.testing.assert_array_equal(u["roi:FFA-1"], ch["masks"][(h, "floc-faces")][u["vertex"]] == 2)
    with pytest.raises(InputError, match="space must be"):
        algonauts.read_roi_masks(root, 1, "native")
