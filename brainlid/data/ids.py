"""Stimulus identifiers: normalisation, joins and the one hash of an id sequence.

Data meet only through stimulus ids: every join intersects and orders by id,
never trusts row order (:func:`match_ids`). :func:`ids_bytes` is the one serialisation of an
id sequence that identities hash (:func:`ids_digest`, the feature cache's key; the
:attr:`StimulusSet.digest <brainlid.data.StimulusSet.digest>`).
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from ..errors import InputError, StimulusMismatchError

__all__ = ["as_ids", "match_ids", "positions_of", "ids_in", "ids_bytes", "ids_digest"]


def as_ids(ids, name: str = "stimulus_ids") -> np.ndarray:
    """Normalise stimulus ids to a 1-D array of int64 (when all are integers) or str.

    Raises
    ------
    InputError
        If ``ids`` is not 1-D, is empty, contains missing values or duplicates.
    """
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"{name} are floats that are not whole numbers; pass integer or string ids")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "b":
        raise InputError(f"{name} must be integers or strings, got booleans")
    else:
        if arr.dtype.kind == "O" and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
            raise InputError(f"{name} contain missing values")
        if arr.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) for v in arr):
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(str)
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        dup = uniq[counts > 1]
        raise InputError(f"{name} contain {dup.size} duplicated id(s), e.g. {list(dup[:5])}")
    return arr


def match_ids(ids_a, ids_b, *, min_overlap: int = 1, names: tuple[str, str] = ("a", "b"), warn_partial: bool = False):
    """Positions that pair equal ids in two id arrays, in the order of ``ids_a``.

    Parameters
    ----------
    ids_a, ids_b : array-like of shape (n_a,), (n_b,)
        Stimulus ids of two objects (each without duplicates).
    min_overlap : int
        Fewest shared ids accepted.
    names : tuple of str
        What the two sides are called in messages.
    warn_partial : bool
        Warn when either side has ids the other lacks.

    Returns
    -------
    idx_a, idx_b : ndarray of int64, shape (n_shared,)
        ``ids_a[idx_a] == ids_b[idx_b]``, ordered as the shared ids appear in ``ids_a``.

    Raises
    ------
    StimulusMismatchError
        When fewer than ``min_overlap`` ids are shared (the message gives the counts and examples),
        or when one side has integer ids and the other strings.
    """
    a = as_ids(ids_a, f"{names[0]} ids")
    b = as_ids(ids_b, f"{names[1]} ids")
    if (a.dtype.kind == "U") != (b.dtype.kind == "U"):
        raise StimulusMismatchError(
            f"{names[0]} has {'string' if a.dtype.kind == 'U' else 'integer'} ids and {names[1]} "
            f"{'string' if b.dtype.kind == 'U' else 'integer'} ids (e.g. {a[0]!r} vs {b[0]!r}); they cannot match"
        )
    order_b = np.argsort(b, kind="stable")
    pos = np.searchsorted(b, a, sorter=order_b)
    pos = np.clip(pos, 0, b.size - 1)
    cand = order_b[pos]
    hit = b[cand] == a
    idx_a = np.nonzero(hit)[0].astype(np.int64)
    idx_b = cand[hit].astype(np.int64)
    n = idx_a.size
    if n < min_overlap:
        raise StimulusMismatchError(
            f"only {n} stimulus id(s) shared between {names[0]} ({a.size} ids, e.g. {list(a[:3])}) and "
            f"{names[1]} ({b.size} ids, e.g. {list(b[:3])}); at least {min_overlap} needed"
        )
    if warn_partial and (n < a.size or n < b.size):
        warnings.warn(
            f"{n} stimulus ids shared; {a.size - n} of {names[0]}'s and {b.size - n} of {names[1]}'s are unmatched and dropped",
            stacklevel=2,
        )
    return idx_a, idx_b


def positions_of(have, want, *, where: str, names: tuple[str, str] = ("have", "requested"), min_overlap: int = 1,
                 error: type[Exception] = InputError) -> np.ndarray:
    """Positions in ``have`` of every id of ``want``, in ``want``'s order (:func:`match_ids`, all required).

    Parameters
    ----------
    have : array-like of shape (n_have,)
        Ids of the object being indexed (without duplicates).
    want : array-like of shape (n_want,)
        Requested ids (without duplicates).
    where : str
        What ``have`` is, for the message (``"the data"``, ``"stimulus set 'x'"``).
    names : tuple of str
        The two sides' names in :func:`match_ids`' messages.
    min_overlap : int
        Passed to :func:`match_ids`.
    error : exception class
        Raised when some requested ids are missing (default :class:`~brainlid.errors.InputError`).

    Returns
    -------
    pos : ndarray of int64, shape (n_want,)
        ``have[pos] == want``.

    Raises
    ------
    error
        ``"<n> requested stimulus id(s) not in <where>, e.g. [...]"``.
    """
    want = as_ids(want, f"{names[1]} ids")
    idx_have, idx_want = match_ids(have, want, min_overlap=min_overlap, names=names)
    if idx_want.size != want.size:
        missing = np.delete(want, idx_want)
        raise error(f"{missing.size} requested stimulus id(s) not in {where}, e.g. {missing[:5].tolist()}")
    pos = np.empty(want.size, dtype=np.int64)
    pos[idx_want] = idx_have
    return pos


def ids_in(ids, other, *, names: tuple[str, str] = ("ids", "other")) -> np.ndarray:
    """Which of ``ids`` are also in ``other``: the membership form of :func:`match_ids`.

    Parameters
    ----------
    ids : array-like of shape (n,)
        Stimulus ids without duplicates.
    other : array-like of shape (m,)
        Stimulus ids without duplicates; may be empty (then nothing is in it).
    names : tuple of str
        What the two sides are called in messages.

    Returns
    -------
    mask : ndarray of shape (n,) bool
        ``mask[i]`` is True when ``ids[i]`` occurs in ``other``.
    """
    if np.size(ids) == 0:
        return np.zeros(0, dtype=bool)
    a = as_ids(ids, f"{names[0]} ids")
    mask = np.zeros(a.size, dtype=bool)
    if np.size(other) == 0:
        return mask
    idx_a, _ = match_ids(a, other, min_overlap=0, names=names)
    mask[idx_a] = True
    return mask


def ids_bytes(ids) -> bytes:
    """The canonical bytes of a stimulus-id sequence, in order: the dtype kind, then the ids as text.

    ``kind + "\\x1f".join(str(id) for id in ids)`` UTF-8 encoded, where ``kind`` is NumPy's dtype
    kind of ``np.asarray(ids)`` (``"i"`` for int64 ids, ``"U"`` for strings), so ``[1, 2]`` and
    ``["1", "2"]`` differ. Every hash of a stimulus set's identity is built from these bytes.

    Parameters
    ----------
    ids : array-like of shape (n_stimuli,)

    Returns
    -------
    bytes
    """
    ids = np.asarray(ids)
    return ids.dtype.kind.encode() + "\x1f".join(map(str, ids.tolist())).encode()


def ids_digest(ids) -> str:
    """SHA-256 hex digest of stimulus ids in order (:func:`ids_bytes`: dtype kind and values).

    The feature cache keys entries by it (:mod:`brainlid.features.cache`), so it must never change:
    the same ids give the same digest across releases.

    Parameters
    ----------
    ids : array-like of shape (n_stimuli,)

    Returns
    -------
    str : 64 hex characters
    """
    return hashlib.sha256(ids_bytes(ids)).hexdigest()
