"""Package faces that import on first use (PEP 562), so ``import brainlid.x`` stays light.

A face lists its public names and the submodule each comes from::

    # brainlid/data/__init__.py
    from .._lazy import lazy_face

    _FACE = {"BrainData": ".brain", "match_ids": ".ids"}
    __all__ = list(_FACE)
    __getattr__, __dir__ = lazy_face(__name__, _FACE)

``brainlid.data.BrainData`` then imports :mod:`brainlid.data.brain` the first time it is used (the CLI's
start-up never pays for pandas or scikit-learn it does not need). Targets are module paths, relative to
the face (``".brain"``) or absolute (``"brainlid.geometry"``); ``"module:attr"`` names a renamed object.
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def target_of(spec: str, name: str) -> tuple[str, str]:
    """``("pkg.mod", attr)`` of a target ``"pkg.mod"`` (the object keeps ``name``) or ``"pkg.mod:attr"`` (renamed)."""
    module, _, attr = spec.partition(":")
    return module, attr or name


def load(spec: str, name: str, package: str | None = None):
    """The object a target names (:func:`target_of`), importing its module; relative modules need ``package``."""
    module, attr = target_of(spec, name)
    return getattr(importlib.import_module(module, package), attr)


def lazy_face(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a lazy package face (see the module docstring)."""
    names = dict(names)
    module = importlib.import_module(package)

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = load(names[name], name, package)
        setattr(module, name, value)  # the next access is a plain attribute lookup
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__
