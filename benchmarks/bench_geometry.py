"""Geometry benchmark: exact kNN + Levina–Bickel MLE (k = 20) against one GEMM and peer libraries.

(a) N points of a 10-d manifold embedded in D dims (float32), k = 20, interleaved median of 3:
    brainlid ``lid(X, 20)`` (validation, exact kNN, MLE; the self-kNN computes each block pair once)
    and the same without the symmetry (``knn(..., symmetric=False)``) vs
    * one full float32 ``np.matmul(X, Y.T)`` with ``Y = X.copy()`` — the gate: within 1.3×;
    * scikit-dimension ``MLE().fit(X, n_neighbors=20, comb="mean")`` end to end (aim: ≥ 3× slower);
    * faiss-cpu ``IndexFlatL2`` exact search + the same MLE (aim: brainlid ≤ 1.1× of it);
    * a plain blocked torch kNN (``addmm`` + ``topk``) + the same MLE.
    Full: N = 10,000, D = 2,048. Quick: N = 2,000, D = 256.
(b) Peak extra memory of ``lid(X, 20)`` in a fresh child process (data generation included),
    N = 50,000, D = 512 (quick: N = 10,000, D = 128); target < 1 GiB.

Run: ``python -m benchmarks geometry [--quick]``.
"""

from __future__ import annotations

import numpy as np

from benchmarks._common import fmt_bytes, peak_extra_memory, print_table, timeit_interleaved
from brainlid.geometry import _kernels, knn, lid

# load numba and the compiled kernels at import, so that the memory child's baseline
# (taken after unpickling this module's function) excludes library code
_kernels.pair_values("sqdist", np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), np.arange(1), np.zeros((1, 1), int),
                     compiled=True)

K = 20


def make_data(n: int, d: int, intrinsic: int = 10, seed: int = 0) -> np.ndarray:
    """A smooth ``intrinsic``-dimensional manifold (sin of a linear map of a uniform cube) in R^d, float32."""
    rng = np.random.default_rng(seed)
    Z = rng.random((n, intrinsic))
    W = rng.standard_normal((intrinsic, intrinsic))
    A = rng.standard_normal((intrinsic, d)) / np.sqrt(intrinsic)
    return (np.sin(2 * Z @ W) @ A).astype(np.float32)


def _mle_from(dists: np.ndarray) -> float:
    from brainlid.geometry.local import aggregate, mle_pointwise

    return aggregate(mle_pointwise(dists, K))


def faiss_mle(X: np.ndarray) -> tuple[float, np.ndarray]:
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    D2, I = index.search(X, K + 1)
    # drop self (first column for points without duplicates)
    d = np.sqrt(np.maximum(D2[:, 1:].astype(np.float64), 0))
    return _mle_from(d), I[:, 1:]


def torch_blocked_mle(X: np.ndarray, block: int = 2048) -> tuple[float, np.ndarray]:
    """The straightforward torch kNN: float32 ‖x‖² + ‖y‖² − 2xyᵀ per row block, topk, sqrt."""
    import torch

    Xt = torch.from_numpy(X)
    sq = (Xt * Xt).sum(1)
    n = X.shape[0]
    dists = np.empty((n, K))
    idx = np.empty((n, K), dtype=np.int64)
    for s in range(0, n, block):
        e = min(n, s + block)
        d2 = torch.addmm(sq[None, :], Xt[s:e], Xt.T, beta=1, alpha=-2).add_(sq[s:e, None])
        d2[torch.arange(e - s), torch.arange(s, e)] = float("inf")
        v, i = torch.topk(d2, K, dim=1, largest=False)
        dists[s:e] = v.clamp_min_(0).sqrt_().numpy()
        idx[s:e] = i.numpy()
    return _mle_from(dists), idx


def _memory_child(n: int, d: int) -> None:
    X = make_data(n, d)
    lid(X, K)


def main(quick: bool = False) -> None:
    n, d = (2000, 256) if quick else (10_000, 2048)
    X = make_data(n, d)
    Y = X.copy()
    fns = {
        "np.matmul(X, Y.T) (one GEMM)": lambda: np.matmul(X, Y.T),
        "brainlid lid(X, 20)": lambda: lid(X, K),
        "brainlid, symmetric=False": lambda: _mle_from(knn(X, K, symmetric=False).distances),
        "torch blocked kNN + MLE": lambda: torch_blocked_mle(X),
    }
    notes = []
    try:
        import faiss  # noqa: F401

        fns["faiss IndexFlatL2 + MLE"] = lambda: faiss_mle(X)
    except ImportError:
        notes.append("faiss-cpu not installed: skipped")
    try:
        import skdim

        fns["scikit-dimension MLE"] = lambda: skdim.id.MLE().fit(X, n_neighbors=K, comb="mean")
    except ImportError:
        notes.append("scikit-dimension not installed: skipped")
    times = timeit_interleaved(fns, repeats=3)
    t_ours = times["brainlid lid(X, 20)"]
    t_gemm = times["np.matmul(X, Y.T) (one GEMM)"]
    rows = [
        {"method": name, "seconds": round(t, 3), "x GEMM": round(t / t_gemm, 2), "brainlid speed-up": round(t / t_ours, 2)}
        for name, t in times.items()
    ]
    print_table(rows, title=f"(a) kNN + MLE, N={n}, D={d}, k={K}, 10-d manifold, float32, median of 3 interleaved")
    print(f"gate: brainlid / GEMM = {t_ours / t_gemm:.2f} (target <= 1.3)")
    # exactness of the peers against brainlid's exact kNN
    ref = knn(X, K)
    checks = []
    if "faiss IndexFlatL2 + MLE" in fns:
        v, I = faiss_mle(X)
        checks.append({"peer": "faiss IndexFlatL2", "same neighbour sets": float(np.mean(np.sort(I, 1) == np.sort(ref.indices, 1))),
                       "MLE": round(v, 4)})
    v, I = torch_blocked_mle(X)
    checks.append({"peer": "torch blocked float32", "same neighbour sets": float(np.mean(np.sort(I, 1) == np.sort(ref.indices, 1))),
                   "MLE": round(v, 4)})
    checks.append({"peer": "brainlid (exact)", "same neighbour sets": 1.0, "MLE": round(lid(X, K), 4)})
    print_table(checks, title="agreement with brainlid's exact kNN")
    for note in notes:
        print(note)

    n2, d2 = (10_000, 128) if quick else (50_000, 512)
    mem = peak_extra_memory(_memory_child, n2, d2)
    data_bytes = n2 * d2 * 4
    print_table(
        [{"N": n2, "D": d2, "k": K, "data (float32)": fmt_bytes(data_bytes), "peak extra (incl. data)": fmt_bytes(mem["extra_bytes"]),
          "target": "< 1 GiB", "ok": mem["extra_bytes"] < 1024**3}],
        title="(b) peak extra memory of lid(X, 20) in a child process",
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    main(quick="--quick" in sys.argv)
