"""Baselines scored beside every model.

* ``pixels`` — the raw images, resized to 32 × 32 grey levels in [0, 1] and flattened
  (model name ``baseline:pixels``; one "layer", ``pixels``): what any model must beat;
* ``random`` — the same architecture with random weights (``SOURCE:NAME@random``, seeded
  init), when the spec names an architecture that can be rebuilt (model name: that spec);
* ``shuffled`` — the model's last layer with rows permuted across stimuli (a seeded
  permutation without fixed points; model name ``<model>#shuffled``): the zero control; its
  encoding R² should be ≤ 0 and its r near 0.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from ..features import parse_spec

__all__ = ["BASELINES", "parse_baselines", "random_weights_spec", "shuffle_features", "pixel_features",
           "PIXELS_MODEL"]

BASELINES = ("pixels", "random", "shuffled")
PIXELS_MODEL = "baseline:pixels"


def parse_baselines(baselines: bool | str | Sequence[str] | None) -> tuple[str, ...]:
    """``True`` → all, ``False``/``None`` → none, else the named subset (validated)."""
    if baselines is True:
        return BASELINES
    if not baselines:
        return ()
    names = [baselines] if isinstance(baselines, str) else list(baselines)
    bad = [b for b in names if b not in BASELINES]
    if bad:
        raise InputError(f"unknown baseline(s) {bad}; choose from {', '.join(BASELINES)}")
    return tuple(names)


def random_weights_spec(spec) -> str | None:
    """The random-weights twin of a model spec, or None when the spec does not allow one.

    ``torchvision:resnet18`` → ``torchvision:resnet18@random``; ``module:net.py:Net@w.pt`` →
    ``module:net.py:Net@random``. A spec that is already random, or a model object (no spec to
    rebuild), gives None.
    """
    if not isinstance(spec, str):
        return None
    source, name, weights = parse_spec(spec)
    if weights is not None and weights.startswith("random"):
        return None
    return f"{source}:{name}@random"


def shuffle_features(arrays: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Permute the rows of every layer with one seeded permutation without fixed points.

    The ids stay where they were, so every stimulus is paired with another stimulus's features.
    """
    n = {a.shape[0] for a in arrays.values()}
    if len(n) != 1:
        raise InputError("all layers must have the same number of stimuli to be shuffled together")
    n = n.pop()
    if n < 2:
        raise InputError("need at least 2 stimuli to shuffle")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    fixed = np.nonzero(perm == np.arange(n))[0]
    if fixed.size:  # rotate fixed points among themselves (or swap with a neighbour)
        if fixed.size == 1:
            j = (fixed[0] + 1) % n
            perm[fixed[0]], perm[j] = perm[j], perm[fixed[0]]
        else:
            perm[fixed] = perm[np.roll(fixed, 1)]
    return {k: np.ascontiguousarray(v[perm]) for k, v in arrays.items()}


def pixel_features(stimuli, size: int = 32) -> np.ndarray:
    """Raw-pixel baseline: every image resized to ``size × size`` grey levels in [0, 1], flattened.

    Returns ``(n_stimuli, size²)`` float32, rows in the stimulus set's order.
    """
    out = np.empty((len(stimuli), size * size), dtype=np.float32)
    for start in range(0, len(stimuli), 256):
        imgs = stimuli.images(np.arange(start, min(start + 256, len(stimuli))))
        for j, im in enumerate(imgs):
            a = np.asarray(im)
            if a.dtype != np.uint8:
                lo, hi = float(np.min(a)), float(np.max(a))
                a = ((a.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
            if a.ndim == 3 and a.shape[-1] == 1:
                a = a[..., 0]
            pil = Image.fromarray(a).convert("L")
            out[start + j] = np.asarray(pil.resize((size, size), Image.BILINEAR), dtype=np.float32).ravel() / 255.0
    return out
