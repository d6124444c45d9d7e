"""Compiled kernels (numba) for the float64 re-ranking of kNN candidates.

Gathering candidate rows and upcasting them with array operations moves several
times the data through memory; these loops read each candidate row once, upcast in
registers and accumulate in float64. Compiled on first use and cached on disk
(numba ``cache=True``).
"""

from __future__ import annotations

import numpy as np

_KERNELS: dict[str, object] = {}
_PARALLEL_MIN_WORK = 2_000_000  # multiply-adds below which the serial kernel is used


def _build():
    import numba

    fm = {"reassoc", "contract", "nsz", "arcp"}  # vectorise the sums; no finite-math assumptions

    def sqdist_pairs(X, Y, rows, cand):  # pragma: no cover - compiled
        b, c = cand.shape
        d = X.shape[1]
        out = np.empty((b, c), dtype=np.float64)
        for i in numba.prange(b):
            x = X[rows[i]]
            for j in range(c):
                y = Y[cand[i, j]]
                s = 0.0
                for t in range(d):
                    diff = np.float64(x[t]) - np.float64(y[t])
                    s += diff * diff
                out[i, j] = s
        return out

    def dot_pairs(X, Y, rows, cand):  # pragma: no cover - compiled
        b, c = cand.shape
        d = X.shape[1]
        out = np.empty((b, c), dtype=np.float64)
        for i in numba.prange(b):
            x = X[rows[i]]
            for j in range(c):
                y = Y[cand[i, j]]
                s = 0.0
                for t in range(d):
                    s += np.float64(x[t]) * np.float64(y[t])
                out[i, j] = s
        return out

    @numba.njit(parallel=True, cache=True, nogil=True)
    def centre_rows(A, mean, out, sq):  # pragma: no cover - compiled
        n, d = A.shape
        for i in numba.prange(n):
            s = 0.0
            for t in range(d):
                v = np.float32(np.float64(A[i, t]) - mean[t])
                out[i, t] = v
                s += np.float64(v) * np.float64(v)
            sq[i] = s

    _KERNELS["centre"] = centre_rows
    for name, fn in (("sqdist", sqdist_pairs), ("dot", dot_pairs)):
        _KERNELS[name] = numba.njit(parallel=True, fastmath=fm, cache=True, nogil=True)(fn)
        # small calls: thread start-up would dominate (prange runs serially without parallel=True)
        _KERNELS[name + "_serial"] = numba.njit(fastmath=fm, cache=True, nogil=True)(fn)


def centre_f32(A: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``float32(A − mean)`` (difference in float64, rounded once) and its squared row norms (float64).

    A : (n, d) float32/float64 C-contiguous; mean : (d,) float64. Returns ((n, d) float32, (n,) float64).
    """
    if not _KERNELS:
        _build()
    out = np.empty(A.shape, dtype=np.float32)
    sq = np.empty(A.shape[0], dtype=np.float64)
    _KERNELS["centre"](np.ascontiguousarray(A), np.ascontiguousarray(mean, dtype=np.float64), out, sq)
    return out, sq


def pair_values(kind: str, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """float64 ``Σ (x − y)²`` (``kind="sqdist"``) or ``Σ x·y`` (``"dot"``) for pairs (rows[i], cand[i, j]).

    X, Y : (n, d), (m, d) float32 or float64, C-contiguous; rows : (b,) int; cand : (b, c) int.
    Returns (b, c) float64.
    """
    if not _KERNELS:
        _build()
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    serial = cand.size * X.shape[1] < _PARALLEL_MIN_WORK
    return _KERNELS[kind + ("_serial" if serial else "")](X, Y, rows, cand)
