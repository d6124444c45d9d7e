"""Null calibration of alignment scores by permuting stimulus labels.

Alignment metrics are inflated by width, depth and sample size (Gröger et al.
2026), so a raw score is hard to compare across models. :func:`permutation_null`
shuffles the stimulus labels of one side (rows of ``B``), recomputes the metric
for each permutation, and reports

* ``null_mean``, ``null_sd`` of the permutation distribution,
* ``z = (score - null_mean) / null_sd``,
* ``p = (1 + #{null >= score}) / (1 + n_permutations)`` (one-sided, with the +1
  correction so p is never 0 and is uniform under the null),
* ``calibrated = score - null_mean``.

Fast paths (identical numbers to recomputing the metric on ``B[perm]``; tested):

``mutual_knn``
    kNN of each side computed once; a permutation π of B's rows maps B's
    neighbour lists to ``inv_π[idx_B[π]]``, so each permutation costs O(n k).
``cknna``
    The same permutation of B's neighbour lists and similarities; sparse HSIC per permutation.
``rsa`` (``compare`` in spearman, pearson, cosine, cosine_whitened, pearson_whitened)
    Permuting stimuli permutes the RDM's rows and columns; the transforms these
    comparisons apply (ranks, mean removal, double centring) commute with the
    permutation and leave norms unchanged, so each permutation is one gather of
    B's transformed square RDM and a dot product, done in batches.
    ``kendall_tau_a`` gathers the permuted RDM and recomputes tau-a per permutation (slow).
``cka_linear``
    With n <= ``gram_max_n``: centred Gram matrices once, then
    <Kc_A, Kc_B[π][:, π]> per permutation; otherwise one d_A x d_B GEMM per permutation.

Any other metric (``cka_linear_unbiased``, ``cka_rbf``, ``ridge_r2``, or a callable
``f(A, B) -> float``) is recomputed on ``B[perm]`` for every permutation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..errors import InputError
from . import similarity as sim
from .rsa import COMPARE_ALIASES, _average_ranks, _double_centred, compare_rdms, n_from_condensed, rdm

__all__ = ["NullResult", "permutation_null", "permutations"]

_BATCH_BYTES = 64 * 2**20


@dataclass
class NullResult:
    """Outcome of :func:`permutation_null` (all floats; ``null`` is the raw distribution)."""

    metric: str
    score: float
    null_mean: float
    null_sd: float
    z: float
    p: float
    calibrated: float
    n_permutations: int
    seed: int | None
    null: np.ndarray

    def as_dict(self, include_null: bool = False) -> dict:
        d = asdict(self)
        if include_null:
            d["null"] = self.null.tolist()
        else:
            d.pop("null")
        return d


def permutations(n: int, n_permutations: int, seed=0, batch: int | None = None):
    """Yield batches (b, n) int64 of random permutations of range(n), reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    batch = batch or max(1, min(n_permutations, 1024))
    done = 0
    while done < n_permutations:
        b = min(batch, n_permutations - done)
        yield rng.permuted(np.broadcast_to(np.arange(n), (b, n)), axis=1)
        done += b


