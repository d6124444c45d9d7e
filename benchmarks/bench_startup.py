"""Start-up benchmark: how long the command line takes to answer, and the kNN candidate search without torch.

(a) Wall time of fresh processes, interleaved, median of ``repeats``:
    * ``brainlid lid X.npy`` on a 500 × 64 float32 file (goal: under 1.5 s on this 2-core machine);
    * ``brainlid --help``;
    * ``python -c "import torch"`` — the reference: what the command used to pay before anything else
      (``brainlid lid`` imported torch and scikit-learn: ~7 s);
    * ``python -c "pass"`` — the interpreter alone.
    Reported in seconds and as ratios to the torch import.
(b) Candidate search of the exact kNN (``knn(X, 20)``), N points of a 10-d manifold in D dims, float32:
    the default compiled heap selection (no torch) vs ``torch.topk`` (``CANDIDATE_BACKEND = "torch"``)
    vs the NumPy twins (``np.argpartition``, used for small problems before numba is loaded),
    interleaved median of 3, as ratios to the default. Full: N = 20,000, D = 128; quick: N = 5,000.

Run: ``python -m benchmarks startup [--quick]``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import print_table, timeit_interleaved
from benchmarks.bench_geometry import make_data

GOAL_LID_SECONDS = 1.5


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def startup_times(repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features_500x64.npy"
        np.save(path, make_data(500, 64))
        brainlid = [sys.executable, "-m", "brainlid"]
        fns = {
            "brainlid lid (500x64 .npy)": lambda: _run(brainlid + ["lid", str(path)]),
            "brainlid --help": lambda: _run(brainlid + ["--help"]),
            'python -c "import torch"': lambda: _run([sys.executable, "-c", "import torch"]),
            'python -c "pass"': lambda: _run([sys.executable, "-c", "pass"]),
        }
        return timeit_interleaved(fns, repeats=repeats)  # warm-up run first: disk caches, numba cache files


def candidate_search_times(n: int, d: int) -> dict[str, float]:
    knn_module = importlib.import_module("brainlid.geometry.knn")
    from brainlid.geometry import _kernels

    X = make_data(n, d)

    def with_settings(candidates: str, kernels: str):
        def run():
            saved = knn_module.CANDIDATE_BACKEND, _kernels.KERNELS
            knn_module.CANDIDATE_BACKEND, _kernels.KERNELS = candidates, kernels
            try:
                return knn_module.knn(X, 20)
            finally:
                knn_module.CANDIDATE_BACKEND, _kernels.KERNELS = saved
        return run

    fns = {
        "compiled heap selection (default, no torch)": with_settings("numpy", "numba"),
        "torch.topk": with_settings("torch", "numba"),
        "NumPy twins (np.argpartition, small problems)": with_settings("numpy", "numpy"),
    }
    ref = fns["torch.topk"]().indices
    for name, fn in fns.items():  # same exact result whatever selects the candidates
        assert np.array_equal(fn().indices, ref), name
    return timeit_interleaved(fns, repeats=3)


def main(quick: bool = False) -> None:
    times = startup_times(repeats=3 if quick else 5)
    t_torch = times['python -c "import torch"']
    rows = [{"command": name, "seconds": round(t, 3), "x import torch": round(t / t_torch, 2)} for name, t in times.items()]
    print_table(rows, title="(a) start-up wall time, fresh processes, interleaved median")
    t_lid = times["brainlid lid (500x64 .npy)"]
    print(f"goal: brainlid lid on 500x64 < {GOAL_LID_SECONDS} s: {t_lid:.2f} s ({'ok' if t_lid < GOAL_LID_SECONDS else 'MISSED'})")

    n, d = (5_000, 128) if quick else (20_000, 128)
    times = candidate_search_times(n, d)
    t_ref = times["compiled heap selection (default, no torch)"]
    rows = [{"candidate search": name, "seconds": round(t, 3), "x default": round(t / t_ref, 2)} for name, t in times.items()]
    print_table(rows, title=f"(b) knn(X, 20), N={n}, D={d}, float32, 10-d manifold, median of 3 interleaved")


if __name__ == "__main__":  # pragma: no cover
    main(quick="--quick" in sys.argv)
