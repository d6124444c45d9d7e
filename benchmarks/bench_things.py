"""THINGS: the full-size THINGS-EEG2 training file and ROI reads from a large THINGS-fMRI table.

**THINGS-EEG2.** A training file of the published size, ``preprocessed_eeg_training.npy`` = ``np.save``
of a dict with ``preprocessed_eeg_data`` float64 ``(16540, 4, 17, 100)`` (0.9 GB), is written to a
temporary folder with its ``image_metadata.npy``, then loaded into averaged float32 ``BrainData`` by

* ``brainlid`` — :func:`brainlid.data.things_eeg2.load_brain` (averaging in chunks, split-half
  Spearman–Brown ceiling per channel and time on small blocks);
* ``brainlid, no ceiling`` — the same with ``noise_ceiling=False``;
* ``naive`` — ``np.load(p, allow_pickle=True).item()["preprocessed_eeg_data"].mean(1).astype(float32)``.

The requirement: extra peak RSS above the post-import baseline < 1.3× the file size.

**THINGS-fMRI.** A ``sub-01_ResponseData.h5`` written by pandas exactly like the real one (fixed format,
key ``ResponseData``, columns ``['voxel_id', 0..9839]``, float64) with 40,000 voxels × the real 9,840
trials (3.1 GB; sub-01 has 211,339 voxels), the real trial design (8,640 train images once, 100 test
images × 12), and voxel metadata with a contiguous ROI and a scattered one. ROI reads by

* ``brainlid`` — :func:`brainlid.data.things_fmri.load_brain` (rows of the HDF5 block via h5py,
  averaged straight into the float32 output);
* ``pandas`` — ``pd.read_hdf`` of the whole table, then the ROI rows (what the THINGS notebooks do).

The requirement: extra memory ≤ 2× the output. Files are freshly written (page cache warm): times
are library bound, not disk bound. Times are medians of interleaved runs (3; 1 with ``--quick``).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

# imported here so that the child processes' baselines include them (the requirement is extra
# memory above the post-import baseline)
import brainlid.alignment.ceiling  # noqa: F401
import brainlid.data.things_eeg2  # noqa: F401
import brainlid.data.things_fmri  # noqa: F401
import h5py  # noqa: F401
import mne  # noqa: F401

from ._common import fmt_bytes, peak_extra_memory, print_table, timeit_interleaved

EEG_SHAPE = (16540, 4, 17, 100)


# --------------------------------------------------------------------------- THINGS-EEG2
def _write_eeg2(root: Path, shape) -> Path:
    rng = np.random.default_rng(0)
    n_img = shape[0]
    per = 10
    concepts = [f"{i // per + 1:05d}_concept{i // per + 1}" for i in range(n_img)]
    files = [f"concept{i // per + 1}_{i % per + 1:02d}b.jpg" for i in range(n_img)]
    meta = {
        "train_img_files": files,
        "train_img_concepts": concepts,
        "train_img_concepts_THINGS": concepts,
        "test_img_files": files[:200],
        "test_img_concepts": concepts[:200],
        "test_img_concepts_THINGS": concepts[:200],
    }
    (root / "image_set").mkdir(parents=True, exist_ok=True)
    np.save(root / "image_set" / "image_metadata.npy", meta, allow_pickle=True)
    data = np.empty(shape)
    for s0 in range(0, n_img, 1000):  # signal + noise, in blocks to keep the writer light
        blk = rng.standard_normal((min(1000, n_img - s0), 1) + shape[2:])
        data[s0 : s0 + blk.shape[0]] = blk + rng.standard_normal((blk.shape[0],) + shape[1:])
    path = root / "eeg_dataset" / "preprocessed_data" / "sub-01" / "preprocessed_eeg_training.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    times = np.round(np.arange(shape[3]) * 0.01 - 0.2, 6)
    np.save(path, {"preprocessed_eeg_data": data, "ch_names": [f"P{i}" for i in range(shape[2])], "times": times}, allow_pickle=True)
    return path


def run_eeg2_brainlid(root):
    from brainlid.data.things_eeg2 import load_brain

    return load_brain(root, 1, "train")


def run_eeg2_no_ceiling(root):
    from brainlid.data.things_eeg2 import load_brain

    return load_brain(root, 1, "train", noise_ceiling=False)


def run_eeg2_naive(root):
    p = Path(root) / "eeg_dataset" / "preprocessed_data" / "sub-01" / "preprocessed_eeg_training.npy"
    return np.load(p, allow_pickle=True).item()["preprocessed_eeg_data"].mean(axis=1).astype(np.float32)


def bench_eeg2(quick: bool) -> None:
    shape = (2000,) + EEG_SHAPE[1:] if quick else EEG_SHAPE
    with tempfile.TemporaryDirectory(prefix="bench-things-eeg2-") as tmp:
        root = Path(tmp)
        path = _write_eeg2(root, shape)
        size = path.stat().st_size
        fns = {"brainlid": run_eeg2_brainlid, "brainlid, no ceiling": run_eeg2_no_ceiling, "naive": run_eeg2_naive}
        times = timeit_interleaved({k: (lambda f=f: f(root)) for k, f in fns.items()}, repeats=1 if quick else 3, warmup=False)
        rows = []
        for name, fn in fns.items():
            mem = peak_extra_memory(fn, root)
            rows.append(
                {
                    "loader": name,
                    "time_s": round(times[name], 2),
                    "time_vs_naive": round(times[name] / times["naive"], 2),
                    "extra_peak": fmt_bytes(mem["extra_bytes"]),
                    "extra/file": round(mem["extra_bytes"] / size, 3),
                    "limit": "< 1.3" if name.startswith("brainlid") else "",
                }
            )
        print_table(rows, f"THINGS-EEG2 training file {shape} float64 ({fmt_bytes(size)}) -> averaged float32 BrainData")


# --------------------------------------------------------------------------- THINGS-fMRI
def _write_fmri(root: Path, n_vox: int, quick: bool) -> dict[str, int]:
    rng = np.random.default_rng(1)
    n_train, n_test, reps = (864, 10, 12) if quick else (8640, 100, 12)
    trial_img = np.concatenate([np.arange(n_train), n_train + np.tile(np.arange(n_test), reps)])
    rng.shuffle(trial_img)
    n_trials = trial_img.size
    csv = root / "derivatives" / "betas_csv"
    csv.mkdir(parents=True)
    stim = pd.DataFrame(
        {
            "trial_type": np.where(trial_img < n_train, "train", "test"),
            "session": np.arange(n_trials) * 12 // n_trials + 1,
            "run": 1,
            "subject_id": 1,
            "trial_id": np.arange(n_trials),
            "stimulus": [f"img{i:05d}_01b.jpg" for i in trial_img],
            "concept": [f"img{i:05d}" for i in trial_img],
        }
    )
    stim.to_csv(csv / "sub-01_StimulusMetadata.csv", index=False)
    vals = np.empty((n_vox, n_trials))
    for v0 in range(0, n_vox, 2000):
        vals[v0 : v0 + 2000] = rng.standard_normal((min(2000, n_vox - v0), n_trials)) * 0.1
    frame = pd.DataFrame(vals, columns=list(range(n_trials)), copy=False)
    del vals
    frame.insert(0, "voxel_id", np.arange(n_vox))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_hdf(csv / "sub-01_ResponseData.h5", key="ResponseData", mode="w")
    del frame
    contiguous = np.zeros(n_vox, dtype=int)
    contiguous[n_vox // 3 : n_vox // 3 + n_vox // 10] = 1  # a V1-like block of consecutive rows
    scattered = (rng.random(n_vox) < 0.05).astype(int)  # an FFA-like ROI spread over the volume
    vm = pd.DataFrame({"voxel_id": np.arange(n_vox), "subject_id": 1, "voxel_x": 0, "voxel_y": 0, "voxel_z": 0,
                       "nc_singletrial": 10.0, "nc_testset": 50.0, "V1": contiguous, "lFFA": scattered})
    vm.to_csv(csv / "sub-01_VoxelMetadata.csv", index=False)
    return {"V1": int(contiguous.sum()), "lFFA": int(scattered.sum()), "n_images": n_train + n_test, "n_trials": n_trials}


def run_fmri_brainlid(root, roi):
    from brainlid.data.things_fmri import load_brain

    return load_brain(root, 1, roi=roi)


def run_fmri_pandas(root, roi):
    csv = Path(root) / "derivatives" / "betas_csv"
    mask = pd.read_csv(csv / "sub-01_VoxelMetadata.csv")[roi].to_numpy() > 0
    table = pd.read_hdf(csv / "sub-01_ResponseData.h5", key="ResponseData")
    return table.drop(columns="voxel_id").to_numpy()[mask].astype(np.float32)


def bench_fmri(quick: bool) -> None:
    n_vox = 4000 if quick else 40000
    with tempfile.TemporaryDirectory(prefix="bench-things-fmri-") as tmp:
        root = Path(tmp)
        info = _write_fmri(root, n_vox, quick)
        size = (root / "derivatives" / "betas_csv" / "sub-01_ResponseData.h5").stat().st_size
        rows = []
        for roi in ("V1", "lFFA"):
            out_bytes = info[roi] * info["n_images"] * 4
            fns = {"brainlid": run_fmri_brainlid, "pandas": run_fmri_pandas}
            times = timeit_interleaved({k: (lambda f=f: f(root, roi)) for k, f in fns.items()}, repeats=1 if quick else 3, warmup=False)
            for name, fn in fns.items():
                mem = peak_extra_memory(fn, root, roi)
                rows.append(
                    {
                        "roi": f"{roi} ({info[roi]} voxels)",
                        "reader": name,
                        "time_s": round(times[name], 2),
                        "time_vs_pandas": round(times[name] / times["pandas"], 3),
                        "output": fmt_bytes(out_bytes),
                        "extra_peak": fmt_bytes(mem["extra_bytes"]),
                        "extra/output": round(mem["extra_bytes"] / out_bytes, 2),
                        "limit": "<= 2" if name == "brainlid" else "",
                    }
                )
        print_table(rows, f"THINGS-fMRI ROI reads from a {n_vox} voxels x {info['n_trials']} trials table ({fmt_bytes(size)})")


def main(quick: bool = False) -> None:
    bench_eeg2(quick)
    bench_fmri(quick)
