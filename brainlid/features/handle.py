"""A loaded model and what identifies it: :class:`ModelHandle`, the weights and code digests, weight files.

The weights digest is a SHA-256 over the loaded ``state_dict`` (names, dtypes, shapes and bytes),
so it identifies what actually runs, whatever the source. torch is imported inside the functions
that need it (heavy).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetNotFoundError, FileFormatError, InputError
from ..io import torch_load_tensors
from .preprocess import Preprocess

__all__ = ["ModelHandle", "weights_digest", "code_digest", "load_state_dict_file"]


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
    import torch  # heavy: torch

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
    import torch  # heavy: torch

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
    import torch  # heavy: torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"weight file not found: {path}. Pass the path of a saved state_dict (torch.save(model.state_dict(), path)) or a .safetensors file, or '@random' for random weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # optional: safetensors, only for .safetensors weights

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
    import torch  # heavy: torch

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


def _with_weights(module, weights, spec):
    if weights is None or _random_seed(weights) is not None:
        return module
    _apply_state_dict(module, load_state_dict_file(weights), weights)
    return module


def _model_id(spec: str, weights: str | None) -> str:
    """The spec with a local weights path replaced by its file name (the digest identifies content)."""
    if weights and _random_seed(weights) is None and (os.sep in weights or Path(weights).suffix):
        return spec[: len(spec) - len(weights)] + Path(weights).name
    return spec


def _is_path(weights: str | None) -> bool:
    return bool(weights) and (os.sep in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
