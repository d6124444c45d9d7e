"""MATLAB files: v5 vs v7.3 detection, reading both through either entry point, the v7.3 writer, bad files."""

import h5py
import numpy as np
import pytest
import scipy.io

from brainlid.data._matfile import loadmat, mat_version, read_v5, read_v73, write_v5, write_v73
from brainlid.errors import DatasetNotFoundError, FileFormatError


@pytest.fixture
def values():
    rng = np.random.default_rng(0)
    return {
        "A3": rng.random((3, 4, 5)).astype(np.float32),
        "D": rng.random((2, 7)),
        "U8": rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
        "s": "hello",
        "st": {"x": np.arange(6.0).reshape(2, 3), "name": "abc"},
    }


def test_v73_writer_looks_like_matlab(tmp_path, values):
    p = write_v73(tmp_path / "a.mat", values)
    head = p.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    assert p.read_bytes()[512:520] == b"\x89HDF\r\n\x1a\n"
    with open(p, "rb") as fh:
        assert scipy.io.matlab.matfile_version(fh) == (2, 0)
    with pytest.raises(NotImplementedError):  # scipy recognises it as v7.3, as with MATLAB's own files
        scipy.io.loadmat(p)
    with h5py.File(p, "r") as f:
        assert f.userblock_size == 512
        assert f["A3"].shape == (5, 4, 3)  # MATLAB 3x4x5 seen reversed
        assert f["A3"].attrs["MATLAB_class"] == b"single"
        assert f["s"].attrs["MATLAB_class"] == b"char"
        assert f["st"].attrs["MATLAB_class"] == b"struct"
        np.testing.assert_array_equal(f["A3"][()].T, values["A3"])
    assert mat_version(p) == "7.3"


def _check_same(out, values):
    np.testing.assert_array_equal(out["A3"], values["A3"])
    assert out["A3"].dtype == np.float32
    np.testing.assert_array_equal(out["D"], values["D"])
    np.testing.assert_array_equal(out["U8"], values["U8"])
    assert out["U8"].dtype == np.uint8
    assert out["s"] == "hello"
    np.testing.assert_array_equal(out["st"]["x"], values["st"]["x"])
    assert out["st"]["name"] == "abc"


@pytest.mark.parametrize("writer", [write_v73, write_v5])
@pytest.mark.parametrize("reader", [loadmat, read_v5, read_v73])
def test_every_reader_reads_every_version(tmp_path, values, writer, reader):
    """A v7.3 file handed to the v5 reader (and the reverse) is detected and read correctly."""
    p = writer(tmp_path / "a.mat", values)
    _check_same(reader(p), values)


def test_versions_detected(tmp_path, values):
    assert mat_version(write_v5(tmp_path / "b.mat", values)) == "5"
    scipy.io.savemat(tmp_path / "c.mat", {"x": np.ones(3)}, format="4")
    assert mat_version(tmp_path / "c.mat") == "4"
    np.testing.assert_array_equal(loadmat(tmp_path / "c.mat")["x"], np.ones(3))


def test_plain_hdf5_written_by_another_path(tmp_path):
    """A file written by h5py without MATLAB's userblock (e.g. re-saved by a script) in MATLAB's axis convention."""
    rng = np.random.default_rng(1)
    matlab_order = rng.random((6, 5, 5))
    p = tmp_path / "plain.mat"
    with h5py.File(p, "w") as f:
        f["X"] = matlab_order.T  # column-major writer: axes reversed on disk
    assert mat_version(p) == "hdf5"
    out = loadmat(p)
    np.testing.assert_array_equal(out["X"], matlab_order)


def test_cells_and_logicals_v73(tmp_path):
    p = write_v73(tmp_path / "c.mat", {"c": ["ab", np.arange(3.0)], "b": np.array([[True, False, True]])})
    out = loadmat(p)
    assert out["c"][0] == "ab"
    np.testing.assert_array_equal(out["c"][1], np.arange(3.0))
    np.testing.assert_array_equal(out["b"], [True, False, True])
    assert out["b"].dtype == bool


