"""Model sources: spec strings → a ready ``torch.nn.Module`` with an id, a weights digest and preprocessing.

Spec grammar (``SOURCE:NAME[@WEIGHTS]``)
    ======================================== =====================================================
    ``module:path/to/file.py:Net[@w.pt]``    a class or zero-argument factory ``Net`` in a local
                                             Python file; weights a ``state_dict`` file (``.pt``/
                                             ``.pth``/``.bin`` read with ``torch.load(weights_only=True)``,
                                             or ``.safetensors``), or ``@random`` (seeded init)
    ``entrypoint:pkg.module:factory[@w.pt]`` an importable factory (``pkg.module.factory()``);
                                             for ``module:`` and ``entrypoint:``, the Python module
                                             may declare ``PREPROCESS`` (a :class:`Preprocess`) and
                                             ``INPUT_SIZE`` ``(C, H, W)``, the input the model takes
                                             (used by ``brainlid layers`` for its dummy input)
    ``torchvision:resnet18[@WEIGHTS]``       ``torchvision.models.get_model``; WEIGHTS ``DEFAULT``
                                             (default), an enum name such as ``IMAGENET1K_V1``,
                                             ``random`` or a local state_dict path
    ``timm:convnext_atto.d2_in1k[@WEIGHTS]`` ``timm.create_model``; pretrained (the default tag, or
                                             ``NAME.TAG`` / ``@TAG``) from the HF hub cache, ``random``
                                             or a local state_dict file
    ``open_clip:ViT-B-32@laion2b_s34b_b79k`` ``open_clip.create_model``; the visual tower is used, its
                                             final embedding (``encode_image``) hookable as layer
                                             ``image_embedding``; the tag is required: a pretrained
                                             tag, ``random`` or a local checkpoint (whole CLIP or the
                                             visual tower's state_dict)
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
unless ``allow_download=True`` (or ``BRAINLID_ALLOW_DOWNLOAD=1``): pretrained weights are looked up in the
local caches (torch hub ``$TORCH_HOME/hub/checkpoints``, Hugging Face ``$HF_HOME/hub``) without the network
and handed to the library as a file; a missing weight file raises
:class:`~brainlid.errors.DatasetNotFoundError` saying how to obtain it once. The adapters' preprocessing
is the library's own evaluation transform (``weights.transforms()``, timm's ``create_transform`` for the
model's data config, open_clip's ``preprocess``) translated to a :class:`Preprocess`. The library adapters
(torchvision, timm, open_clip, transformers) are imported lazily; a missing library raises
:class:`~brainlid.errors.DependencyError` naming the ``models`` extra. When torchvision (which
torchvision, timm and open_clip need) is missing or was built for another torch (``operator
torchvision::nms does not exist``), the error gives the command that installs the torchvision
matching the installed torch from PyTorch's own index (:func:`torch_install_command`), because
``pip install 'brainlid[models]'`` alone would resolve the newest torchvision, which pins a newer torch.

The weights digest is a SHA-256 over the loaded ``state_dict`` (names, dtypes, shapes and bytes),
so it identifies what actually runs, whatever the source.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetNotFoundError, DependencyError, FileFormatError, InputError, require
from ..io import torch_load_tensors
from .preprocess import CLIP_MEAN, CLIP_STD, Preprocess

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
            sd = torch_load_tensors(path)
    except FileFormatError as exc:  # its message starts with the path
        raise FileFormatError(f"cannot read weights from {exc}") from exc
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


def _declared(mod, spec: str) -> tuple:
    """A user module's declared ``PREPROCESS`` and ``INPUT_SIZE`` (each None when absent), checked."""
    pre = getattr(mod, "PREPROCESS", None)
    if pre is not None and not isinstance(pre, Preprocess):
        raise InputError(f"PREPROCESS in {spec!r} must be a brainlid.features.Preprocess, got {type(pre).__name__}")
    size = getattr(mod, "INPUT_SIZE", None)
    if size is not None:
        try:
            size = tuple(int(v) for v in size)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 3 or min(size) < 1:
            raise InputError(f"INPUT_SIZE in {spec!r} must be (channels, height, width), got {getattr(mod, 'INPUT_SIZE')!r}")
    return pre, size


