"""Record every score and geometry row of a fixed set of runs, or compare a new recording with an old one.

A safety net for refactoring: the rows of the demo, the fixture benchmarks (NSD, THINGS-fMRI, THINGS-EEG2,
Algonauts 2023) and the real k92 benchmark (when ``../shared/realdata/k92`` exists), scored serially and on a
Dask LocalCluster of two workers, must not change when only the code's layout does.

    python scripts/golden_rows.py record  OUT_DIR      # writes OUT_DIR/<run>.{scores,geometry}.parquet
    python scripts/golden_rows.py compare OLD_DIR NEW_DIR [--rtol 1e-6]

Only the package's public entry points are used (``brainlid.score``, ``brainlid.demo.run_demo``,
``brainlid.data.fixtures``), so the same script runs before and after a restructuring.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REALDATA = Path(os.environ.get("BRAINLID_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
MODELS = {"r0": "cifar_resnet:20@random:0", "r1": "cifar_resnet:20@random:1"}
LAYERS = ["layer1", "layer3"]
# provenance that names the code or the machine, not the science
VOLATILE = {"brainlid_version"}


def _fixture_runs(data: Path):
    from brainlid.data.fixtures import write_algonauts, write_nsd, write_things_eeg2, write_things_fmri

    nsd = write_nsd(data / "nsd")
    tf = write_things_fmri(data / "things_fmri", images_root=data / "things", betas_vol=False)
    eeg = write_things_eeg2(data / "things_eeg2", raw=False, n_train_concepts=12, n_train_per_concept=4, n_test=12,
                            n_times=30)
    alg = write_algonauts(data / "algonauts_2023_challenge_data", n_train=60)
    os.environ["BRAINLID_DATA"] = str(data)  # each dataset in its default folder there (tests do the same)
    del nsd, tf, eeg, alg
    runs = {
        "nsd": (None, ["nsd.subj01.nsdgeneral.encoding", "nsd.subj01.nsdgeneral.rsa"]),
        "things_fmri": (None, ["things_fmri.sub-01.V1.encoding", "things_fmri.sub-01.V1.rsa"]),
        "things_eeg2": (None, ["things_eeg2.sub-01.posterior.encoding", "things_eeg2.sub-01.occipital.rsa"]),
        "algonauts2023": (None, ["algonauts2023.subj01.lh.encoding"]),
    }
    if (REALDATA / "k92").is_dir():
        runs["k92"] = (REALDATA / "k92", ["k92.human.IT.rsa", "k92.monkey.IT.rsa"])
    return runs


def record(out: Path) -> None:
    import brainlid

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="golden-"))
    os.environ["BRAINLID_HOME"] = str(work / "home")
    os.environ["CI"] = "true"  # no progress bars

    def save(name, scores, geometry):
        scores.to_parquet(out / f"{name}.scores.parquet")
        geometry.to_parquet(out / f"{name}.geometry.parquet")
        print(f"{name}: {len(scores)} score rows, {len(geometry)} geometry rows", flush=True)

    from brainlid.demo import run_demo

    demo = run_demo(work / "demo-out", home=work / "home", log=lambda *a: None, progress=False)
    save("demo", demo.scores, demo.geometry)
    runs = _fixture_runs(work / "data")
    kw = dict(layers=LAYERS, store=False, return_result=True, baselines=("pixels", "random", "shuffled"),
              mm_metrics=("mutual_knn", "cka"))
    for name, (root, benches) in runs.items():
        res = brainlid.score(MODELS, benches, data_root=root, **kw)
        save(f"{name}.serial", res.scores, res.geometry)
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, Client(cluster) as client:
        for name, (root, benches) in runs.items():
            res = brainlid.score(MODELS, benches, data_root=root, client=client, **kw)
            save(f"{name}.dask", res.scores, res.geometry)


KEYS = {"scores": ["model", "layer", "benchmark", "subject", "roi", "metric", "split", "time"],
        "geometry": ["model", "layer", "stimulus_set", "estimator", "K"]}


def _compare_frames(a: pd.DataFrame, b: pd.DataFrame, keys, rtol: float) -> list[str]:
    problems = []
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"]
    if len(a) != len(b):
        return [f"{len(a)} rows before, {len(b)} after"]
    a = a.sort_values(keys, na_position="first").reset_index(drop=True)
    b = b.sort_values(keys, na_position="first").reset_index(drop=True)
    for col in a.columns:
        if col in VOLATILE:
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x):
            xv, yv = x.to_numpy(np.float64, na_value=np.nan), y.to_numpy(np.float64, na_value=np.nan)
            same_nan = np.isnan(xv) == np.isnan(yv)
            ok = np.isclose(xv, yv, rtol=rtol, atol=rtol * 1e-3, equal_nan=True)
            if not (same_nan.all() and ok.all()):
                bad = int((~(same_nan & ok)).sum())
                worst = np.nanmax(np.abs(xv - yv) / np.maximum(np.abs(xv), 1e-12))
                problems.append(f"{col}: {bad} rows differ (largest relative difference {worst:.3g})")
        elif not x.astype(object).equals(y.astype(object)):
            bad = int((x.astype(object).fillna("<NA>") != y.astype(object).fillna("<NA>")).sum())
            problems.append(f"{col}: {bad} rows differ")
    return problems


def compare(old: Path, new: Path, rtol: float) -> int:
    failed = 0
    names = sorted(p.name for p in old.glob("*.parquet"))
    if not names:
        print(f"no recordings in {old}")
        return 2
    for name in names:
        if not (new / name).exists():
            print(f"MISSING {name}")
            failed += 1
            continue
        kind = name.split(".")[-2]
        problems = _compare_frames(pd.read_parquet(old / name), pd.read_parquet(new / name), KEYS[kind], rtol)
        print(("DIFF " if problems else "same ") + name + "".join(f"\n    {p}" for p in problems))
        failed += bool(problems)
    print(f"{len(names) - failed} of {len(names)} tables equal (rtol {rtol:g})")
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--rtol", type=float, default=1e-6)
    a = p.parse_args(argv)
    if a.cmd == "record":
        record(a.out)
        return 0
    return compare(a.old, a.new, a.rtol)


if __name__ == "__main__":
    sys.exit(main())