def test_variable_selection_and_missing_variable(tmp_path, values):
    for writer in (write_v5, write_v73):
        p = writer(tmp_path / f"v{writer.__name__}.mat", values)
        assert set(loadmat(p, ["D"])) == {"D"}
        with pytest.raises(FileFormatError, match="no variable.*IT_RDMs.*has: .*A3"):
            loadmat(p, ["IT_RDMs"])


def test_bad_files_are_named(tmp_path, values):
    with pytest.raises(DatasetNotFoundError, match="not found"):
        loadmat(tmp_path / "nope.mat")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty"):
        mat_version(tmp_path / "empty.mat")
    (tmp_path / "text.mat").write_text("this is not a mat file at all" * 40)
    with pytest.raises(FileFormatError, match="not a MATLAB .mat file"):
        loadmat(tmp_path / "text.mat")
    p = write_v73(tmp_path / "t.mat", values)
    (tmp_path / "trunc.mat").write_bytes(p.read_bytes()[:300])  # header, no HDF5 superblock
    with pytest.raises(FileFormatError, match="truncated or corrupt"):
        loadmat(tmp_path / "trunc.mat")
    (tmp_path / "trunc2.mat").write_bytes(p.read_bytes()[:2000])  # superblock, missing data
    with pytest.raises(FileFormatError):
        loadmat(tmp_path / "trunc2.mat")


def _matlab_struct_array_v73(path, names, pixels):
    """A 1 x n struct array written the way MATLAB -v7.3 does: a 'struct' group whose fields are
    n x 1 (h5py) datasets of object references into '#refs#', without MATLAB_class on the fields."""
    n = len(names)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        g = f.create_group("visual_stimuli")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        name_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        pix_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        for i in range(n):
            d = refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in names[i]], dtype=np.uint16))
            d.attrs["MATLAB_class"] = np.bytes_("char")
            name_refs[i, 0] = d.ref
            p = refs.create_dataset(f"p{i}", data=pixels[i].T)  # H x W x 3 stored reversed
            p.attrs["MATLAB_class"] = np.bytes_("uint8")
            pix_refs[i, 0] = p.ref
        g.create_dataset("names", data=name_refs, dtype=h5py.ref_dtype)
        g.create_dataset("pixels", data=pix_refs, dtype=h5py.ref_dtype)
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2019 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(head.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def test_v73_struct_array_as_matlab_writes_it(tmp_path):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    names = [f"image_{i + 1:02d}.jpg" for i in range(5)]
    _matlab_struct_array_v73(tmp_path / "s.mat", names, pixels)
    assert mat_version(tmp_path / "s.mat") == "7.3"
    vs = loadmat(tmp_path / "s.mat")["visual_stimuli"]
    assert vs.shape == (5,) and vs[3]["names"] == "image_04.jpg"
    np.testing.assert_array_equal(vs[2]["pixels"], pixels[2])


def test_algonauts_stimuli_from_a_v73_struct_array(tmp_path):
    from brainlid.data import algonauts2019
    from brainlid.data.fixtures import read_truth, write_algonauts2019

    write_algonauts2019(tmp_path, image_set="92", n_subjects=2, image_size=8, write_jpegs=False, seed=5)
    truth = read_truth(tmp_path, "algonauts2019_92", 0)["images"]
    path = tmp_path / "Training_Data" / "92_Image_Set" / "92images.mat"
    _matlab_struct_array_v73(path, [f"image_{i + 1:02d}.jpg" for i in range(92)], truth)
    stim = algonauts2019.load_stimuli(tmp_path, "92")
    assert len(stim) == 92 and stim.metadata.name[91] == "image_92.jpg"
    np.testing.assert_array_equal(stim.image(40), truth[40])
