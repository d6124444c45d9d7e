"""Compiled kernels (numba) of the kNN: centring/scaling, top-c candidate selection, float64 re-ranking.

Gathering candidate rows and upcasting them with array operations moves several
times the data through memory; these loops read each candidate row once, upcast in
registers and accumulate in float64. The top-c selection (:func:`top_candidates`,
:func:`top_candidates_cols`) keeps a size-c min-heap per row (or column): one comparison
per value, a heap update only for values that beat the current c-th best. A first pass
over every 16th value fills the heap with good candidates, so rows whose values grow
along the row (time-ordered data) do not update the heap at every step. This replaces
``torch.topk``, so the kNN needs neither torch nor its import time (~3 s).

The kernels are compiled on first use and cached on disk (numba ``cache=True``). They are
serial and release the GIL (``nogil=True``); large calls are split over a few Python
threads (:func:`brainlid.backend.compute_threads`, which :func:`brainlid.backend.set_threads`
controls). This avoids numba's own parallel runtime, so concurrent calls from several
threads and forked workers stay safe.

Every kernel has a NumPy twin (``np.argpartition`` for the selection, chunked array
arithmetic for the rest) that small problems use (:func:`use_compiled`): importing numba
and the first call of a cached kernel cost ~0.5 s, more than a 500-point kNN takes in NumPy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..backend import compute_threads

KERNELS = "auto"  # "auto", "numba" or "numpy": see use_compiled
_KERNELS: dict[str, object] = {}
_sift_down = _heapify = _offer = _offer_row = None  # compiled heap helpers, set by _build
_PARALLEL_MIN_WORK = 4_000_000  # multiply-adds below which one thread does the work
_COMPILED_MIN_WORK = 2**25  # element operations from which loading numba pays off (see use_compiled)
_NUMPY_CHUNK_ELEMS = 2**20  # float64 temporaries of the NumPy versions: 8 MB
_STRIDE = 16  # pass-1 stride of the top-c selection


def _build():
    import numba  # heavy: numba (~0.5 s), loaded on the first compiled call only

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
    def centre_rows(A, mean, scale, out, sq):  # pragma: no cover - compiled
        n, d = A.shape
        for i in range(n):
            s = 0.0
            f = scale[i]
            for t in range(d):
                v = np.float32((np.float64(A[i, t]) - mean[t]) * f)
                out[i, t] = v
                s += np.float64(v) * np.float64(v)
            sq[i] = s

    plain = numba.njit(cache=True, nogil=True)

    # The heap helpers are module globals, not closure variables: numba keys its on-disk cache on
    # the pickled closure, and a pickled dispatcher differs between runs (the cache would never hit).
    global _sift_down, _heapify, _offer, _offer_row

    @plain
    def _sift_down(hv, hi, c, pos):  # pragma: no cover - compiled
        # restore the min-heap property of hv[:c] below ``pos`` (hi follows hv)
        v = hv[pos]
        ix = hi[pos]
        while True:
            child = 2 * pos + 1
            if child >= c:
                break
            right = child + 1
            if right < c and hv[right] < hv[child]:
                child = right
            if hv[child] < v:
                hv[pos] = hv[child]
                hi[pos] = hi[child]
                pos = child
            else:
                break
        hv[pos] = v
        hi[pos] = ix

    @plain
    def _heapify(hv, hi, c):  # pragma: no cover - compiled
        for p in range(c // 2 - 1, -1, -1):
            _sift_down(hv, hi, c, p)

    @plain
    def _offer(hv, hi, c, v, j):  # pragma: no cover - compiled
        # value v at position j replaces the heap's smallest if larger
        if v > hv[0]:
            hv[0] = v
            hi[0] = j
            _sift_down(hv, hi, c, 0)

    @plain
    def _offer_row(V, i, c, ov, oi):  # pragma: no cover - compiled
        # row i of V offered to every column's heap
        for j in range(V.shape[1]):
            _offer(ov[j], oi[j], c, V[i, j], i)

    @plain
    def topk_rows(V, c, stride, ov, oi):  # pragma: no cover - compiled
        # ov[i], oi[i] = the c largest values of V[i] and their columns (unordered)
        n, m = V.shape
        for i in range(n):
            hv = ov[i]
            hi = oi[i]
            filled = 0
            for j in range(0, m, stride):  # pass 1: every stride-th column
                if filled < c:
                    hv[filled] = V[i, j]
                    hi[filled] = j
                    filled += 1
                    if filled == c:
                        _heapify(hv, hi, c)
                else:
                    _offer(hv, hi, c, V[i, j], j)
            if stride > 1:  # pass 2: the other columns
                for base in range(0, m, stride):
                    for j in range(base + 1, min(base + stride, m)):
                        _offer(hv, hi, c, V[i, j], j)

    @plain
    def topk_cols(V, c, stride, ov, oi):  # pragma: no cover - compiled
        # ov[j], oi[j] = the c largest values of column V[:, j] and their rows (unordered); reads V by rows
        n, m = V.shape
        filled = 0
        for i in range(0, n, stride):  # pass 1: every stride-th row
            if filled < c:
                for j in range(m):
                    ov[j, filled] = V[i, j]
                    oi[j, filled] = i
                filled += 1
                if filled == c:
                    for j in range(m):
                        _heapify(ov[j], oi[j], c)
            else:
                _offer_row(V, i, c, ov, oi)
        if stride > 1:  # pass 2: the other rows
            for base in range(0, n, stride):
                for i in range(base + 1, min(base + stride, n)):
                    _offer_row(V, i, c, ov, oi)

    _KERNELS.update(sqdist=sqdist_pairs, dot=dot_pairs, centre=centre_rows, topk_rows=topk_rows,
                    topk_cols=topk_cols)


def _split_rows(n_rows: int, work: int, call) -> None:
    """Run ``call(start, stop)`` over row ranges, in threads when the work is large."""
    threads = min(compute_threads(), n_rows)
    if threads <= 1 or work < _PARALLEL_MIN_WORK:
        call(0, n_rows)
        return
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: call(bounds[i], bounds[i + 1]), range(threads)))


def use_compiled(work: int) -> bool:
    """Whether to run the compiled kernels for ``work`` element operations, or their NumPy twins.

    ``KERNELS`` forces one (``"numba"`` / ``"numpy"``); ``"auto"`` takes the compiled ones once
    they are loaded in this process, or when the work pays for loading them (importing numba and
    its first cached call cost ~0.5 s; the NumPy versions run at ~6 ns per element operation).
    """
    if KERNELS != "auto":
        return KERNELS == "numba"
    return bool(_KERNELS) or work >= _COMPILED_MIN_WORK


def _kernel(name: str):
    if not _KERNELS:
        _build()
    return _KERNELS[name]


def _row_chunks(n: int, elems_per_row: int):
    step = max(1, _NUMPY_CHUNK_ELEMS // max(1, elems_per_row))
    for s in range(0, n, step):
        yield s, min(n, s + step)


def centre_f32(A: np.ndarray, mean: np.ndarray, scale=1.0, compiled: bool | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``float32((A − mean)·scale)`` (computed in float64, rounded once) and its squared row norms (float64).

    A : (n, d) float32/float64; mean : (d,) float64; scale : float or (n,) float64 (one factor per
    row). A power-of-two ``scale`` (see :func:`power_of_two_scale`) changes no digit, only the
    exponent, so data of any magnitude fit float32 without overflow or underflow.
    ``compiled``: numba kernel or NumPy (same bits); None decides by size (:func:`use_compiled`).
    Returns ((n, d) float32, (n,) float64).
    """
    A = np.ascontiguousarray(A)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    factors = np.broadcast_to(np.asarray(scale, dtype=np.float64), (A.shape[0],))
    out = np.empty(A.shape, dtype=np.float32)
    sq = np.empty(A.shape[0], dtype=np.float64)
    if compiled is None:
        compiled = use_compiled(A.size)
    if compiled:
        kern = _kernel("centre")
        _split_rows(A.shape[0], A.size, lambda s, e: kern(A[s:e], mean, factors[s:e], out[s:e], sq[s:e]))
    else:
        for s, e in _row_chunks(A.shape[0], A.shape[1]):
            out[s:e] = (A[s:e].astype(np.float64) - mean) * factors[s:e, None]
            o = out[s:e].astype(np.float64)
            sq[s:e] = np.einsum("ij,ij->i", o, o)
    return out, sq


