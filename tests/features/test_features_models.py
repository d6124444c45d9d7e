"""Model sources: module/entrypoint specs with local weights, random weights, library adapters."""

import importlib
import pickle
import textwrap

import numpy as np
import pytest
import torch

from brainlid.errors import DatasetNotFoundError, DependencyError, FileFormatError, InputError
from brainlid.features import extract, list_layers, load_model, weights_digest
from brainlid.features import parse_spec

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
        pytest.skip(f"{name} does not import here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); adapter not exercised; `make test-models` runs it")


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


def test_module_declares_its_input_size(tmp_path):
    """INPUT_SIZE sets the dummy input of list_layers; a malformed declaration is a clear error."""
    src = NET_SRC.replace("PREPROCESS = Preprocess(resize=8, crop=8)", "INPUT_SIZE = (3, 5, 7)")
    (tmp_path / "sized.py").write_text(src)
    h = load_model(f"module:{tmp_path / 'sized.py'}:Net@random")
    assert h.input_size == (3, 5, 7) and h.preprocess is None
    assert {i.name: i.output_shape for i in list_layers(h)}["conv"] == (1, 4, 5, 7)
    # the demo zoo declares its 16×16 input: its MLPs cannot take the 224×224 fallback
    zoo = load_model("entrypoint:brainlid.demo.zoo:mlp_w64_d3@random")
    assert zoo.input_size == (3, 16, 16) and {i.name: i.output_shape for i in list_layers(zoo)}["gray"] == (1, 1, 8, 8)
    for bad, what in (("INPUT_SIZE = (16, 16)", "INPUT_SIZE"), ("INPUT_SIZE = 'big'", "INPUT_SIZE"),
                      ("PREPROCESS = lambda im: im", "PREPROCESS")):
        (tmp_path / "bad.py").write_text(NET_SRC.replace("PREPROCESS = Preprocess(resize=8, crop=8)", bad))
        with pytest.raises(InputError, match=what):
            load_model(f"module:{tmp_path / 'bad.py'}:Net@random")


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


