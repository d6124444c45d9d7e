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
The handle, digests and weight files are in :mod:`brainlid.features.handle`, the library adapters in
:mod:`brainlid.features.adapters`; this module holds the spec grammar, local models and the dispatch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .._deprecate import forward
from ..errors import DatasetNotFoundError, InputError
from .adapters import _load_hf, _load_open_clip, _load_timm, _load_torchvision
from .handle import (ModelHandle, _finish, _model_id, _random_seed, _seeded, _with_weights, code_digest,
                     load_state_dict_file, weights_digest)
from .preprocess import Preprocess

__all__ = ["ModelHandle", "load_model", "weights_digest", "load_state_dict_file", "SOURCES", "parse_spec",
           "cifar_resnet_handle"]

# moved to brainlid.features.adapters
__getattr__ = forward(__name__, dict.fromkeys(
    ("TORCHVISION_FOR_TORCH", "PYTORCH_INDEX", "OPEN_CLIP_EMBEDDING", "matching_torchvision", "torch_install_command",
     "torchvision_problem"), "brainlid.features.adapters"))

SOURCES = ("module", "entrypoint", "torchvision", "timm", "open_clip", "hf", "cifar_resnet")


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


def _call_factory(obj, what: str):
    try:
        return obj()
    except TypeError as exc:
        raise InputError(f"{what} must be a class or factory callable without arguments: {exc}") from exc


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


def cifar_resnet_handle(name: str, weights: str | None = None, spec: str | None = None) -> ModelHandle:
    """The model spec ``cifar_resnet:DEPTH[@WEIGHTS]`` → a :class:`ModelHandle` (:mod:`brainlid.models.cifar_resnet`).

    ``WEIGHTS`` is a checkpoint path (Idelbayev's format, loaded by
    :func:`~brainlid.models.cifar_resnet.load_cifar_resnet` with ``weights_only=True``), ``random``
    (seed 0) or ``random:SEED``; omitted means ``random``. The handle declares the CIFAR
    preprocessing: resize to 32 x 32 (bilinear, antialiased), scale to [0, 1], normalise with
    ``CIFAR_MEAN`` / ``CIFAR_STD``.

    Examples: ``cifar_resnet:20@/data/resnet20-12fca82f.th``, ``cifar_resnet:56@random:3``.
    """
    from ..models.cifar_resnet import CIFAR_MEAN, CIFAR_STD, cifar_resnet, load_cifar_resnet  # heavy: torch

    spec = spec or f"cifar_resnet:{name}" + (f"@{weights}" if weights else "")
    try:
        depth = int(str(name).strip())
    except ValueError:
        raise InputError(f"cifar_resnet spec needs an integer depth (cifar_resnet:20@PATH); got {name!r} in {spec!r}") from None
    info = {"depth": depth}
    seed = 0 if weights is None else _random_seed(weights)
    if seed is not None:
        module = cifar_resnet(depth, seed=seed)
        info["weights"] = f"random:{seed}"
    else:
        module = load_cifar_resnet(weights, depth=depth)
        info.update({k: v for k, v in module.checkpoint_info.items() if isinstance(v, (int, float, str))})
        info["weights"] = str(weights)
    pre = Preprocess(resize=(32, 32), crop=None, scale="auto", mean=CIFAR_MEAN, std=CIFAR_STD,
                     interpolation="bilinear", source="cifar_resnet")
    return _finish(module, spec, preprocess=pre, input_size=(3, 32, 32), info=info)


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
    import torch  # heavy: torch

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
        return cifar_resnet_handle(name, weights, spec)
    loader = {"torchvision": _load_torchvision, "timm": _load_timm, "open_clip": _load_open_clip, "hf": _load_hf}[source]
    return loader(name, weights, spec, dl)
