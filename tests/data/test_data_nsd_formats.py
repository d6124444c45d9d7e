"""Readers of NSD's auxiliary formats: ctab text, nsd_expdesign.mat, MGH vectors, chunk-run planning."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy.io import savemat

from brainlid.data import nsd
from brainlid.data._mat import index_runs, read_ctab, read_expdesign, read_mgh_vector
from brainlid.data.fixtures import write_nsd
from brainlid.errors import FileFormatError


def test_read_ctab_whitespace_tolerant(tmp_path):
    p = tmp_path / "prf-visualrois.mgz.ctab"
    p.write_text("# comment\n0 Unknown\n1 V1v\t    \n  2   V1d  \n\n3\tV2v 120 20 30 0\r\n7 hV4\t\n")
    assert read_ctab(p) == {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v", 7: "hV4"}
    p.write_text("0 Unknown\nx V1v\n")
    with pytest.raises(FileFormatError, match=r":2: expected '<code> <name>'"):
        read_ctab(p)
    p.write_text("1 A\n1 B\n")
    with pytest.raises(FileFormatError, match="defined twice"):
        read_ctab(p)
    p.write_text("\n")
    with pytest.raises(FileFormatError, match="no labels"):
        read_ctab(p)


def test_read_expdesign(tmp_path):
    p = tmp_path / "d.mat"
    savemat(p, {"masterordering": np.array([[3.0, 1.0, 2.0]]), "subjectim": np.arange(1.0, 25.0).reshape(8, 3),
                "sharedix": np.array([[1.0]]), "stimpattern": np.zeros((40, 12, 75))})
    d = read_expdesign(p)
    assert d["masterordering"].tolist() == [3, 1, 2] and d["masterordering"].dtype == np.int64
    assert d["subjectim"].shape == (8, 3) and d["sharedix"].tolist() == [1]
    savemat(p, {"masterordering": np.array([[0.0, 1.0]]), "subjectim": np.ones((8, 3)), "sharedix": np.ones((1, 1))})
    with pytest.raises(FileFormatError, match="masterordering must hold 1-based"):
        read_expdesign(p)
    savemat(p, {"masterordering": np.array([[4.0]]), "subjectim": np.ones((8, 3)), "sharedix": np.ones((1, 1))})
    with pytest.raises(FileFormatError, match="refers to image 4"):
        read_expdesign(p)
    savemat(p, {"subjectim": np.ones((8, 3))})
    with pytest.raises(FileFormatError, match="lacks the variable"):
        read_expdesign(p)
    (tmp_path / "bad.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(FileFormatError, match="MATLAB"):
        read_expdesign(tmp_path / "bad.mat")


def test_read_mgh_vector(tmp_path):
    x = np.arange(10, dtype=np.float32)
    nib.save(nib.MGHImage(x.reshape(10, 1, 1), np.eye(4)), str(tmp_path / "a.mgh"))
    np.testing.assert_array_equal(read_mgh_vector(tmp_path / "a.mgh"), x)
    nib.save(nib.MGHImage(np.zeros((10, 1, 1, 3), np.float32), np.eye(4)), str(tmp_path / "b.mgh"))
    with pytest.raises(FileFormatError, match="surface map"):
        read_mgh_vector(tmp_path / "b.mgh")


def test_index_runs():
    idx = np.array([2, 3, 4, 7, 8, 20])
    assert index_runs(idx, 1) == [(0, 3, 2, 5), (3, 5, 7, 9), (5, 6, 20, 21)]
    assert index_runs(idx, 3) == [(0, 5, 2, 9), (5, 6, 20, 21)]
    assert index_runs(np.array([], dtype=int)) == []
    # every index lies in its run
    for a, b, lo, hi in index_runs(idx, 2):
        assert (idx[a:b] >= lo).all() and (idx[a:b] < hi).all()


def test_roi_labels_without_ctab_fall_back_to_published_codes(tmp_path):
    write_nsd(tmp_path, subjects=(1,), n_images=12, n_shared=3, n_sessions=2, shape=(6, 7, 5), spaces=("func1pt8mm",),
              n_total=300, seed=7)
    _, ref = nsd.load(tmp_path, subject=1, roi=["V1", "EBA"], images=False)
    shutil.rmtree(tmp_path / "nsddata/freesurfer")
    with pytest.warns(UserWarning, match="no .mgz.ctab for floc-bodies, prf-visualrois"):
        _, b = nsd.load(tmp_path, subject=1, roi=["V1", "EBA"], images=False)
    np.testing.assert_array_equal(b.responses, ref.responses)
    assert b.meta["labels_without_ctab"] == ["floc-bodies", "prf-visualrois"]
