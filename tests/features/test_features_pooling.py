"""Pooling modes, SRP/PCA reduction and preprocessing against manual/independent computations."""

import numpy as np
import pytest
import torch

from brainlid.errors import InputError
from brainlid.features.pooling import Pooling, Reduction, apply_srp, fit_pca, parse_pooling, pool, srp_matrix
from brainlid.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, imagenet

rng = np.random.default_rng(0)
X4 = rng.standard_normal((3, 5, 6, 8)).astype(np.float32)  # (B, C, H, W)
X3 = rng.standard_normal((3, 7, 5)).astype(np.float32)  # (B, T, C)


def _np_adaptive_avg(x, s):
    """Adaptive average pooling written from its definition: bin i spans [floor(i*H/s), ceil((i+1)*H/s))."""
    b, c, h, w = x.shape
    out = np.empty((b, c, s, s), dtype=np.float64)
    for i in range(s):
        h0, h1 = (i * h) // s, -(-((i + 1) * h) // s)
        for j in range(s):
            w0, w1 = (j * w) // s, -(-((j + 1) * w) // s)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out.reshape(b, -1)


@pytest.mark.parametrize(
    "mode, x, expected",
    [
        ("none", X4, X4.reshape(3, -1)),
        ("avg", X4, X4.mean(axis=(2, 3))),
        ("max", X4, X4.max(axis=(2, 3))),
        ("adaptive:2", X4, _np_adaptive_avg(X4, 2)),
        ("adaptive:3", X4, _np_adaptive_avg(X4, 3)),
        ("none", X3, X3.reshape(3, -1)),
        ("avg", X3, X3.mean(axis=1)),
        ("max", X3, X3.max(axis=1)),
        ("cls", X3, X3[:, 0, :]),
        ("tokens", X3, X3[:, 1:, :].mean(axis=1)),
    ],
)
def test_pool_matches_manual(mode, x, expected):
    got = pool(torch.from_numpy(x), parse_pooling(mode)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_pool_2d_and_5d():
    x2 = rng.standard_normal((4, 9)).astype(np.float32)
    np.testing.assert_array_equal(pool(torch.from_numpy(x2), Pooling("avg")).numpy(), x2)
    x5 = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(pool(torch.from_numpy(x5), Pooling("avg")).numpy(), x5.mean(axis=(2, 3, 4)), rtol=1e-5, atol=1e-6)


def test_pool_bad_combinations_and_parse():
    with pytest.raises(InputError, match="token"):
        pool(torch.zeros(2, 3, 4, 4), Pooling("cls"), "conv")
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        pool(torch.zeros(2, 3, 4), Pooling("adaptive", 2), "blk")
    with pytest.raises(InputError, match="unknown pooling"):
        parse_pooling("median")
    assert parse_pooling("avg4") == Pooling("adaptive", 4)
    assert parse_pooling("adaptive:2x2") == Pooling("adaptive", 2)
    assert parse_pooling("flatten") == Pooling("none")
    assert str(parse_pooling("adaptive_avg:3")) == "adaptive:3"


def test_srp_matrix_deterministic_and_norm_preserving():
    d, k = 2500, 400
    R1, R2, R3 = srp_matrix(d, k, seed=3), srp_matrix(d, k, seed=3), srp_matrix(d, k, seed=4)
    assert (R1 != R2).nnz == 0
    assert (R1 != R3).nnz > 0
    # density 1/sqrt(d) and values ±sqrt(sqrt(d)/k)
    assert abs(R1.nnz / (d * k) - 1 / np.sqrt(d)) < 0.1 / np.sqrt(d)
    np.testing.assert_allclose(np.unique(np.abs(R1.data)), [np.sqrt(np.sqrt(d) / k)], rtol=1e-6)
    # squared norms preserved in expectation (JL): mean ratio close to 1 over many points
    X = rng.standard_normal((200, d)).astype(np.float32)
    Y = apply_srp(X, R1)
    assert Y.shape == (200, k) and Y.dtype == np.float32
    ratio = (Y**2).sum(1) / (X**2).sum(1)
    assert abs(ratio.mean() - 1) < 0.05
    # the streaming application equals a dense float64 product
    np.testing.assert_allclose(Y, X.astype(np.float64) @ R1.toarray().astype(np.float64), rtol=1e-4, atol=1e-4)
    # batches give the same rows as the whole
    np.testing.assert_array_equal(np.vstack([apply_srp(X[:77], R1), apply_srp(X[77:], R1)]), Y)


def test_pca_matches_sklearn_on_subset():
    from sklearn.decomposition import PCA

    X = rng.standard_normal((80, 12)).astype(np.float32) @ rng.standard_normal((12, 12)).astype(np.float32)
    fit = X[:50]
    mean, comps = fit_pca(fit, 4, seed=0)
    ref = PCA(4).fit(fit.astype(np.float64))
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-4, atol=1e-5)
    # components agree up to sign
    for a, b in zip(comps, ref.components_):
        assert abs(abs(np.dot(a, b)) - 1) < 1e-4
    with pytest.raises(InputError, match="components"):
        fit_pca(X[:3], 4)


