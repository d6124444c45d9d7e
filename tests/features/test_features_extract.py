"""Extraction: hooked activations vs manual forward passes, layer selection, sources, errors."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from brainlid.data import StimulusSet
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError
from brainlid.features import Features, ForwardError, Preprocess, Reduction, extract, list_layers, resolve_layers
from brainlid.features.pooling import srp_matrix


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)  # in place: overwrites bn's output
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.head = nn.Linear(6, 3)
        self.calls = {"head": 0}

    def forward(self, x):
        x = self.act(self.bn(self.conv1(x)))
        x = self.conv2(x)
        self.calls["head"] += 1
        return self.head(x.mean((2, 3)))


class TinyViT(nn.Module):
    """(B, T, C) token outputs with a CLS token."""

    def __init__(self, dim=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(*[nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(2)])

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        return self.blocks(t)


def _images(n=10, h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _manual_input(imgs):
    return torch.from_numpy(imgs.transpose(0, 3, 1, 2).astype(np.float32) / 255)


def _model(seed=0, cls=TinyCNN):
    torch.manual_seed(seed)
    m = cls()
    if hasattr(m, "bn"):
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_hooked_activations_equal_manual_forward():
    imgs = _images(10)
    m = _model()
    f = extract(m, imgs, ["conv1", "bn", "conv2", "head"], pooling={"conv1": "none", "bn": "none", "conv2": "avg", "head": "none"}, batch_size=4, cache=False, progress=False)
    x = _manual_input(imgs)
    with torch.no_grad():
        c1 = m.conv1(x)
        bn = m.bn(c1)
        c2 = m.conv2(torch.relu(bn))
        head = m.head(c2.mean((2, 3)))
    np.testing.assert_allclose(f["conv1"], c1.reshape(10, -1).numpy(), rtol=1e-5, atol=1e-6)
    # bn's output is captured before the in-place ReLU changes it
    np.testing.assert_allclose(f["bn"], bn.reshape(10, -1).numpy(), rtol=1e-5, atol=1e-6)
    assert (f["bn"] < 0).any()
    np.testing.assert_allclose(f["conv2"], c2.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f["head"], head.numpy(), rtol=1e-5, atol=1e-6)
    assert f["conv1"].dtype == np.float32
    np.testing.assert_array_equal(f.stimulus_ids, np.arange(10))
    assert f.layers == ["conv1", "bn", "conv2", "head"]
    assert f.provenance["pooling"] == {"conv1": "none", "bn": "none", "conv2": "avg", "head": "none"}
    assert not m.training  # mode restored


def test_transformer_tokens_cls_and_mean():
    imgs = _images(6, 8, 8)
    m = _model(cls=TinyViT)
    f = extract(m, imgs, ["blocks.0", "blocks.1"], pooling={"blocks.0": "cls", "blocks.1": "tokens"}, batch_size=4, cache=False, progress=False)
    with torch.no_grad():
        out = m(_manual_input(imgs))
        b0 = m.blocks[0](torch.cat([m.cls.expand(6, -1, -1), m.patch(_manual_input(imgs)).flatten(2).transpose(1, 2)], 1))
    np.testing.assert_allclose(f["blocks.0"], b0[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f["blocks.1"], out[:, 1:].mean(1).numpy(), rtol=1e-5, atol=1e-6)


def test_early_stop_after_last_requested_layer():
    m = _model()
    extract(m, _images(8), ["conv1"], batch_size=4, cache=False, progress=False)
    assert m.calls["head"] == 1  # only the (full) probe pass reached the head; both batches stopped after conv1
    extract(m, _images(8), ["head"], batch_size=4, cache=False, progress=False)
    assert m.calls["head"] == 1 + 3  # probe + 2 batches


def test_layer_selection_glob_regex_and_unknown():
    m = _model(cls=TinyViT)
    assert resolve_layers(m, "blocks.*") == ["blocks.0", "blocks.1"]
    assert resolve_layers(m, "blocks.**") == ["blocks.0", "blocks.0.0", "blocks.0.1", "blocks.1", "blocks.1.0", "blocks.1.1"]
    assert resolve_layers(m, ["re:\\.1$", "patch"]) == ["patch", "blocks.0.1", "blocks.1", "blocks.1.1"]
    assert resolve_layers(m, "blocks.[0],patch") == ["patch", "blocks.0"]
    with pytest.raises(InputError, match=r"unknown layer 'block\.0'.*did you mean.*blocks\.0"):
        resolve_layers(m, "block.0")
    with pytest.raises(InputError, match="matches no module"):
        resolve_layers(m, "head.*")


def test_list_layers_shapes():
    infos = {i.name: i for i in list_layers(_model(), (3, 16, 16))}
    assert infos["conv1"].output_shape == (1, 4, 16, 16)
    assert infos["conv2"].output_shape == (1, 6, 8, 8)
    assert infos["head"].output_shape == (1, 3)
    assert infos["conv1"].n_params == 3 * 4 * 9 + 4


def test_forward_failure_names_layer_and_shape():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(10, 2)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    with pytest.raises(ForwardError, match=r"layer 'fc' \(Linear\) with input shape \(1, 144\)"):
        extract(Bad(), _images(3), ["fc"], cache=False, progress=False)
    with pytest.raises(ForwardError, match="'fc'"):
        list_layers(Bad(), (3, 8, 8))


def test_bfloat16_close_to_float32():
    imgs = _images(8)
    m = _model()
    a = extract(m, imgs, ["conv2"], cache=False, progress=False)
    b = extract(m, imgs, ["conv2"], cache=False, progress=False, dtype="bfloat16")
    assert b["conv2"].dtype == np.float32
    assert not np.array_equal(a["conv2"], b["conv2"])
    np.testing.assert_allclose(b["conv2"], a["conv2"], rtol=0.05, atol=0.03)


def test_srp_and_pca_reduction_deterministic(tmp_path):
    imgs = _images(30)
    m = _model()
    full = extract(m, imgs, ["conv2"], pooling="none", cache=False, progress=False)["conv2"]
    s1 = extract(m, imgs, ["conv2"], pooling="none", reduce="srp:20", cache=False, progress=False)["conv2"]
    s2 = extract(m, imgs, ["conv2"], pooling="none", reduce=Reduction("srp", 20, seed=0), cache=tmp_path, progress=False)["conv2"]
    s3 = extract(m, imgs, ["conv2"], pooling="none", reduce=Reduction("srp", 20, seed=1), cache=False, progress=False)["conv2"]
    np.testing.assert_array_equal(s1, s2)
    assert not np.allclose(s1, s3)
    np.testing.assert_allclose(s1, full.astype(np.float64) @ srp_matrix(full.shape[1], 20, 0).toarray(), rtol=1e-4, atol=1e-4)

    from sklearn.decomposition import PCA

    fit_ids = np.arange(0, 30, 2)
    red = Reduction("pca", 5, fit_ids=fit_ids, fit_name="even")
    p1 = extract(m, imgs, ["conv2"], pooling="none", reduce=red, cache=tmp_path, progress=False)
    p2 = extract(m, imgs, ["conv2"], pooling="none", reduce=red, cache=False, progress=False)
    np.testing.assert_array_equal(np.asarray(p1["conv2"]), p2["conv2"])
    ref = PCA(5).fit(full[fit_ids].astype(np.float64))
    proj = ref.transform(full.astype(np.float64))
    got = np.asarray(p1["conv2"], dtype=np.float64)
    for j in range(5):  # equal up to the sign of each component
        s = np.sign(np.dot(got[:, j], proj[:, j]))
        np.testing.assert_allclose(s * got[:, j], proj[:, j], rtol=1e-3, atol=1e-3)
    assert p1.provenance["reduction"]["fit_name"] == "even"
    with pytest.raises(InputError, match="not in stimulus set"):
        extract(m, imgs, ["conv2"], reduce=Reduction("pca", 2, fit_ids=[99]), cache=False, progress=False)


def test_stimulus_sources_folder_h5_npy(tmp_path):
    import h5py
    from PIL import Image

    imgs = _images(5)
    m = _model()
    ref = extract(m, imgs, ["conv2"], cache=False, progress=False)["conv2"]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"img{i}.png")
    f = extract(m, str(folder), ["conv2"], cache=False, progress=False)
    np.testing.assert_allclose(f["conv2"], ref, rtol=1e-6)
    assert list(f.stimulus_ids) == [f"img{i}" for i in range(5)]
    with h5py.File(tmp_path / "s.h5", "w") as h:
        h["brick"] = imgs
    np.testing.assert_allclose(extract(m, f"{tmp_path / 's.h5'}:brick", ["conv2"], cache=False, progress=False)["conv2"], ref, rtol=1e-6)
    with pytest.raises(InputError, match="brick"):
        extract(m, tmp_path / "s.h5", ["conv2"], cache=False, progress=False)
    np.save(tmp_path / "s.npy", imgs)
    np.testing.assert_allclose(extract(m, tmp_path / "s.npy", ["conv2"], cache=False, progress=False)["conv2"], ref, rtol=1e-6)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="pickled"):
        extract(m, tmp_path / "obj.npy", ["conv2"], cache=False, progress=False)
    with pytest.raises(DatasetNotFoundError):
        extract(m, tmp_path / "missing", ["conv2"], cache=False, progress=False)


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_named(tmp_path, workers):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(_images(6)):
        Image.fromarray(im).save(folder / f"img{i}.png")
    (folder / "img4.png").write_bytes(b"not a png")
    with pytest.raises(FileFormatError, match="img4.png"):
        extract(_model(), folder, ["conv2"], batch_size=2, cache=False, progress=False, num_workers=workers)


def test_workers_give_same_features_and_preprocess_declared(tmp_path):
    import h5py

    imgs = _images(12, 12, 10)
    with h5py.File(tmp_path / "s.h5", "w") as h:
        h["x"] = imgs
    stim = StimulusSet.from_hdf5(tmp_path / "s.h5", "x")  # HDF5Reader must pickle into workers
    pre = Preprocess(resize=8, crop=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    a = extract(_model(), stim, ["conv2"], preprocess=pre, batch_size=5, cache=False, progress=False, num_workers=0)
    b = extract(_model(), stim, ["conv2"], preprocess=pre, batch_size=5, cache=False, progress=False, num_workers=2)
    np.testing.assert_array_equal(a["conv2"], b["conv2"])
    x = torch.stack([pre(im) for im in imgs])
    with torch.no_grad():
        m = _model()
        exp = m.conv2(m.act(m.bn(m.conv1(x)))).mean((2, 3)).numpy()
    np.testing.assert_allclose(a["conv2"], exp, rtol=1e-5, atol=1e-6)
    assert a.provenance["preprocess"]["crop"] == 8 and a.provenance["preprocess"]["resize"] == 8


def test_mixed_sizes_without_resize_is_clear_error(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(_images(1, 8, 8)[0]).save(folder / "a.png")
    Image.fromarray(_images(1, 9, 8)[0]).save(folder / "b.png")
    with pytest.raises(InputError, match="different sizes"):
        extract(_model(), folder, ["conv2"], cache=False, progress=False)
    f = extract(_model(), folder, ["conv2"], preprocess=Preprocess(resize=(8, 8)), cache=False, progress=False)
    assert f["conv2"].shape == (2, 6)


def test_features_save_load_roundtrip(tmp_path):
    f = extract(_model(), StimulusSet.from_array(_images(4), ids=["a", "b", "c", "d"]), ["conv1", "conv2"], cache=False, progress=False)
    f.save(tmp_path / "out")
    g = Features.load(tmp_path / "out")
    assert g.layers == ["conv1", "conv2"]
    np.testing.assert_array_equal(g["conv2"], f["conv2"])
    assert list(g.stimulus_ids) == ["a", "b", "c", "d"]
    assert g.provenance["model_id"] == f.provenance["model_id"]
    assert np.load(tmp_path / "out" / "conv1.npy", allow_pickle=False).shape == (4, 4)


def test_bad_arguments():
    m = _model()
    with pytest.raises(InputError, match="batch_size"):
        extract(m, _images(2), ["conv1"], batch_size=0, cache=False, progress=False)
    with pytest.raises(InputError, match="dtype"):
        extract(m, _images(2), ["conv1"], dtype="float64", cache=False, progress=False)
    with pytest.raises(InputError, match="not requested"):
        extract(m, _images(2), ["conv1"], pooling={"conv2": "avg"}, cache=False, progress=False)
    with pytest.raises(InputError, match="no images"):
        extract(m, StimulusSet(ids=[1, 2]), ["conv1"], cache=False, progress=False)
