"""NSD loader on fixtures written in the real formats: ids, scaling, axis order, z-scoring, repetitions,
ROIs, noise ceiling, splits, spaces and the errors on bad copies."""

from __future__ import annotations

import warnings

import h5py
import nibabel as nib
import numpy as np
import pytest
from scipy.io import savemat

from brainlid.data.reliability import nc_from_ncsnr
from brainlid.data import nsd
from brainlid.data.fixtures import read_truth, write_nsd
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError

SHAPE = (10, 12, 8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("nsd")
    write_nsd(r, subjects=(1, 3), n_images=40, n_shared=8, n_sessions={1: 4, 3: 3}, shape=SHAPE,
              spaces=("func1pt8mm", "func1mm", "nativesurface", "fsaverage"), volume_formats=("hdf5", "nifti"),
              n_total=5000, seed=3)
    return r


def _flat(units):
    X, Y, Z = SHAPE
    return units["i"].to_numpy() * Y * Z + units["j"].to_numpy() * Z + units["k"].to_numpy()


def _expected_trials(truth, space, cols, zscore):
    """(n_trials, n_units) float64 from the truth: stored-value rounding, optional per-session z-score."""
    psc = truth[f"{space}_psc"].astype(np.float64)[:, cols]
    if space != "fsaverage":
        psc = np.round(psc * 300) / 300
    if zscore:
        T = int(truth["trials_per_session"])
        out = np.empty_like(psc)
        for s in range(psc.shape[0] // T):
            blk = psc[s * T:(s + 1) * T]
            sd = blk.std(axis=0)
            out[s * T:(s + 1) * T] = np.where(sd > 0, (blk - blk.mean(axis=0)) / np.where(sd > 0, sd, 1), 0)
        psc = out
    return psc


def _expected_reps(truth, ids, trials):
    """Kept repetitions (n_stim, max_rep, n_units), chronological, NaN-padded (a float64 brute force)."""
    tid = truth["trial_ids"]
    counts = np.array([(tid == i).sum() for i in ids])
    out = np.full((ids.size, counts.max(), trials.shape[1]), np.nan)
    for s, i in enumerate(ids):
        rows = np.flatnonzero(tid == i)
        out[s, : rows.size] = trials[rows]
    return out, counts


@pytest.mark.parametrize("zscore", [False, True])
def test_volume_trials_match_truth(root, zscore):
    truth = read_truth(root, "nsd", 1)
    stim, brain = nsd.load(root, subject=1, roi="nsdgeneral", zscore=zscore, average_reps=False)
    ids = np.unique(truth["trial_ids"])
    np.testing.assert_array_equal(stim.ids, ids)
    np.testing.assert_array_equal(brain.stimulus_ids, ids)
    exp, counts = _expected_reps(truth, ids, _expected_trials(truth, "func1pt8mm", _flat(brain.units), zscore))
    np.testing.assert_array_equal(brain.n_reps, counts)
    assert brain.has_reps and brain.responses.dtype == np.float32
    np.testing.assert_allclose(brain.responses, exp, atol=2e-5 if zscore else 1e-6, equal_nan=True)
    if not zscore:  # ÷300 scaling: values are PSC within rounding of the true PSC
        psc = truth["func1pt8mm_psc"][:, _flat(brain.units)]
        assert np.abs(brain.responses[0, 0] - psc[np.flatnonzero(truth["trial_ids"] == ids[0])[0]]).max() <= 1 / 600 + 1e-6


def test_average_reps_equals_mean_of_kept(root):
    _, kept = nsd.load(root, subject=3, roi=["V1", "EBA"], average_reps=False, images=False)
    _, avg = nsd.load(root, subject=3, roi=["V1", "EBA"], images=False)
    assert not avg.has_reps and avg.responses.shape == (kept.n_stimuli, kept.n_units)
    np.testing.assert_allclose(avg.responses, np.nanmean(kept.responses.astype(np.float64), axis=1), atol=1e-5)
    # subject 3 completed 3 of 4 sessions: ragged repetitions, NaN-padded
    assert set(np.unique(kept.n_reps)) > {3}
    pad = np.isnan(kept.responses[:, :, 0])
    np.testing.assert_array_equal((~pad).sum(axis=1), kept.n_reps)


def test_roi_membership_from_label_files(root):
    _, b = nsd.load(root, subject=1, roi=["V1", "hV4", "floc-bodies:FBA-1", "prf-visualrois"], images=False)
    lab = np.asarray(nib.load(root / "nsddata/ppdata/subj01/func1pt8mm/roi/prf-visualrois.nii.gz").dataobj)
    bod = np.asarray(nib.load(root / "nsddata/ppdata/subj01/func1pt8mm/roi/floc-bodies.nii.gz").dataobj)
    i, j, k = (b.units[c].to_numpy() for c in "ijk")
    np.testing.assert_array_equal(b.units["roi:V1"], np.isin(lab[i, j, k], [1, 2]))  # V1v=1, V1d=2 (ctab)
    np.testing.assert_array_equal(b.units["roi:hV4"], lab[i, j, k] == 7)
    np.testing.assert_array_equal(b.units["roi:floc-bodies:FBA-1"], bod[i, j, k] == 2)
    np.testing.assert_array_equal(b.units["roi:prf-visualrois"], lab[i, j, k] > 0)
    # the union of the requested ROIs, nothing else
    union = (lab > 0) | (bod == 2)
    assert len(b.units) == int(union.sum())
    # hemisphere from lh./rh. files: LPI, so low i is left
    assert set(b.units.loc[b.units["i"] < SHAPE[0] // 2, "hemisphere"]) == {"lh"}
    assert set(b.units.loc[b.units["i"] >= SHAPE[0] // 2, "hemisphere"]) == {"rh"}
    assert b.select(roi="hV4").n_units == int((lab == 7).sum())


def test_unknown_roi_lists_valid(root):
    with pytest.raises(InputError, match=r"unknown ROI 'V9'.*valid:.*EBA.*V1.*hV4.*nsdgeneral"):
        nsd.load(root, subject=1, roi="V9", images=False)
    assert {"V1", "V2", "V3", "FFA-1", "ventral", "nsdgeneral"} <= set(nsd.available_rois(root, 1, "fsaverage"))


def test_noise_ceiling_uses_shared_formula(root):
    truth = read_truth(root, "nsd", 3)
    _, b = nsd.load(root, subject=3, images=False)
    snr = truth["func1pt8mm_snr"][_flat(b.units)]
    np.testing.assert_allclose(b.units["ncsnr"], snr, rtol=1e-6)
    test_reps = b.n_reps[np.isin(b.stimulus_ids, b.splits["test"])]
    a = np.mean(1.0 / test_reps)
    np.testing.assert_allclose(b.noise_ceiling, snr**2 / (snr**2 + a), rtol=1e-5)  # closed form
    np.testing.assert_allclose(b.noise_ceiling, nc_from_ncsnr(snr, test_reps), rtol=1e-6)
    assert 0 <= b.noise_ceiling.min() and b.noise_ceiling.max() <= 1


def test_recovers_generative_signal(root):
    """Averaged z-scored responses track the known signal as well as the ceiling allows."""
    truth = read_truth(root, "nsd", 1)
    _, b = nsd.load(root, subject=1, roi="nsdgeneral", images=False)
    cols = _flat(b.units)
    pos = np.searchsorted(truth["ids10k"], b.stimulus_ids, sorter=np.argsort(truth["ids10k"]))
    sig = truth["func1pt8mm_signal"][np.argsort(truth["ids10k"])[pos]][:, cols]
    r = np.array([np.corrcoef(b.responses[:, u], sig[:, u])[0, 1] for u in range(b.n_units)])
    snr = truth["func1pt8mm_snr"][cols]
    expect = np.sqrt(snr**2 / (snr**2 + 1 / 3))
    assert abs(r.mean() - expect.mean()) < 0.08
    assert np.corrcoef(r, snr)[0, 1] > 0.5


def test_splits(root):
    truth = read_truth(root, "nsd", 1)
    _, b = nsd.load(root, subject=1, images=False)
    np.testing.assert_array_equal(b.splits["test"], np.intersect1d(truth["sharedix"], b.stimulus_ids))
    assert np.intersect1d(b.splits["train"], b.splits["test"]).size == 0
    assert b.splits["train"].size + b.splits["test"].size == b.n_stimuli
    _, a = nsd.load(root, subject=1, split="algonauts", images=False)
    T = int(truth["trials_per_session"])
    tid = truth["trial_ids"]
    early, late = tid[:T], tid[T:]  # 4 sessions: the first 4-3 = 1 session is train
    np.testing.assert_array_equal(a.splits["train"], np.unique(early))
    late_only = np.setdiff1d(late, early)
    shared_full = [i for i in np.intersect1d(late_only, truth["sharedix"]) if (late == i).sum() == 3]
    np.testing.assert_array_equal(a.splits["test"], np.union1d(np.setdiff1d(late_only, truth["sharedix"]), shared_full))
    with pytest.raises(InputError, match="split"):
        nsd.load(root, subject=1, split="random", images=False)


def test_nifti_equals_hdf5_and_func1mm(root):
    _, h = nsd.load(root, subject=1, roi="streams", fmt="hdf5", images=False, zscore=False)
    _, n = nsd.load(root, subject=1, roi="streams", fmt="nifti", images=False, zscore=False)
    np.testing.assert_array_equal(h.responses, n.responses)
    assert h.meta["fmt"] == "hdf5"
    _, m = nsd.load(root, subject=1, space="func1mm", roi="nsdgeneral", images=False)
    assert m.space == "func1mm" and m.n_units > 0


def test_surfaces(root):
    truth = read_truth(root, "nsd", 1)
    V = truth["nativesurface_psc"].shape[1] // 2
    _, b = nsd.load(root, subject=1, space="nativesurface", roi="nsdgeneral", zscore=False, average_reps=False, images=False)
    cols = b.units["vertex"].to_numpy() + np.where(b.units["hemisphere"] == "rh", V, 0)
    exp, _ = _expected_reps(truth, b.stimulus_ids, _expected_trials(truth, "nativesurface", cols, False))
    np.testing.assert_allclose(b.responses, exp, atol=1e-6, equal_nan=True)  # int16 / 300
    lab = np.asarray(nib.load(root / "nsddata/freesurfer/subj01/label/rh.nsdgeneral.mgz").dataobj).ravel()
    np.testing.assert_array_equal(b.units.loc[b.units["hemisphere"] == "rh", "vertex"], np.flatnonzero(lab == 1))

    Vf = truth["fsaverage_psc"].shape[1] // 2
    with pytest.warns(UserWarning, match="NaN"):
        _, f = nsd.load(root, subject=1, space="fsaverage", roi="nsdgeneral", zscore=False, average_reps=False, images=False)
    cols = f.units["vertex"].to_numpy() + np.where(f.units["hemisphere"] == "rh", Vf, 0)
    assert not truth["fsaverage_mask"][cols].any() and f.meta["dropped_nan_units"] == int(truth["fsaverage_mask"].sum())
    exp, _ = _expected_reps(truth, f.stimulus_ids, _expected_trials(truth, "fsaverage", cols, False))
    np.testing.assert_allclose(f.responses, exp, atol=1e-6, equal_nan=True)  # float PSC, not ÷300
    assert np.isfinite(f.noise_ceiling).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, lh = nsd.load(root, subject=1, space="fsaverage", roi="nsdgeneral", hemisphere="lh", images=False)
    assert set(lh.units["hemisphere"]) == {"lh"}


def test_images_and_metadata(root):
    stim, brain = nsd.load(root, subject=1, roi="V1")
    with h5py.File(root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "r") as f:
        np.testing.assert_array_equal(stim.image(3), f["imgBrick"][stim.ids[3]])
    import pandas as pd

    csv = pd.read_csv(root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv", index_col=0)
    np.testing.assert_array_equal(stim.metadata["cocoId"], csv["cocoId"].to_numpy()[stim.ids])
    np.testing.assert_array_equal(stim.metadata["shared1000"], csv["shared1000"].to_numpy()[stim.ids])
    np.testing.assert_array_equal(stim.metadata["n_reps"], brain.n_reps)
    assert brain.dataset == "nsd" and brain.subject == "subj01"


def test_handwritten_copy_axis_order_and_index_base(tmp_path):
    """A copy written here with raw scipy/h5py/nibabel calls (not the fixture writer): the loader must
    transpose MATLAB's HDF5 axis order and subtract the 1-based indices."""
    X, Y, Z, T = 4, 5, 3, 6
    # design: 2 sessions of T trials; image numbers 1-based into subjectim, whose values are 1-based 73k ids
    mo = np.array([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], dtype=float)
    subjectim = np.tile(np.arange(1.0, 7.0), (8, 1))
    subjectim[0] = [101, 205, 3, 57, 1000, 73000]
    exp_dir = tmp_path / "nsddata/experiments/nsd"
    exp_dir.mkdir(parents=True)
    savemat(exp_dir / "nsd_expdesign.mat", {"masterordering": mo[None], "subjectim": subjectim, "sharedix": np.array([[101.0]])})
    # betas: int16 value encodes voxel and trial, stored in MATLAB order (T, Z, Y, X)
    vol = np.zeros((X, Y, Z, T), dtype=np.int16)
    for i, j, k, t in np.ndindex(X, Y, Z, T):
        vol[i, j, k, t] = 1000 * i + 100 * j + 10 * k + t
    bdir = tmp_path / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True)
    for sess in (1, 2):
        with h5py.File(bdir / f"betas_session{sess:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=np.transpose(vol + 5 * (sess - 1), (3, 2, 1, 0)), chunks=(T, 1, 1, 1))
    rdir = tmp_path / "nsddata/ppdata/subj01/func1pt8mm/roi"
    rdir.mkdir(parents=True)
    lab = -np.ones((X, Y, Z))
    lab[3, 1, 2] = 1
    lab[0, 4, 0] = 1
    lab[2, 2, 1] = 0
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(rdir / "nsdgeneral.nii.gz"))
    stim, b = nsd.load(tmp_path, subject=1, zscore=False, average_reps=False, images=False)
    # 73k ids are 1-based in the file: 3 → id 2 ... 73000 → id 72999
    np.testing.assert_array_equal(b.stimulus_ids, [2, 56, 100, 204, 999, 72999])
    assert b.n_reps.tolist() == [2] * 6
    assert list(zip(b.units["i"], b.units["j"], b.units["k"])) == [(0, 4, 0), (3, 1, 2)]
    # trial 0 of session 1 shows image 1 → 73k id 101 → stimulus id 100 (position 2 of the sorted ids)
    expect_first = np.array([1000 * 0 + 100 * 4 + 0, 1000 * 3 + 100 * 1 + 10 * 2]) / 300
    np.testing.assert_allclose(b.responses[2, 0], expect_first, rtol=1e-6)
    np.testing.assert_allclose(b.responses[2, 1], expect_first + 5 / 300, rtol=1e-6)  # its session-2 repeat
    # image 6 (73000) is trial 5 of each session
    np.testing.assert_allclose(b.responses[5, 0, 1], (3100 + 20 + 5) / 300, rtol=1e-6)
    np.testing.assert_array_equal(b.splits["test"], [100])


# ------------------------------------------------------------------------------------ bad copies
@pytest.fixture()
def small(tmp_path):
    write_nsd(tmp_path, subjects=(1,), n_images=20, n_shared=4, n_sessions=3, shape=(6, 7, 5),
              spaces=("func1pt8mm",), volume_formats=("hdf5", "nifti"), n_total=500, seed=1)
    return tmp_path


def test_error_root_subject_space(small, tmp_path_factory):
    with pytest.raises(DatasetNotFoundError, match="root folder does not exist"):
        nsd.load(tmp_path_factory.mktemp("empty") / "nope")
    with pytest.raises(InputError, match="subject 9 out of range"):
        nsd.load(small, subject=9)
    with pytest.raises(InputError, match="unknown NSD space"):
        nsd.load(small, space="func2mm")
    with pytest.raises(DatasetNotFoundError, match=r"fsaverage .*session files.*has func1pt8mm"):
        nsd.load(small, space="fsaverage")
    with pytest.raises(DatasetNotFoundError, match="nsd_stimuli.hdf5"):
        (small / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5").unlink()
        nsd.load(small)
    nsd.load(small, images=False)  # fine without the brick when asked


def test_error_missing_and_truncated_session(small):
    bdir = small / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    p2 = bdir / "betas_session02.hdf5"
    data = p2.read_bytes()
    p2.unlink()
    _, mixed = nsd.load(small, images=False, zscore=False)  # auto: session 2 falls back to its NIfTI twin
    _, ref = nsd.load(small, images=False, zscore=False, fmt="nifti")
    np.testing.assert_array_equal(mixed.responses, ref.responses)
    n2 = bdir / "betas_session02.nii.gz"
    n2_bytes = n2.read_bytes()
    n2.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"betas_session02\.hdf5.*brainlid datasets"):
        nsd.load(small, images=False)
    _, b = nsd.load(small, sessions=[1, 3], images=False)
    assert b.meta["sessions"] == [1, 3]
    with pytest.raises(DatasetNotFoundError, match="session02"):
        nsd.load(small, sessions=[1, 2], images=False)
    n2.write_bytes(n2_bytes)
    p2.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FileFormatError, match=r"betas_session02\.hdf5"):
        nsd.load(small, images=False)
    df = nsd.check(small, subject=1)
    row = df[df["item"] == "betas_session02.hdf5"]
    assert row["status"].tolist() == ["unreadable"]
    n3 = bdir / "betas_session03.nii.gz"
    n3.write_bytes(n3.read_bytes()[:-200])
    with pytest.raises(FileFormatError, match=r"betas_session03\.nii\.gz"):
        nsd.load(small, fmt="nifti", images=False)


def test_error_missing_expdesign(small):
    (small / "nsddata/experiments/nsd/nsd_expdesign.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"experimental design not found: .*nsd_expdesign\.mat \(dataset card 'nsd'\)"):
        nsd.load(small, images=False)


def test_error_expdesign_mismatch(small):
    p = small / "nsddata/experiments/nsd/nsd_expdesign.mat"
    from scipy.io import loadmat

    d = loadmat(p)
    savemat(p, {"masterordering": d["masterordering"][:, :30], "subjectim": d["subjectim"], "sharedix": d["sharedix"]})
    with pytest.raises(StimulusMismatchError, match="expdesign/betas mismatch"):
        nsd.load(small, images=False)


def test_check_and_summary(root):
    df = nsd.check(root)
    assert list(df.columns) == ["subject", "space", "item", "status", "detail"]
    s1 = df[(df["subject"] == 1) & (df["space"] == "func1pt8mm")]
    assert (s1["status"] == "present").all()
    assert s1["item"].str.contains("betas_session").sum() == 4
    lines = nsd.summarize(df)
    assert any(line.startswith("subject 3:") and "func1pt8mm 3 sessions" in line and "ncsnr present" in line for line in lines)
    missing = nsd.check(root / "nope")
    assert missing["status"].tolist() == ["missing"]


def test_legacy_mat_session_files(small):
    """Older copies hold betas_sessionNN.mat (MATLAB v7.3 = HDF5 with the same /betas)."""
    _, ref = nsd.load(small, images=False, fmt="hdf5")
    bdir = small / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    for p in bdir.glob("betas_session*.hdf5"):
        p.rename(p.with_suffix(".mat"))
    _, b = nsd.load(small, images=False, fmt="hdf5")
    np.testing.assert_array_equal(b.responses, ref.responses)


def test_volume_hemisphere_and_whole_grid(root):
    _, both = nsd.load(root, subject=1, roi="nsdgeneral", images=False)
    _, lh = nsd.load(root, subject=1, roi="nsdgeneral", hemisphere="lh", images=False)
    keep = (both.units["hemisphere"] == "lh").to_numpy()
    assert 0 < lh.n_units < both.n_units
    np.testing.assert_array_equal(lh.responses, both.responses[:, keep])
    with pytest.warns(UserWarning, match="constant"):
        _, grid = nsd.load(root, subject=1, roi=None, images=False)
    assert grid.n_units == int(np.prod(SHAPE)) and grid.meta["constant_units"] > 0
