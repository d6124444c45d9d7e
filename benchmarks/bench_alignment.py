"""RSA, RDM comparison, mutual kNN and CKA: brainlid side by side with rsatoolbox, scipy and dense torch.

``python -m benchmarks alignment`` (full sizes) or ``--quick``. All timings are
interleaved in one run (median of ``repeats``) and reported as ratios to brainlid.

Sizes (full / quick):
* RSA: 1,000 stimuli x 10,000 units / 400 x 2,000 — brainlid's correlation RDM vs
  rsatoolbox ``calc_rdm('correlation')`` vs scipy ``pdist('correlation')`` vs one
  float32 GEMM incl. centring/normalising (the floor).
* RDM comparisons on RDMs of 1,000 / 400 stimuli: spearman, kendall tau-a, whitened
  cosine (rsatoolbox ``cosine_cov``) vs rsatoolbox ``compare``.
* mutual kNN, k = 10: 5,000 x 2,048 vs 5,000 x 768 / 2,000 x 512 vs 2,000 x 256 —
  brainlid (exact blocked kNN) vs the reference recipe (platonic-rep: dense n x n
  similarity + argsort) vs dense torch ``topk``; plus peak extra memory.
* linear CKA: 10,000 x 2,048 vs 10,000 x 768 / 3,000 x 512 vs 3,000 x 256 —
  feature-space biased and unbiased; the n x n centring-matrix form
  trace(K H L H) is timed at a smaller n and extrapolated by n^3 (the full size
  is timed only with ``ALIGN_BENCH_DENSE_CKA=1``).
* permutation null: 1,000 / 200 permutations of mutual kNN and RSA on 1,000 / 500
  stimuli vs recomputing the metric per permutation (extrapolated from 10).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmarks._common import fmt_bytes, print_table, timeit_interleaved


# ----------------------------------------------------------------------------- helpers (module level: picklable)
def _data(n, da, db, seed=0, shared=32):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, shared)).astype(np.float32)
    A = Z @ rng.standard_normal((shared, da)).astype(np.float32) + rng.standard_normal((n, da)).astype(np.float32)
    B = Z @ rng.standard_normal((shared, db)).astype(np.float32) + rng.standard_normal((n, db)).astype(np.float32)
    return A, B


def _gemm_floor(X):
    Z = X - X.mean(axis=1, keepdims=True)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    G = Z @ Z.T
    return G


def _prep_torch(X):
    X = torch.from_numpy(X)
    t = torch.quantile(X.abs(), 0.95, dim=1).mean()
    return torch.nn.functional.normalize(X.clamp(-t, t), dim=-1)


def _reference_mknn(A, B, k):
    """platonic-rep's recipe: dense n x n similarity, argsort, n x n masks."""
    a, b = _prep_torch(A), _prep_torch(B)
    n = a.shape[0]

    def nn(f):
        return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]

    ka, kb = nn(a), nn(b)
    r = torch.arange(n)[:, None]
    ma = torch.zeros(n, n)
    mb = torch.zeros(n, n)
    ma[r, ka] = 1.0
    mb[r, kb] = 1.0
    return ((ma * mb).sum(dim=1) / k).mean().item()


def _topk_mknn(A, B, k):
    """Dense torch topk: n x n similarity per model, topk, sorted-overlap count."""
    from brainlid.alignment.similarity import knn_overlap

    idx = []
    for X in (A, B):
        f = _prep_torch(X)
        S = f @ f.T
        S.fill_diagonal_(float("-inf"))
        idx.append(torch.topk(S, k, dim=1).indices.numpy())
        del S
    return float(knn_overlap(idx[0], idx[1]).mean() / k)


def _brainlid_mknn(A, B, k):
    from brainlid.alignment.similarity import mutual_knn

    return mutual_knn(A, B, k)


def _run_mem(which, n, da, db, k):
    """Child-process body: build the inputs, then run one method while a thread samples the RSS
    every millisecond; returns the peak RSS above the level right before the call (bytes)."""
    import threading
    import time

    from benchmarks._common import current_rss

    A, B = _data(n, da, db)
    fn = {"brainlid": _brainlid_mknn, "reference": _reference_mknn, "torch topk": _topk_mknn}[which]
    fn(A[:50], B[:50], 5)  # first-call costs (imports, thread pools) outside the measurement
    base = current_rss()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], current_rss())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    fn(A, B, k)
    stop.set()
    th.join()
    return max(peak[0], current_rss()) - base


def _mem_child(conn, which, n, da, db, k):
    conn.send(_run_mem(which, n, da, db, k))
    conn.close()


