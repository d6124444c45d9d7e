"""CIFAR ResNets: architecture, option-A shortcut, checkpoint loading (module. prefix, weights_only), specs.

Tests on the real pretrained weights are in tests/test_realdata.py.
"""

import pickle

import numpy as np
import pytest
import torch

from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError
from brainlid.models import cifar_resnet
from brainlid.models.cifar_resnet import (
    CIFAR_MEAN,
    CIFAR_STD,
    cifar_preprocess,
    load_cifar_resnet,
    resnet_layer_names,
)

# Parameter counts published with the reference implementation (Idelbayev, pytorch_resnet_cifar10 README:
# 0.27M, 0.46M, 0.66M, 0.85M); exact values of the architecture He et al. describe (option A shortcuts).
PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018}


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_parameter_counts_and_keys(depth):
    m = cifar_resnet(depth)
    assert sum(p.numel() for p in m.parameters()) == PARAMS[depth]
    n = (depth - 2) // 6
    keys = set(m.state_dict())
    assert {"conv1.weight", "bn1.running_var", "linear.weight", "linear.bias"} <= keys
    assert f"layer3.{n - 1}.bn2.weight" in keys and f"layer3.{n}.conv1.weight" not in keys
    assert not any("shortcut" in k for k in keys)  # option A is parameter-free
    assert sum(1 for k in keys if k.endswith("conv1.weight") and k.startswith("layer")) == 3 * n


def test_shapes_per_stage():
    m = cifar_resnet(20)
    x = torch.randn(2, 3, 32, 32)
    outs = {}
    hooks = [getattr(m, n).register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o.shape)) for n in ("layer1", "layer2", "layer3")]
    y = m(x)
    for h in hooks:
        h.remove()
    assert y.shape == (2, 10)
    assert outs == {"layer1": (2, 16, 32, 32), "layer2": (2, 32, 16, 16), "layer3": (2, 64, 8, 8)}


def test_option_a_shortcut_matches_hand_computation():
    """The first block of layer2: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + pad(x[:, :, ::2, ::2]))."""
    m = cifar_resnet(20, seed=3)
    blk = m.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        main = blk.bn2(blk.conv2(torch.relu(blk.bn1(blk.conv1(x)))))
        sc = torch.zeros(2, 32, 16, 16)
        sc[:, 8:24] = x[:, :, ::2, ::2]  # planes // 4 = 8 zero channels on each side
        torch.testing.assert_close(blk(x), torch.relu(main + sc))


def test_seeded_init_is_reproducible():
    a, b, c = cifar_resnet(20, seed=1), cifar_resnet(20, seed=1), cifar_resnet(20, seed=2)
    torch.testing.assert_close(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    state = torch.random.get_rng_state()
    cifar_resnet(20, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is untouched


@pytest.mark.parametrize("depth", [0, 21, 7, "20", 20.0, True])
def test_bad_depth(depth):
    with pytest.raises(InputError, match="depth"):
        cifar_resnet(depth)


def _save_like_reference(m, path, prefix="module."):
    sd = {prefix + k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": sd, "best_prec1": 91.5}, path)


def test_checkpoint_round_trip_with_module_prefix(tmp_path):
    src = cifar_resnet(32, seed=7)
    # non-trivial BN statistics so a wrong mapping would show
    for mod in src.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    _save_like_reference(src, tmp_path / "r32.th")
    m = load_cifar_resnet(tmp_path / "r32.th")
    assert m.depth == 32 and m.checkpoint_info["best_prec1"] == pytest.approx(91.5)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))
    # a bare state dict without the prefix works too
    torch.save(src.state_dict(), tmp_path / "bare.pt")
    assert load_cifar_resnet(tmp_path / "bare.pt").depth == 32


def test_checkpoint_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        load_cifar_resnet(tmp_path / "missing.th")
    _save_like_reference(cifar_resnet(20), tmp_path / "r20.th")
    with pytest.raises(FileFormatError, match="ResNet-20, but depth 56"):
        load_cifar_resnet(tmp_path / "r20.th", depth=56)
    sd = {k: v for k, v in cifar_resnet(20).state_dict().items() if not k.startswith("linear")}
    torch.save(sd, tmp_path / "nolinear.th")
    with pytest.raises(FileFormatError, match="missing keys"):
        load_cifar_resnet(tmp_path / "nolinear.th")
    torch.save({"foo": torch.zeros(3)}, tmp_path / "other.th")
    with pytest.raises(FileFormatError, match="not a CIFAR ResNet"):
        load_cifar_resnet(tmp_path / "other.th")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_arbitrary_pickles_are_refused(tmp_path):
    with open(tmp_path / "evil.th", "wb") as fh:
        pickle.dump({"state_dict": _Evil()}, fh)
    with pytest.raises(FileFormatError, match="weights_only=True"):
        load_cifar_resnet(tmp_path / "evil.th")


def test_preprocess_normalises_and_resizes():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = cifar_preprocess(imgs)
    ref = (imgs / 255.0 - np.array(CIFAR_MEAN)) / np.array(CIFAR_STD)
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), ref, atol=1e-5)
    # resizing matches Pillow's antialiased bilinear resize (the reference torchvision follows)
    from PIL import Image

    big = rng.integers(0, 256, (2, 175, 175, 3), dtype=np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in big])
    ref = (pil / 255.0 - np.array(CIFAR_MEAN)) / np.array(CIFAR_STD)
    got = cifar_preprocess(big).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - ref).max() < 2.5 / 255 / min(CIFAR_STD)  # Pillow rounds to uint8 per pixel
    with pytest.raises(InputError, match="RGB"):
        cifar_preprocess(np.zeros((2, 32, 32, 4), np.uint8))


def test_layer_names_exist():
    m = cifar_resnet(20)
    names = dict(m.named_modules())
    assert all(n in names for n in resnet_layer_names(20))
    assert "layer3.2" in resnet_layer_names(20)


def test_model_spec(tmp_path):
    from brainlid.features.models import cifar_resnet_handle, load_model

    src = cifar_resnet(20, seed=9)
    _save_like_reference(src, tmp_path / "r20.th")
    h = load_model(f"cifar_resnet:20@{tmp_path / 'r20.th'}")
    assert h.input_size == (3, 32, 32) and h.preprocess.mean == CIFAR_MEAN and h.preprocess.resize == (32, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(h.module(x), src(x))
    r1, r2 = load_model("cifar_resnet:20@random:4"), cifar_resnet_handle("20", "random:4")
    assert r1.weights_digest == r2.weights_digest != load_model("cifar_resnet:20@random:5").weights_digest
    assert load_model("cifar_resnet:20").weights_digest == load_model("cifar_resnet:20@random").weights_digest
    with pytest.raises(InputError, match="integer depth"):
        load_model("cifar_resnet:big@random")
