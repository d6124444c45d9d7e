"""Algonauts 2019 RDM loader on fixture copies (v7.3 and v5 RDM files, mat or JPEG stimuli) and bad copies."""

import h5py
import numpy as np
import pytest
from scipy.spatial.distance import squareform

from brainlid.alignment.brain_rdms import score_brain_rdms
from brainlid.alignment.ceiling import rdm_session_reliability
from brainlid.data import algonauts2019
from brainlid.data._matfile import write_v5
from brainlid.data.fixtures import read_truth, write_algonauts2019
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError


@pytest.fixture(scope="module")
def copy92(tmp_path_factory):
    root = tmp_path_factory.mktemp("alg19")
    write_algonauts2019(root, image_set="92", n_subjects=4, seed=3)
    return root


def _base(root, image_set="92"):
    return root / "Training_Data" / f"{image_set}_Image_Set"


def test_fmri_loads_with_reversed_axes(copy92):
    ds = algonauts2019.load(copy92, "92", "fmri")
    assert set(ds.rdms) == {"EVC", "IT"}
    it = ds["IT"]
    assert (it.n_subjects, it.n_sessions, it.n_stimuli) == (4, 1, 92)
    assert it.info["mat_version"] == "7.3"
    assert list(ds.stimuli.ids[:2]) == ["image_01", "image_02"] and ds.stimuli.ids[-1] == "image_92"
    # independent read: h5py sees (92, 92, 4); MATLAB's subjects x images x images is the transpose
    with h5py.File(_base(copy92) / "target_fmri.mat", "r") as f:
        raw = f["IT_RDMs"][()]
    assert raw.shape == (92, 92, 4)
    matlab = raw.T
    for s in range(4):
        np.testing.assert_allclose(it.square(s, 0), matlab[s], atol=1e-6)
    np.testing.assert_allclose(it.subject_rdms()[2], squareform(matlab[2], checks=False), rtol=1e-6)


def test_stimuli_from_mat_are_exact(copy92):
    truth = read_truth(copy92, "algonauts2019_92", 0)
    stim = algonauts2019.load_stimuli(copy92, "92")
    assert stim.metadata.name[0] == "image_01.jpg" and stim.metadata.file[91] == "image_92.jpg"
    np.testing.assert_array_equal(stim.image(17), truth["images"][17])


def test_meg_subjects_by_sessions(copy92):
    ds = algonauts2019.load(copy92, "92", "meg")
    assert set(ds.rdms) == {"MEG_early", "MEG_late"}
    late = ds["MEG_late"]
    assert (late.n_subjects, late.n_sessions) == (4, 2)
    rel = rdm_session_reliability(late)
    assert len(rel) == 4 and (rel.r > 0.2).all()  # both sessions share the IT structure


def test_v5_rdm_files_and_jpeg_only_give_the_same_rdms(tmp_path, copy92):
    """The same content written through another path (scipy v5 RDM files, JPEG stimuli only)."""
    write_algonauts2019(tmp_path, image_set="92", n_subjects=4, seed=3, fmri_version="5", meg_version="5", write_mat_images=False)
    a = algonauts2019.load(copy92, "92", "fmri")
    b = algonauts2019.load(tmp_path, "92", "fmri")
    assert b["IT"].info["mat_version"] == "5"
    np.testing.assert_array_equal(a["IT"].rdms, b["IT"].rdms)
    np.testing.assert_array_equal(a["EVC"].rdms, b["EVC"].rdms)
    assert list(a.stimuli.ids) == list(b.stimuli.ids)
    truth = read_truth(tmp_path, "algonauts2019_92", 0)
    img = b.stimuli.image(5).astype(float)
    assert img.shape == truth["images"][5].shape
    assert np.corrcoef(img.ravel(), truth["images"][5].ravel())[0, 1] > 0.95  # JPEG, quality 95
    m5 = algonauts2019.load(tmp_path, "92", "meg")
    m73 = algonauts2019.load(copy92, "92", "meg")
    np.testing.assert_array_equal(m5["MEG_early"].rdms, m73["MEG_early"].rdms)


def test_118_set_three_digit_ids(tmp_path):
    write_algonauts2019(tmp_path, image_set="118", n_subjects=2, image_size=16, write_mat_images=False, seed=1)
    ds = algonauts2019.load(tmp_path, "118")
    assert ds.stimuli.ids[0] == "image_001" and ds.stimuli.ids[-1] == "image_118"
    assert ds["EVC"].n_stimuli == 118


