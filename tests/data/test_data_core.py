"""Core data types: BrainData (validation, selection, save/load), StimulusSet (readers, digests), match_ids."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainlid.data import BrainData, StimulusSet, match_ids
from brainlid.data.stimuli import HDF5Reader
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError


def _brain(has_reps=False, times=False, str_ids=False, seed=0):
    rng = np.random.default_rng(seed)
    n_s, n_r, n_u, n_t = 6, 3, 5, 4
    shape = (n_s,) + ((n_r,) if has_reps else ()) + (n_u,) + ((n_t,) if times else ())
    resp = rng.standard_normal(shape).astype(np.float32)
    if has_reps:
        resp[0, 2] = np.nan  # stimulus 0 has 2 repetitions
    ids = np.array([f"img{i}" for i in (5, 3, 9, 1, 7, 0)]) if str_ids else np.array([50, 30, 90, 10, 70, 0])
    units = pd.DataFrame({"i": np.arange(n_u), "hemisphere": ["lh", "lh", "rh", "rh", "rh"], "ncsnr": rng.random(n_u),
                          "roi:V1": [True, False, True, False, False], "roi:EBA": [False, False, True, True, False]})
    nc = rng.random((n_u, n_t) if times else n_u).astype(np.float32)
    return BrainData.from_arrays(resp, ids, units=units, times=np.arange(n_t) * 0.01 - 0.01 if times else None,
                                 noise_ceiling=nc, splits={"train": ids[:4], "test": ids[4:]}, subject="subj01",
                                 dataset="nsd", space="func1pt8mm", has_reps=has_reps, meta={"a": [1, 2], "b": "x"})


@pytest.mark.parametrize("has_reps,times,str_ids", [(False, False, False), (True, False, True), (False, True, False), (True, True, True)])
def test_save_load_roundtrip(tmp_path, has_reps, times, str_ids):
    b = _brain(has_reps, times, str_ids)
    p = b.save(tmp_path / "b.h5")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["b.h5"]  # atomic: no temporary left
    c = BrainData.load(p)
    np.testing.assert_array_equal(c.responses, b.responses)
    np.testing.assert_array_equal(c.stimulus_ids, b.stimulus_ids)
    assert c.stimulus_ids.dtype.kind == b.stimulus_ids.dtype.kind
    pd.testing.assert_frame_equal(c.units, b.units, check_dtype=False)
    assert c.units["roi:V1"].dtype == bool
    np.testing.assert_array_equal(c.noise_ceiling, b.noise_ceiling)
    np.testing.assert_array_equal(c.n_reps, b.n_reps)
    assert {k: list(v) for k, v in c.splits.items()} == {k: list(v) for k, v in b.splits.items()}
    assert (c.subject, c.dataset, c.space, c.has_reps, c.meta) == ("subj01", "nsd", "func1pt8mm", has_reps, {"a": [1, 2], "b": "x"})
    if times:
        np.testing.assert_array_equal(c.times, b.times)
    if has_reps:
        assert c.n_reps[0] == 2 and (c.n_reps[1:] == 3).all()


def test_load_rejects_foreign_files(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(FileFormatError, match="not a brainlid BrainData"):
        BrainData.load(tmp_path / "x.h5")
    (tmp_path / "y.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(FileFormatError):
        BrainData.load(tmp_path / "y.h5")
    with pytest.raises(FileNotFoundError):
        BrainData.load(tmp_path / "none.h5")


def test_validation():
    r = np.zeros((3, 2), np.float32)
    with pytest.raises(InputError, match="expected 3 axes"):
        BrainData(r, [1, 2, 3], has_reps=True)
    with pytest.raises(InputError, match="duplicated"):
        BrainData(r, [1, 1, 2])
    with pytest.raises(InputError, match="fraction"):
        BrainData(r, [1, 2, 3], noise_ceiling=[50.0, 20.0])
    with pytest.raises(InputError, match="split 'test' names 1 id"):
        BrainData(r, [1, 2, 3], splits={"test": [4]})
    with pytest.raises(InputError, match="2 stimulus ids for 3"):
        BrainData(r, [1, 2])
    b = BrainData(np.arange(6).reshape(3, 2), [1, 2, 3])
    assert b.responses.dtype == np.float32 and list(b.units["unit"]) == [0, 1]


def test_select_and_average():
    b = _brain(has_reps=True, times=True)
    v = b.select(roi=["V1", "EBA"])
    assert list(v.units["i"]) == [0, 2, 3]
    np.testing.assert_array_equal(v.responses, b.responses[:, :, [0, 2, 3]])
    np.testing.assert_array_equal(v.noise_ceiling, b.noise_ceiling[[0, 2, 3]])
    s = b.select(stimuli=[70, 50])
    np.testing.assert_array_equal(s.stimulus_ids, [70, 50])
    np.testing.assert_array_equal(s.responses, b.responses[[4, 0]])
    assert list(s.n_reps) == [3, 2] and list(s.splits["train"]) == [50] and list(s.splits["test"]) == [70]
    t = b.select(time=(0.0, 0.015))
    np.testing.assert_array_equal(t.times, b.times[1:3])
    np.testing.assert_array_equal(t.noise_ceiling, b.noise_ceiling[:, 1:3])
    with pytest.raises(InputError, match="unknown ROI 'FFA'; available: V1, EBA"):
        b.select(roi="FFA")
    with pytest.raises(InputError, match="not in the data"):
        b.select(stimuli=[50, 51])
    with pytest.raises(InputError, match="keeps no samples"):
        b.select(time=(5.0, 6.0))
    a = b.average_reps()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(a.responses, np.nanmean(b.responses.astype(np.float64), axis=1), rtol=1e-6, atol=1e-6)
    assert not a.has_reps and a.average_reps() is a
    te = b.split("test")  # regression: the emptied 'train' split used to make this raise
    np.testing.assert_array_equal(te.stimulus_ids, [70, 0])
    assert set(te.splits) == {"test"}


def test_stimulus_digest_distinguishes_equal_ids_with_different_images():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    other = imgs.copy()
    other[2, 0, 0, 0] ^= 1  # one bit differs
    a = StimulusSet.from_array(imgs)
    b = StimulusSet.from_array(other)
    c = StimulusSet.from_array(imgs.copy())
    assert np.array_equal(a.ids, b.ids)
    assert a.digest != b.digest and a.digest == c.digest
    assert StimulusSet.from_array(imgs, ids=[3, 2, 1, 0]).digest != a.digest  # same images, other ids
    assert StimulusSet.from_array(imgs[[1, 0, 2, 3]]).digest != a.digest  # same ids, images swapped
    assert StimulusSet(a.ids).digest != a.digest  # no images


def test_file_and_hdf5_readers(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 255, (5, 6, 7, 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / f"im{i}.png")
    paths = [tmp_path / f"im{i}.png" for i in range(5)]
    s = StimulusSet.from_files(paths)
    assert list(s.ids) == [f"im{i}" for i in range(5)]
    np.testing.assert_array_equal(s.image(2), imgs[2])
    d1 = s.digest
    Image.fromarray(imgs[0][::-1]).save(paths[0])
    assert StimulusSet.from_files(paths).digest != d1  # same names, new bytes
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["imgBrick"] = imgs
    h = StimulusSet.from_hdf5(tmp_path / "b.h5", "imgBrick", rows=[4, 1, 3], ids=[40, 10, 30])
    got = h.images([2, 0, 0, 1])  # unsorted and repeated positions
    for g, want in zip(got, imgs[[3, 4, 4, 1]]):
        np.testing.assert_array_equal(g, want)
    sub = h.subset(ids=[30, 40])
    np.testing.assert_array_equal(sub.image(0), imgs[3])
    ident = HDF5Reader(tmp_path / "b.h5", "imgBrick", rows=[4, 1], identity="nsd-brick")
    same_rows_other_identity = HDF5Reader(tmp_path / "b.h5", "imgBrick", rows=[4, 1], identity="other")
    assert ident.identity() != same_rows_other_identity.identity()
    assert ident.identity() != HDF5Reader(tmp_path / "b.h5", "imgBrick", rows=[1, 4], identity="nsd-brick").identity()
    with pytest.raises(InputError, match="out of range"):
        HDF5Reader(tmp_path / "b.h5", "imgBrick", rows=[5])
    with pytest.raises(FileFormatError, match="no dataset 'x'"):
        HDF5Reader(tmp_path / "b.h5", "x")
    with pytest.raises(DatasetNotFoundError):
        HDF5Reader(tmp_path / "none.h5", "imgBrick")
    with pytest.raises(InputError, match="not in stimulus set"):
        h.positions_of([30, 99])
    with pytest.raises(StimulusMismatchError):
        h.positions_of([99])


def test_match_ids():
    ia, ib = match_ids([5, 3, 9, 1], [1, 2, 3, 4, 5])
    assert list(ia) == [0, 1, 3] and list(ib) == [4, 2, 0]
    with pytest.raises(StimulusMismatchError, match="only 0 stimulus id"):
        match_ids([1, 2], [3, 4])
    with pytest.raises(StimulusMismatchError, match="string"):
        match_ids(["a", "b"], [1, 2])
    with pytest.warns(UserWarning, match="unmatched"):
        match_ids([1, 2, 3], [2, 3], warn_partial=True)
    with pytest.raises(InputError, match="duplicated"):
        match_ids([1, 1], [1])
    with pytest.raises(InputError, match="not whole numbers"):
        match_ids([1.5], [1])


# ----------------------------------------------------------------------------- one id hash, one join
def test_ids_digest_is_the_feature_cache_hash_and_stimulus_digest_bytes():
    import hashlib

    from brainlid.data.ids import ids_bytes, ids_digest
    from brainlid.features.cache import ids_digest as cache_ids_digest

    ids = np.array([3, 1, 2])
    # the bytes every cache key was built from: dtype kind, then the ids joined by \x1f
    expected = hashlib.sha256(b"i" + "\x1f".join(["3", "1", "2"]).encode()).hexdigest()
    assert ids_digest(ids) == expected and cache_ids_digest is ids_digest
    assert ids_digest(["3", "1", "2"]) != ids_digest(ids)  # kind is part of the identity
    st = StimulusSet(ids)
    h = hashlib.sha256(b"brainlid-stimuli-v1")
    h.update(ids_bytes(st.ids))
    h.update(b"\x1e")
    h.update(b"no-images")
    assert st.digest == h.hexdigest()


def test_positions_of_and_ids_in():
    from brainlid.data.ids import ids_in, positions_of

    have = np.array([10, 20, 30, 40])
    np.testing.assert_array_equal(positions_of(have, [30, 10], where="x"), [2, 0])
    with pytest.raises(InputError, match=r"1 requested stimulus id\(s\) not in the set, e.g. \[99\]"):
        positions_of(have, [10, 99], where="the set")
    np.testing.assert_array_equal(ids_in(have, [40, 20, 7]), [False, True, False, True])
    assert not ids_in(have, np.array([], dtype=np.int64)).any()
    assert ids_in(np.array([], dtype=np.int64), have).shape == (0,)


def test_pearson_columns_constant_rule_and_dtype():
    from brainlid.data.reliability import pearson_columns

    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 4, 3))
    b = a + rng.standard_normal((40, 4, 3))
    a[:, 0] = 2.0  # a constant column: r = 0, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = pearson_columns(a, b)
    assert r.shape == (4, 3) and r.dtype == np.float32
    assert (r[0] == 0).all()
    ref = np.corrcoef(a[:, 2, 1], b[:, 2, 1])[0, 1]
    assert r[2, 1] == pytest.approx(ref, abs=1e-6)
