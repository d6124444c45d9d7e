"""Image preprocessing declared as data: resize, centre crop, scaling, normalisation.

A :class:`Preprocess` turns one numpy image from a :class:`~brainlid.data.StimulusSet`
reader, ``(H, W)`` or ``(H, W, C)`` (uint8 from image files, or any numeric dtype
from arrays), into a float32 tensor ``(C, H', W')`` ready for a model. Every step is a
field of a frozen dataclass, so the whole pipeline is hashable into the feature-cache
key (:meth:`Preprocess.to_dict`): change the crop and the cache misses.

Steps, in order
    1. grayscale → RGB (``to_rgb``): ``(H, W)`` or ``(H, W, 1)`` repeated to 3 channels;
       an RGBA image drops its alpha channel.
    2. scaling to [0, 1] (``scale``): ``"auto"`` divides unsigned integer images by the
       dtype's maximum (255 for uint8, 65535 for uint16) and leaves float images as they
       are; ``"255"`` always divides by 255; ``"none"`` never scales.
    3. resize (``resize``): an int resizes the *shorter* side to that many pixels keeping
       the aspect ratio (torchvision's ``Resize(int)``); a pair ``(h, w)`` resizes exactly.
       Interpolation ``"bilinear"`` or ``"bicubic"`` with antialiasing
       (``torch.nn.functional.interpolate(..., antialias=True)``), or ``"nearest"``.
    4. centre crop (``crop``): int or ``(h, w)``; the crop window starts at
       ``round((H - h) / 2)`` as in torchvision's ``CenterCrop``.
    5. normalisation (``mean``, ``std``): ``(x - mean[c]) / std[c]`` per channel.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Preprocess", "IMAGENET_MEAN", "IMAGENET_STD", "CLIP_MEAN", "CLIP_STD", "imagenet"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_INTERP = ("bilinear", "bicubic", "nearest")
_SCALE = ("auto", "255", "none")


def _pair(v, name):
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        v = int(v)
        if v < 1:
            raise InputError(f"{name} must be >= 1, got {v}")
        return v
    v = tuple(int(x) for x in v)
    if len(v) != 2 or min(v) < 1:
        raise InputError(f"{name} must be an int or a pair (h, w) of positive ints, got {v}")
    return v


@dataclass(frozen=True)
class Preprocess:
    """A declared preprocessing pipeline (see the module docstring for the order of steps).

    Parameters
    ----------
    resize : int or (int, int) or None
        Shorter side to this size (int) or exact ``(h, w)``; ``None`` keeps the size.
    crop : int or (int, int) or None
        Centre crop to ``(h, w)`` (an int means square); ``None`` for no crop.
    scale : {"auto", "255", "none"}
        How pixel values are mapped to [0, 1].
    mean, std : tuple of float or None
        Per-channel normalisation after scaling; both or neither.
    to_rgb : bool
        Repeat a single grayscale channel to three (and drop alpha from RGBA).
    interpolation : {"bilinear", "bicubic", "nearest"}
        Resampling for ``resize`` (antialiased for bilinear/bicubic).
    """

    resize: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    scale: str = "auto"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    to_rgb: bool = True
    interpolation: str = "bilinear"
    source: str = field(default="declared", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "resize", _pair(self.resize, "resize"))
        object.__setattr__(self, "crop", _pair(self.crop, "crop"))
        if self.scale not in _SCALE:
            raise InputError(f"scale must be one of {_SCALE}, got {self.scale!r}")
        if self.interpolation not in _INTERP:
            raise InputError(f"interpolation must be one of {_INTERP}, got {self.interpolation!r}")
        if (self.mean is None) != (self.std is None):
            raise InputError("give both mean and std for normalisation, or neither")
        if self.mean is not None:
            mean = tuple(float(m) for m in self.mean)
            std = tuple(float(s) for s in self.std)
            if len(mean) != len(std):
                raise InputError(f"mean has {len(mean)} channels but std has {len(std)}")
            if min(std) <= 0:
                raise InputError(f"std must be positive, got {std}")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    # description ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every field that changes the pixels (hashed into the cache key), JSON-ready."""
        d = asdict(self)
        d.pop("source")
        for k in ("resize", "crop", "mean", "std"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        """A :class:`Preprocess` from :meth:`to_dict` output (unknown keys, e.g. ``source``, ignored)."""
        known = {k: v for k, v in d.items() if k in {"resize", "crop", "scale", "mean", "std", "to_rgb", "interpolation"}}
        return cls(**known)

    def describe(self) -> str:
        """The preprocessing as one canonical JSON line (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size ``(h', w')`` of an ``(h, w)`` image after resize and crop."""
        h, w = self._resized_size(h, w)
        if self.crop is not None:
            h, w = (self.crop, self.crop) if isinstance(self.crop, int) else self.crop
        return h, w

    def _resized_size(self, h, w):
        if self.resize is None:
            return h, w
        if isinstance(self.resize, tuple):
            return self.resize
        s = self.resize
        if h <= w:
            return s, max(1, int(s * w / h))
        return max(1, int(s * h / w)), s

    # application ---------------------------------------------------------------------------
    def __call__(self, img: np.ndarray):
        """Preprocess one image ``(H, W)`` / ``(H, W, C)`` → float32 tensor ``(C, H', W')``."""
        import torch  # heavy: torch
        import torch.nn.functional as F  # heavy: torch

        a = np.asarray(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise InputError(f"an image must have shape (H, W) or (H, W, C), got {a.shape}")
        if a.dtype.kind not in "uif" or a.dtype == np.bool_:
            raise InputError(f"image pixels must be numeric, got dtype {a.dtype}")
        if self.to_rgb:
            if a.shape[2] == 1:
                a = np.repeat(a, 3, axis=2)
            elif a.shape[2] == 4:
                a = a[:, :, :3]
        if self.scale == "auto" and a.dtype.kind == "u":
            div = float(np.iinfo(a.dtype).max)
        elif self.scale == "255":
            div = 255.0
        else:
            div = None
        x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.float32, copy=False))
        if not torch.isfinite(x).all():
            raise InputError("image contains NaN or inf pixels")
        if div is not None:
            x = x / div
        h, w = x.shape[1:]
        nh, nw = self._resized_size(h, w)
        if (nh, nw) != (h, w):
            mode = self.interpolation
            kw = {"antialias": True, "align_corners": False} if mode != "nearest" else {}
            x = F.interpolate(x[None], size=(nh, nw), mode=mode, **kw)[0]
            if mode == "bicubic" and div is not None:
                x = x.clamp_(0.0, 1.0)
        if self.crop is not None:
            ch, cw = (self.crop, self.crop) if isinstance(self.crop, int) else self.crop
            H, W = x.shape[1:]
            if ch > H or cw > W:
                raise InputError(f"centre crop {ch}x{cw} is larger than the (resized) image {H}x{W}")
            top, left = int(round((H - ch) / 2.0)), int(round((W - cw) / 2.0))
            x = x[:, top : top + ch, left : left + cw]
        if self.mean is not None:
            if len(self.mean) != x.shape[0]:
                raise InputError(f"normalisation has {len(self.mean)} channels but the image has {x.shape[0]}")
            m = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
            s = torch.tensor(self.std, dtype=torch.float32)[:, None, None]
            x = (x - m) / s
        return x.contiguous()


def imagenet(size: int = 224, resize: int | None = None, interpolation: str = "bilinear") -> Preprocess:
    """The usual ImageNet evaluation pipeline: resize shorter side to ``resize`` (default
    ``round(size / 0.875)``), centre crop ``size``, scale to [0, 1], ImageNet mean/std."""
    resize = int(round(size / 0.875)) if resize is None else resize
    return Preprocess(resize=resize, crop=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation=interpolation, source="imagenet")