def test_truth_features_score_on_their_roi(copy92):
    ds = algonauts2019.load(copy92, "92", "fmri")
    truth = read_truth(copy92, "algonauts2019_92", 0)
    feats = {"evc": truth["evc_features"], "it": truth["it_features"]}
    it = score_brain_rdms(feats, ds.stimuli.ids, ds["IT"]).query("subject == 'mean'").set_index("layer")
    evc = score_brain_rdms(feats, ds.stimuli.ids, ds["EVC"]).query("subject == 'mean'").set_index("layer")
    assert it.value["it"] > it.value["evc"] + 0.2
    assert evc.value["evc"] > evc.value["it"] + 0.2
    per_subject = score_brain_rdms(feats, ds.stimuli.ids, ds["IT"]).query("subject != 'mean'")
    assert (0 < per_subject.ceiling_lower).all() and (per_subject.ceiling_lower < per_subject.ceiling_upper).all()
    assert (per_subject.ceiling_upper <= 1).all() and 0 < it.ceiling["it"] <= 1  # group-mean row: its own ceiling


def test_image_count_mismatch_is_named(tmp_path):
    write_algonauts2019(tmp_path, image_set="92", n_subjects=2, image_size=16, seed=2)
    (_base(tmp_path) / "92images" / "image_92.jpg").unlink()
    with pytest.raises(StimulusMismatchError, match="92images.mat names: 92.*image files: 91"):
        algonauts2019.load(tmp_path)


def test_rdm_vs_image_count_mismatch_is_named(tmp_path):
    write_algonauts2019(tmp_path, image_set="92", n_subjects=2, image_size=16, seed=2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 5))
    D = 1 - np.corrcoef(X)
    np.fill_diagonal(D, 0)
    write_v5(_base(tmp_path) / "target_fmri.mat", {"EVC_RDMs": np.stack([D, D]), "IT_RDMs": np.stack([D, D])})
    with pytest.raises(StimulusMismatchError, match="over 90 stimuli but the 92-image set has 92 images"):
        algonauts2019.load(tmp_path)


def test_asymmetric_rdm_in_file_rejected(tmp_path):
    write_algonauts2019(tmp_path, image_set="92", n_subjects=2, image_size=16, write_jpegs=False, seed=2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((92, 5))
    D = 1 - np.corrcoef(X)
    np.fill_diagonal(D, 0)
    bad = D.copy()
    bad[3, 7] += 0.5
    write_v5(_base(tmp_path) / "target_fmri.mat", {"EVC_RDMs": np.stack([D, D]), "IT_RDMs": np.stack([D, bad])})
    with pytest.raises(InputError, match=r"IT RDMs \(RDM sub-02, ses-1\) are not symmetric: D\[3, 7\]"):
        algonauts2019.load(tmp_path)


def test_c_order_hdf5_without_reversal_is_named(tmp_path):
    """An HDF5 file written from numpy in (subjects, n, n) order reads as (n, n, subjects): named, not misread."""
    write_algonauts2019(tmp_path, image_set="92", n_subjects=3, image_size=16, write_jpegs=False, seed=2)
    rng = np.random.default_rng(0)
    D = 1 - np.corrcoef(rng.standard_normal((92, 5)))
    np.fill_diagonal(D, 0)
    with h5py.File(_base(tmp_path) / "target_fmri.mat", "w") as f:
        f["EVC_RDMs"] = np.stack([D] * 3)
        f["IT_RDMs"] = np.stack([D] * 3)
    with pytest.raises(FileFormatError, match="not square.*subjects axis is last"):
        algonauts2019.load(tmp_path)


def test_check_and_bad_arguments(copy92, tmp_path):
    df = algonauts2019.check(copy92)
    s92 = df[df.space == "92"].set_index("item").status
    assert (s92 == "present").all()
    assert (df[df.space == "118"].status == "missing").all()
    assert "v7.3" in df[(df.space == "92") & (df.item == "target_fmri")].detail.item()
    with pytest.raises(InputError, match="image_set"):
        algonauts2019.load(copy92, "93")
    with pytest.raises(InputError, match="modality"):
        algonauts2019.load(copy92, "92", "eeg")
    with pytest.raises(DatasetNotFoundError, match="algonauts2019"):
        algonauts2019.load(tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="target_fmri.mat"):
        algonauts2019.load(copy92, "118")