def abs_max(A: np.ndarray, centre: np.ndarray | None = None) -> float:
    """``max |A − centre|`` over all entries of a 2-D array (float64; column maxima and minima, no copy)."""
    hi = A.max(axis=0).astype(np.float64)
    lo = A.min(axis=0).astype(np.float64)
    if centre is not None:
        hi -= centre
        lo -= centre
    return float(max(np.abs(hi).max(), np.abs(lo).max()))


def power_of_two_scale(magnitude: float) -> float:
    """``2**-e`` with ``magnitude·2**-e`` in [0.5, 1): an exact rescaling to unit magnitude (1.0 for 0)."""
    if not magnitude > 0 or not np.isfinite(magnitude):
        return 1.0
    _, e = np.frexp(magnitude)
    return float(np.ldexp(1.0, -int(e)))


def top_candidates(V: np.ndarray, c: int, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``c`` largest values of every row of ``V`` and their column indices (unordered).

    V : (b, m) float32, C-contiguous, 1 <= c <= m. Returns ((b, c) float32, (b, c) int64).
    Equivalent to ``torch.topk(V, c, dim=1, sorted=False)``: the same values; which of several
    entries equal to the c-th value is kept is deterministic but unspecified.
    ``compiled``: the numba heap selection or ``np.argpartition``; None decides by size.
    """
    b, m = V.shape
    if compiled is None:
        compiled = use_compiled(V.size)
    if not compiled:
        idx = np.argpartition(V, m - c, axis=1)[:, m - c:]
        return np.take_along_axis(V, idx, axis=1), idx.astype(np.int64, copy=False)
    vals = np.empty((b, c), dtype=V.dtype)
    idx = np.empty((b, c), dtype=np.int64)
    stride = _STRIDE if m >= 2 * _STRIDE * c else 1
    kern = _kernel("topk_rows")
    _split_rows(b, V.size, lambda s, e: kern(V[s:e], c, stride, vals[s:e], idx[s:e]))
    return vals, idx


def top_candidates_cols(V: np.ndarray, c: int, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``c`` largest values of every column of ``V`` and their row indices (unordered).

    V : (b, m) float32 (may be a column slice of a C-contiguous array), 1 <= c <= b.
    Returns ((m, c) float32, (m, c) int64): row j is column j's selection.
    """
    b, m = V.shape
    if compiled is None:
        compiled = use_compiled(V.size)
    if not compiled:
        idx = np.argpartition(V, b - c, axis=0)[b - c:]
        vals = np.take_along_axis(V, idx, axis=0)
        return np.ascontiguousarray(vals.T), np.ascontiguousarray(idx.T, dtype=np.int64)
    vals = np.empty((m, c), dtype=V.dtype)
    idx = np.empty((m, c), dtype=np.int64)
    stride = _STRIDE if b >= 2 * _STRIDE * c else 1
    kern = _kernel("topk_cols")
    _split_rows(m, V.size, lambda s, e: kern(V[:, s:e], c, stride, vals[s:e], idx[s:e]))
    return vals, idx


def pair_values(kind: str, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, cand: np.ndarray,
                compiled: bool | None = None) -> np.ndarray:
    """float64 ``Σ (x − y)²`` (``kind="sqdist"``) or ``Σ x·y`` (``"dot"``) for pairs (rows[i], cand[i, j]).

    X, Y : (n, d), (m, d) float32 or float64, C-contiguous; rows : (b,) int; cand : (b, c) int.
    ``compiled``: numba loops or NumPy (the same up to the float64 summation order); None decides by size.
    Returns (b, c) float64.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    out = np.empty(cand.shape, dtype=np.float64)
    d = X.shape[1]
    if compiled is None:
        compiled = use_compiled(cand.size * d)
    if compiled:
        kern = _kernel(kind)
        _split_rows(cand.shape[0], cand.size * d, lambda s, e: kern(X, Y, rows[s:e], cand[s:e], out[s:e]))
        return out
    for s, e in _row_chunks(cand.shape[0], cand.shape[1] * d):
        x = X[rows[s:e]].astype(np.float64)[:, None, :]
        y = Y[cand[s:e]].astype(np.float64)
        if kind == "sqdist":
            y -= x
            out[s:e] = np.einsum("ijk,ijk->ij", y, y)
        else:
            out[s:e] = np.einsum("ijk,ijk->ij", y, np.broadcast_to(x, y.shape))
    return out
