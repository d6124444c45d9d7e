"""Exact k-nearest neighbours: blocked float32 candidate search, float64 re-ranking.

One kNN computation at the largest K serves every local estimator and every K of a
sweep (METHODS.md §2), and the mutual-kNN alignment metrics.

Algorithm (:func:`knn`)
-----------------------
1. **Candidates, float32, blocked.** Rows of X are processed in blocks of ``b`` rows
   (``b`` derived from ``memory_budget``; the full N×M matrix is never formed). For the
   Euclidean metric the data are centred (translation does not change distances and
   centring shrinks the rounding error) and multiplied by a power of two that brings the
   largest centred coordinate to magnitude ≤ 1 (changes no digit, and data at 1e20 or
   1e-20 neither overflow nor underflow float32); for ``inner_product`` the rows are
   scaled the same way (no centring), for ``cosine`` L2-normalised. All of this is computed
   from the input's own precision (float64 input stays float64 until the one rounding to
   float32). One GEMM per block (``np.matmul``, BLAS) gives ``v_ij = x_i·y_j − ‖y_j‖²/2``
   (Euclidean; largest = nearest, since ‖x_i − y_j‖² = ‖x_i‖² − 2 v_ij and the row constant
   ‖x_i‖² does not change the ranking) or ``s_ij = x_i·y_j``. A compiled top-c selection
   (:func:`._kernels.top_candidates`, a min-heap per row, threaded) keeps the
   ``c = k + margin`` best candidates per row; with ``CANDIDATE_BACKEND = "torch"``
   ``torch.topk`` does it instead (same candidates; kept for comparison in the benchmarks).
   For the self-kNN (Y is None) with several blocks, each pair of blocks is multiplied once
   and used for both sides (:func:`_symmetric_pass`): about half the GEMM work.
2. **Exact re-ranking, float64.** The candidates' distances (or similarities) are
   recomputed in float64 from the original (unscaled) rows (compiled loops, :mod:`._kernels`)
   (``Σ (x − y)²`` on the differences, so duplicates give exactly 0 and exact ties stay exact) and sorted by
   (distance, index): ties are broken by the smaller index, as a stable sort of a
   float64 brute force would.
3. **Certificate.** A float32 GEMM errs by at most
   ``E_i = (d + 16)·u·1.05·(‖x_i‖² + max_j ‖y_j‖²)`` on ``‖x_i − y_j‖²`` (u = 2⁻²⁴, norms of
   the centred, scaled rows; the standard dot-product bound γ_d plus rounding of norms,
   centring and sums — the float64 centring ``x − mean`` errs relative to its result, not
   to ``x``, and the mean is a common translation; for inner products
   ``(d + 16)·u·1.05·‖x_i‖·max_j‖y_j‖``), converted back to the input's units. Every point left out of
   the candidate set has an approximate value at least that of the worst candidate, so
   if ``worst_candidate − E_i`` is strictly beyond the exact k-th value, no left-out point
   can belong to the k nearest (nor tie with the k-th). Rows that fail this test
   (rare: near-ties within the float32 error) are redone with every point whose
   approximate value is within ``E_i`` of the exact k-th value — so the result is exact,
   not merely very likely exact.

Duplicates
----------
Exact duplicate rows have distance 0; their order is deterministic (smaller index
first) and :attr:`KNN.n_duplicates` counts the points of X that have an exact copy
(a :class:`DuplicatePointsWarning` says how many). The LID estimators never see these
zeros: :func:`brainlid.geometry.lid` and friends remove duplicate rows first (see
:mod:`brainlid.geometry.local`).

*Near*-duplicates (Euclidean): :attr:`KNN.n_near_duplicates` counts the points of X whose
nearest neighbour is at a positive distance below ``NEAR_DUPLICATE_RTOL`` (1e-6) times the
RMS distance of the searched points to their centroid: differences at the level of float32
rounding (2⁻²⁴ ≈ 6e-8 per coordinate), e.g. the same stimulus computed twice with numerical
noise. Such distances dominate a local dimension estimate (log r_k/r_1
explodes) although the points are not exact copies. They are warned about
(:class:`DuplicatePointsWarning`), not removed.

Threads: the GEMM uses the BLAS threads, the candidate selection and re-ranking
:func:`brainlid.backend.compute_threads`; limit both with :func:`brainlid.backend.set_threads`
/ :func:`brainlid.backend.thread_limits`.

Imports: no torch, no scikit-learn (``brainlid lid`` starts in well under the ~3 s torch takes
to import); torch is imported only if ``GEMM_BACKEND`` or ``CANDIDATE_BACKEND`` is set to it.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .._docs import fill_doc
from ..errors import InputError
from ._kernels import (
    abs_max,
    centre_f32,
    pair_values,
    power_of_two_scale,
    top_candidates,
    top_candidates_cols,
    use_compiled,
)
from ._validate import (
    NEAR_DUPLICATE_RTOL,
    check_k,
    check_points,
    parse_memory_budget,
    unique_rows,
    warn_duplicates,
    warn_near_duplicates,
)

__all__ = ["KNN", "knn", "METRICS", "default_margin"]

METRICS = ("euclidean", "cosine", "inner_product")

_U32 = 2.0**-24  # unit roundoff of float32
_OUT_BYTES_PER_ENTRY = 8 + 4  # float64 distance + int32 index
_BLOCK_TARGET_BYTES = 128 * 1024**2  # preferred size of one float32 block of approximate keys


class KNN(NamedTuple):
    """Result of :func:`knn`.

    Attributes
    ----------
    distances : ndarray of shape (n, k), float64, or None
        Euclidean distances sorted increasingly (``metric="euclidean"``), or similarities
        sorted decreasingly (``"cosine"``, ``"inner_product"``). ``None`` when
        ``return_distance=False``.
    indices : ndarray of shape (n, k), int32
        Row indices (into Y, or into X when Y is None) of the neighbours, nearest first;
        equal distances are ordered by index.
    n_duplicates : int
        Number of points of X that have an exact copy among the points searched
        (zero Euclidean distance / identical rows), self excluded.
    metric : str
        The metric used.
    n_near_duplicates : int
        Euclidean only (else 0): points of X whose nearest neighbour is at a positive distance
        below ``near_duplicate_threshold`` (float rounding level; see the module docstring).
    near_duplicate_threshold : float
        That distance, in the input's units (0.0 for the other metrics).
    """

    distances: np.ndarray | None
    indices: np.ndarray
    n_duplicates: int
    metric: str
    n_near_duplicates: int = 0
    near_duplicate_threshold: float = 0.0


def default_margin(k: int) -> int:
    """Extra float32 candidates kept per row beyond ``k``: ``max(4, k // 8)``."""
    return max(4, k // 8)


GEMM_BACKEND = "numpy"  # "torch" or "numpy"; see _gemm
CANDIDATE_BACKEND = "numpy"  # "numpy" (compiled heap selection, no torch) or "torch" (torch.topk); see _top


def _gemm(A: np.ndarray, B: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = A @ B`` in float32 (out C-contiguous).

    With ``GEMM_BACKEND = "torch"`` large products go through torch; by default numpy (BLAS).
    """
    if GEMM_BACKEND == "torch" and A.shape[0] * B.shape[1] * A.shape[1] >= 2**24:
        import torch  # heavy: torch (~3 s), only when a torch backend is asked for

        torch.mm(torch.from_numpy(A), torch.from_numpy(B), out=torch.from_numpy(out))
    else:
        np.matmul(A, B, out=out)


def _top(V: np.ndarray, c: int, axis: int = 1, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``c`` largest values along ``axis`` of a float32 block and their positions, unordered.

    Returns ((r, c) float32, (r, c) int64) with r the size of the other axis (for ``axis=0``,
    row j describes column j). ``CANDIDATE_BACKEND`` picks the heap selection of
    :mod:`._kernels` (default; compiled or ``np.argpartition`` by ``compiled``) or ``torch.topk``;
    all give the same values.
    """
    if CANDIDATE_BACKEND == "torch":
        import torch  # heavy: torch (~3 s), only when a torch backend is asked for

        v, i = torch.topk(torch.from_numpy(V), c, dim=axis, largest=True, sorted=False)
        v, i = v.numpy(), i.numpy()
        return (v, i) if axis == 1 else (np.ascontiguousarray(v.T), np.ascontiguousarray(i.T))
    return top_candidates(V, c, compiled) if axis == 1 else top_candidates_cols(V, c, compiled)


def _check_magnitude(reach: float, d: int) -> None:
    """Refuse data whose squared distances (or products) over- or underflow float64 (|values| beyond ~1e140)."""
    if reach > 0 and not 1e-140 < reach < 1e140 / np.sqrt(d):
        raise InputError(
            f"the data's values reach {reach:.1e}: squared distances and products would leave the float64 range; "
            f"multiply the data by a constant first (nearest neighbours and dimensions do not change)"
        )


def _rows_in_chunks(n: int, chunk: int):
    for s in range(0, n, chunk):
        yield s, min(n, s + chunk)


def _row_norms64(A: np.ndarray, chunk: int) -> np.ndarray:
    sq = np.empty(A.shape[0], dtype=np.float64)
    for s, e in _rows_in_chunks(A.shape[0], chunk):
        b = A[s:e].astype(np.float64)
        sq[s:e] = np.einsum("ij,ij->i", b, b)
    return np.sqrt(sq)


class _Exact:
    """Recompute keys (smaller = nearer) of candidate pairs in float64 from the original rows.

    Euclidean: key = Σ (x − y)² (squared distance, differences taken in float64).
    Inner product: key = −Σ x·y. Cosine: key = −Σ x·y / (‖x‖‖y‖). Sums in float64.
    """

    def __init__(self, Xe, Ye, metric, xnorm, ynorm, compiled):
        self.X = Xe
        self.Y = Ye
        self.metric = metric
        self.xnorm = xnorm
        self.ynorm = ynorm
        self.compiled = compiled

    def __call__(self, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """rows: (b,) indices into X; cand: (b, c) indices into Y → keys (b, c) float64."""
        if self.metric == "euclidean":
            return pair_values("sqdist", self.X, self.Y, rows, cand, self.compiled)
        out = pair_values("dot", self.X, self.Y, rows, cand, self.compiled)
        np.negative(out, out=out)
        if self.metric == "cosine":
            out /= self.xnorm[rows][:, None] * self.ynorm[cand]
        return out


@fill_doc
def knn(
    X,
    k: int,
    *,
    metric: str = "euclidean",
    Y=None,
    memory_budget=None,
    margin: int | None = None,
    return_distance: bool = True,
    warn_on_duplicates: bool = True,
    symmetric: bool = True,
) -> KNN:
    """Exact k nearest neighbours of every row of X (self excluded), or of X's rows among Y's.

    Parameters
    ----------
    %(X)s
    k : int
        Number of neighbours, 1 <= k <= n - 1 (or <= n_Y when Y is given). If the output
        (n × k float64 + int32) does not fit in ``memory_budget``, k is capped with a warning.
    metric : {"euclidean", "cosine", "inner_product"}
        ``"euclidean"``: nearest = smallest ‖x − y‖₂, ``distances`` are Euclidean distances.
        ``"inner_product"``: nearest = largest x·y, ``distances`` are the inner products.
        ``"cosine"``: nearest = largest x·y/(‖x‖‖y‖), ``distances`` are cosine similarities;
        zero rows are rejected.
    Y : array-like of shape (n_Y, n_features) or None
        Points searched. ``None``: X itself, with each point's self excluded.
    %(memory_budget)s
    margin : int or None
        Extra float32 candidates per row (default :func:`default_margin`). Only speed
        depends on it; exactness is certified per row (see the module docstring).
    return_distance : bool
        If False, ``distances`` is None.
    warn_on_duplicates : bool
        Warn (:class:`DuplicatePointsWarning`) when points have exact copies or near-duplicates
        (Euclidean; see :attr:`KNN.n_near_duplicates`).
    symmetric : bool
        When Y is None and X needs several blocks, compute each pair of blocks once and use
        it for both (about half the GEMM work). Same result either way.

    Returns
    -------
    KNN
        ``distances`` (n, k) float64, ``indices`` (n, k) int32, ``n_duplicates``, ``metric``.

    Notes
    -----
    Equal to a float64 brute force (``scipy.spatial.distance.cdist`` on the input rows —
    float64 input as given, other types as float32 — stable argsort) including exact ties
    (smaller index first), up to the summation order of the float64 distances (≈1e-16
    relative), at any offset or magnitude of the data that float64 can represent.
    Memory: one ``b × n_Y`` float32 block at a time, ``b`` chosen from the budget.
    """
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    # float64 input stays float64 (exact re-ranking of the caller's rows); other types → float32
    Xe = check_points(X, "X", dtype="exact")
    self_mode = Y is None
    if self_mode:
        Ye = Xe
        if Xe.shape[0] < 2:
            raise InputError(f"X has {Xe.shape[0]} point; nearest neighbours need at least 2")
    else:
        Ye = check_points(Y, "Y", dtype="exact")
        if Ye.shape[1] != Xe.shape[1]:
            raise InputError(f"X and Y must have the same number of features, got {Xe.shape[1]} and {Ye.shape[1]}")
    n, d = Xe.shape
    m = Ye.shape[0]
    k = check_k(k, m, exclude_self=self_mode, what="points" if self_mode else "points in Y")
    budget = parse_memory_budget(memory_budget)

    out_bytes = n * k * _OUT_BYTES_PER_ENTRY
    if out_bytes > budget:
        k_cap = max(1, budget // (n * _OUT_BYTES_PER_ENTRY))
        warnings.warn(
            f"k={k} needs {out_bytes / 1e6:.0f} MB for the {n}x{k} output, more than the memory budget "
            f"({budget / 1e6:.0f} MB); k is capped at {k_cap}. Raise memory_budget (or BRAINLID_MEMORY_BUDGET) "
            f"to use a larger k.",
            UserWarning,
            stacklevel=2,
        )
        k = int(k_cap)
    max_c = m - 1 if self_mode else m
    if margin is None:
        margin = default_margin(k)
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    c = min(max_c, k + int(margin))

    prep_chunk = max(1, int(min(budget, 64 * 1024**2) // max(1, d * 8)))
    # compiled kernels or their NumPy twins, decided once for the whole call (see _kernels.use_compiled)
    compiled = use_compiled(n * m + n * c * d)
    xnorm = ynorm = None
    if metric == "euclidean":
        # centre and rescale by a power of two (translation and an exact rescaling change no ranking),
        # computed in the input's precision and rounded to float32 once
        mean = Ye.mean(axis=0, dtype=np.float64)
        reach = abs_max(Xe, mean) if self_mode else max(abs_max(Xe, mean), abs_max(Ye, mean))
        _check_magnitude(reach, d)
        s = power_of_two_scale(reach)
        Xc, sqx = centre_f32(Xe, mean, s, compiled)
        if self_mode:
            Yc, sqy = Xc, sqx
        else:
            Yc, sqy = centre_f32(Ye, mean, s, compiled)
        scale_x = sqx
        scale_y = float(sqy.max())
        half_sqy = (sqy / 2).astype(np.float32)  # ranking value: x·y − ‖y‖²/2 (largest = nearest)
        key_unit = 1.0 / (s * s)  # scaled squared distances → the input's units (exact: a power of two)
    else:
        zero = np.zeros(d)
        reach_x = abs_max(Xe)
        reach_y = reach_x if self_mode else abs_max(Ye)
        _check_magnitude(max(reach_x, reach_y), d)
        xnorm = _row_norms64(Xe, prep_chunk)
        ynorm = xnorm if self_mode else _row_norms64(Ye, prep_chunk)
        if metric == "cosine":
            for nm, norms in (("X", xnorm), ("Y", ynorm)):
                zero_rows = np.flatnonzero(norms == 0)
                if zero_rows.size:
                    raise InputError(
                        f"{nm} has {zero_rows.size} all-zero row(s) (rows {', '.join(map(str, zero_rows[:5]))}"
                        f"{', ...' if zero_rows.size > 5 else ''}); cosine similarity is undefined for them"
                    )
            Xc, _ = centre_f32(Xe, zero, 1.0 / xnorm, compiled)
            Yc = Xc if self_mode else centre_f32(Ye, zero, 1.0 / ynorm, compiled)[0]
            scale_x = np.ones(n)
            scale_y = 1.0
            key_unit = 1.0
        else:
            sx = power_of_two_scale(reach_x)
            sy = power_of_two_scale(reach_y)
            Xc, _ = centre_f32(Xe, zero, sx, compiled)
            Yc = Xc if self_mode else centre_f32(Ye, zero, sy, compiled)[0]
            scale_x = xnorm * sx
            scale_y = float(ynorm.max()) * sy
            key_unit = 1.0 / (sx * sy)
        half_sqy = None
    # certified float32 error bound on each approximate key, per query row, in the input's units
    if metric == "euclidean":
        err = (d + 16) * _U32 * 1.05 * (scale_x + scale_y) * key_unit
    else:
        err = (d + 16) * _U32 * 1.05 * (scale_x * scale_y) * key_unit

    exact = _Exact(Xe, Ye, metric, xnorm, ynorm, compiled)
    # rows per block: the b × m float32 block plus candidates and their exact keys
    per_row = m * 4 + c * (4 + 8 + 8 + 8) + 64
    b = int(max(1, min(n, (max(budget - out_bytes, budget // 4) * 3 // 4) // per_row)))
    # blocks of ~128 MB (>= 256 rows): big enough for an efficient GEMM, bounded memory
    b = min(b, max(256, _BLOCK_TARGET_BYTES // (4 * m)))

    dist = np.empty((n, k), dtype=np.float64)
    idx_out = np.empty((n, k), dtype=np.int32)
    YcT = Yc.T

    def values_for_rows(rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Approximate values (largest = nearest) of X rows against all of Y, in scaled units:
        x·y − ‖y‖²/2 (Euclidean) or x·y, self set to −inf. Key = (‖x‖² − 2·value or −value)·key_unit."""
        if out is None:
            out = np.empty((rows.size, m), dtype=np.float32)
        contiguous = rows.size and rows[-1] - rows[0] == rows.size - 1
        _gemm(Xc[rows[0]:rows[-1] + 1] if contiguous else Xc[rows], YcT, out)
        if half_sqy is not None:
            out -= half_sqy
        if self_mode:
            out[np.arange(rows.size), rows] = -np.inf
        return out

    def finish(rows: np.ndarray, cand: np.ndarray, approx_keys: np.ndarray, bad_values) -> int:
        """Exact re-ranking and certificate for ``rows``; writes the result; returns #fallback rows.
        ``approx_keys`` are in the input's units."""
        keys = exact(rows, cand)
        order = np.lexsort((cand, keys), axis=1)[:, :k]
        sel_keys = np.take_along_axis(keys, order, axis=1)
        sel_idx = np.take_along_axis(cand, order, axis=1)
        n_bad = 0
        if c < max_c:
            kth = sel_keys[:, -1]
            worst = approx_keys.max(axis=1)
            e_rows = err[rows]
            bad = np.flatnonzero(~(worst - e_rows > kth))
            n_bad = bad.size
            if n_bad:
                # certificate failed: take every point whose approximate key is within the error bound
                thr = (kth[bad] + e_rows[bad]) / key_unit  # scaled units
                if metric == "euclidean":  # key = ‖x‖² − 2·value <= thr  ⇔  value >= (‖x‖² − thr)/2
                    lim = (sqx[rows[bad]] - thr) / 2
                else:
                    lim = -thr
                lim = np.nextafter(lim.astype(np.float32), np.float32(-np.inf))
                for s0, e0 in _rows_in_chunks(n_bad, b):
                    sub = bad_values(bad[s0:e0])
                    rr, cc = np.nonzero(sub >= lim[s0:e0][:, None])
                    kk = exact(rows[bad[s0:e0]][rr], cc[:, None])[:, 0]
                    order_f = np.lexsort((cc, kk, rr))
                    starts = np.searchsorted(rr[order_f], np.arange(e0 - s0))
                    take = order_f[starts[:, None] + np.arange(k)[None, :]]
                    sel_keys[bad[s0:e0]] = kk[take]
                    sel_idx[bad[s0:e0]] = cc[take]
        idx_out[rows] = sel_idx
        dist[rows] = np.sqrt(sel_keys) if metric == "euclidean" else -sel_keys
        return n_bad

    n_fallback = 0
    if self_mode and n > b and symmetric:
        n_fallback = _symmetric_pass(Xc, half_sqy, c, b, metric, key_unit, compiled, finish, values_for_rows)
    else:
        buf = np.empty((b, m), dtype=np.float32)
        for start, stop in _rows_in_chunks(n, b):
            rows = np.arange(start, stop)
            block = values_for_rows(rows, buf[: stop - start])
            vals, cand = _top(block, c, compiled=compiled)
            vals = vals.astype(np.float64)
            approx = ((sqx[start:stop, None] - 2.0 * vals) if metric == "euclidean" else -vals) * key_unit
            n_fallback += finish(rows, cand, approx, lambda bad, block=block: block[bad])
        del buf

    n_near, near_thr = 0, 0.0
    if metric == "euclidean":
        n_dup = int(np.count_nonzero(dist[:, 0] == 0.0))
        # near-duplicates: a positive nearest distance at float32 rounding level of the data's spread
        near_thr = float(NEAR_DUPLICATE_RTOL * np.sqrt(sqy.mean() * key_unit))
        n_near = int(np.count_nonzero((dist[:, 0] > 0.0) & (dist[:, 0] <= near_thr)))
    elif self_mode:
        _, _, counts = unique_rows(Xe)
        n_dup = int(counts[counts > 1].sum())
    else:
        n_dup = 0
    if n_dup and warn_on_duplicates:
        warn_duplicates(n_dup, n, "they are ordered by index among their neighbours", stacklevel=2)
    if n_near and warn_on_duplicates:
        warn_near_duplicates(n_near, n, near_thr, stacklevel=2)
    return KNN(dist if return_distance else None, idx_out, n_dup, metric, n_near, near_thr)


def _merge_top(vals_a, idx_a, vals_b, idx_b, c, compiled):
    """Top-c (largest) of the union of two candidate lists per row."""
    v = np.concatenate((vals_a, vals_b), axis=1)
    i = np.concatenate((idx_a, idx_b), axis=1)
    top_v, pos = _top(v, min(c, v.shape[1]), compiled=compiled)
    return top_v, np.take_along_axis(i, pos, axis=1)


def _symmetric_pass(Xc, half_sq, c, b, metric, key_unit, compiled, finish, values_for_rows) -> int:
    """Self-kNN using the symmetry of the key matrix: about half the GEMM work.

    Row stripe I = [s, e) is multiplied only with rows [s, n) (b × (n − s) values). Its rows
    take their best candidates among columns [s, n) (merged with what earlier stripes left
    for them); the later rows j >= e take, from the transposed part, their best candidates
    among I into a running (n, c) table. Top-c of a union equals top-c of the per-part top-c,
    so every row ends with exactly the candidates the full row would give.
    Values are symmetric: x·y − ‖x‖²/2 − ‖y‖²/2 (= −‖x − y‖²/2) or x·y.
    """
    n = Xc.shape[0]
    run_v = np.full((n, c), -np.inf, dtype=np.float32)
    run_i = np.full((n, c), -1, dtype=np.int64)
    flat = np.empty(b * n, dtype=np.float32)
    n_bad = 0
    for start, stop in _rows_in_chunks(n, b):
        bb, W = stop - start, n - start
        block = flat[: bb * W].reshape(bb, W)
        _gemm(Xc[start:stop], Xc[start:].T, block)
        if half_sq is not None:
            block -= half_sq[start:]
            block -= half_sq[start:stop, None]
        ar = np.arange(bb)
        block[ar, ar] = -np.inf
        v1, i1 = _top(block, min(c, W), compiled=compiled)
        v, i = _merge_top(run_v[start:stop], run_i[start:stop], v1, i1 + start, c, compiled)
        if stop < n:
            v2, i2 = _top(block[:, bb:], min(c, bb), axis=0, compiled=compiled)
            run_v[stop:], run_i[stop:] = _merge_top(run_v[stop:], run_i[stop:], v2, i2 + start, c, compiled)
        rows = np.arange(start, stop)
        vals = v.astype(np.float64)
        approx = (-2.0 * vals if metric == "euclidean" else -vals) * key_unit
        n_bad += finish(rows, i, approx, lambda bad, rows=rows: values_for_rows(rows[bad]))
    return n_bad
