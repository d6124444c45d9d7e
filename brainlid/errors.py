"""Error types: one per failure class, so callers and the CLI can tell them apart.

Every error brainlid raises on bad input derives from :class:`BrainlidError`; the
command line prints its message on one line (no traceback unless ``--debug``).
"""

from __future__ import annotations

import importlib


class BrainlidError(Exception):
    """Base class of every error brainlid raises deliberately."""


class InputError(BrainlidError, ValueError):
    """An argument or array the caller handed in is unusable (shape, NaN, dtype, size)."""


class FileFormatError(BrainlidError, ValueError):
    """A file exists but cannot be read as what it claims to be (truncated, wrong keys, shapes)."""


class DatasetNotFoundError(BrainlidError, FileNotFoundError):
    """A dataset file or folder is missing. The message names the file, the dataset card and how to get it."""


class StimulusMismatchError(BrainlidError, ValueError):
    """Two objects that must be joined on stimulus ids do not share enough of them."""


class DependencyError(BrainlidError, ImportError):
    """An optional dependency is missing. The message names the extra that installs it."""


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency lazily, or raise :class:`DependencyError` naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"timm"``.
    extra : str
        The brainlid extra that installs it, e.g. ``"models"``.
    purpose : str
        What it is needed for, shown in the error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        why = f" for {purpose}" if purpose else ""
        raise DependencyError(
            f"{module} is needed{why} but could not be imported ({exc}). "
            f"Install it with: pip install 'brainlid[{extra}]'"
        ) from exc
