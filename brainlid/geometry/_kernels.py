"""Compiled kernels (numba) for the float64 re-ranking of kNN candidates and the centring.

Gathering candidate rows and upcasting them with array operations moves several
times the data through memory; these loops read each candidate row once, upcast in
registers and accumulate in float64. They are compiled on first use and cached on disk
(numba ``cache=True``). They are serial and release the GIL (``nogil=True``); large calls
are split over a few Python threads (as many as torch's intra-op threads, which
:func:`brainlid.backend.set_threads` controls). This avoids numba's own parallel
runtime, so concurrent calls from several threads and forked workers stay safe.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

_KERNELS: dict[str, object] = {}
_PARALLEL_MIN_WORK = 4_000_000  # multiply-adds below which one thread does the work


def _build():
    import numba

    fm = {"reassoc", "contract", "nsz", "arcp"}  # vectorise the sums; no finite-math assumptions
    jit = numba.njit(fastmath=fm, cache=True, nogil=True)

    @jit
    def sqdist_pairs(X, Y, rows, cand, out):  # pragma: no cover - compiled
        b, c = cand.shape
        d = X.shape[1]
        for i in range(b):
            x = X[rows[i]]
            for j in range(c):
                y = Y[cand[i, j]]
                s = 0.0
                for t in range(d):
                    diff = np.float64(x[t]) - np.float64(y[t])
                    s += diff * diff
                out[i, j] = s

    @jit
    def dot_pairs(X, Y, rows, cand, out):  # pragma: no cover - compiled
        b, c = cand.shape
        d = X.shape[1]
        for i in range(b):
            x = X[rows[i]]
            for j in range(c):
                y = Y[cand[i, j]]
                s = 0.0
                for t in range(d):
                    s += np.float64(x[t]) * np.float64(y[t])
                out[i, j] = s

    @numba.njit(cache=True, nogil=True)
    def centre_rows(A, mean, out, sq):  # pragma: no cover - compiled
        n, d = A.shape
        for i in range(n):
            s = 0.0
            for t in range(d):
                v = np.float32(np.float64(A[i, t]) - mean[t])
                out[i, t] = v
                s += np.float64(v) * np.float64(v)
            sq[i] = s

    _KERNELS.update(sqdist=sqdist_pairs, dot=dot_pairs, centre=centre_rows)


def _n_threads() -> int:
    try:
        import torch

        return max(1, int(torch.get_num_threads()))
    except Exception:  # pragma: no cover
        return 1


def _split_rows(n_rows: int, work: int, call) -> None:
    """Run ``call(start, stop)`` over row ranges, in threads when the work is large."""
    threads = min(_n_threads(), n_rows)
    if threads <= 1 or work < _PARALLEL_MIN_WORK:
        call(0, n_rows)
        return
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: call(bounds[i], bounds[i + 1]), range(threads)))


def centre_f32(A: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``float32(A − mean)`` (difference in float64, rounded once) and its squared row norms (float64).

    A : (n, d) float32/float64; mean : (d,) float64. Returns ((n, d) float32, (n,) float64).
    """
    if not _KERNELS:
        _build()
    A = np.ascontiguousarray(A)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    out = np.empty(A.shape, dtype=np.float32)
    sq = np.empty(A.shape[0], dtype=np.float64)
    kern = _KERNELS["centre"]
    _split_rows(A.shape[0], A.size, lambda s, e: kern(A[s:e], mean, out[s:e], sq[s:e]))
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
    out = np.empty(cand.shape, dtype=np.float64)
    kern = _KERNELS[kind]
    _split_rows(cand.shape[0], cand.size * X.shape[1],
                lambda s, e: kern(X, Y, rows[s:e], cand[s:e], out[s:e]))
    return out
