"""Condensed RDMs: the storage format of representational dissimilarity matrices.

An RDM over n stimuli is stored condensed, as its n(n-1)/2 upper-triangle entries in
:func:`scipy.spatial.distance.squareform` order (row-major, i < j). These helpers convert between
the condensed and square forms and select stimuli without forming an n x n matrix. The module
imports only NumPy (scipy on use), so RDM code on the CLI start-up path can rely on it.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["n_from_condensed", "square_rdm", "condensed_positions", "condensed_subset"]


def n_from_condensed(n_pairs: int) -> int:
    """Number of stimuli n with n(n-1)/2 == n_pairs (error if there is none)."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs or n < 2:
        raise InputError(f"an RDM vector of length {n_pairs} is not n(n-1)/2 for any n")
    return n


def square_rdm(d) -> np.ndarray:
    """Condensed RDM (n_pairs,) -> square symmetric (n, n) with zero diagonal (scipy order)."""
    from scipy.spatial.distance import squareform  # heavy: scipy.spatial (~0.6 s), kept off the CLI start-up path

    d = np.asarray(d)
    return squareform(d, checks=False)


def condensed_positions(positions, n: int) -> np.ndarray:
    """Indices into a condensed RDM over ``n`` stimuli of the RDM over ``positions``.

    ``d[condensed_positions(p, n)]`` is the condensed RDM of the stimuli at positions
    ``p`` (in that order) of a condensed RDM ``d`` over n stimuli; no n x n matrix is formed.

    For a < b the condensed index of pair (a, b) is ``n*a - a*(a+1)/2 + (b - a - 1)``.
    """
    p = np.asarray(positions, dtype=np.int64)
    if p.ndim != 1 or p.size < 2:
        raise InputError(f"positions must be 1-D with >= 2 entries; got shape {p.shape}")
    if p.min() < 0 or p.max() >= n:
        raise InputError(f"positions out of range for an RDM over {n} stimuli")
    if np.unique(p).size != p.size:
        raise InputError("positions contain duplicates: an RDM cannot repeat a stimulus")
    iu, ju = np.triu_indices(p.size, 1)
    a, b = p[iu], p[ju]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return n * lo - lo * (lo + 1) // 2 + (hi - lo - 1)


def condensed_subset(d, positions, n: int | None = None) -> np.ndarray:
    """Condensed RDM(s) ``(..., n_pairs)`` restricted to and reordered by ``positions``."""
    d = np.asarray(d)
    n = n_from_condensed(d.shape[-1]) if n is None else n
    return d[..., condensed_positions(positions, n)]
