"""Start-up: `brainlid --help`, `brainlid lid` and `brainlid align` import neither torch nor scikit-learn (issue 17).

Importing torch alone took ~3 s of the ~7 s `brainlid lid small.npy` needed. Which modules a command loads is a
correctness property of the import graph (checked here in a fresh interpreter); the wall time itself is measured
in benchmarks/bench_startup.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("torch", "sklearn", "pandas", "himalaya")

PROBE = """
import json, sys
kernels, args = sys.argv[1], sys.argv[2:]
if kernels != "auto":  # force the compiled (numba) kNN kernels, as large inputs use them
    import brainlid.geometry._kernels as K
    K.KERNELS = kernels
from brainlid.cli import main
rc = main(args)
print(json.dumps({"rc": rc, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run_probe(args, cwd, kernels="auto"):
    proc = subprocess.run([sys.executable, "-c", PROBE, kernels, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, proc.stderr
    return report["loaded"], proc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("startup")
    rng = np.random.default_rng(0)
    Z = rng.random((120, 4))
    np.save(d / "a.npy", Z @ rng.standard_normal((4, 16)))
    np.save(d / "b.npy", (Z ** 2 @ rng.standard_normal((4, 12))).astype(np.float32))
    return d


def test_help_imports_nothing_heavy(files):
    loaded, proc = run_probe(["--help"], files)
    assert loaded == []
    assert "lid" in proc.stdout and "align" in proc.stdout


@pytest.mark.parametrize("kernels", ["auto", "numba"])
def test_lid_imports_neither_torch_nor_sklearn_nor_pandas(files, kernels):
    loaded, proc = run_probe(["lid", files / "a.npy", "--k", "10", "--json"], files, kernels)
    assert loaded == []
    out = json.loads(proc.stdout.strip().splitlines()[0])
    from brainlid.geometry import lid

    assert out["lid"] == pytest.approx(lid(np.load(files / "a.npy"), 10), rel=1e-12)


@pytest.mark.parametrize("metric", ["mutual_knn", "cknna", "cka_linear", "rsa"])
def test_align_imports_neither_torch_nor_sklearn(files, metric):
    loaded, _ = run_probe(["align", files / "a.npy", files / "b.npy", "--metric", metric, "--json"], files)
    assert "torch" not in loaded and "sklearn" not in loaded and "himalaya" not in loaded, loaded


def test_geometry_and_backend_modules_import_nothing_heavy(files):
    code = (
        "import sys, json; import brainlid.geometry, brainlid.backend, brainlid.io, brainlid.alignment.similarity; "
        "import brainlid.backend as b; b.compute_threads(); b.resolve_backend_name('numpy'); "
        "from brainlid.geometry import knn; import numpy as np; knn(np.random.rand(50, 3), 5); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=files, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
