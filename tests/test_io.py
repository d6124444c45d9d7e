"""brainlid.io.read_features: every format round-trips; bad files raise FileFormatError naming the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainlid.errors import FileFormatError
from brainlid.io import read_features


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 5)).astype(np.float32), np.array([f"img{i:03d}" for i in range(12)])


def write(fmt, path, X, ids):
    """Write X (and ids) in one of the supported layouts; returns (path, key, has_ids)."""
    if fmt == "npy":
        np.save(path, X)
        return path, None, False
    if fmt == "npz":
        np.savez(path, features=X, stimulus_ids=ids)
        return path, None, True
    if fmt == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            f["layer4"] = X
            f["stimulus_ids"] = ids.astype("S")
        return path, None, True
    if fmt in ("parquet", "csv"):
        df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
        df.insert(0, "stimulus_id", ids)
        df.to_parquet(path) if fmt == "parquet" else df.to_csv(path, index=False)
        return path, None, True
    if fmt == "pt":
        torch.save({"feats": torch.from_numpy(X), "other": torch.zeros(3, 3)}, path)
        return path, "feats", False
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({"x": X, "ids": np.arange(12, dtype=np.int64)}, str(path))
        return path, None, True
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "parquet", "csv", "pt", "safetensors"])
def test_round_trip(tmp_path, feats, fmt):
    X, ids = feats
    path, key, has_ids = write(fmt, tmp_path / f"f.{fmt}", X, ids)
    got, got_ids = read_features(path, key=key)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, X, rtol=1e-6 if fmt == "csv" else 0)
    if has_ids:
        expect = np.arange(12) if fmt == "safetensors" else ids
        assert list(got_ids) == list(expect)
    else:
        assert got_ids is None


def test_pt_single_tensor_and_npz_single_array(tmp_path, feats):
    X, _ = feats
    torch.save(torch.from_numpy(X).double(), tmp_path / "t.pt")
    got, ids = read_features(tmp_path / "t.pt")
    np.testing.assert_allclose(got, X)
    assert ids is None
    np.savez(tmp_path / "one.npz", X)
    np.testing.assert_array_equal(read_features(tmp_path / "one.npz")[0], X)


def test_integer_features_become_float32(tmp_path):
    np.save(tmp_path / "i.npy", np.arange(12).reshape(4, 3))
    X, _ = read_features(tmp_path / "i.npy")
    assert X.dtype == np.float32 and X[3, 2] == 11


def test_keep_float64_keeps_float64_data_exact(tmp_path):
    """keep_float64 (brainlid lid): float64 values that float32 would round come back bit for bit; other dtypes float32."""
    X = 1.0 + np.arange(12, dtype=np.float64).reshape(4, 3) * 1e-9  # differences below float32 resolution at 1.0
    np.save(tmp_path / "d.npy", X)
    got, _ = read_features(tmp_path / "d.npy", keep_float64=True)
    assert got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, X)
    default, _ = read_features(tmp_path / "d.npy")
    assert default.dtype == np.float32 and np.unique(default).size == 1  # float32 rounds all twelve to 1.0
    np.save(tmp_path / "i.npy", np.arange(12).reshape(4, 3))
    assert read_features(tmp_path / "i.npy", keep_float64=True)[0].dtype == np.float32


def test_errors_name_the_file_and_the_problem(tmp_path, feats):
    X, ids = feats
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        read_features(tmp_path / "missing.npy")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(FileFormatError, match=r"x\.txt: unknown features file type '\.txt'"):
        read_features(tmp_path / "x.txt")
    np.save(tmp_path / "v.npy", np.arange(5.0))
    with pytest.raises(FileFormatError, match=r"v\.npy: features must be a 2-D .* got shape \(5,\)"):
        read_features(tmp_path / "v.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"obj\.npy"):
        read_features(tmp_path / "obj.npy")
    (tmp_path / "trunc.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(FileFormatError, match=r"trunc\.npy"):
        read_features(tmp_path / "trunc.npy")
    np.savez(tmp_path / "two.npz", a=X, b=X)
    with pytest.raises(FileFormatError, match=r"two\.npz: contains several arrays \(a, b\); choose one with key"):
        read_features(tmp_path / "two.npz")
    with pytest.raises(FileFormatError, match=r"no array named 'c'; available: a, b"):
        read_features(tmp_path / "two.npz", key="c")
    np.savez(tmp_path / "badids.npz", features=X, ids=ids[:5])
    with pytest.raises(FileFormatError, match="5 ids for 12 feature rows"):
        read_features(tmp_path / "badids.npz")
    pd.DataFrame({"stimulus_id": ids, "f0": X[:, 0], "label": ["x"] * 12}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(FileFormatError, match=r"t\.csv: non-numeric columns label"):
        read_features(tmp_path / "t.csv")
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    with pytest.raises(FileFormatError, match=r"bad\.pt"):
        read_features(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(FileFormatError, match=r"bad\.safetensors"):
        read_features(tmp_path / "bad.safetensors")
    (tmp_path / "bad.h5").write_bytes(b"nope")
    with pytest.raises(FileFormatError, match=r"bad\.h5"):
        read_features(tmp_path / "bad.h5")


def test_pt_refuses_pickled_objects(tmp_path):
    from fractions import Fraction

    torch.save({"x": torch.zeros(2, 2), "obj": Fraction(1, 3)}, tmp_path / "evil.pt")  # arbitrary class: refused
    with pytest.raises(FileFormatError, match=r"evil\.pt: holds Python objects other than tensors") as info:
        read_features(tmp_path / "evil.pt")
    assert "trust" not in str(info.value)  # torch's own text suggests loading it unsafely


def test_npy_takes_ids_from_sibling_file_written_by_extract(tmp_path):
    """`brainlid extract --out` writes <layer>.npy beside stimulus_ids.npy: the ids come along."""
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "block4.npy", X)
    np.save(tmp_path / "stimulus_ids.npy", np.array(["a", "b", "c", "d"]))
    got, ids = read_features(tmp_path / "block4.npy")
    assert np.array_equal(got, X) and ids.tolist() == ["a", "b", "c", "d"]
    np.save(tmp_path / "other.npy", np.zeros((5, 2), np.float32))
    with pytest.raises(FileFormatError, match="4 ids for 5 feature rows"):
        read_features(tmp_path / "other.npy")


UNSAFE_ADVICE = ("unsafe", "allow_pickle", "trust", "pickle.load", "weights_only=False")


@pytest.mark.parametrize("name, content, expected", [
    ("empty.npy", b"", r"empty\.npy: is empty \(0 bytes\), not a NumPy \.npy file"),
    ("text.npy", b"hello world\n1 2 3\n", r"text\.npy: is not a NumPy \.npy file \(it holds text\)"),
    ("bin.npy", bytes(range(200, 216)), r"bin\.npy: is not a NumPy \.npy file \(it holds other data\)"),
    ("text.npz", b"a,b\n1,2\n", r"text\.npz: is not a NumPy \.npz archive \(it holds text\)"),
    ("empty.npz", b"", r"empty\.npz: is empty"),
    ("text.pt", b"tensor([1, 2])", r"text\.pt: is not a PyTorch file \(it holds text\)"),
    ("header.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8", r"header\.npy: has a damaged \.npy header"),
])
def test_files_that_are_not_what_their_suffix_says(tmp_path, name, content, expected):
    """Say what the file is; numpy's 'pickled (object) data ... load it unsafely' must never reach the user."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FileFormatError, match=expected) as info:
        read_features(tmp_path / name)
    assert not any(word in str(info.value) for word in UNSAFE_ADVICE), str(info.value)


def test_object_and_truncated_npy_are_named_as_such(tmp_path):
    from brainlid.io import load_npy

    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"obj\.npy: holds pickled Python objects \(dtype object\)") as info:
        load_npy(tmp_path / "obj.npy")
    assert not any(word in str(info.value) for word in UNSAFE_ADVICE)
    np.save(tmp_path / "full.npy", np.arange(100.0).reshape(20, 5))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:300])
    for mmap in (None, "r"):
        with pytest.raises(FileFormatError, match=r"cut\.npy: is truncated or damaged"):
            load_npy(tmp_path / "cut.npy", mmap_mode=mmap)
    np.testing.assert_array_equal(load_npy(tmp_path / "full.npy", mmap_mode="r"), np.arange(100.0).reshape(20, 5))
    with pytest.raises(FileFormatError, match="is a folder"):
        load_npy(tmp_path)
