"""Old import paths that keep working after a move, with a ``DeprecationWarning`` naming the new one.

A module that moved leaves a small forwarding module behind::

    # brainlid/scoring/runner.py
    from .._deprecate import forward

    __getattr__ = forward(__name__, {"score": "brainlid.scoring.serial", "score_layer": "brainlid.scoring.cell"})

``from brainlid.scoring.runner import score`` then returns :func:`brainlid.scoring.serial.score` and
warns once per name: ``brainlid.scoring.runner.score is deprecated; import it from
brainlid.scoring.serial``. The target is imported only when an old name is used.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping

from ._lazy import load, target_of


def forward(old_module: str, moved: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that forwards each name in ``moved`` (name → new module) with a warning.

    A value ``"pkg.mod:new_name"`` forwards to a renamed object.
    """
    moved = dict(moved)

    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        target, new_name = target_of(moved[name], name)
        warnings.warn(f"{old_module}.{name} is deprecated; import {new_name} from {target}",
                      DeprecationWarning, stacklevel=2)
        return load(moved[name], name)

    __getattr__.moved = moved  # what forwards where (the tests check nothing of ours still uses an old path)
    return __getattr__