def peak_memory(which, n, da, db, k) -> int:
    """Peak extra RSS of one mutual-kNN method, measured in a fresh (spawned) process."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_mem_child, args=(child, which, n, da, db, k))
    proc.start()
    val = parent.recv()
    proc.join()
    return int(val)


def _cka_dense_biased(A, B):
    """trace(K H L H) with explicit n x n centring matrix H (the slow textbook form), float64."""
    A = torch.from_numpy(A).double()
    B = torch.from_numpy(B).double()
    n = A.shape[0]
    H = torch.eye(n, dtype=torch.float64) - 1.0 / n
    K, L = A @ A.T, B @ B.T

    def hsic(K, L):
        return torch.trace(K @ H @ L @ H)

    return (hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L))).item()


# ----------------------------------------------------------------------------- sections
def bench_rsa(quick):
    from scipy.spatial.distance import pdist

    from brainlid.alignment.rsa import compare_rdms, rdm

    rt = _maybe_rsatoolbox()
    n, p = (400, 2000) if quick else (1000, 10000)
    X = np.random.default_rng(0).standard_normal((n, p)).astype(np.float32)
    X64 = X.astype(np.float64)
    fns = {
        "brainlid rdm (float32)": lambda: rdm(X, "correlation"),
        "float32 GEMM floor": lambda: _gemm_floor(X),
        "scipy pdist": lambda: pdist(X64, "correlation"),
    }
    if rt is not None:
        ds = rt.data.Dataset(X64)
        fns["rsatoolbox calc_rdm"] = lambda: rt.rdm.calc_rdm(ds, method="correlation")
    t = timeit_interleaved(fns, repeats=3)
    err = None
    if rt is not None:
        err = float(np.abs(rdm(X, "correlation") - rt.rdm.calc_rdm(ds, method="correlation").get_vectors()[0]).max())
    base = t["brainlid rdm (float32)"]
    print_table([{"method": k, "seconds": f"{v:.3f}", "time / brainlid": f"{v / base:.2f}x"} for k, v in t.items()],
                title=f"Correlation RDM, {n} stimuli x {p} units" + (f" (max |diff| vs rsatoolbox {err:.1e})" if err else ""))

    # comparisons
    rng = np.random.default_rng(1)
    da = rdm(X, "correlation").astype(np.float64)
    db = da + 0.5 * rng.random(da.size)
    rows = []
    for mine, theirs in (("spearman", "spearman"), ("kendall_tau_a", "tau-a"), ("cosine_whitened", "cosine_cov"),
                         ("pearson", "corr")):
        fns = {"brainlid": lambda m=mine: compare_rdms(da, db, m)}
        if rt is not None:
            Ra, Rb = rt.rdm.RDMs(da[None]), rt.rdm.RDMs(db[None])
            fns["rsatoolbox"] = lambda th=theirs, Ra=Ra, Rb=Rb: rt.rdm.compare(Ra, Rb, method=th)
        tt = timeit_interleaved(fns, repeats=1 if mine == "kendall_tau_a" else 3)
        row = {"comparison": mine, "brainlid s": f"{tt['brainlid']:.3f}"}
        if rt is not None:
            row["rsatoolbox s"] = f"{tt['rsatoolbox']:.3f}"
            row["rsatoolbox / brainlid"] = f"{tt['rsatoolbox'] / tt['brainlid']:.2f}x"
            row["|diff|"] = f"{abs(compare_rdms(da, db, mine) - float(rt.rdm.compare(Ra, Rb, method=theirs)[0, 0])):.1e}"
        rows.append(row)
    # one RDM against many (vectorised)
    many = np.stack([db + 0.1 * rng.random(da.size) for _ in range(20)])
    fns = {"brainlid 1 vs 20": lambda: compare_rdms(many, da, "spearman")}
    if rt is not None:
        Rm, Ra = rt.rdm.RDMs(many), rt.rdm.RDMs(da[None])
        fns["rsatoolbox 1 vs 20"] = lambda: rt.rdm.compare(Rm, Ra, method="spearman")
    tt = timeit_interleaved(fns, repeats=2)
    row = {"comparison": "spearman, 1 vs 20", "brainlid s": f"{tt['brainlid 1 vs 20']:.3f}"}
    if rt is not None:
        row["rsatoolbox s"] = f"{tt['rsatoolbox 1 vs 20']:.3f}"
        row["rsatoolbox / brainlid"] = f"{tt['rsatoolbox 1 vs 20'] / tt['brainlid 1 vs 20']:.2f}x"
        row["|diff|"] = ""
    rows.append(row)
    print_table(rows, title=f"RDM comparisons, {n} stimuli ({da.size} pairs)")


def bench_mutual_knn(quick):
    n, da, db = (2000, 512, 256) if quick else (5000, 2048, 768)
    k = 10
    A, B = _data(n, da, db)
    fns = {
        "brainlid mutual_knn": lambda: _brainlid_mknn(A, B, k),
        "reference (dense n x n + argsort)": lambda: _reference_mknn(A, B, k),
        "dense torch topk": lambda: _topk_mknn(A, B, k),
    }
    scores = {name: fn() for name, fn in fns.items()}
    t = timeit_interleaved(fns, repeats=3, warmup=False)
    base = t["brainlid mutual_knn"]
    keys = {"brainlid mutual_knn": "brainlid", "reference (dense n x n + argsort)": "reference",
            "dense torch topk": "torch topk"}
    rows = []
    for name in fns:
        mem = peak_memory(keys[name], n, da, db, k)
        rows.append({"method": name, "seconds": f"{t[name]:.3f}", "time / brainlid": f"{t[name] / base:.2f}x",
                     "peak extra memory*": fmt_bytes(mem), "score": f"{scores[name]:.4f}"})
    print_table(rows, title=f"Mutual kNN, k={k}: {n} x {da} vs {n} x {db}")
    print("* peak RSS (sampled every ms) of a fresh process above its level just before the call; inputs excluded")


def bench_cka(quick):
    from brainlid.alignment.similarity import cka_linear

    n, da, db = (3000, 512, 256) if quick else (10000, 2048, 768)
    A, B = _data(n, da, db)
    t = timeit_interleaved({
        "feature-space biased": lambda: cka_linear(A, B),
        "feature-space unbiased": lambda: cka_linear(A, B, unbiased=True),
    }, repeats=3)
    rows = [{"method": name, "seconds": f"{v:.3f}", "note": ""} for name, v in t.items()]
    # dense centring-matrix form: time at a smaller n, extrapolate by n^3
    n_small = 1000 if quick else 2000
    As, Bs = A[:n_small], B[:n_small]
    td = timeit_interleaved({"dense": lambda: _cka_dense_biased(As, Bs),
                             "fs": lambda: cka_linear(As, Bs)}, repeats=1)
    diff = abs(_cka_dense_biased(As, Bs) - cka_linear(As, Bs))
    if os.environ.get("ALIGN_BENCH_DENSE_CKA") == "1":
        tf = timeit_interleaved({"dense": lambda: _cka_dense_biased(A, B)}, repeats=1, warmup=False)["dense"]
        rows.append({"method": "n x n trace(KHLH), float64", "seconds": f"{tf:.1f}", "note": "measured"})
    else:
        est = td["dense"] * (n / n_small) ** 3
        rows.append({"method": "n x n trace(KHLH), float64", "seconds": f"~{est:.0f}",
                     "note": f"extrapolated (n^3) from {td['dense']:.2f} s at n={n_small}"})
    print_table(rows, title=f"Linear CKA: {n} x {da} vs {n} x {db} (|feature-space - dense| at n={n_small}: {diff:.1e})")


def bench_null(quick):
    import time

    from brainlid.alignment import similarity as sim
    from brainlid.alignment.null import permutation_null, permutations

    n, n_perm = (500, 200) if quick else (1000, 1000)
    A, B = _data(n, 256, 128)
    rows = []
    for metric in ("mutual_knn", "rsa"):
        t = timeit_interleaved({"fast": lambda m=metric: permutation_null(m, A, B, n_perm, seed=0)}, repeats=1)["fast"]
        # naive: recompute the metric on B[perm]; timed on 10 permutations and scaled
        perms = next(permutations(n, 10, seed=0))
        t0 = time.perf_counter()
        for pi in perms:
            sim.similarity(A, B[pi], metric)
        naive = (time.perf_counter() - t0) / 10 * n_perm
        rows.append({"metric": metric, f"{n_perm} permutations (s)": f"{t:.2f}",
                     "naive recomputation (s, extrapolated from 10)": f"{naive:.1f}",
                     "speed-up": f"{naive / t:.0f}x"})
    print_table(rows, title=f"Permutation null, {n} stimuli (256 vs 128 features)")


def _maybe_rsatoolbox():
    try:
        import rsatoolbox

        return rsatoolbox
    except ImportError:
        print("(rsatoolbox not installed: its rows are skipped)")
        return None


def main(quick: bool = False) -> None:
    print(f"brainlid alignment benchmark ({'quick' if quick else 'full'}); torch threads {torch.get_num_threads()}")
    bench_rsa(quick)
    bench_mutual_knn(quick)
    bench_cka(quick)
    bench_null(quick)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
