"""Model sources: spec strings → a ready ``torch.nn.Module`` with an id, a weights digest and preprocessing.

Spec grammar (``SOURCE:NAME[@WEIGHTS]``)
    ======================================== =====================================================
    ``module:path/to/file.py:Net[@w.pt]``    a class or zero-argument factory ``Net`` in a local
                                             Python file; weights a ``state_dict`` file (``.pt``/
                                             ``.pth``/``.bin`` read with ``torch.load(weights_only=True)``,
                                             or ``.safetensors``), or ``@random`` (seeded init)
    ``entrypoint:pkg.module:factory[@w.pt]`` an importable factory (``pkg.module.factory()``)
    ``torchvision:resnet18[@WEIGHTS]``       ``torchvision.models.get_model``; WEIGHTS ``DEFAULT``
                                             (default), an enum name such as ``IMAGENET1K_V1``,
                                             ``random`` or a local state_dict path
    ``timm:convnext_atto.d2_in1k[@WEIGHTS]`` ``timm.create_model``; pretrained from timm's / the HF
                                             hub cache, ``random`` or a local file
    ``open_clip:ViT-B-32@laion2b_s34b_b79k`` ``open_clip.create_model``; the visual tower is used;
                                             the tag may be ``random`` or a local checkpoint path
    ``cifar_resnet:20[@PATH]``                CIFAR-10 ResNet-(6n+2) (:mod:`brainlid.models.cifar_resnet`);
                                             PATH a checkpoint such as ``resnet20-12fca82f.th``
                                             (``module.`` prefix stripped), or ``random[:SEED]``
    ``hf:facebook/dinov2-small[@random]``    Hugging Face ``transformers.AutoModel`` (a hub id in the
                                             local HF cache, or a local folder); vision towers of
                                             CLIP-like models are used; ``@random`` builds from the
                                             config with random weights
    ======================================== =====================================================

``@random`` weights are initialised under ``torch.manual_seed(0)`` (``@random:SEED`` for another
seed), so a "random weights" baseline is reproducible and cacheable. Nothing is downloaded
unless ``allow_download=True`` (or ``BRAINLID_ALLOW_DOWNLOAD=1``); a missing weight file raises
:class:`~brainlid.errors.DatasetNotFoundError` saying how to obtain it. The library adapters
(torchvision, timm, open_clip, transformers) are imported lazily; a missing library raises
:class:`~brainlid.errors.DependencyError` naming the ``models`` extra.

The weights digest is a SHA-256 over the loaded ``state_dict`` (names, dtypes, shapes and bytes),
so it identifies what actually runs, whatever the source.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetNotFoundError, FileFormatError, InputError, require
from .preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = ["ModelHandle", "load_model", "weights_digest", "load_state_dict_file", "SOURCES", "parse_spec"]

SOURCES = ("module", "entrypoint", "torchvision", "timm", "open_clip", "hf", "cifar_resnet")


@dataclass
class ModelHandle:
    """A loaded model and what identifies it.

    Attributes
    ----------
    module : torch.nn.Module
        The network, in eval mode.
    model_id : str
        The spec (or a name) identifying the architecture and weights source.
    weights_digest : str
        SHA-256 of the state_dict (see :func:`weights_digest`).
    preprocess : Preprocess or None
        The model's declared preprocessing (from its adapter), or ``None``.
    input_size : tuple (C, H, W) or None
        The input size the model expects, for ``list_layers`` and probes.
    """

    module: object
    model_id: str
    weights_digest: str
    preprocess: Preprocess | None = None
    input_size: tuple[int, int, int] | None = None
    info: dict = field(default_factory=dict)


def weights_digest(module) -> str:
    """SHA-256 hex digest over ``module.state_dict()``: every entry's name, dtype, shape and bytes."""
    import torch

    h = hashlib.sha256(b"brainlid-weights-v1")
    for name, t in sorted(module.state_dict().items()):
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}\x1f{t.dtype}\x1f{tuple(t.shape)}\x1e".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def code_digest(module, extra: bytes = b"") -> str:
    """SHA-256 over the architecture as code: ``repr(module)`` (layer types and hyper-parameters)
    and the source of every module class defined outside torch (so editing ``forward`` is a cache miss)."""
    import inspect

    h = hashlib.sha256(b"brainlid-code-v1")
    h.update(repr(module).encode())
    seen = set()
    for m in module.modules():
        cls = type(m)
        if cls in seen or cls.__module__.startswith("torch."):
            continue
        seen.add(cls)
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            src = f"{cls.__module__}.{cls.__qualname__}"
        h.update(src.encode())
    h.update(extra)
    return h.hexdigest()


