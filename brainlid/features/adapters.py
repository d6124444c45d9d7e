"""Adapters for model libraries: torchvision, timm, open_clip and Hugging Face transformers.

Each ``_load_<library>(name, weights, spec, allow_download)`` builds the library's model, finds
pretrained weights in the local caches without the network (torch hub
``$TORCH_HOME/hub/checkpoints``, Hugging Face ``$HF_HOME/hub``), and translates the library's own
evaluation transform to a :class:`~brainlid.features.preprocess.Preprocess`. The libraries are
optional (the ``models`` extra) and heavy: each is imported inside the function that needs it.
When torchvision is missing or was built for another torch, the error gives the command that
installs the matching pair (:func:`torch_install_command`).
"""

from __future__ import annotations

import importlib
import math
import os
import warnings
from pathlib import Path

from ..errors import DatasetNotFoundError, DependencyError, InputError, require
from .handle import ModelHandle, _apply_state_dict, _finish, _is_path, _model_id, _random_seed, _seeded, _with_weights, load_state_dict_file
from .preprocess import CLIP_MEAN, CLIP_STD, Preprocess

__all__ = ["TORCHVISION_FOR_TORCH", "PYTORCH_INDEX", "OPEN_CLIP_EMBEDDING", "matching_torchvision", "torch_install_command",
           "torchvision_problem"]


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
    from huggingface_hub import constants  # optional: huggingface_hub (the models extra)

    return Path(constants.HF_HUB_CACHE)


def _hf_cached_file(repo_id: str, filenames, revision: str | None = None) -> str | None:
    """The first of ``filenames`` of hub repo ``repo_id`` present in the local cache, or None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache  # optional: huggingface_hub (the models extra)

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
    import torch  # heavy: torch

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
    import torch  # heavy: torch

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
    import torch  # heavy: torch

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
    import timm.data  # noqa: F401  optional: timm; a submodule `import timm` alone need not bind

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
    import torch  # heavy: torch

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