def _load_module_file(name: str, weights: str | None, spec: str) -> ModelHandle:
    if ":" not in name:
        raise InputError(f"module spec must be module:path/to/file.py:Name[@weights], got {spec!r}")
    file, attr = name.rsplit(":", 1)
    path = Path(file).expanduser().resolve()
    if path.is_dir():
        raise InputError(f"model file {path} is a folder, not a Python file (from spec {spec!r}; module:path/to/file.py:Name)")
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
    pre, size = _declared(mod, spec)
    return _finish(module, _model_id(spec, weights), pre, size, info={"code_digest": code_digest(module, file_digest.encode())})


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
    return _finish(_with_weights(module, weights, spec), _model_id(spec, weights), *_declared(mod, spec))


def _model_id(spec: str, weights: str | None) -> str:
    """The spec with a local weights path replaced by its file name (the digest identifies content)."""
    if weights and _random_seed(weights) is None and (os.sep in weights or Path(weights).suffix):
        return spec[: len(spec) - len(weights)] + Path(weights).name
    return spec


def _is_path(weights: str | None) -> bool:
    return bool(weights) and (os.sep in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


_DOWNLOAD_HINT = "pass a local state_dict file as @/path/to/weights.pth, or allow downloads (allow_download=True or BRAINLID_ALLOW_DOWNLOAD=1)"


def _not_cached(what: str, where, how: str) -> DatasetNotFoundError:
    """The error for pretrained weights missing from the local cache: where we looked and how to get them once."""
    return DatasetNotFoundError(f"{what} are not in the local cache ({where}). Download them once with `{how}`, or {_DOWNLOAD_HINT}")


def _hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder as the environment says now (``HF_HUB_CACHE``, else ``HF_HOME/hub``),
    else huggingface_hub's own default (it reads the environment only once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hf_cached_file(repo_id: str, filenames, revision: str | None = None) -> str | None:
    """The first of ``filenames`` of hub repo ``repo_id`` present in the local cache, or None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    for fname in filenames:
        p = try_to_load_from_cache(repo_id, fname, cache_dir=str(_hf_hub_cache()), revision=revision)
        if isinstance(p, str) and os.path.isfile(p):
            return p
    return None


def _library_preprocess(crop, scale_size, mean, std, interpolation, mode: str, source: str) -> Preprocess:
    """A library's evaluation transform (resize → centre crop → [0, 1] → normalise) as a :class:`Preprocess`.

    ``crop`` and ``scale_size`` are ``(h, w)``. ``mode`` ``"shortest"`` resizes the shorter side to
    ``scale_size`` keeping the aspect ratio (torchvision ``Resize(int)``), ``"squash"`` resizes to
    ``scale_size`` exactly. What a Preprocess cannot express (letterbox padding: timm ``crop_mode="border"``,
    open_clip ``resize_mode="longest"``; a non-square "cover" resize; lanczos) is approximated with a warning.
    """
    import warnings

    crop, scale_size = tuple(int(v) for v in crop), tuple(int(v) for v in scale_size)
    interp = {"random": "bicubic"}.get(str(interpolation).lower(), str(interpolation).lower())
    notes = []
    if interp not in ("bilinear", "bicubic", "nearest"):
        notes.append(f"{interpolation} interpolation is done as bicubic")
        interp = "bicubic"
    if mode == "shortest" and scale_size[0] != scale_size[1]:
        notes.append(f"the aspect-keeping resize to cover {scale_size} is done as a shorter-side resize to {max(scale_size)}")
        resize = max(scale_size)
    elif mode == "shortest":
        resize = scale_size[0]
    else:
        if mode != "squash":
            notes.append(f"resize mode {mode!r} (letterbox padding) is done as an exact resize to {scale_size}")
        resize = scale_size
    if notes:
        warnings.warn(f"{source} preprocessing approximated: " + "; ".join(notes) + " (pass preprocess= to extract() to override)", UserWarning, stacklevel=4)
    crop = crop[0] if crop[0] == crop[1] else crop
    return Preprocess(resize=resize, crop=crop, mean=tuple(mean), std=tuple(std), interpolation=interp, source=source)


# torch release → the torchvision release built against it (PyTorch's published pairs: each
# torchvision wheel pins one exact torch; checked here: 0.28.0 requires torch==2.13.0, and `make
# test-models` runs 2.14.1 with 0.29.1).
TORCHVISION_FOR_TORCH = {
    "2.0.0": "0.15.1", "2.0.1": "0.15.2", "2.1.0": "0.16.0", "2.1.1": "0.16.1", "2.1.2": "0.16.2",
    "2.2.0": "0.17.0", "2.2.1": "0.17.1", "2.2.2": "0.17.2", "2.3.0": "0.18.0", "2.3.1": "0.18.1",
    "2.4.0": "0.19.0", "2.4.1": "0.19.1", "2.5.0": "0.20.0", "2.5.1": "0.20.1", "2.6.0": "0.21.0",
    "2.7.0": "0.22.0", "2.7.1": "0.22.1", "2.8.0": "0.23.0", "2.9.0": "0.24.0", "2.9.1": "0.24.1",
    "2.13.0": "0.28.0", "2.14.1": "0.29.1",
}
PYTORCH_INDEX = "https://download.pytorch.org/whl"


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision version to install beside torch ``torch_version`` (``"2.13.0+cpu"`` → ``"0.28.0"``).

    Known pairs come from :data:`TORCHVISION_FOR_TORCH`; another torch 2.x gets PyTorch's rule
    (torchvision minor = torch minor + 15) as ``"0.M.*"``; torch 1.x gives None.
    """
    base = str(torch_version).split("+")[0]
    if base in TORCHVISION_FOR_TORCH:
        return TORCHVISION_FOR_TORCH[base]
    parts = base.split(".")
    if len(parts) >= 2 and parts[0] == "2" and parts[1].isdigit():
        return f"0.{int(parts[1]) + 15}.*"
    return None


def torch_install_command(torch_version: str) -> str:
    """The pip command that installs the torchvision matching ``torch_version`` (and keeps that torch).

    A local build tag (``+cpu``, ``+cu121``) selects PyTorch's index of that build, e.g.
    ``pip install torch==2.13.0 torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu``.
    """
    base, _, local = str(torch_version).partition("+")
    tv = matching_torchvision(torch_version)
    if tv is None:
        return f"pip install 'torch=={base}' torchvision  (see the torch/torchvision table at https://pytorch.org/get-started/previous-versions/)"
    return f"pip install 'torch=={base}' 'torchvision=={tv}'" + (f" --index-url {PYTORCH_INDEX}/{local}" if local else "")


def torchvision_problem() -> str | None:
    """None when torchvision imports beside the installed torch; else what is wrong and the command that fixes it."""
    import torch

    try:
        importlib.import_module("torchvision")
        return None
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            why = f"torchvision does not import ({exc})"
        else:
            why = "torchvision is not installed"
    except Exception as exc:  # noqa: BLE001 - e.g. RuntimeError "operator torchvision::nms does not exist"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = f"torchvision does not import beside torch {torch.__version__}, it was built for another torch ({type(exc).__name__}: {text})"
    return f"{why}. Install the torchvision that matches your torch: {torch_install_command(torch.__version__)}"


def _require_vision(module: str, purpose: str):
    """Import torchvision, timm or open_clip; if torchvision is what fails, the error says how to get the matching one."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or torchvision's RuntimeError for a torch mismatch
        problem = torchvision_problem()
        if problem is None:
            if isinstance(exc, ImportError):
                return require(module, "models", purpose)  # the usual "pip install 'brainlid[models]'"
            raise
        then = "" if module == "torchvision" else ", then: pip install 'brainlid[models]'"
        raise DependencyError(f"{purpose} need torchvision: {problem}{then}") from exc


def _load_torchvision(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    tv = _require_vision("torchvision", "torchvision models")
    import torch

    if name not in tv.models.list_models():
        raise InputError(f"torchvision has no model {name!r}; e.g. {', '.join(tv.models.list_models()[:8])}")
    try:
        enums = tv.models.get_model_weights(name)
    except (KeyError, ValueError):
        enums = None
    seed = _random_seed(weights)
    if seed is not None or _is_path(weights):
        with _seeded(seed if seed is not None else 0):
            module = tv.models.get_model(name, weights=None)
        module = _with_weights(module, weights, spec)
        pre = _preprocess_from_tv(enums.DEFAULT) if enums is not None else None
        return _finish(module, _model_id(spec, weights), pre)
    if enums is None:
        raise InputError(f"torchvision has no pretrained weights for {name!r}; use @random or a local state_dict @path")
    try:
        enum = enums.DEFAULT if weights in (None, "DEFAULT") else enums[weights]
    except KeyError:
        raise InputError(f"torchvision has no weights {weights!r} for {name!r}; choose DEFAULT, {', '.join(e.name for e in enums)}, random or a local path") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if not cached.is_file() and not allow_download:
        raise _not_cached(
            f"torchvision weights {name}@{enum.name}", cached,
            f"python -c \"import torchvision; torchvision.models.get_model('{name}', weights='{enum.name}')\"",
        )
    module = tv.models.get_model(name, weights=enum)
    return _finish(module, f"torchvision:{name}@{enum.name}", _preprocess_from_tv(enum))


def _preprocess_from_tv(enum) -> Preprocess | None:
    """torchvision's ``weights.transforms()`` (``ImageClassification``: ``Resize(resize_size)`` of the
    shorter side, ``CenterCrop(crop_size)``, ``ToTensor``, ``Normalize``) as a :class:`Preprocess`;
    None for transforms of other kinds (video, segmentation, ...)."""
    t = enum.transforms()
    crop, resize = getattr(t, "crop_size", None), getattr(t, "resize_size", None)
    if crop is None or resize is None or not hasattr(t, "mean"):
        return None
    crop = list(crop) * 2 if len(crop) == 1 else list(crop)
    mode = "shortest" if len(resize) == 1 else "squash"
    scale = list(resize) * 2 if len(resize) == 1 else list(resize)
    interp = str(getattr(t, "interpolation", "bilinear")).split(".")[-1]
    return _library_preprocess(crop, scale, t.mean, t.std, interp, mode, "torchvision")


def _timm_pretrained_file(timm, name: str) -> tuple[str | None, str, str]:
    """``(local weight file or None, where it was looked for, timm model name with its pretrained tag)``.

    timm takes weights from the Hugging Face hub (``hf_hub_id``: ``model.safetensors`` or
    ``pytorch_model.bin``) or, for a few, a URL into the torch hub cache; both are looked up locally only.
    """
    import torch

    try:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError as exc:
        raise InputError(f"timm has no pretrained weights {name!r}: {exc}") from None
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        fnames = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else ["model.safetensors", "pytorch_model.bin"]
        return _hf_cached_file(repo, fnames, revision or None), f"{_hf_hub_cache()} {repo}", name
    url = getattr(cfg, "url", None) or ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return (str(cached) if url and cached.is_file() else None), str(cached), name


def _load_timm(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    timm = _require_vision("timm", "timm models")
    import timm.data  # noqa: F401  (a submodule `import timm` alone need not bind)

    if not timm.is_model(name.split(".")[0]):
        raise InputError(f"timm has no model {name.split('.')[0]!r}; see timm.list_models()")
    seed = _random_seed(weights)
    if weights not in (None, "DEFAULT", "pretrained") and seed is None and not _is_path(weights):
        if "." in name:
            raise InputError(f"{spec!r}: give the timm pretrained tag either as NAME.TAG or as @TAG, not both")
        name, weights = f"{name}.{weights}", None  # timm:resnet18@a1_in1k == timm:resnet18.a1_in1k
    with _seeded(seed if seed is not None else 0):
        if seed is not None or _is_path(weights):
            module = timm.create_model(name, pretrained=False)
            module = _with_weights(module, weights, spec)
        else:
            path, where, tagged = _timm_pretrained_file(timm, name)
            if path is not None:  # timm reads it (torch.load weights_only=True / safetensors), no network
                module = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": path})
            elif allow_download:
                module = timm.create_model(name, pretrained=True)
            else:
                raise _not_cached(f"timm weights {tagged}", where, f"python -c \"import timm; timm.create_model('{tagged}', pretrained=True)\"")
    cfg = timm.data.resolve_data_config({}, model=module)
    return _finish(module, _model_id(spec, weights), _preprocess_from_timm(cfg), tuple(cfg["input_size"]))


def _preprocess_from_timm(cfg: dict) -> Preprocess:
    """timm's eval transform for a data config (``timm.data.create_transform(**cfg)``, i.e.
    ``transforms_imagenet_eval``) as a :class:`Preprocess`: resize to ``floor(size / crop_pct)``
    (shorter side for ``crop_mode="center"``, both sides for ``"squash"``), centre crop ``input_size``."""
    crop = tuple(cfg["input_size"][-2:])
    crop_pct = cfg.get("crop_pct") or 0.875  # timm.data.DEFAULT_CROP_PCT
    scale = tuple(math.floor(s / crop_pct) for s in crop)
    mode = cfg.get("crop_mode") or "center"
    mode = {"center": "shortest"}.get(mode, mode)
    return _library_preprocess(crop, scale, cfg["mean"], cfg["std"], cfg.get("interpolation") or "bilinear", mode, "timm")


def _open_clip_pretrained_file(oc, cfg: dict) -> tuple[str | None, str]:
    """``(local checkpoint of an open_clip pretrained tag or None, where it was looked for)``, as
    ``open_clip.pretrained.download_pretrained`` would resolve it, without the network."""
    if cfg.get("file"):
        return (cfg["file"] if os.path.isfile(cfg["file"]) else None), cfg["file"]
    if cfg.get("hf_hub"):
        repo, fname = os.path.split(cfg["hf_hub"])
        pretrained = oc.pretrained
        fname = fname or pretrained.HF_WEIGHTS_NAME
        fnames = list(getattr(pretrained, "_get_safe_alternatives", lambda f: [])(fname)) + [fname]
        return _hf_cached_file(repo, fnames), f"{_hf_hub_cache()} {repo}"
    cached = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
    return (str(cached) if cfg.get("url") and cached.is_file() else None), str(cached)


_OPEN_CLIP_PREPROCESS_KEYS = ("size", "mean", "std", "interpolation", "resize_mode")


def _load_open_clip(name: str, weights: str | None, spec: str, allow_download: bool) -> ModelHandle:
    oc = _require_vision("open_clip", "open_clip models")
    import torch

    if name not in oc.list_models():
        raise InputError(f"open_clip has no model {name!r}; see open_clip.list_models()")
    tags = oc.list_pretrained_tags_by_model(name)
    if weights is None:
        raise InputError(f"open_clip specs need weights: open_clip:{name}@TAG with TAG one of {', '.join(tags) or '(none)'}, @random or @/path/to/checkpoint")
    seed = _random_seed(weights)
    with _seeded(seed if seed is not None else 0):
        if seed is not None or _is_path(weights):
            model = oc.create_model(name, pretrained=None)
            if _is_path(weights):
                sd = load_state_dict_file(weights)
                sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
                # a whole CLIP checkpoint (visual.*, transformer.*, ...) or the visual tower's own state_dict
                _apply_state_dict(model if any(k.startswith("visual.") for k in sd) else model.visual, sd, weights)
        else:
            cfg = oc.get_pretrained_cfg(name, weights)
            if not cfg:
                raise InputError(f"open_clip has no pretrained tag {weights!r} for {name!r}; choose one of {', '.join(tags) or '(none)'}, random or a local path")
            path, where = _open_clip_pretrained_file(oc, cfg)
            if path is not None:  # open_clip reads it (weights_only=True); the tag's preprocessing applied as it would be
                model = oc.create_model(name, pretrained=path, force_preprocess_cfg={k: cfg[k] for k in _OPEN_CLIP_PREPROCESS_KEYS if k in cfg})
            elif allow_download:
                model = oc.create_model(name, pretrained=weights)
            else:
                raise _not_cached(f"open_clip weights {name}@{weights}", where, f"python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{weights}')\"")
    visual = model.visual
    pc = dict(getattr(visual, "preprocess_cfg", None) or {})
    pc.setdefault("size", visual.image_size)
    pre = _preprocess_from_open_clip(pc)
    _add_output_layer(visual, OPEN_CLIP_EMBEDDING, torch)
    return _finish(visual, _model_id(spec, weights), pre, (3,) + _hw(pc["size"]))


def _hw(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def _preprocess_from_open_clip(pc: dict) -> Preprocess:
    """open_clip's eval transform for a preprocess config (``image_transform_v2(PreprocessCfg(**pc))``) as a
    :class:`Preprocess`: ``resize_mode="shortest"`` resizes the shorter side to ``size`` and centre-crops,
    ``"squash"`` resizes to ``size`` exactly; interpolation ``"random"`` means bicubic at eval."""
    size = _hw(pc["size"])
    return _library_preprocess(
        size, size, pc.get("mean") or CLIP_MEAN, pc.get("std") or CLIP_STD,
        pc.get("interpolation") or "bicubic", pc.get("resize_mode") or "shortest", "open_clip",
    )


OPEN_CLIP_EMBEDDING = "image_embedding"


def _add_output_layer(module, name: str, torch) -> None:
    """Make ``module``'s own output hookable as layer ``name``: an ``nn.Identity`` child applied to the
    output by a forward hook (no parameters, so the weights digest is unchanged). open_clip's ViT
    projects with a bare parameter (``pooled @ proj``), so no sub-module outputs ``encode_image``."""
    if hasattr(module, name):
        return
    module.add_module(name, torch.nn.Identity())
    module.register_forward_hook(lambda mod, args, out: getattr(mod, name)(out))


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