def _allow_download(flag: bool | None) -> bool:
    if flag is not None:
        return bool(flag)
    return os.environ.get("BRAINLID_ALLOW_DOWNLOAD", "") not in ("", "0", "false", "no")


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """Split ``SOURCE:NAME[@WEIGHTS]`` into ``(source, name, weights or None)``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"model spec must look like SOURCE:NAME[@WEIGHTS] with SOURCE one of {', '.join(SOURCES)}; got {spec!r}")
    source, rest = spec.split(":", 1)
    if source not in SOURCES:
        raise InputError(f"unknown model source {source!r} in {spec!r}; choose one of {', '.join(SOURCES)}")
    name, weights = (rest.rsplit("@", 1) + [None])[:2] if "@" in rest else (rest, None)
    if not name:
        raise InputError(f"model spec {spec!r} names no model")
    return source, name, (weights or None)


def _random_seed(weights: str | None) -> int | None:
    """``random`` → 0, ``random:7`` → 7, anything else → None."""
    if weights is None:
        return None
    if weights == "random":
        return 0
    if weights.startswith("random:"):
        try:
            return int(weights.split(":", 1)[1])
        except ValueError:
            raise InputError(f"random weights seed must be an integer, got {weights!r}") from None
    return None


@contextlib.contextmanager
def _seeded(seed: int | None):
    import torch

    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_state_dict_file(path) -> dict:
    """Read a state_dict from ``.safetensors`` or a torch file (``weights_only=True``, never arbitrary pickles).

    A checkpoint dict holding the weights under ``"state_dict"`` or ``"model"`` is unwrapped.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"weight file not found: {path}. Pass the path of a saved state_dict (torch.save(model.state_dict(), path)) or a .safetensors file, or '@random' for random weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FileFormatError(f"cannot read weights from {path}: {exc}".splitlines()[0]) from exc
    if isinstance(sd, dict):
        for k in ("state_dict", "model", "model_state_dict"):
            if k in sd and isinstance(sd[k], dict):
                sd = sd[k]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise FileFormatError(f"{path} does not hold a state_dict (a dict of tensors)")
    return sd