# ---------------------------------------------------------------------------------------------
# Library adapters (torchvision / timm / open_clip). They skip where the library does not import
# (the CI venv); `make test-models` runs them in .venv-models with the real libraries.
# ---------------------------------------------------------------------------------------------
def _smooth_image(h=200, w=300, seed=0):
    """A natural-looking uint8 image (H, W, 3): gradients plus low-frequency random waves, no overshoot-prone noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    chans = []
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.3)
        chans.append(0.5 + 0.25 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph) + 0.2 * (xx if c % 2 else yy) - 0.1)
    return np.clip(np.stack(chans, -1) * 255, 0, 255).round().astype(np.uint8)


def _grey_levels(ours, theirs, std):
    """|ours - theirs| in grey levels of the uint8 image (undoing the normalisation's division by std)."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ((ours - theirs) * torch.tensor(std, dtype=torch.float32)[:, None, None] * 255).abs()


# The library transforms resize a PIL image in PIL (8-bit fixed-point kernels, result rounded to uint8, and
# for bicubic clipped after each separable pass); brainlid resizes in float32 with torch's antialiased
# kernels, which are the same kernels (bicubic a=-0.5) without the rounding. On a natural image the
# difference is below one grey level everywhere (measured: max 0.73-0.96, mean ~0.22); on white noise,
# bicubic overshoot clipped between PIL's passes makes up to ~16 grey levels at a few pixels, which is why
# the test image is smooth. Against the same transform run on a float tensor (no rounding) the
# agreement is exact up to float32 rounding.
PIL_MAX_GREY, PIL_MEAN_GREY = 1.25, 0.35


def _assert_same_as_library(pre, transform, std, img, tensor_exact=True):
    from PIL import Image

    ours = pre(img)
    d = _grey_levels(ours, transform(Image.fromarray(img)), std)
    assert d.max() <= PIL_MAX_GREY and d.mean() <= PIL_MEAN_GREY, (float(d.max()), float(d.mean()))
    if tensor_exact:
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255
        torch.testing.assert_close(ours, transform(x), rtol=0, atol=2e-5)


def _images(n=2, h=200, w=300):
    return np.stack([_smooth_image(h, w, seed=s) for s in range(n)])


def test_torchvision_adapter(tmp_path):
    tv = _try_import("torchvision")
    from torchvision.models.feature_extraction import create_feature_extractor

    h = load_model("torchvision:resnet18@random")
    # preprocessing: the documented eval transform of the default weights (ResNet18_Weights.DEFAULT.transforms()
    # needs no download): resize shorter side 256 bilinear, centre crop 224, ImageNet mean/std
    t = tv.models.ResNet18_Weights.DEFAULT.transforms()
    assert (h.preprocess.resize, h.preprocess.crop, h.preprocess.interpolation) == (256, 224, "bilinear")
    for img in (_smooth_image(200, 300), _smooth_image(300, 200, seed=1)):  # landscape and portrait
        _assert_same_as_library(h.preprocess, t, t.std, img)
    # a bicubic model's transform too
    e = load_model("torchvision:efficientnet_b0@random")
    te = tv.models.EfficientNet_B0_Weights.DEFAULT.transforms()
    assert e.preprocess.interpolation == "bicubic"
    _assert_same_as_library(e.preprocess, te, te.std, _smooth_image())

    # seeded random weights; another seed differs; layer shapes
    assert load_model("torchvision:resnet18@random").weights_digest == h.weights_digest
    assert load_model("torchvision:resnet18@random:1").weights_digest != h.weights_digest
    shapes = {i.name: i.output_shape for i in list_layers(h)}
    assert shapes["layer4"] == (1, 512, 7, 7) and shapes["avgpool"] == (1, 512, 1, 1) and shapes["fc"] == (1, 1000)

    # extraction equals torchvision's own feature extractor / forward on the same preprocessed batch
    imgs = _images()
    f = extract(h, imgs, ["layer3", "avgpool", "fc"], cache=False, progress=False)
    x = torch.stack([t(torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).float() / 255) for im in imgs])
    with torch.no_grad():
        ref = create_feature_extractor(h.module, {"layer3": "layer3", "avgpool": "avgpool", "fc": "fc"})(x)
    np.testing.assert_allclose(f["layer3"], ref["layer3"].mean((2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["avgpool"], ref["avgpool"].flatten(1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["fc"], ref["fc"].numpy(), rtol=1e-4, atol=1e-4)

    # local weights: a saved state_dict loads as torchvision:resnet18@/path/w.pth
    torch.manual_seed(3)
    ref_model = tv.models.resnet18().eval()
    torch.save(ref_model.state_dict(), tmp_path / "w.pth")
    w = load_model(f"torchvision:resnet18@{tmp_path / 'w.pth'}")
    assert w.weights_digest == weights_digest(ref_model) != h.weights_digest
    assert w.model_id == "torchvision:resnet18@w.pth" and w.preprocess == h.preprocess
    for k, v in ref_model.state_dict().items():
        torch.testing.assert_close(w.module.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(FileFormatError, match="do not fit"):
        load_model(f"torchvision:resnet34@{tmp_path / 'w.pth'}")
    with pytest.raises(InputError, match="no weights 'NOPE'.*IMAGENET1K_V1"):
        load_model("torchvision:resnet18@NOPE")
    with pytest.raises(InputError, match="no model 'resnet_nope'"):
        load_model("torchvision:resnet_nope@random")


def _offline(monkeypatch, home):
    """Empty torch / Hugging Face caches under ``home``, HF offline, downloads not allowed, any connection fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BRAINLID_ALLOW_DOWNLOAD", raising=False)
    import socket

    def no_network(*a, **k):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)


def _offline_error(monkeypatch, tmp_path, library, spec, match):
    """Import ``library`` (or skip), go offline with empty caches, and check ``spec`` raises the how-to-download error."""
    mod = _try_import(library)
    _offline(monkeypatch, tmp_path)
    with pytest.raises(DatasetNotFoundError, match=match):
        load_model(spec)
    return mod


def _fake_hf_cache(home, repo_id, filename, state_dict):
    """Lay out ``state_dict`` as ``filename`` of hub repo ``repo_id`` in HF_HOME's cache, as a download would."""
    from safetensors.torch import save_file

    repo = home / "hf" / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    sd = {k: v.contiguous() for k, v in state_dict.items()}
    save_file(sd, str(snap / filename)) if filename.endswith(".safetensors") else torch.save(sd, snap / filename)


def test_torchvision_pretrained_offline(tmp_path, monkeypatch):
    tv = _offline_error(monkeypatch, tmp_path, "torchvision", "torchvision:resnet18",
                        r"not in the local cache.*Download them once with `python -c .*get_model\('resnet18', weights='IMAGENET1K_V1'\)")
    # once in the torch hub cache (where torchvision downloads to), the pretrained spec loads it offline
    torch.manual_seed(4)
    ref = tv.models.resnet18().eval()
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt / "resnet18-f37072fd.pth")
    for spec in ("torchvision:resnet18", "torchvision:resnet18@DEFAULT", "torchvision:resnet18@IMAGENET1K_V1"):
        h = load_model(spec)
        assert h.weights_digest == weights_digest(ref) and h.model_id == "torchvision:resnet18@IMAGENET1K_V1"


def _timm_reference_transform(timm, module):
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=module)
    return timm.data.create_transform(**cfg), cfg


def test_timm_adapter(tmp_path):
    timm = _try_import("timm")
    import timm.data

    h = load_model("timm:resnet18@random")
    t, cfg = _timm_reference_transform(timm, h.module)
    assert h.input_size == tuple(cfg["input_size"]) == (3, 224, 224)
    assert (h.preprocess.resize, h.preprocess.crop) == (235, 224)  # floor(224 / 0.95)
    for img in (_smooth_image(200, 300), _smooth_image(300, 200, seed=1)):
        _assert_same_as_library(h.preprocess, t, cfg["std"], img)

    # the cfg → Preprocess translation against timm's own transform for other crop modes and sizes
    from brainlid.features.adapters import _preprocess_from_timm

    for extra in ({"crop_pct": 1.0}, {"crop_mode": "squash", "crop_pct": 0.9}, {"interpolation": "bilinear", "input_size": (3, 160, 160)}):
        c = {**cfg, **extra}
        _assert_same_as_library(_preprocess_from_timm(c), timm.data.create_transform(**c), c["std"], _smooth_image(210, 280, seed=2))

    assert load_model("timm:resnet18@random").weights_digest == h.weights_digest != load_model("timm:resnet18@random:1").weights_digest
    shapes = {i.name: i.output_shape for i in list_layers(h)}
    assert shapes["layer4"] == (1, 512, 7, 7) and shapes["fc"] == (1, 1000)

    # extraction equals timm's forward_features (+ its average-pool head) and forward
    imgs = _images()
    x = torch.stack([h.preprocess(im) for im in imgs])
    f = extract(h, imgs, ["layer4", "fc"], cache=False, progress=False)
    with torch.no_grad():
        feats = h.module.forward_features(x)
        pooled = h.module.forward_head(feats, pre_logits=True)
        logits = h.module.forward_head(feats)
    np.testing.assert_allclose(f["layer4"], pooled.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["layer4"], feats.mean((2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["fc"], logits.numpy(), rtol=1e-4, atol=1e-4)

    # a transformer: the final norm's CLS token is timm's pre-logits feature
    v = load_model("timm:vit_tiny_patch16_224@random")
    tv_, vcfg = _timm_reference_transform(timm, v.module)
    _assert_same_as_library(v.preprocess, tv_, vcfg["std"], _smooth_image())
    fv = extract(v, imgs, ["norm"], pooling="cls", cache=False, progress=False)
    with torch.no_grad():
        xv = torch.stack([v.preprocess(im) for im in imgs])
        ref = v.module.forward_head(v.module.forward_features(xv), pre_logits=True)
    np.testing.assert_allclose(fv["norm"], ref.numpy(), rtol=1e-4, atol=1e-4)

    # local weights (.safetensors and .pth)
    from safetensors.torch import save_file

    torch.manual_seed(5)
    ref_model = timm.create_model("resnet18").eval()
    save_file(ref_model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(ref_model.state_dict(), tmp_path / "w.pth")
    for fname in ("w.safetensors", "w.pth"):
        w = load_model(f"timm:resnet18@{tmp_path / fname}")
        assert w.weights_digest == weights_digest(ref_model) and w.model_id == f"timm:resnet18@{fname}"
    with pytest.raises(InputError, match="no pretrained weights 'resnet18.nope'"):
        load_model("timm:resnet18@nope")


def test_timm_pretrained_offline(tmp_path, monkeypatch):
    timm = _offline_error(monkeypatch, tmp_path, "timm", "timm:resnet18.a1_in1k",
                          r"timm weights resnet18.a1_in1k are not in the local cache.*create_model\('resnet18.a1_in1k', pretrained=True\)")
    # once in the HF cache (where timm downloads to), the spec loads it with no network
    torch.manual_seed(6)
    ref = timm.create_model("resnet18").eval()
    _fake_hf_cache(tmp_path, "timm/resnet18.a1_in1k", "model.safetensors", ref.state_dict())
    for spec in ("timm:resnet18", "timm:resnet18.a1_in1k", "timm:resnet18@a1_in1k"):
        assert load_model(spec).weights_digest == weights_digest(ref)


def test_open_clip_adapter(tmp_path):
    oc = _try_import("open_clip")
    from open_clip.transform import PreprocessCfg, image_transform_v2

    h = load_model("open_clip:ViT-B-32@random")
    torch.manual_seed(0)  # the adapter builds the whole CLIP model under seed 0 and keeps its visual tower
    model, _, preprocess = oc.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()
    assert h.weights_digest == weights_digest(model.visual)
    assert h.preprocess.interpolation == "bicubic" and h.input_size == (3, 224, 224)
    for img in (_smooth_image(200, 300), _smooth_image(300, 200, seed=1)):
        _assert_same_as_library(h.preprocess, preprocess, oc.OPENAI_DATASET_STD, img, tensor_exact=False)
    # other preprocess configs (SigLIP's squash resize with 0.5 mean/std; bilinear): translation vs open_clip's own transform
    from brainlid.features.adapters import _preprocess_from_open_clip

    for pc in ({"size": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3, "resize_mode": "squash"}, {"size": 256, "interpolation": "bilinear"}):
        full = {**vars(PreprocessCfg()), **pc}
        _assert_same_as_library(_preprocess_from_open_clip(full), image_transform_v2(PreprocessCfg(**full), is_train=False), full["std"], _smooth_image(), tensor_exact=False)

    # (another seed checked on the small ViT-S-32 below: building a CLIP model is the slow part here)
    shapes = {i.name: i.output_shape for i in list_layers(h)}
    assert shapes["image_embedding"] == (1, 512) and shapes["transformer.resblocks.11"] == (1, 50, 768)

    # the final embedding layer is encode_image; the last block's CLS token is the tower's pre-norm token
    imgs = _images()
    f = extract(h, imgs, ["image_embedding", "transformer.resblocks.11"], pooling={"image_embedding": "avg", "default": "cls"}, cache=False, progress=False)
    x = torch.stack([h.preprocess(im) for im in imgs])
    with torch.no_grad():
        emb = model.encode_image(x)
    assert f["image_embedding"].shape == (2, 512) and f["transformer.resblocks.11"].shape == (2, 768)
    np.testing.assert_allclose(f["image_embedding"], emb.numpy(), rtol=1e-4, atol=1e-5)

    # local weights: the visual tower's own state_dict, or a whole (DDP "module."-prefixed) CLIP checkpoint
    from safetensors.torch import save_file

    torch.manual_seed(7)
    small = oc.create_model("ViT-S-32").eval()
    save_file({k: v.contiguous() for k, v in small.visual.state_dict().items()}, str(tmp_path / "visual.safetensors"))
    torch.save({"state_dict": {"module." + k: v for k, v in small.state_dict().items()}}, tmp_path / "clip.pt")
    for fname in ("visual.safetensors", "clip.pt"):
        w = load_model(f"open_clip:ViT-S-32@{tmp_path / fname}")
        assert w.weights_digest == weights_digest(small.visual), fname
    assert load_model("open_clip:ViT-S-32@random").weights_digest != load_model("open_clip:ViT-S-32@random:1").weights_digest

    with pytest.raises(InputError, match="need weights.*laion2b_s34b_b79k"):
        load_model("open_clip:ViT-B-32")
    with pytest.raises(InputError, match="no pretrained tag 'nope'"):
        load_model("open_clip:ViT-B-32@nope")
    with pytest.raises(InputError, match="no model 'ViT-Nope'"):
        load_model("open_clip:ViT-Nope@random")


def test_open_clip_pretrained_offline(tmp_path, monkeypatch):
    _offline_error(monkeypatch, tmp_path, "open_clip", "open_clip:ViT-B-32@laion2b_s34b_b79k",
                   r"ViT-B-32@laion2b_s34b_b79k are not in the local cache.*create_model\('ViT-B-32', pretrained='laion2b_s34b_b79k'\)")
    assert not any((tmp_path / "hf").rglob("*.safetensors")) and not any((tmp_path / "hf").rglob("*.bin"))  # nothing downloaded


def test_cli_layers_library_spec():
    _try_import("torchvision")
    import json

    from click.testing import CliRunner

    from brainlid.cli import cli

    r = CliRunner().invoke(cli, ["layers", "torchvision:resnet18@random", "--json"])
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.output)}
    assert rows["layer4"]["output_shape"] == [1, 512, 7, 7] and rows["fc"]["params"] == 513000


def test_missing_library_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.split(".")[0] == "timm":
            raise ImportError("No module named 'timm'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.setitem(__import__("sys").modules, "timm", None)  # importlib raises ImportError too, installed or not
    with pytest.raises(DependencyError, match=r"brainlid\[models\]"):
        load_model("timm:resnet18@random")