def test_reduction_parse_and_dict():
    r = Reduction.parse("srp:64")
    assert (r.method, r.n_components, r.seed) == ("srp", 64, 0)
    assert Reduction.parse("pca:10:7").seed == 7
    assert Reduction.parse(None) is None
    with pytest.raises(InputError):
        Reduction.parse("umap:3")
    a = Reduction("pca", 3, fit_ids=[1, 2, 3]).to_dict()
    b = Reduction("pca", 3, fit_ids=[1, 2, 4]).to_dict()
    assert a["fit_ids_digest"] != b["fit_ids_digest"]
    with pytest.raises(InputError, match="PCA only"):
        Reduction("srp", 3, fit_ids=[1])


# preprocessing -------------------------------------------------------------------------------
def test_preprocess_crop_scale_normalise_manual():
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    p = Preprocess(crop=(6, 8), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    got = p(img).numpy()
    top, left = 2, 2
    exp = img[top : top + 6, left : left + 8].astype(np.float64).transpose(2, 0, 1) / 255
    exp = (exp - np.array([0.5, 0.4, 0.3])[:, None, None]) / np.array([0.2, 0.25, 0.3])[:, None, None]
    assert got.shape == (3, 6, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-5)


def test_preprocess_grayscale_rgba_float_uint16():
    g = rng.integers(0, 256, (5, 5), dtype=np.uint8)
    out = Preprocess()(g).numpy()
    assert out.shape == (3, 5, 5)
    np.testing.assert_allclose(out[1], g / 255, atol=1e-7)
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    assert Preprocess()(rgba).shape == (3, 4, 4)
    f = rng.random((4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(Preprocess()(f).numpy(), f.transpose(2, 0, 1))  # floats are not rescaled
    u16 = np.full((2, 2, 3), 65535, dtype=np.uint16)
    np.testing.assert_allclose(Preprocess()(u16).numpy(), 1.0)
    with pytest.raises(InputError, match="NaN"):
        Preprocess()(np.full((2, 2, 3), np.nan, dtype=np.float32))


def test_preprocess_resize_matches_pil():
    from PIL import Image

    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    p = Preprocess(resize=20, interpolation="bilinear")
    got = p(img).numpy()
    assert got.shape == (3, 20, 30)  # shorter side to 20, aspect kept
    ref = np.asarray(Image.fromarray(img).resize((30, 20), Image.BILINEAR)).astype(np.float32).transpose(2, 0, 1) / 255
    # PIL rounds to uint8; torch's antialiased bilinear is PIL's filter in float
    assert np.abs(got - ref).max() < 2.5 / 255
    assert p.output_size(40, 60) == (20, 30)


def test_preprocess_validation_and_dict_roundtrip():
    with pytest.raises(InputError, match="both mean and std"):
        Preprocess(mean=(0.5,))
    with pytest.raises(InputError, match="larger than"):
        Preprocess(crop=50)(np.zeros((10, 10, 3), np.uint8))
    p = imagenet(224)
    assert p.resize == 256 and p.crop == 224 and p.mean == IMAGENET_MEAN and p.std == IMAGENET_STD
    assert Preprocess.from_dict(p.to_dict()) == p
    assert Preprocess(crop=5).to_dict() != Preprocess(crop=6).to_dict()
