"""Input checks shared by the geometry functions (kNN, local and global dimension).

Every public geometry function funnels its array through :func:`check_points`, so
the same bad input gets the same clear error everywhere:

* 1-D input → :class:`~brainlid.errors.InputError` suggesting ``reshape``;
* rows with NaN/inf → InputError naming how many rows and the first few indices;
* integer, bool and float16 input is converted to float32; float64 input is kept as is
  with ``dtype="exact"`` (the kNN and the dimension estimators: float32 candidate search
  on centred, rescaled copies, distances re-computed in float64 from the caller's rows);
* too few rows for the requested ``k`` → InputError naming the largest valid ``k``.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from ..errors import InputError

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "NEAR_DUPLICATE_RTOL",
    "DuplicatePointsWarning",
    "check_points",
    "check_k",
    "check_choice",
    "parse_memory_budget",
    "unique_rows",
    "format_indices",
    "warn_duplicates",
    "warn_near_duplicates",
]

DEFAULT_MEMORY_BUDGET = 512 * 1024**2  # bytes
# a nearest neighbour closer than this fraction of the data's RMS radius is a near-duplicate: the level
# of float32 rounding (2⁻²⁴ ≈ 6e-8 per coordinate), far below real spacings (only huge 1-D samples,
# whose smallest gaps shrink like 1/n², come near it)
NEAR_DUPLICATE_RTOL = 1e-6

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


class DuplicatePointsWarning(UserWarning):
    """Some data points are exact copies of others (zero distances)."""


def parse_memory_budget(budget: int | float | str | None) -> int:
    """Bytes allowed for temporary blocks.

    ``None`` → ``$BRAINLID_MEMORY_BUDGET`` if set, else 512 MiB. Strings accept a unit:
    ``"512MB"``, ``"1GiB"``, ``"2e9"``.
    """
    if budget is None:
        budget = os.environ.get("BRAINLID_MEMORY_BUDGET") or DEFAULT_MEMORY_BUDGET
    if isinstance(budget, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", budget)
        if not m or m.group(2).lower() not in _UNITS:
            raise InputError(f"memory budget {budget!r} is not understood; use bytes or e.g. '512MB', '2GiB'")
        budget = float(m.group(1)) * _UNITS[m.group(2).lower()]
    try:
        value = int(budget)
    except (TypeError, ValueError):
        raise InputError(f"memory budget must be a number of bytes or a string like '512MB', got {budget!r}") from None
    if value <= 0:
        raise InputError(f"memory budget must be positive, got {budget!r}")
    return value


def format_indices(idx, limit: int = 5) -> str:
    """``"3, 17, 42, ..."``: the first ``limit`` indices of an index array, for error messages."""
    idx = np.asarray(idx).ravel()
    head = ", ".join(str(int(i)) for i in idx[:limit])
    return head + (", ..." if idx.size > limit else "")


def check_points(X, name: str = "X", min_rows: int = 1, dtype=np.float32) -> np.ndarray:
    """Validate a point cloud and return it as a C-contiguous 2-D ``dtype`` array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Points as rows. numpy arrays, torch tensors (CPU) and nested lists are accepted.
    name : str
        Name used in error messages.
    min_rows : int
        Minimum number of rows.
    dtype : numpy dtype or "exact"
        Output dtype (float32 by default). ``"exact"``: float64 input stays float64, anything
        else becomes float32.

    Returns
    -------
    ndarray of shape (n_samples, n_features), ``dtype``, C-contiguous
        No copy when ``X`` already has that dtype and layout.

    Raises
    ------
    InputError
        1-D or >2-D input, empty input, non-numeric dtype, NaN/inf rows, too few rows.
    """
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch tensor
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X)
    except Exception as exc:
        raise InputError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim == 1:
        raise InputError(
            f"{name} must be 2-D (n_samples, n_features), got a 1-D array of length {arr.shape[0]}; "
            f"use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    n, d = arr.shape
    if n == 0 or d == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if n < min_rows:
        raise InputError(f"{name} has {n} rows; at least {min_rows} are needed")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise InputError(
                f"{name} has {bad.size} row(s) with NaN or inf values (rows {format_indices(bad)}); "
                f"remove or impute them first"
            )
    if isinstance(dtype, str) and dtype == "exact":
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
    out = np.ascontiguousarray(arr, dtype=dtype)
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > np.dtype(dtype).itemsize:
        if not np.isfinite(out).all():
            bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
            raise InputError(
                f"{name} has {bad.size} row(s) that overflow {np.dtype(dtype).name} (rows {format_indices(bad)}); "
                f"rescale the data"
            )
    return out


def check_k(k, n_points: int, *, min_k: int = 1, exclude_self: bool = True, name: str = "k",
            what: str = "points") -> int:
    """Validate a neighbourhood size: the one check of ``k`` in the geometry API.

    Parameters
    ----------
    k : int
        Neighbourhood size (an integral float such as ``20.0`` is accepted).
    n_points : int
        Points it is checked against; with ``exclude_self`` the largest valid ``k`` is
        ``n_points - 1`` (a point is not its own neighbour), else ``n_points``.
    min_k : int
        Smallest valid ``k`` (e.g. 2 for the MLE, see :func:`brainlid.geometry.local.min_k`).
    exclude_self : bool
        See ``n_points``.
    name, what : str
        Names of ``k`` and of the points in the message.

    Returns
    -------
    int
        ``k`` as a Python int.

    Raises
    ------
    InputError
        ``k`` is not an integer, or is outside ``[min_k, largest]``; the message names the
        valid bound: ``"k=30 is too large for 25 points: the largest valid k is 24 (self is excluded)"``.
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        if isinstance(k, float) and float(k).is_integer():
            k = int(k)
        else:
            raise InputError(f"{name} must be an integer, got {k!r}")
    k = int(k)
    largest = n_points - 1 if exclude_self else n_points
    if k < min_k:
        raise InputError(f"{name}={k} is too small: the smallest valid {name} is {min_k}")
    if k > largest:
        raise InputError(
            f"{name}={k} is too large for {n_points} {what}: the largest valid {name} is {largest}"
            + (" (self is excluded)" if exclude_self else "")
        )
    return k


