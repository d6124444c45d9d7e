"""brainlid: score AI models against human brain data and explain the scores by the local
intrinsic dimension (LID) of their representations.

Top-level shortcuts (imported lazily, so ``import brainlid`` stays fast):

* :func:`brainlid.score` — :func:`brainlid.scoring.serial.score`: score models on benchmarks;
* :func:`brainlid.lid`, :func:`brainlid.lid_sweep`, :func:`brainlid.global_dimension` — from
  :mod:`brainlid.geometry`;
* :func:`brainlid.analyze` — :func:`brainlid.analysis.analyze`: LID vs alignment across models.
"""

from __future__ import annotations

import importlib

from ._version import __version__

__all__ = ["__version__", "score", "lid", "lid_sweep", "global_dimension", "analyze"]

_LAZY = {
    "score": ("brainlid.scoring.serial", "score"),
    "lid": ("brainlid.geometry", "lid"),
    "lid_sweep": ("brainlid.geometry", "lid_sweep"),
    "global_dimension": ("brainlid.geometry", "global_dimension"),
    "analyze": ("brainlid.analysis", "analyze"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'brainlid' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
