"""Model sources: module/entrypoint specs with local weights, random weights, library adapters."""

import importlib
import pickle
import textwrap

import numpy as np
import pytest
import torch

from brainlid.errors import DatasetNotFoundError, DependencyError, FileFormatError, InputError
from brainlid.features import extract, list_layers, load_model, weights_digest
from brainlid.features.models import parse_spec

NET_SRC = textwrap.dedent(
    """
    import torch.nn as nn
    from brainlid.features import Preprocess

    PREPROCESS = Preprocess(resize=8, crop=8)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))


    def make():
        return Net()
    """
)


def _try_import(name):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # e.g. ImportError, or an operator-registration error beside this torch
        pytest.skip(f"{name} does not import here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); adapter not exercised")


@pytest.fixture
def netfile(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(NET_SRC)
    return p


def test_module_spec_with_state_dict_pt_and_safetensors(netfile, tmp_path):
    from safetensors.torch import save_file

    ns = {}
    exec(compile(NET_SRC, "net", "exec"), ns)
    torch.manual_seed(5)
    ref = ns["Net"]().eval()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    save_file(ref.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": ref.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    digests = set()
    for w in ("w.pt", "w.safetensors", "ckpt.pth"):
        h = load_model(f"module:{netfile}:Net@{tmp_path / w}")
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(h.module.state_dict()[k], v, rtol=0, atol=0)
        assert h.model_id.endswith(f"Net@{w}")
        assert h.preprocess.crop == 8  # the module's declared PREPROCESS
        assert not h.module.training
        digests.add(h.weights_digest)
    assert digests == {weights_digest(ref)}
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(h.module(x), ref(x))
    # factory function instead of a class
    assert load_model(f"module:{netfile}:make@{tmp_path / 'w.pt'}").weights_digest == weights_digest(ref)


def test_random_weights_are_seeded(netfile):
    a = load_model(f"module:{netfile}:Net@random")
    b = load_model(f"module:{netfile}:Net@random")
    c = load_model(f"module:{netfile}:Net@random:1")
    assert a.weights_digest == b.weights_digest != c.weights_digest
    # seeding does not disturb the caller's global RNG stream
    torch.manual_seed(0)
    x1 = torch.rand(1)
    torch.manual_seed(0)
    load_model(f"module:{netfile}:Net@random")
    assert torch.rand(1) == x1


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_errors(netfile, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="weight file not found.*state_dict"):
        load_model(f"module:{netfile}:Net@{tmp_path / 'nope.pt'}")
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "partial.pt")
    with pytest.raises(FileFormatError, match="missing key"):
        load_model(f"module:{netfile}:Net@{tmp_path / 'partial.pt'}")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(FileFormatError, match="cannot read weights"):  # weights_only=True refuses arbitrary pickles
        load_model(f"module:{netfile}:Net@{tmp_path / 'evil.pt'}")
    with pytest.raises(DatasetNotFoundError, match="model file not found"):
        load_model(f"module:{tmp_path / 'none.py'}:Net")
    with pytest.raises(InputError, match="defines no 'Nope'"):
        load_model(f"module:{netfile}:Nope")


def test_spec_grammar():
    assert parse_spec("timm:convnext_atto.d2_in1k") == ("timm", "convnext_atto.d2_in1k", None)
    assert parse_spec("open_clip:ViT-B-32@laion2b_s34b_b79k") == ("open_clip", "ViT-B-32", "laion2b_s34b_b79k")
    assert parse_spec("module:a/b.py:Net@w.pt") == ("module", "a/b.py:Net", "w.pt")
    with pytest.raises(InputError, match="unknown model source"):
        parse_spec("keras:resnet")
    with pytest.raises(InputError, match="SOURCE:NAME"):
        parse_spec("resnet18")


def test_entrypoint_and_code_digest(netfile, tmp_path):
    h = load_model("entrypoint:brainlid.models:small_cnn@random")
    assert sum(p.numel() for p in h.module.parameters()) == 1175786
    assert h.weights_digest == load_model("entrypoint:brainlid.models:small_cnn@random").weights_digest
    with pytest.raises(InputError, match="cannot import"):
        load_model("entrypoint:not_a_module_xyz:f")
    # editing forward (same weights, same repr) changes the code digest → a cache miss
    a = load_model(f"module:{netfile}:Net@random")
    netfile.write_text(NET_SRC.replace("mean((2, 3))", "amax((2, 3))"))
    b = load_model(f"module:{netfile}:Net@random")
    assert a.weights_digest == b.weights_digest and a.info["code_digest"] != b.info["code_digest"]


def test_module_spec_end_to_end_extract_uses_declared_preprocess(netfile, tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 12, 16, 3), dtype=np.uint8)
    f = extract(f"module:{netfile}:Net@random", imgs, ["conv"], cache=False, progress=False)
    assert f["conv"].shape == (5, 4)
    assert f.provenance["preprocess"]["crop"] == 8 and f.provenance["preprocess_source"] == "declared"