def check_choice(value, options, what: str):
    """``value`` if it is one of ``options`` (a registry's keys), else InputError listing them."""
    if value not in options:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(options)}")
    return value


def unique_rows(X: np.ndarray):
    """Exact duplicate rows of a 2-D array.

    Returns
    -------
    first : ndarray of int64, shape (n_unique,)
        Index of the first occurrence of each distinct row, in increasing order.
    inverse : ndarray of int64, shape (n,)
        ``X[first][inverse] == X``.
    counts : ndarray of int64, shape (n_unique,)
        Multiplicity of each distinct row.
    """
    X = np.ascontiguousarray(X)
    # -0.0 and 0.0 are equal numbers but different bytes: normalise before hashing bytes.
    if np.issubdtype(X.dtype, np.floating):
        X = X + X.dtype.type(0)
    n = X.shape[0]
    # Fast path: a 64-bit hash of each row's bytes (equal rows hash equally); when no two hashes
    # collide every row is distinct and the byte-wise sort of whole rows is skipped.
    hashes = _row_hashes(X)
    _, hash_counts = np.unique(hashes, return_counts=True)
    if hash_counts.size == n:
        idx = np.arange(n, dtype=np.int64)
        return idx, idx.copy(), np.ones(n, dtype=np.int64)
    view = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(view, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order].astype(np.int64), rank[inverse.ravel()].astype(np.int64), counts[order].astype(np.int64)


def _row_hashes(X: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes: Σ_j word_ij · m_j (mod 2⁶⁴) with fixed odd multipliers,
    computed in column blocks so the temporary stays small."""
    words = X.view(np.uint8).reshape(X.shape[0], -1)
    pad = (-words.shape[1]) % 4
    if pad:
        words = np.concatenate([words, np.zeros((X.shape[0], pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(words).view(np.uint32)
    mult = np.random.default_rng(0x5EED).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | np.uint64(1)
    h = np.zeros(X.shape[0], dtype=np.uint64)
    step = max(1, (1 << 22) // max(1, X.shape[0]))
    with np.errstate(over="ignore"):
        for j in range(0, words.shape[1], step):
            h += (words[:, j : j + step].astype(np.uint64) * mult[j : j + step]).sum(axis=1, dtype=np.uint64)
    return h


def warn_duplicates(n_dup: int, n: int, what: str, stacklevel: int = 3) -> None:
    """Issue the one :class:`DuplicatePointsWarning` text used across brainlid."""
    warnings.warn(
        f"{n_dup} of {n} points have an exact duplicate (zero distance); {what}",
        DuplicatePointsWarning,
        stacklevel=stacklevel,
    )


def warn_near_duplicates(n_near: int, n: int, threshold: float, stacklevel: int = 3) -> None:
    """The :class:`DuplicatePointsWarning` for points whose nearest neighbour is at float-noise distance."""
    warnings.warn(
        f"{n_near} of {n} points have a near-duplicate: a neighbour closer than {threshold:.3g} "
        f"({NEAR_DUPLICATE_RTOL:g} × the data's RMS radius, at float32 rounding level); such distances "
        f"dominate the local dimension at those points; remove the near-copies if they are not real",
        DuplicatePointsWarning,
        stacklevel=stacklevel,
    )
