"""Encoding-model solver: brainlid's ridge CV vs himalaya RidgeCV, scikit-learn RidgeCV, and its own GEMMs.

Problem (issue 6): n_train = 8,000 stimuli, p = 1,024 features, 10,000 units, 10 α
values, 5-fold inner CV, 1,000 test stimuli, float32 (``--quick``: 2,000 × 256,
2,000 units, 250 test).

Rows
----
* ``brainlid (numpy|torch)`` — :func:`brainlid.alignment.encoding.ridge_cv_fit_predict`.
* ``GEMMs only`` — exactly the matrix products the algorithm performs, with the same
  shapes and target batches, on preallocated float32 arrays (the lower bound the
  solver is gated against: ≤ 1.5× of it). Shapes, with n_g = fold size, n_val = n_g,
  t_b = targets per batch:

  - once: per fold ``X_gᵀX_g`` (p×n_g)(n_g×p); ``A = X_val V`` (n_val×p)(p×p);
    ``M = AᵀA`` (p×n_val)(n_val×p); refit ``X_test V`` (n_test×p)(p×p);
  - per batch, per fold: ``C_g = X_gᵀY_g`` (p×n_g)(n_g×t_b);
    ``Vᵀ[C_train | C_val]`` (p×p)(p×2t_b); per α ``M (D_α Z)`` (p×p)(p×t_b);
  - per batch, refit: ``Vᵀ C`` (p×p)(p×t_b); ``(X_test V)(D Z)`` (n_test×p)(p×t_b).

  The eigendecompositions (one p×p per fold + one for the refit) are not products and
  are not in this row; they are the main part of the difference.
* ``himalaya RidgeCV`` — ``himalaya.ridge.RidgeCV(alphas, fit_intercept=True, cv=KFold(5))``
  used directly (numpy backend); the gate is ≥ 5× faster than this.
* ``sklearn RidgeCV`` — ``RidgeCV(alphas, alpha_per_target=True)`` (efficient leave-one-out,
  not 5-fold; a reference, not a gate).

Timing is interleaved round-robin in one run (median of 3); at full size the peers
(himalaya, scikit-learn) run once each because they take minutes. Peak memory is
measured in a fresh child process (inputs included; the inputs alone are reported
too).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from benchmarks._common import fmt_bytes, peak_extra_memory, print_table

FULL = dict(n=8000, p=1024, t=10000, n_test=1000, n_alphas=10, n_folds=5, batch=2500)
QUICK = dict(n=2000, p=256, t=2000, n_test=250, n_alphas=10, n_folds=5, batch=1000)


def make_data(n, p, t, n_test, seed=0, **_):
    """Planted low-rank linear map + noise, float32: X (n, p), Y (n, t), X_test (n_test, p)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p), dtype=np.float32)
    W = rng.standard_normal((p, 32), dtype=np.float32) @ rng.standard_normal((32, t), dtype=np.float32) / np.float32(
        np.sqrt(32 * p)
    )
    Y = X[:n] @ W
    Y += rng.standard_normal((n, t), dtype=np.float32)
    return X[:n], Y, X[n:]


def alphas_for(cfg):
    return np.logspace(-2, 7, cfg["n_alphas"])


def run_brainlid(data, cfg, backend="numpy"):
    from brainlid.alignment.encoding import ridge_cv_fit_predict

    X, Y, Xt = data
    return ridge_cv_fit_predict(
        X, Y, Xt, alphas=alphas_for(cfg), n_folds=cfg["n_folds"], backend=backend, n_targets_batch=cfg["batch"]
    )


def run_himalaya(data, cfg):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.model_selection import KFold

    set_backend("numpy")
    X, Y, Xt = data
    model = RidgeCV(
        alphas=alphas_for(cfg),
        fit_intercept=True,
        cv=KFold(cfg["n_folds"], shuffle=True, random_state=0),
        solver_params={"n_targets_batch": cfg["batch"]},
    )
    model.fit(X, Y)
    return model.predict(Xt)


def run_sklearn(data, cfg):
    from sklearn.linear_model import RidgeCV

    X, Y, Xt = data
    return RidgeCV(alphas=alphas_for(cfg), alpha_per_target=True).fit(X, Y).predict(Xt)