def _batch_size(n_items_per_perm: int, itemsize: int = 8) -> int:
    return int(max(1, _BATCH_BYTES // max(1, n_items_per_perm * itemsize)))


# --------------------------------------------------------------------------- fast paths
def _null_mutual_knn(A, B, n_perm, seed, k=10, prepare=True, q=0.95):
    if not isinstance(A, sim.Neighbours) and not isinstance(B, sim.Neighbours):
        A, B = sim._pair(A, B)
    na = A if isinstance(A, sim.Neighbours) else sim.neighbours(A, k, prepare=prepare, q=q)
    nb = B if isinstance(B, sim.Neighbours) else sim.neighbours(B, k, prepare=prepare, q=q)
    ia, ib = na.take(k)[0], nb.take(k)[0]
    n = ia.shape[0]
    score = float(sim.knn_overlap(ia, ib).mean() / k)
    out = []
    for perms in permutations(n, n_perm, seed, batch=_batch_size(n * 3 * k, 8)):
        inv = np.argsort(perms, axis=1)
        # neighbours of row i in B[π]: inv_π applied to B's neighbours of π(i)
        ibp = np.take_along_axis(inv[:, None, :], ib[perms].reshape(len(perms), 1, -1), axis=2)
        ibp = ibp.reshape(len(perms), n, k)
        out.append(sim.knn_overlap(np.broadcast_to(ia, ibp.shape), ibp).mean(axis=1) / k)
    return score, np.concatenate(out)


def _null_cknna(A, B, n_perm, seed, k=10, unbiased=True, prepare=True, q=0.95):
    if not isinstance(A, sim.Neighbours) and not isinstance(B, sim.Neighbours):
        A, B = sim._pair(A, B)
    kk = k if unbiased else k - 1
    na = A if isinstance(A, sim.Neighbours) else sim.neighbours(A, kk, prepare=prepare, q=q)
    nb = B if isinstance(B, sim.Neighbours) else sim.neighbours(B, kk, prepare=prepare, q=q)
    score = sim.cknna(na, nb, k, unbiased=unbiased)
    ib, sb = nb.take(kk)
    n = ib.shape[0]
    vals = []
    for perms in permutations(n, n_perm, seed, batch=64):
        for pi in perms:
            inv = np.argsort(pi)
            nbp = sim.Neighbours(inv[ib[pi]].astype(ib.dtype), sb[pi], nb.self_similarities[pi])
            vals.append(sim.cknna(na, nbp, k, unbiased=unbiased))
    return score, np.asarray(vals)


def _rsa_transform(d: np.ndarray, method: str):
    """Vector t and a function of square-matrix pieces such that score = <t_A, t_B>/(|t_A||t_B|)."""
    if method == "spearman":
        r = _average_ranks(d[None, :])[0]
        return [r - r.mean()]
    if method == "pearson":
        return [d - d.mean()]
    if method == "cosine":
        return [d.copy()]
    if method in ("cosine_whitened", "pearson_whitened"):
        v = d - d.mean() if method == "pearson_whitened" else d
        off, diag = _double_centred(v[None, :], n_from_condensed(d.size))
        return [off[0], diag[0]]
    raise KeyError(method)


def _null_rsa(A, B, n_perm, seed, rdm_method="correlation", compare="spearman"):
    from scipy.spatial.distance import squareform  # start-up: scipy (0.4 s) stays out of `brainlid align`

    compare = COMPARE_ALIASES.get(compare, compare)
    A, B = sim._pair(A, B)
    da = rdm(A, rdm_method).astype(np.float64)
    db = rdm(B, rdm_method).astype(np.float64)
    score = float(compare_rdms(da, db, compare))
    n = A.shape[0]
    ii, jj = np.triu_indices(n, 1)
    P = ii.size
    if compare == "kendall_tau_a":
        Sq = squareform(db, checks=False)
        vals = []
        for perms in permutations(n, n_perm, seed, batch=_batch_size(P)):
            for pi in perms:
                vals.append(compare_rdms(da, Sq[pi[ii], pi[jj]], compare))
        return score, np.asarray(vals)
    ta = _rsa_transform(da, compare)
    tb = _rsa_transform(db, compare)
    norm = np.sqrt(sum(float(x @ x) for x in ta)) * np.sqrt(sum(float(x @ x) for x in tb))
    if norm == 0:
        raise InputError("an RDM is constant; the RSA null is undefined")
    # <t_A, t_B∘π> over pairs = 1/2 <T_A, T_B[π][:, π]> over the square, off-diagonal (zero diagonal)
    sq_a = squareform(ta[0], checks=False).astype(np.float64)
    sq_b = squareform(tb[0], checks=False).astype(np.float64)
    vals = _perm_frobenius(sq_a, sq_b, n_perm, seed) * 0.5
    if len(ta) == 2:  # diagonal part of the whitened form
        for b0, perms in _batched(n, n_perm, seed):
            vals[b0 : b0 + len(perms)] += tb[1][perms] @ ta[1]
    return score, vals / norm


def _batched(n, n_perm, seed, batch=None):
    b0 = 0
    for perms in permutations(n, n_perm, seed, batch=batch):
        yield b0, perms
        b0 += len(perms)


def _perm_frobenius(Ka: np.ndarray, Kb: np.ndarray, n_perm: int, seed) -> np.ndarray:
    """<Ka, Kb[π][:, π]>_F for each permutation π.

    Two contiguous float32 gathers per π (half the memory traffic of float64), a
    float32 dot per row (n terms) and a float64 sum over rows: relative error ~1e-8.
    """
    out = np.empty(n_perm)
    Ka32 = np.ascontiguousarray(Ka, dtype=np.float32)
    Kb32 = np.ascontiguousarray(Kb, dtype=np.float32)
    buf = np.empty_like(Kb32)
    for b0, perms in _batched(Ka.shape[0], n_perm, seed):
        for t, pi in enumerate(perms):
            rows = np.take(Kb32, pi, axis=0)
            np.take(rows, pi, axis=1, out=buf)
            out[b0 + t] = np.einsum("ij,ij->i", Ka32, buf).sum(dtype=np.float64)
    return out


def _null_cka_linear(A, B, n_perm, seed, gram_max_n=4000):
    A, B = sim._pair(A, B)
    score = sim.cka_linear(A, B)
    n = A.shape[0]
    Ac = (A - A.mean(axis=0, dtype=np.float64)).astype(np.float64)
    Bc = (B - B.mean(axis=0, dtype=np.float64)).astype(np.float64)
    vals = []
    if n <= gram_max_n:
        Ka = Ac @ Ac.T
        Kb = Bc @ Bc.T
        norm = np.linalg.norm(Ka) * np.linalg.norm(Kb)
        return score, _perm_frobenius(Ka, Kb, n_perm, seed) / norm
    else:
        norm = np.linalg.norm(Ac.T @ Ac) * np.linalg.norm(Bc.T @ Bc)
        A32 = Ac.astype(np.float32)
        B32 = Bc.astype(np.float32)
        for perms in permutations(n, n_perm, seed, batch=8):
            for pi in perms:
                vals.append(float(np.square(A32.T @ B32[pi], dtype=np.float64).sum()) / norm)
    return score, np.asarray(vals)


def _null_generic(f: Callable, A, B, n_perm, seed):
    A = np.asarray(A)
    B = np.asarray(B)
    if A.shape[0] != B.shape[0]:
        raise InputError(f"A has {A.shape[0]} stimuli (rows) and B has {B.shape[0]}")
    score = float(f(A, B))
    vals = [float(f(A, B[pi])) for perms in permutations(A.shape[0], n_perm, seed) for pi in perms]
    return score, np.asarray(vals)


def permutation_null(metric, A, B, n_permutations: int = 1000, seed=0, **metric_kwargs) -> NullResult:
    """Permutation null of any alignment metric: shuffle the stimulus labels of ``B``.

    Parameters
    ----------
    metric : str or callable
        A metric id of :data:`brainlid.alignment.similarity.METRICS` (fast paths
        for ``mutual_knn``, ``cknna``, ``rsa``, ``cka_linear``; see the module
        docstring) or a callable ``f(A, B) -> float``.
    A, B : arrays (n_stimuli, d_A), (n_stimuli, d_B)
        Same stimuli in the same order (``mutual_knn``/``cknna`` also accept
        precomputed :class:`~brainlid.alignment.similarity.Neighbours`).
    n_permutations : int
        Number of permutations (>= 1).
    seed : int
        Seed of the permutations; the same seed gives the same null.
    **metric_kwargs
        Passed to the metric (e.g. ``k=10``, ``rdm_method=``, ``compare=``). A metric
        argument called ``seed`` (``ridge_r2``'s CV seed) cannot go through here: pass
        ``functools.partial(ridge_r2, seed=...)`` as the metric instead.

    Returns
    -------
    NullResult
        ``score``, ``null_mean``, ``null_sd`` (ddof=1), ``z``, ``p`` (with the +1
        correction), ``calibrated`` (= score - null_mean), the raw ``null``.
        ``z`` is ±inf when the null has zero spread and the score differs from it
        (0 when equal).
    """
    n_permutations = int(n_permutations)
    if n_permutations < 1:
        raise InputError(f"n_permutations must be >= 1; got {n_permutations}")
    if callable(metric):
        name = getattr(metric, "__name__", "callable")
        score, null = _null_generic(metric, A, B, n_permutations, seed)
    else:
        name = str(metric)
        if name == "mutual_knn":
            score, null = _null_mutual_knn(A, B, n_permutations, seed, **metric_kwargs)
        elif name == "cknna":
            score, null = _null_cknna(A, B, n_permutations, seed, **metric_kwargs)
        elif name == "rsa":
            score, null = _null_rsa(A, B, n_permutations, seed, **metric_kwargs)
        elif name == "cka_linear" and not metric_kwargs:
            score, null = _null_cka_linear(A, B, n_permutations, seed)
        elif name in sim.METRICS:
            A2, B2 = sim._pair(A, B)

            def f(a, b):
                return sim.similarity(a, b, name, **metric_kwargs)

            score, null = _null_generic(f, A2, B2, n_permutations, seed)
        else:
            raise InputError(f"unknown metric {name!r}; choose one of {', '.join(sim.METRICS)} or pass a callable")
    null = np.asarray(null, dtype=np.float64)
    mean = float(null.mean())
    sd = float(null.std(ddof=1)) if null.size > 1 else 0.0
    diff = score - mean
    if sd > 0:
        z = diff / sd
    else:
        z = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    # ties count as "at least as extreme"; a small tolerance absorbs float summation-order noise
    tol = 1e-12 * max(1.0, abs(score))
    p = (1 + int(np.sum(null >= score - tol))) / (1 + null.size)
    return NullResult(name, float(score), mean, sd, float(z), float(p), float(diff), int(null.size),
                      seed if isinstance(seed, (int, np.integer)) else None, null)