def _apply_state_dict(module, sd: dict, source: str) -> None:
    result = module.load_state_dict(sd, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        raise FileFormatError(f"weights {source} do not fit the model: " + "; ".join(parts))


def _finish(module, model_id, preprocess=None, input_size=None, info=None, set_eval=True) -> ModelHandle:
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{model_id} did not produce a torch.nn.Module (got {type(module).__name__})")
    if set_eval:
        module.eval()
    if input_size is None and preprocess is not None and preprocess.crop is not None:
        c = preprocess.crop
        input_size = (3,) + ((c, c) if isinstance(c, int) else tuple(c))
    info = dict(info or {})
    info.setdefault("code_digest", code_digest(module))
    return ModelHandle(module, model_id, weights_digest(module), preprocess, input_size, info)


def _call_factory(obj, what: str):
    try:
        return obj()
    except TypeError as exc:
        raise InputError(f"{what} must be a class or factory callable without arguments: {exc}") from exc


def _with_weights(module, weights, spec):
    if weights is None or _random_seed(weights) is not None:
        return module
    _apply_state_dict(module, load_state_dict_file(weights), weights)
    return module


def _load_module_file(name: str, weights: str | None, spec: str) -> ModelHandle:
    if ":" not in name:
        raise InputError(f"module spec must be module:path/to/file.py:Name[@weights], got {spec!r}")
    file, attr = name.rsplit(":", 1)
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise DatasetNotFoundError(f"model file not found: {path} (from spec {spec!r})")
    mod_name = "brainlid_user_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    ispec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(ispec)
    sys.modules[mod_name] = mod  # so classes defined there pickle/introspect normally
    try:
        ispec.loader.exec_module(mod)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise InputError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(mod, attr):
        raise InputError(f"{path} defines no {attr!r}")
    with _seeded(_random_seed(weights) if weights else None):
        module = _call_factory(getattr(mod, attr), f"{attr} in {path}")
    file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    module = _with_weights(module, weights, spec)
    return _finish(module, _model_id(spec, weights), getattr(mod, "PREPROCESS", None), info={"code_digest": code_digest(module, file_digest.encode())})


def _load_entrypoint(name: str, weights: str | None, spec: str) -> ModelHandle:
    if ":" not in name:
        raise InputError(f"entrypoint spec must be entrypoint:package.module:factory[@weights], got {spec!r}")
    modname, attr = name.rsplit(":", 1)
    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        raise InputError(f"cannot import {modname!r} for {spec!r}: {exc}") from exc
    if not hasattr(mod, attr):
        raise InputError(f"module {modname!r} has no {attr!r}")
    with _seeded(_random_seed(weights) if weights else None):
        module = _call_factory(getattr(mod, attr), f"{modname}:{attr}")
    return _finish(_with_weights(module, weights, spec), _model_id(spec, weights), getattr(mod, "PREPROCESS", None))


def _model_id(spec: str, weights: str | None) -> str:
    """The spec with a local weights path replaced by its file name (the digest identifies content)."""
    if weights and _random_seed(weights) is None and (os.sep in weights or Path(weights).suffix):
        return spec[: len(spec) - len(weights)] + Path(weights).name
    return spec


def _is_path(weights: str | None) -> bool:
    return bool(weights) and (os.sep in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def _load_torchvision(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    tv = require("torchvision", "models", "torchvision models")
    import torch

    seed = _random_seed(weights)
    if seed is not None or _is_path(weights):
        with _seeded(seed if seed is not None else 0):
            module = tv.models.get_model(name, weights=None)
        module = _with_weights(module, weights, spec)
        try:
            enum = tv.models.get_model_weights(name).DEFAULT
            pre = _preprocess_from_tv(enum)
        except Exception:
            pre = None
        return _finish(module, _model_id(spec, weights), pre)
    try:
        enum = tv.models.get_model_weights(name)[weights or "DEFAULT"] if weights not in (None, "DEFAULT") else tv.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError) as exc:
        raise InputError(f"torchvision has no weights {weights!r} for {name!r}: {exc}") from exc
    fname = os.path.basename(enum.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
    if not cached.is_file() and not allow_download:
        raise DatasetNotFoundError(
            f"torchvision weights {name}/{enum} are not in the torch hub cache ({cached}). Download them once with "
            f"`python -c \"import torchvision; torchvision.models.get_model('{name}', weights='{weights or 'DEFAULT'}')\"`, "
            "pass a local state_dict path as @path, or set BRAINLID_ALLOW_DOWNLOAD=1"
        )
    module = tv.models.get_model(name, weights=enum)
    return _finish(module, f"torchvision:{name}@{str(enum).split('.')[-1]}", _preprocess_from_tv(enum))


def _preprocess_from_tv(enum) -> Preprocess | None:
    t = enum.transforms()
    crop = getattr(t, "crop_size", None)
    resize = getattr(t, "resize_size", None)
    if crop is None:
        return None
    interp = str(getattr(t, "interpolation", "bilinear")).split(".")[-1].lower()
    return Preprocess(
        resize=resize[0] if isinstance(resize, (list, tuple)) and len(resize) == 1 else resize,
        crop=crop[0] if isinstance(crop, (list, tuple)) and len(crop) == 1 else crop,
        mean=tuple(t.mean), std=tuple(t.std), interpolation=interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear",
        source="torchvision",
    )


def _load_timm(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    timm = require("timm", "models", "timm models")
    seed = _random_seed(weights)
    env = {} if allow_download else {"HF_HUB_OFFLINE": "1"}
    try:
        with _env(env), _seeded(seed if seed is not None else 0):
            if seed is not None:
                module = timm.create_model(name, pretrained=False)
            elif _is_path(weights):
                module = timm.create_model(name, pretrained=False)
                _apply_state_dict(module, load_state_dict_file(weights), weights)
            else:
                module = timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError, ValueError) as exc:
        if seed is None and not _is_path(weights):
            raise DatasetNotFoundError(
                f"timm weights for {name!r} are not in the local cache ({exc}). Download them once with "
                f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"`, pass a local file as @path, "
                "or set BRAINLID_ALLOW_DOWNLOAD=1".replace("\n", " ")
            ) from exc
        raise
    cfg = timm.data.resolve_data_config({}, model=module)
    _, h, w = cfg["input_size"]
    crop_pct = cfg.get("crop_pct") or 1.0
    pre = Preprocess(
        resize=int(h / crop_pct), crop=(h, w), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bilinear") if cfg.get("interpolation") in ("bilinear", "bicubic", "nearest") else "bilinear",
        source="timm",
    )
    return _finish(module, _model_id(spec, weights), pre, tuple(cfg["input_size"]))


def _load_open_clip(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    oc = require("open_clip", "models", "open_clip models")
    seed = _random_seed(weights)
    env = {} if allow_download else {"HF_HUB_OFFLINE": "1"}
    try:
        with _env(env), _seeded(seed if seed is not None else 0):
            model = oc.create_model(name, pretrained=None if seed is not None else weights)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DatasetNotFoundError(
            f"open_clip weights {name}@{weights} are not available offline ({exc}). Download them once with "
            f"`python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{weights}')\"`, or pass a local checkpoint path"
        ) from exc
    visual = model.visual
    size = visual.image_size if isinstance(visual.image_size, (tuple, list)) else (visual.image_size, visual.image_size)
    mean = tuple(getattr(visual, "image_mean", None) or CLIP_MEAN)
    std = tuple(getattr(visual, "image_std", None) or CLIP_STD)
    pre = Preprocess(resize=int(size[0]), crop=tuple(size), mean=mean, std=std, interpolation="bicubic", source="open_clip")
    return _finish(visual, _model_id(spec, weights), pre, (3, int(size[0]), int(size[1])))


def _load_hf(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    tr = require("transformers", "models", "Hugging Face models")
    seed = _random_seed(weights)
    local_only = not allow_download
    try:
        if seed is not None:
            config = tr.AutoConfig.from_pretrained(name, local_files_only=local_only)
            with _seeded(seed):
                model = tr.AutoModel.from_config(config)
        else:
            kw = {"revision": weights} if weights else {}
            model = tr.AutoModel.from_pretrained(name, local_files_only=local_only, **kw)
    except (OSError, ValueError) as exc:
        raise DatasetNotFoundError(
            f"Hugging Face model {name!r} is not in the local cache or folder ({str(exc).splitlines()[0]}). Download it once with "
            f"`huggingface-cli download {name}` (or `transformers.AutoModel.from_pretrained('{name}')`), pass a local folder, "
            "or set BRAINLID_ALLOW_DOWNLOAD=1"
        ) from exc
    if hasattr(model, "vision_model") and not hasattr(model, "embeddings"):
        model = model.vision_model
    pre = None
    try:
        proc = tr.AutoImageProcessor.from_pretrained(name, local_files_only=local_only)
        pre = _preprocess_from_hf(proc)
    except (OSError, ValueError, ImportError):
        pre = None
    size = getattr(getattr(model, "config", None), "image_size", None)
    input_size = None
    if size is not None:
        hw = size if isinstance(size, (tuple, list)) else (size, size)
        input_size = (int(getattr(model.config, "num_channels", 3)), int(hw[0]), int(hw[1]))
    return _finish(model, _model_id(spec, weights), pre, input_size)


def _preprocess_from_hf(proc) -> Preprocess:
    def _get(obj, key):
        if obj is None:
            return None
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    size = getattr(proc, "size", None)
    resize = None
    if getattr(proc, "do_resize", True) and size is not None:
        if _get(size, "shortest_edge"):
            resize = int(_get(size, "shortest_edge"))
        elif _get(size, "height") and _get(size, "width"):
            resize = (int(_get(size, "height")), int(_get(size, "width")))
    crop = None
    cs = getattr(proc, "crop_size", None)
    if getattr(proc, "do_center_crop", False) and cs is not None and _get(cs, "height"):
        crop = (int(_get(cs, "height")), int(_get(cs, "width")))
    rescale = getattr(proc, "do_rescale", True)
    factor = getattr(proc, "rescale_factor", 1 / 255)
    if rescale and abs(float(factor) - 1 / 255) > 1e-9:
        raise InputError(f"unsupported Hugging Face rescale_factor {factor} (brainlid scales by 1/255)")
    mean = tuple(proc.image_mean) if getattr(proc, "do_normalize", True) and getattr(proc, "image_mean", None) is not None else None
    std = tuple(proc.image_std) if mean is not None else None
    resample = int(getattr(proc, "resample", 2) or 2)
    interp = {0: "nearest", 2: "bilinear", 3: "bicubic"}.get(resample, "bilinear")
    return Preprocess(resize=resize, crop=crop, scale="255" if rescale else "none", mean=mean, std=std, interpolation=interp, source="hf")


@contextlib.contextmanager
def _env(values: dict):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_model(spec, *, allow_download: bool | None = None) -> ModelHandle:
    """Load a model from a spec string (grammar in the module docstring) or wrap a module.

    Parameters
    ----------
    spec : str or torch.nn.Module or ModelHandle
        ``"torchvision:resnet18@random"``, ``"module:net.py:Net@w.pt"``, ...; an ``nn.Module``
        is wrapped as is (its id is its class name; the digest identifies its weights).
    allow_download : bool or None
        Let the library adapters download missing weights (default: ``$BRAINLID_ALLOW_DOWNLOAD``,
        else no).

    Returns
    -------
    ModelHandle
    """
    import torch

    if isinstance(spec, ModelHandle):
        return spec
    if isinstance(spec, torch.nn.Module):
        cls = type(spec)
        return _finish(spec, f"nn:{cls.__module__}.{cls.__qualname__}", set_eval=False)
    source, name, weights = parse_spec(spec)
    dl = _allow_download(allow_download)
    if source == "module":
        return _load_module_file(name, weights, spec)
    if source == "entrypoint":
        return _load_entrypoint(name, weights, spec)
    if source == "cifar_resnet":  # cifar_resnet:20@resnet20.th (brainlid.models.cifar_resnet)
        from ..models.cifar_resnet import model_from_spec

        return model_from_spec(name, weights, spec)
    loader = {"torchvision": _load_torchvision, "timm": _load_timm, "open_clip": _load_open_clip, "hf": _load_hf}[source]
    return loader(name, weights, spec, dl)
