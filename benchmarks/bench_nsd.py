"""NSD: read an ROI's voxels from one real-size session file, brainlid vs whole-volume reads.

One session of subj01 func1pt8mm: 750 trials × 81×104×83 int16, written to a temporary folder as
the real files are (HDF5 ``/betas`` ``(750, 83, 104, 81)`` with MATLAB's chunking ``(750, 1, 1, 1)``,
about 1 GB, and the same data as ``betas_session01.nii.gz``). An nsdgeneral-like ROI of about
15,000 voxels (a posterior blob) is read by

* ``brainlid hdf5`` — :func:`brainlid.data.nsd.read_volume_betas_hdf5` (row slices along the chunking);
* ``brainlid nifti`` — :func:`brainlid.data.nsd.read_volume_betas_nifti` (streams 64 MB blocks of volumes);
* ``nibabel full`` — ``nib.load(...).get_fdata(dtype=float32)`` on the NIfTI, then the mask
  (what most NSD scripts do);
* ``h5py full`` — ``f["betas"][()]`` then the mask.

Timed interleaved (median of 3; 1 with ``--quick``); peak extra RSS measured in a fresh child
process. The ROI read must stay within 2× the output's size (750 × n_voxels float32).
Files are freshly written, so they sit in the page cache: the times are CPU/IO-library bound,
not disk bound.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from brainlid.data.nsd import read_volume_betas_hdf5, read_volume_betas_nifti

from ._common import fmt_bytes, peak_extra_memory, print_table, timeit_interleaved

SHAPE = (81, 104, 83)  # subj01 func1pt8mm, NIfTI order (X, Y, Z)


def _volume_mask(shape, n_target: int, seed: int = 0) -> np.ndarray:
    """An ellipsoidal 'brain' and a posterior ROI of about n_target voxels inside it."""
    X, Y, Z = shape
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij", sparse=True)
    brain = ((i - X / 2) / (X / 2.2)) ** 2 + ((j - Y / 2) / (Y / 2.2)) ** 2 + ((k - Z / 2) / (Z / 2.2)) ** 2 <= 1
    # posterior shell of cortex, grown until it holds ~n_target voxels
    depth = ((i - X / 2) / (X / 2.2)) ** 2 + ((j - Y / 2) / (Y / 2.2)) ** 2 + ((k - Z / 2) / (Z / 2.2)) ** 2
    for frac in np.linspace(0.05, 0.95, 181):
        roi = brain & (depth > 0.6) & (j < Y * frac)
        if roi.sum() >= n_target:
            break
    return brain, roi


def _write_session(folder: Path, n_trials: int, seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    brain, roi = _volume_mask(SHAPE, 15000)
    X, Y, Z = SHAPE
    h5p = folder / "betas_session01.hdf5"
    nii = np.zeros(SHAPE + (n_trials,), dtype=np.int16)  # (X, Y, Z, T), ~1 GB at 750 trials
    with h5py.File(h5p, "w") as f:
        ds = f.create_dataset("betas", shape=(n_trials, Z, Y, X), dtype="int16", chunks=(n_trials, 1, 1, 1))
        for k in range(Z):
            sl = rng.normal(0, 600, (X, Y, n_trials)).astype(np.int16)
            sl[~brain[:, :, k]] = 0
            nii[:, :, k, :] = sl
            ds[:, k, :, :] = sl.transpose(2, 1, 0)  # MATLAB order: (T, Y, X) for this z
    nip = folder / "betas_session01.nii.gz"
    img = nib.Nifti1Image(nii, np.diag([1.8, 1.8, 1.8, 1.0]))
    img.header.set_zooms((1.8, 1.8, 1.8, 4 / 3))
    nib.save(img, str(nip))
    del nii
    np.save(folder / "roi.npy", roi)
    return h5p, nip, roi


# child-process workloads (module level: picklable; the libraries are imported at module level, so
# their import cost is outside the measured peak)
def _roi_ijk(folder):
    return np.argwhere(np.load(Path(folder) / "roi.npy"))


def run_brainlid_hdf5(folder):
    return read_volume_betas_hdf5(Path(folder) / "betas_session01.hdf5", _roi_ijk(folder))


def run_brainlid_nifti(folder):
    return read_volume_betas_nifti(Path(folder) / "betas_session01.nii.gz", _roi_ijk(folder))


def run_nibabel_full(folder):
    roi = np.load(Path(folder) / "roi.npy")
    data = nib.load(str(Path(folder) / "betas_session01.nii.gz")).get_fdata(dtype=np.float32)
    return (data[roi] / 300).T  # (T, n_voxels)


def run_h5py_full(folder):
    roi = np.load(Path(folder) / "roi.npy")
    with h5py.File(Path(folder) / "betas_session01.hdf5", "r") as f:
        vol = f["betas"][()]  # (T, Z, Y, X)
    return vol.transpose(3, 2, 1, 0)[roi].T.astype(np.float32) / 300


def main(quick: bool = False) -> None:
    n_trials = 150 if quick else 750
    with tempfile.TemporaryDirectory(prefix="brainlid-bench-nsd-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        h5p, nip, roi = _write_session(folder, n_trials)
        print(f"wrote one session ({n_trials} trials × {SHAPE}): HDF5 {fmt_bytes(h5p.stat().st_size)}, "
              f"NIfTI.gz {fmt_bytes(nip.stat().st_size)} in {time.perf_counter() - t0:.0f} s; ROI {int(roi.sum())} voxels")
        fns = {
            "brainlid hdf5 (ROI)": lambda: run_brainlid_hdf5(folder),
            "brainlid nifti (ROI, streamed)": lambda: run_brainlid_nifti(folder),
            "nibabel full + mask": lambda: run_nibabel_full(folder),
            "h5py full + mask": lambda: run_h5py_full(folder),
        }
        ref = run_h5py_full(folder)
        for name, fn in list(fns.items())[:3]:
            np.testing.assert_allclose(fn(), ref, rtol=1e-6, err_msg=name)
        times = timeit_interleaved(fns, repeats=1 if quick else 3, warmup=False)
        workers = {"brainlid hdf5 (ROI)": run_brainlid_hdf5, "brainlid nifti (ROI, streamed)": run_brainlid_nifti,
                   "nibabel full + mask": run_nibabel_full, "h5py full + mask": run_h5py_full}
        out_bytes = ref.nbytes
        rows = []
        for name, fn in workers.items():
            mem = peak_extra_memory(fn, str(folder))
            rows.append({"method": name, "time_s": round(times[name], 2),
                         "time / brainlid hdf5": round(times[name] / times["brainlid hdf5 (ROI)"], 2),
                         "peak extra RSS": fmt_bytes(mem["extra_bytes"]),
                         "extra / output": round(mem["extra_bytes"] / out_bytes, 2)})
        print_table(rows, title=f"NSD ROI read: {int(roi.sum())} voxels × {n_trials} trials, output {fmt_bytes(out_bytes)} float32")
        ratio = rows[0]["extra / output"]
        print(f"brainlid ROI read: extra memory {ratio:.2f}× the output (limit 2×): {'PASS' if ratio <= 2 else 'FAIL'}")


if __name__ == "__main__":
    main(quick=bool(os.environ.get("QUICK")))