class Products:
    """The algorithm's GEMMs (shapes in the module docstring) on preallocated float32 arrays."""

    def __init__(self, cfg, seed=0):
        rng = np.random.default_rng(seed)
        n, p, t, nt, k = cfg["n"], cfg["p"], cfg["t"], cfg["n_test"], cfg["n_folds"]
        self.cfg = cfg
        self.ng = n // k
        f32 = np.float32
        self.Xg = [rng.standard_normal((self.ng, p), dtype=f32) for _ in range(k)]
        self.V = rng.standard_normal((p, p), dtype=f32)
        self.Xt = rng.standard_normal((nt, p), dtype=f32)
        self.batches = [min(cfg["batch"], t - b) for b in range(0, t, cfg["batch"])]
        self.Yg = [rng.standard_normal((self.ng, self.batches[0]), dtype=f32) for _ in range(k)]
        self.Z2 = rng.standard_normal((p, 2 * self.batches[0]), dtype=f32)

    def shapes(self) -> list[dict]:
        c = self.cfg
        p, ng, nt, k, na = c["p"], self.ng, c["n_test"], c["n_folds"], c["n_alphas"]
        tb = self.batches[0]
        nb = len(self.batches)
        rows = [
            ("X_gᵀX_g", f"({p}×{ng})·({ng}×{p})", k),
            ("A = X_val V", f"({ng}×{p})·({p}×{p})", k),
            ("M = AᵀA", f"({p}×{ng})·({ng}×{p})", k),
            ("X_test V", f"({nt}×{p})·({p}×{p})", 1),
            ("C_g = X_gᵀY_g", f"({p}×{ng})·({ng}×{tb})", k * nb),
            ("Vᵀ[C_train|C_val]", f"({p}×{p})·({p}×{2 * tb})", k * nb),
            ("M·(D_α Z)", f"({p}×{p})·({p}×{tb})", k * na * nb),
            ("Vᵀ C (refit)", f"({p}×{p})·({p}×{tb})", nb),
            ("(X_test V)(D Z)", f"({nt}×{p})·({p}×{tb})", nb),
        ]
        return [{"product": a, "shape": s, "count": n} for a, s, n in rows]

    def flops(self) -> float:
        total = 0.0
        for row in self.shapes():
            (m, kk), (_, nn) = [tuple(int(v) for v in part.strip("()").split("×")) for part in row["shape"].split("·")]
            total += 2.0 * m * kk * nn * row["count"]
        return total

    def __call__(self):
        c = self.cfg
        k, na = c["n_folds"], c["n_alphas"]
        V, Xt = self.V, self.Xt
        for g in range(k):
            self.Xg[g].T @ self.Xg[g]
            A = self.Xg[g] @ V
            A.T @ A
        AT = Xt @ V
        for tb in self.batches:
            Z = self.Z2[:, :tb]
            for g in range(k):
                self.Xg[g].T @ self.Yg[g][:, :tb]
                V.T @ self.Z2[:, : 2 * tb]
                for _ in range(na):
                    V @ Z
            V.T @ Z
            AT @ Z


def _mem_inputs(cfg):
    make_data(**cfg)


def _mem_brainlid(cfg):
    data = make_data(**cfg)
    run_brainlid(data, cfg, "numpy")


def _mem_himalaya(cfg):
    data = make_data(**cfg)
    run_himalaya(data, cfg)


def _time(fn, label: str = "") -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    if label:
        print(f"  [{time.strftime('%H:%M:%S')}] {label}: {dt:.2f} s", file=sys.stderr, flush=True)
    return dt


def main(quick: bool = False) -> None:
    cfg = QUICK if quick else FULL
    data = make_data(**cfg)
    prods = Products(cfg)
    fns = {
        "brainlid (numpy)": lambda: run_brainlid(data, cfg, "numpy"),
        "brainlid (torch)": lambda: run_brainlid(data, cfg, "torch"),
        "GEMMs only": prods,
        "himalaya RidgeCV": lambda: run_himalaya(data, cfg),
        "sklearn RidgeCV": lambda: run_sklearn(data, cfg),
    }
    peers = {"himalaya RidgeCV", "sklearn RidgeCV"}
    repeats = 3
    times: dict[str, list[float]] = {k: [] for k in fns}
    # warm-up of the fast rows (imports, thread pools); peers are warmed by their first run
    for name in ("brainlid (numpy)", "brainlid (torch)", "GEMMs only"):
        fns[name]()
    for rep in range(repeats):
        for name, fn in fns.items():
            if name in peers and not quick and rep > 0:
                continue  # peers take minutes at full size: one run each
            times[name].append(_time(fn, f"round {rep + 1}: {name}"))
    med = {k: statistics.median(v) for k, v in times.items()}

    # agreement with himalaya (same folds are not guaranteed: compare the predictions' correlation)
    ours = run_brainlid(data, cfg, "numpy").predictions
    ref = np.asarray(run_himalaya(data, cfg)) if quick else None

    mem = {
        "inputs only": peak_extra_memory(_mem_inputs, cfg)["extra_bytes"],
        "brainlid (numpy)": peak_extra_memory(_mem_brainlid, cfg)["extra_bytes"],
    }
    if quick:
        mem["himalaya RidgeCV"] = peak_extra_memory(_mem_himalaya, cfg)["extra_bytes"]

    size = f"n={cfg['n']}, p={cfg['p']}, units={cfg['t']}, test={cfg['n_test']}, {cfg['n_alphas']} alphas, {cfg['n_folds']}-fold"
    base = med["brainlid (numpy)"]
    rows = []
    for name, t in med.items():
        rows.append(
            {
                "solver": name,
                "runs": len(times[name]),
                "seconds (median)": round(t, 2),
                "time / brainlid(numpy)": round(t / base, 2),
                "peak extra memory": fmt_bytes(mem[name]) if name in mem else "",
            }
        )
    print_table(rows, title=f"encoding ridge CV ({size}, float32)")
    print(f"inputs alone: {fmt_bytes(mem['inputs only'])} (included in the peaks above)")
    print_table(prods.shapes(), title=f"GEMMs of the algorithm ({prods.flops() / 1e12:.2f} TFLOP)")
    print(f"GEMM throughput in this run: {prods.flops() / med['GEMMs only'] / 1e9:.0f} GFLOP/s")
    print(
        f"gates: himalaya / brainlid = {med['himalaya RidgeCV'] / base:.1f}x (need >= 5); "
        f"brainlid / GEMMs = {base / med['GEMMs only']:.2f}x (need <= 1.5); "
        f"peak {fmt_bytes(mem['brainlid (numpy)'])} (need < 2 GiB); "
        f"sklearn / brainlid = {med['sklearn RidgeCV'] / base:.1f}x (reference)"
    )
    if ref is not None:
        r = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
        print(f"predictions vs himalaya: correlation {r:.5f} (folds differ, so not identical)")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