def test_hf_adapter_tiny_vit_offline(tmp_path):
    tr = _try_import("transformers")
    cfg = tr.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=16, patch_size=8)
    torch.manual_seed(123)
    model = tr.ViTModel(cfg).eval()
    model.save_pretrained(tmp_path / "vit")
    try:
        proc = tr.ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        proc.save_pretrained(tmp_path / "vit")
    except Exception:  # pragma: no cover - processor backends vary between versions
        pass
    h = load_model(f"hf:{tmp_path / 'vit'}")
    assert h.input_size == (3, 16, 16)
    assert h.weights_digest == weights_digest(model)
    if h.preprocess is not None:
        assert h.preprocess.resize == (16, 16) and h.preprocess.mean == (0.5, 0.5, 0.5)
    names = [i.name for i in list_layers(h) if i.output_shape is not None]
    block = next(n for n in names if n.endswith(".1") and "layer" in n)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    f = extract(h, imgs, [block], pooling="cls", cache=False, progress=False)
    x = torch.stack([h.preprocess(im) for im in imgs]) if h.preprocess is not None else torch.from_numpy(imgs.transpose(0, 3, 1, 2) / 255.0).float()
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
    # hidden_states[2] is the output of the second encoder block (before the final layernorm)
    np.testing.assert_allclose(f[block], out.hidden_states[2][:, 0].numpy(), rtol=1e-4, atol=1e-5)
    r1 = load_model(f"hf:{tmp_path / 'vit'}@random")
    r2 = load_model(f"hf:{tmp_path / 'vit'}@random")
    assert r1.weights_digest == r2.weights_digest != h.weights_digest
    with pytest.raises(DatasetNotFoundError, match="not in the local cache"):
        load_model("hf:brainlid-test/definitely-not-cached-model")


def test_torchvision_adapter_random():
    _try_import("torchvision")
    h = load_model("torchvision:resnet18@random")
    assert h.preprocess is not None and h.preprocess.crop == 224
    assert load_model("torchvision:resnet18@random").weights_digest == h.weights_digest


def test_timm_adapter_random():
    _try_import("timm")
    h = load_model("timm:resnet18@random")
    assert h.input_size[0] == 3 and h.preprocess is not None
    assert load_model("timm:resnet18@random").weights_digest == h.weights_digest


def test_open_clip_adapter_random():
    _try_import("open_clip")
    h = load_model("open_clip:ViT-B-32@random")
    assert h.preprocess.interpolation == "bicubic"


def test_missing_library_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.split(".")[0] == "timm":
            raise ImportError("No module named 'timm'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.delitem(__import__("sys").modules, "timm", raising=False)
    with pytest.raises(DependencyError, match=r"brainlid\[models\]"):
        load_model("timm:resnet18@random")
