"""Natural Scenes Dataset (Allen et al. 2022): single-trial betas paired with the 73k images.

Layout, formats and conventions follow the shared spec DATASETS.md §1; every path comes from
the dataset card ``datasets/nsd.toml``. What :func:`load` does:

* **Trials → images.** Position ``k`` of session file ``NN`` is global trial ``g = (NN-1)·T + k``
  (``T`` = 750 trials per session in the real data, read from the files). Its image is
  ``subjectim[subject-1, masterordering[g]-1]`` (both 1-based in ``nsd_expdesign.mat``), and the
  stimulus id is that **73k id minus 1** (0-based: the ``imgBrick`` row and the CSV row).
* **Scaling.** Volume and native-surface betas are int16 = round(PSC × 300): divided by 300.
  fsaverage MGH betas are float32 PSC already (NaN possible: vertices with any NaN in the loaded
  sessions are dropped, counted in ``meta["dropped_nan_units"]``).
* **Axis order.** MATLAB-written HDF5 appears reversed: ``/betas`` is ``(T, Z, Y, X)`` for volumes
  (``h5["betas"][t] == nifti[..., t].T``) and ``(T, V)`` on the native surface. Units are
  reported in NIfTI voxel order ``(i, j, k)``.
* **Z-scoring** (``zscore=True``, default): each unit is z-scored over the trials of each session
  (population SD, ``ddof=0``), as NSD did before computing ncsnr. Units constant within a
  session get 0 there (counted in ``meta["constant_units"]``).
* **Repetitions** are averaged (``average_reps=True``) or kept as ``(stimulus, rep, unit)`` with
  NaN padding; ``n_reps`` counts the trials behind each stimulus in the loaded sessions.
* **Noise ceiling** from ``ncsnr`` through :func:`brainlid.data.reliability.nc_from_ncsnr`, as a
  fraction, using the repetition counts of the test split's stimuli (the scored ones; mixture
  ``A = mean 1/n_i`` when they differ). The raw ncsnr is kept in ``units["ncsnr"]``.
* **Splits** (``split=``): ``"shared1000"`` (default) — test = the shared images
  (``sharedix``), train = the rest; ``"algonauts"`` — the Algonauts 2023 rule: train = images shown
  in the first ``last − 3`` sessions (``last`` = highest session loaded), test = images whose trials
  all lie in the last 3 sessions, excluding shared images except, for subjects 1, 2, 5, 7, shared
  images whose 3 repetitions all lie there. Stimuli in neither set are in neither split.
* **ROIs** by name, resolved through the ctab files of the copy (the published codes of
  :data:`KNOWN_LABELS` when a ctab is missing, with a warning): label names
  (``V1v``, ``hV4``, ``EBA``, ``FFA-1``, ``PPA``, ``ventral`` …), unions ``V1``/``V2``/``V3``, whole
  files (``nsdgeneral``, ``floc-faces`` …) and qualified ``"<file>:<label>"`` names (e.g.
  ``"Kastner2015:V1v"``). Several at once; membership in ``units["roi:<NAME>"]``.
* **Memory.** Only the ROI's voxels are read from each session: HDF5 reads are slices along the
  file's chunking (one voxel's time series per chunk), NIfTI/MGH files are streamed in blocks
  of volumes; the output is allocated once in float32.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError
from ._mat import index_runs, read_ctab, read_expdesign, read_mgh_vector
from .brain import BrainData
from .cards import Loaded, check_frame, get_card, probe
from .provenance import detect_data_source
from .reliability import nc_from_ncsnr
from .stimuli import HDF5Reader, StimulusSet

__all__ = [
    "load",
    "check",
    "summarize",
    "SPACES",
    "BETA_VERSIONS",
    "ROI_FILES",
    "available_rois",
    "find_sessions",
    "read_volume_betas_hdf5",
    "read_volume_betas_nifti",
    "read_surface_betas_hdf5",
    "read_surface_betas_mgh",
    "trial_ids",
]

CARD = "nsd"
SPACES = ("func1pt8mm", "func1mm", "nativesurface", "fsaverage")
VOLUME_SPACES = ("func1pt8mm", "func1mm")
BETA_VERSIONS = ("betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf")
ROI_FILES = ("nsdgeneral", "prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams",
             "prf-eccrois", "Kastner2015", "HCP_MMP1", "visualsulc", "corticalsulc")
ROI_UNIONS = {"V1": ("V1v", "V1d"), "V2": ("V2v", "V2d"), "V3": ("V3v", "V3d")}
# Label codes of the NSD ROI files (DATASETS.md §1.8; the order of `roilabels` in the NSD drawing scripts).
# Used only when a copy lacks the file's .mgz.ctab (the ctab always wins; the fallback is recorded in meta).
KNOWN_LABELS = {
    "nsdgeneral": ["nsdgeneral"],
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "prf-eccrois": ["ecc0pt5", "ecc1", "ecc2", "ecc4", "ecc4+"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
}
SCALE = 300.0
SUBJECTS = tuple(range(1, 9))
SPLITS = ("shared1000", "algonauts")
_ALGONAUTS_SHARED_SUBJECTS = (1, 2, 5, 7)
_BLOCK_BYTES = 64 << 20  # streamed NIfTI / MGH reads: at most this many bytes of raw volumes at once
_SESSION_RE = re.compile(r"^(?:(lh|rh)\.)?betas_session(\d{2})\.(hdf5|nii\.gz|nii|mat|mgh)$")


def _check_subject(subject) -> int:
    try:
        s = int(subject)
    except (TypeError, ValueError) as exc:
        raise InputError(f"NSD subject must be an integer 1-8, got {subject!r}") from exc
    if s != subject or s not in SUBJECTS:
        raise InputError(f"NSD subject {subject!r} out of range: NSD has subjects 1-8")
    return s


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise InputError(f"unknown NSD space {space!r}; spaces: {', '.join(SPACES)}")
    return space


# ------------------------------------------------------------------------------------------ readers
def _open_h5(path: Path):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"cannot open NSD betas file {path} (truncated or not HDF5?): {exc}") from exc
    if "betas" not in f:
        keys = ", ".join(list(f.keys())[:10])
        f.close()
        raise FileFormatError(f"{path} has no /betas dataset (has: {keys})")
    return f


def read_volume_betas_hdf5(path, ijk: np.ndarray, *, scale: float = 1.0 / SCALE, max_gap: int = 2) -> np.ndarray:
    """Read selected voxels of one NSD volume session file (HDF5, MATLAB axis order).

    Parameters
    ----------
    path : path-like
        ``betas_sessionNN.hdf5`` (or the legacy v7.3 ``.mat``) with ``/betas`` of shape
        ``(T, Z, Y, X)`` int16, chunked ``(T, 1, 1, 1)``.
    ijk : int array (n_voxels, 3)
        Voxel indices in NIfTI order ``(i, j, k)`` = ``(x, y, z)``.
    scale : float
        Multiplier applied after casting (``1/300`` turns the stored int16 into PSC).
    max_gap : int
        Voxels of one (z, y) row closer than this along x are read with one slice.

    Returns
    -------
    ndarray (T, n_voxels) float32
        Column ``u`` is voxel ``ijk[u]``. Memory: the output plus one row slice.
    """
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    with _open_h5(Path(path)) as f:
        ds = f["betas"]
        if ds.ndim != 4:
            raise FileFormatError(f"{path}: /betas has shape {ds.shape}, expected (trials, Z, Y, X)")
        n_t, nz, ny, nx = ds.shape
        _check_grid(ijk, (nx, ny, nz), path)
        _check_storage(ds, path)
        out = np.empty((n_t, ijk.shape[0]), dtype=np.float32)
        i, j, k = ijk[:, 0], ijk[:, 1], ijk[:, 2]
        order = np.lexsort((i, j, k))  # rows (k, j), x ascending within a row
        key = k[order] * ny + j[order]
        row_starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        row_ends = np.r_[row_starts[1:], order.size]
        try:
            for ra, rb in zip(row_starts, row_ends):
                cols = order[ra:rb]
                xs = i[cols]
                kk, jj = int(k[cols[0]]), int(j[cols[0]])
                for a, b, lo, hi in index_runs(xs, max_gap):
                    block = ds[:, kk, jj, lo:hi]
                    out[:, cols[a:b]] = block[:, xs[a:b] - lo]
        except OSError as exc:
            raise FileFormatError(f"cannot read {path} (truncated?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def _check_grid(ijk: np.ndarray, grid: tuple, path) -> None:
    if ijk.size and (ijk.min() < 0 or np.any(ijk.max(axis=0) >= np.asarray(grid))):
        raise FileFormatError(f"{path}: grid {grid} (X, Y, Z) does not contain the requested voxels (ROI from another space?)")


def _check_storage(ds, path) -> None:
    """Detect truncated HDF5 files: allocated chunks that lie beyond the end of the file."""
    try:
        size = Path(path).stat().st_size
        offset = ds.id.get_offset()  # contiguous datasets
        if offset is not None and offset + ds.id.get_storage_size() > size:
            raise FileFormatError(f"{path} is truncated ({size} bytes; /betas needs {offset + ds.id.get_storage_size()})")
        if ds.chunks is not None:
            n = ds.id.get_num_chunks()
            if n:
                last = ds.id.get_chunk_info(n - 1)
                if last.byte_offset + last.size > size:
                    raise FileFormatError(f"{path} is truncated ({size} bytes; chunk data extend to {last.byte_offset + last.size})")
    except (AttributeError, RuntimeError):  # pragma: no cover - old h5py without chunk queries
        pass


def read_volume_betas_nifti(path, ijk: np.ndarray, *, scale: float = 1.0 / SCALE) -> np.ndarray:
    """Read selected voxels of one NSD volume session file in NIfTI form ``(X, Y, Z, T)`` int16.

    Volumes are streamed in blocks of at most 64 MB (a gzipped file is decompressed once,
    front to back); returns ``(T, n_voxels)`` float32 (× ``scale``).
    """
    import nibabel as nib

    path = Path(path)
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    try:
        img = nib.load(str(path), keep_file_open=True)
        shape = img.shape
        if len(shape) != 4:
            raise FileFormatError(f"{path}: expected a 4-D (X, Y, Z, trials) image, got shape {shape}")
        _check_grid(ijk, shape[:3], path)
        nx, ny, nz, n_t = shape
        flat = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])  # Fortran order of (X, Y, Z)
        per_vol = nx * ny * nz * img.get_data_dtype().itemsize
        step = max(1, _BLOCK_BYTES // max(per_vol, 1))
        out = np.empty((n_t, ijk.shape[0]), dtype=np.float32)
        for t0 in range(0, n_t, step):
            t1 = min(n_t, t0 + step)
            vols = np.asanyarray(img.dataobj[..., t0:t1])
            out[t0:t1] = vols.reshape(-1, t1 - t0, order="F")[flat].T
    except FileFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - gzip/zlib/nibabel errors on truncated files
        raise FileFormatError(f"cannot read {path} (truncated or not NIfTI?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def read_surface_betas_hdf5(path, vertices: np.ndarray, *, scale: float = 1.0 / SCALE, max_gap: int = 4) -> np.ndarray:
    """Read selected vertices of one native-surface session file: ``/betas`` ``(T, V)`` int16 → ``(T, n)`` float32."""
    vertices = np.asarray(vertices, dtype=np.int64)
    with _open_h5(Path(path)) as f:
        ds = f["betas"]
        if ds.ndim != 2:
            raise FileFormatError(f"{path}: /betas has shape {ds.shape}, expected (trials, vertices)")
        if vertices.size and (vertices.min() < 0 or vertices.max() >= ds.shape[1]):
            raise FileFormatError(f"{path}: {ds.shape[1]} vertices do not contain the requested ones (labels of another subject?)")
        _check_storage(ds, path)
        order = np.argsort(vertices, kind="stable")
        vs = vertices[order]
        out = np.empty((ds.shape[0], vertices.size), dtype=np.float32)
        try:
            for a, b, lo, hi in index_runs(vs, max_gap):
                out[:, order[a:b]] = ds[:, lo:hi][:, vs[a:b] - lo]
        except OSError as exc:
            raise FileFormatError(f"cannot read {path} (truncated?): {exc}") from exc
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def read_surface_betas_mgh(path, vertices: np.ndarray) -> np.ndarray:
    """Read selected vertices of one fsaverage session file (MGH ``(V, 1, 1, T)`` float32 PSC) → ``(T, n)`` float32.

    Not scaled (fsaverage betas are stored in PSC); NaN is passed through.
    """
    import nibabel as nib

    path = Path(path)
    vertices = np.asarray(vertices, dtype=np.int64)
    try:
        img = nib.load(str(path))
        shape = img.shape
        if len(shape) != 4 or shape[1:3] != (1, 1):
            raise FileFormatError(f"{path}: expected an MGH of shape (V, 1, 1, trials), got {shape}")
        n_v, n_t = shape[0], shape[3]
        if vertices.size and (vertices.min() < 0 or vertices.max() >= n_v):
            raise FileFormatError(f"{path}: {n_v} vertices do not contain the requested ones")
        expected = 284 + n_v * n_t * img.get_data_dtype().itemsize
        if not str(path).endswith(".mgz") and path.stat().st_size < expected:
            raise FileFormatError(f"{path} is truncated ({path.stat().st_size} bytes, expected at least {expected})")
        step = max(1, _BLOCK_BYTES // max(n_v * 4, 1))
        out = np.empty((n_t, vertices.size), dtype=np.float32)
        for t0 in range(0, n_t, step):
            t1 = min(n_t, t0 + step)
            frames = np.asanyarray(img.dataobj[:, 0, 0, t0:t1])
            out[t0:t1] = frames[vertices].T
    except FileFormatError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"cannot read {path} (truncated or not MGH?): {exc}") from exc
    return out


def _n_trials(path: Path) -> int:
    """Trials in one session file, from its header only."""
    suffix = path.name
    if suffix.endswith((".hdf5", ".mat")):
        with _open_h5(path) as f:
            return int(f["betas"].shape[0])
    import nibabel as nib

    try:
        return int(nib.load(str(path)).shape[-1])
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"cannot read the header of {path}: {exc}") from exc


# ------------------------------------------------------------------------------------------ design
def trial_ids(expdesign: dict, subject: int, sessions: Sequence[int], n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based 73k ids and global trial numbers of every trial of ``sessions`` (session order, then position).

    ``g = (s-1)·n_trials + k``; id = ``subjectim[subject-1, masterordering[g]-1] - 1``.

    Raises
    ------
    StimulusMismatchError
        When the design has fewer trials than the sessions need (expdesign/betas mismatch).
    """
    mo, si = expdesign["masterordering"], expdesign["subjectim"]
    sessions = np.asarray(list(sessions), dtype=np.int64)
    need = int(sessions.max()) * n_trials
    if need > mo.size:
        raise StimulusMismatchError(
            f"expdesign/betas mismatch: session {int(sessions.max())} with {n_trials} trials per session needs "
            f"{need} trials but nsd_expdesign.mat's masterordering has {mo.size}"
        )
    if subject > si.shape[0]:
        raise StimulusMismatchError(f"nsd_expdesign.mat's subjectim has {si.shape[0]} rows; no subject {subject}")
    g = ((sessions[:, None] - 1) * n_trials + np.arange(n_trials)[None, :]).ravel()
    idx10k = mo[g]
    return si[subject - 1, idx10k - 1] - 1, g


# ------------------------------------------------------------------------------------------ sessions
def find_sessions(root, subject: int, space: str, beta: str = BETA_VERSIONS[0], fmt: str = "auto") -> dict[int, dict[str, Path]]:
    """Session files present for a subject and space: ``{session: {"": path}}`` for volumes
    (HDF5 preferred over NIfTI unless ``fmt`` says otherwise) and ``{session: {"lh": path, "rh": path}}``
    for surfaces (a session needs both hemispheres to be listed; ``"lh"``/``"rh"`` alone are kept too)."""
    card = get_card(CARD)
    d = card.file(Path(root), "betas_dir", subject=subject, space=space, beta=beta)
    if not d.is_dir():
        return {}
    pref = {"auto": ("hdf5", "mat", "nii.gz", "nii"), "hdf5": ("hdf5", "mat"), "nifti": ("nii.gz", "nii")}[fmt]
    found: dict[int, dict[str, tuple[int, Path]]] = {}
    for p in d.iterdir():
        m = _SESSION_RE.match(p.name)
        if not m:
            continue
        hemi, sess, ext = m.group(1) or "", int(m.group(2)), m.group(3)
        if space in VOLUME_SPACES and (hemi or ext not in pref):
            continue
        if space == "nativesurface" and (not hemi or ext != "hdf5"):
            continue
        if space == "fsaverage" and (not hemi or ext != "mgh"):
            continue
        rank = pref.index(ext) if ext in pref else 0
        slot = found.setdefault(sess, {})
        if hemi not in slot or rank < slot[hemi][0]:
            slot[hemi] = (rank, p)
    return {s: {h: v[1] for h, v in sorted(slots.items())} for s, slots in sorted(found.items())}


# ------------------------------------------------------------------------------------------ ROIs
def _label_path(root: Path, subject: int, space: str, roifile: str, hemi: str = "") -> Path:
    card = get_card(CARD)
    if space in VOLUME_SPACES:
        if hemi:
            return card.file(root, "roi_vol_hemi", subject=subject, space=space, roi=roifile, hemi=hemi)
        return card.file(root, "roi_vol", subject=subject, space=space, roi=roifile)
    key = "roi_native" if space == "nativesurface" else "roi_fsavg"
    return card.file(root, key, subject=subject, roi=roifile, hemi=hemi or "lh")


def _ctab_path(root: Path, subject: int, space: str, roifile: str) -> Path:
    key = "ctab_fsavg" if space == "fsaverage" else "ctab_native"
    return get_card(CARD).file(root, key, subject=subject, roi=roifile)


@dataclass(frozen=True)
class _Roi:
    file: str
    codes: tuple[int, ...] | None  # None = every label > 0


def _roi_table(root: Path, subject: int, space: str, fallbacks: list | None = None) -> dict[str, _Roi]:
    table: dict[str, _Roi] = {}
    for roifile in ROI_FILES:
        if not _label_path(root, subject, space, roifile).exists():
            continue
        ctab_p = _ctab_path(root, subject, space, roifile)
        if ctab_p.exists():
            labels = {c: n for c, n in read_ctab(ctab_p).items() if c > 0}
        elif roifile in KNOWN_LABELS:
            labels = dict(enumerate(KNOWN_LABELS[roifile], 1))
            if fallbacks is not None and roifile != "nsdgeneral":
                fallbacks.append(roifile)
        else:
            labels = {}
        table.setdefault(roifile, _Roi(roifile, None))
        for code, name in labels.items():
            table[f"{roifile}:{name}"] = _Roi(roifile, (code,))
            if name not in table:
                table[name] = _Roi(roifile, (code,))
        for union, parts in ROI_UNIONS.items():
            if union not in table and all(table.get(p) is not None and table[p].file == roifile for p in parts):
                table[union] = _Roi(roifile, tuple(c for p in parts for c in table[p].codes))
    return table


def available_rois(root=None, subject: int = 1, space: str = "func1pt8mm") -> list[str]:
    """ROI names :func:`load` accepts for this subject and space (from the label and ctab files present)."""
    card = get_card(CARD)
    root = card.root(root)
    return sorted(_roi_table(root, _check_subject(subject), _check_space(space)), key=str.lower)


def _read_volume_labels(path: Path, card, subject) -> np.ndarray:
    import nibabel as nib

    if not path.exists():
        raise card.not_found(path, "ROI file", subject=subject)
    try:
        data = np.asarray(nib.load(str(path)).dataobj)
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"cannot read ROI file {path}: {exc}") from exc
    if data.ndim != 3:
        raise FileFormatError(f"ROI file {path} has shape {data.shape}, expected (X, Y, Z)")
    return np.rint(data).astype(np.int32)


def _resolve_rois(roi, table: dict[str, _Roi], space: str, subject: int) -> list[str] | None:
    if roi is None:
        return None
    names = [roi] if isinstance(roi, str) else list(roi)
    if not names:
        raise InputError("roi is an empty list; pass a name, a list of names, or None for every unit")
    for n in names:
        if n not in table:
            valid = sorted(k for k in table if ":" not in k)
            raise InputError(
                f"unknown ROI {n!r} for NSD subject {subject} {space}; valid: {', '.join(valid) or 'none (no ROI files found)'}"
                + (" (also '<file>:<label>', e.g. 'Kastner2015:V1v')" if valid else "")
            )
    return names


def _members(labels: np.ndarray, r: _Roi) -> np.ndarray:
    return labels > 0 if r.codes is None else np.isin(labels, r.codes)


# ------------------------------------------------------------------------------------------ load
def load(
    root=None,
    subject: int = 1,
    space: str = "func1pt8mm",
    roi: str | Sequence[str] | None = "nsdgeneral",
    beta: str = "betas_fithrf_GLMdenoise_RR",
    sessions: Iterable[int] | None = None,
    zscore: bool = True,
    average_reps: bool = True,
    split: str = "shared1000",
    hemisphere: str = "both",
    fmt: str = "auto",
    images: bool = True,
) -> Loaded:
    """Load NSD single-trial betas of one subject, paired with their images.

    Parameters
    ----------
    root : path-like or None
        NSD root (the bucket layout: ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``);
        default ``$BRAINLID_DATA/nsd``, else ``~/brainlid_data/nsd``.
    subject : int
        1-8.
    space : {"func1pt8mm", "func1mm", "nativesurface", "fsaverage"}
    roi : str, list of str or None
        ROI name(s) (see the module docstring and :func:`available_rois`); ``None`` keeps every
        voxel of the grid / every vertex (large: mind the memory).
    beta : str
        Beta version folder (``betas_fithrf_GLMdenoise_RR`` recommended).
    sessions : iterable of int or None
        1-based sessions to load; default every session present (a gap is an error).
    zscore : bool
        Z-score each unit within each session (default True).
    average_reps : bool
        Average repetitions (default) or keep them as axis 1 (NaN-padded).
    split : {"shared1000", "algonauts"}
        Which train/test split to put in ``brain.splits``.
    hemisphere : {"both", "lh", "rh"}
        Units of one hemisphere only (volumes: from the ``roi/{lh,rh}.<roi>.nii.gz`` files).
    fmt : {"auto", "hdf5", "nifti"}
        Volume session files to read (auto: HDF5 when present, else NIfTI).
    images : bool
        Attach the lazy ``imgBrick`` reader (requires ``nsd_stimuli.hdf5``).

    Returns
    -------
    Loaded
        ``stimuli, brain = load(...)``. ``stimuli``: :class:`StimulusSet` with int ids (0-based 73k ids,
        ascending), metadata (``n_reps``, ``shared1000`` and, when ``nsd_stim_info_merged.csv`` is present,
        ``cocoId``, ``cocoSplit``, ``cropBox``). ``brain``: :class:`BrainData` with responses
        ``(stimulus, unit)`` or ``(stimulus, rep, unit)`` float32; units with ``i, j, k`` (volumes) or
        ``vertex`` (surfaces), ``hemisphere``, ``ncsnr`` and ``roi:<NAME>`` columns; ``noise_ceiling``
        (fraction); ``n_reps``; ``splits`` ``{"train", "test"}``.

    Raises
    ------
    DatasetNotFoundError
        Root, expdesign, session, ROI or image file missing (named, with how to get it).
    FileFormatError
        A file is truncated or not in the expected format (named).
    StimulusMismatchError
        expdesign and session files disagree (trial counts).
    InputError
        Bad subject, space, ROI name, split, or sessions.
    """
    card = get_card(CARD)
    subject = _check_subject(subject)
    space = _check_space(space)
    if beta not in BETA_VERSIONS:
        raise InputError(f"unknown NSD beta version {beta!r}; versions: {', '.join(BETA_VERSIONS)}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if hemisphere not in ("both", "lh", "rh"):
        raise InputError(f"hemisphere must be 'both', 'lh' or 'rh', got {hemisphere!r}")
    if fmt not in ("auto", "hdf5", "nifti"):
        raise InputError(f"fmt must be 'auto', 'hdf5' or 'nifti', got {fmt!r}")
    root = card.root(root)
    kw = {"subject": subject, "space": space}

    expdesign_p = card.require(card.file(root, "expdesign"), "experimental design", **kw)
    design = read_expdesign(expdesign_p)

    # sessions -------------------------------------------------------------------------------
    found = find_sessions(root, subject, space, beta, fmt)
    hemis = ("lh", "rh") if hemisphere == "both" else (hemisphere,)
    if not found:
        present = [s for s in SPACES if find_sessions(root, subject, s, beta)]
        raise card.not_found(card.file(root, "betas_dir", subject=subject, space=space, beta=beta),
                             f"{space} {beta} session files for subject {subject}",
                             extra=f"This copy has {', '.join(present) if present else 'no'} {beta} sessions for subject {subject}.", **kw)
    if sessions is None:
        wanted = sorted(found)
        gaps = [s for s in range(1, wanted[-1] + 1) if s not in found]
        if gaps:
            raise card.not_found(_session_path(card, root, subject, space, beta, gaps[0], fmt, hemis[0]),
                                 f"session {gaps[0]:02d} file",
                                 extra=f"Sessions present: {_ranges(wanted)}; pass sessions=[...] to load a subset.", **kw)
    else:
        wanted = sorted({int(s) for s in sessions})
        if not wanted or wanted[0] < 1:
            raise InputError(f"sessions must be 1-based session numbers, got {list(sessions)}")
        for s in wanted:
            if s not in found:
                raise card.not_found(_session_path(card, root, subject, space, beta, s, fmt, hemis[0]), f"session {s:02d} file", **kw)
    files = []
    for s in wanted:
        if space in VOLUME_SPACES:
            files.append({"": found[s][""]})
        else:
            miss = [h for h in hemis if h not in found[s]]
            if miss:
                raise card.not_found(_session_path(card, root, subject, space, beta, s, fmt, miss[0]), f"session {s:02d} {miss[0]} file", **kw)
            files.append({h: found[s][h] for h in hemis})
    counts = {(s, h): _n_trials(p) for s, fs in zip(wanted, files) for h, p in fs.items()}
    n_trials = set(counts.values())
    if len(n_trials) != 1:
        raise StimulusMismatchError(f"NSD session files of subject {subject} {space} have different trial counts: "
                                    + ", ".join(f"session {s:02d}{(' ' + h) if h else ''}: {n}" for (s, h), n in counts.items()))
    n_trials = n_trials.pop()
    ids_per_trial, _ = trial_ids(design, subject, wanted, n_trials)

    # units --------------------------------------------------------------------------------------
    fallbacks: list[str] = []
    table = _roi_table(root, subject, space, fallbacks)
    names = _resolve_rois(roi, table, space, subject)
    used_fallback = sorted({table[n].file for n in names or []} & set(fallbacks))
    if used_fallback:
        warnings.warn(f"NSD subject {subject} {space}: no .mgz.ctab for {', '.join(used_fallback)}; using the published "
                      "label codes (DATASETS.md §1.8)", stacklevel=2)
    units, unit_index = _units(root, card, subject, space, hemis, names, table, found[wanted[0]], beta)
    if space in VOLUME_SPACES and hemisphere != "both":
        if not (units["hemisphere"] != "").any():
            raise DatasetNotFoundError(f"hemisphere={hemisphere!r} needs the roi/lh.<roi>.nii.gz and rh.<roi>.nii.gz files of "
                                       f"subject {subject} {space}, which this copy lacks")
        keep = (units["hemisphere"] == hemisphere).to_numpy()
        units = units.loc[keep].reset_index(drop=True)
        unit_index = {"": unit_index[""][keep]}
    if len(units) == 0:
        raise InputError(f"ROI {names} has no {'voxels' if space in VOLUME_SPACES else 'vertices'} in subject {subject} {space}")

    # responses ----------------------------------------------------------------------------------
    stim_ids, trial_pos = np.unique(ids_per_trial, return_inverse=True)
    trial_pos = trial_pos.ravel()
    n_reps = np.bincount(trial_pos, minlength=stim_ids.size)
    rep_of_trial = _occurrence(trial_pos)
    n_units = len(units)
    if average_reps:
        resp = np.zeros((stim_ids.size, n_units), dtype=np.float32)
    else:
        resp = np.full((stim_ids.size, int(n_reps.max()), n_units), np.nan, dtype=np.float32)
    bad = np.zeros(n_units, dtype=bool)
    n_constant = 0
    for si, fs in enumerate(files):
        data = _read_session(space, fs, unit_index)  # (T, n_units) float32
        bad |= np.isnan(data).any(axis=0)
        if zscore:
            n_constant += _zscore_inplace(data)
        sel = slice(si * n_trials, (si + 1) * n_trials)
        pos, reps = trial_pos[sel], rep_of_trial[sel]
        if average_reps:
            for r in np.unique(reps):  # positions are unique within one repetition index
                m = reps == r
                resp[pos[m]] += data[m]
        else:
            resp[pos, reps] = data
        del data
    if average_reps:
        resp /= n_reps[:, None].astype(np.float32)
    meta = {"loader": "brainlid.data.nsd", "beta": beta, "sessions": wanted, "trials_per_session": int(n_trials),
            "zscore": bool(zscore), "split": split, "roi": names, "fmt": fmt, "constant_units": int(n_constant),
            "dropped_nan_units": int(bad.sum()), "labels_without_ctab": used_fallback,
            "data_source": detect_data_source(root)}
    if n_constant:
        warnings.warn(f"NSD subject {subject} {space}: {n_constant} unit-session(s) are constant (voxels outside the "
                      "brain mask are stored as 0) and were set to 0 by the z-scoring", stacklevel=2)
    if bad.any():
        warnings.warn(f"NSD subject {subject} {space}: dropping {int(bad.sum())} unit(s) with NaN betas", stacklevel=2)
        keep = ~bad
        resp = np.ascontiguousarray(resp[..., keep]) if not average_reps else np.ascontiguousarray(resp[:, keep])
        units = units.loc[keep].reset_index(drop=True)

    # splits and ceiling -------------------------------------------------------------------------
    shared = np.isin(stim_ids, design["sharedix"] - 1)
    splits = _splits(split, stim_ids, shared, ids_per_trial, wanted, n_trials, subject)
    nc = None
    if "ncsnr" in units:
        scored = np.isin(stim_ids, splits["test"]) if splits["test"].size else np.ones(stim_ids.size, bool)
        snr = units["ncsnr"].to_numpy(dtype=np.float64)
        nc = np.full(snr.shape, np.nan, dtype=np.float32)
        ok = np.isfinite(snr) & (snr >= 0)
        nc[ok] = nc_from_ncsnr(snr[ok], n_reps[scored])
        meta["noise_ceiling_reps"] = "test split" if splits["test"].size else "all stimuli"
    brain = BrainData(resp, stim_ids, units=units, noise_ceiling=nc, n_reps=n_reps, splits=splits,
                      subject=f"subj{subject:02d}", dataset="nsd", space=space, has_reps=not average_reps, meta=meta)

    # stimuli ------------------------------------------------------------------------------------
    metadata = pd.DataFrame({"nsd_id": stim_ids, "n_reps": n_reps, "shared1000": shared})
    csv_p = card.file(root, "stim_info")
    if csv_p.exists():
        info = _read_stim_info(csv_p)
        if info.shape[0] <= stim_ids.max():
            raise FileFormatError(f"{csv_p} has {info.shape[0]} rows; the design refers to nsd id {stim_ids.max()}")
        for col in ("cocoId", "cocoSplit", "cropBox"):
            if col in info:
                metadata[col] = info[col].to_numpy()[stim_ids]
    reader = None
    if images:
        stim_p = card.require(card.file(root, "stimuli"), "image file (nsd_stimuli.hdf5; pass images=False to load without images)", **kw)
        reader = HDF5Reader(stim_p, "imgBrick", rows=stim_ids, identity="nsd:nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5:imgBrick")
    stimuli = StimulusSet(stim_ids, metadata, reader, name=f"nsd-subj{subject:02d}")
    return Loaded(stimuli, brain)


def _ranges(vals: Sequence[int]) -> str:
    vals = sorted(vals)
    out, start = [], vals[0]
    for a, b in zip(vals, vals[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def _session_path(card, root, subject, space, beta, session, fmt, hemi) -> Path:
    if space in VOLUME_SPACES:
        key = "betas_nifti" if fmt == "nifti" else "betas_hdf5"
        return card.file(root, key, subject=subject, space=space, beta=beta, session=session)
    key = "betas_surf_hdf5" if space == "nativesurface" else "betas_fsavg_mgh"
    return card.file(root, key, subject=subject, beta=beta, session=session, hemi=hemi)


def _occurrence(pos: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements had the same value (0 for the first)."""
    order = np.argsort(pos, kind="stable")
    sp = pos[order]
    starts = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, sp.size]))
    out = np.empty_like(pos)
    out[order] = np.arange(sp.size) - run_start
    return out


def _zscore_inplace(data: np.ndarray) -> int:
    """Z-score columns of ``data`` (T, n) in place (float64 statistics, ddof=0); constant columns → 0."""
    mean = data.mean(axis=0, dtype=np.float64)
    var = np.square(data, dtype=np.float64).mean(axis=0) - mean**2  # one pass; recomputed below if unstable
    sd = np.sqrt(np.maximum(var, 0.0))
    unstable = sd < 1e-3 * (np.abs(mean) + 1e-12)
    if np.any(unstable):
        cols = np.flatnonzero(unstable)
        sd[cols] = data[:, cols].astype(np.float64).std(axis=0)
    const = sd == 0  # NaN columns (fsaverage) stay NaN and are dropped by the caller
    data -= mean.astype(np.float32)
    data *= (1.0 / np.where(const, 1.0, sd)).astype(np.float32)
    if const.any():
        data[:, const] = 0.0
    return int(const.sum())


def _read_session(space: str, fs: dict[str, Path], unit_index: dict) -> np.ndarray:
    parts = []
    for hemi, path in fs.items():
        idx = unit_index[hemi]
        if space in VOLUME_SPACES:
            reader = read_volume_betas_hdf5 if path.suffix in (".hdf5", ".mat") else read_volume_betas_nifti
            parts.append(reader(path, idx))
        elif space == "nativesurface":
            parts.append(read_surface_betas_hdf5(path, idx))
        else:
            parts.append(read_surface_betas_mgh(path, idx))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _units(root, card, subject, space, hemis, names, table, first_files, beta):
    """Unit table and per-file indices: ``(units DataFrame, {hemi_or_'': index array})``."""
    kw = {"subject": subject, "space": space}
    files_needed = sorted({table[n].file for n in names}) if names else []
    if space in VOLUME_SPACES:
        labels = {f: _read_volume_labels(_label_path(root, subject, space, f), card, subject) for f in files_needed}
        if names:
            mask = np.zeros(next(iter(labels.values())).shape, dtype=bool)
            for n in names:
                mask |= _members(labels[table[n].file], table[n])
        else:
            shape = _grid_shape(first_files[""])
            mask = np.ones(shape, dtype=bool)
        ijk = np.argwhere(mask)  # C order: i, then j, then k
        units = pd.DataFrame({"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
        units["hemisphere"] = _volume_hemisphere(root, subject, space, files_needed or ["nsdgeneral"], ijk, mask.shape)
        for n in names or []:
            units[f"roi:{n}"] = _members(labels[table[n].file], table[n])[mask]
        ncsnr_p = card.file(root, "ncsnr_nifti", subject=subject, space=space, beta=beta)
        if ncsnr_p.exists():
            import nibabel as nib

            try:
                snr = np.asarray(nib.load(str(ncsnr_p)).dataobj, dtype=np.float32)
            except Exception as exc:  # noqa: BLE001
                raise FileFormatError(f"cannot read {ncsnr_p}: {exc}") from exc
            if snr.shape != mask.shape:
                raise FileFormatError(f"{ncsnr_p} has shape {snr.shape}; the ROI grid is {mask.shape}")
            units["ncsnr"] = snr[mask]
        return units, {"": ijk}
    frames, index = [], {}
    for hemi in hemis:
        labels = {}
        for f in files_needed:
            p = _label_path(root, subject, space, f, hemi)
            if not p.exists():
                raise card.not_found(p, "ROI label file", **kw)
            labels[f] = np.rint(read_mgh_vector(p)).astype(np.int32)
        n_vert = _surface_size(first_files[hemi]) if hemi in first_files else None
        if names:
            mask = np.zeros(next(iter(labels.values())).shape, dtype=bool)
            for n in names:
                mask |= _members(labels[table[n].file], table[n])
        else:
            mask = np.ones(n_vert, dtype=bool)
        if n_vert is not None and mask.size != n_vert:
            raise FileFormatError(f"ROI labels for {hemi} have {mask.size} vertices but the {space} betas have {n_vert}")
        vert = np.flatnonzero(mask)
        df = pd.DataFrame({"vertex": vert, "hemisphere": hemi})
        for n in names or []:
            df[f"roi:{n}"] = _members(labels[table[n].file], table[n])[mask]
        ncsnr_p = card.file(root, "ncsnr_surf", subject=subject, space=space, beta=beta, hemi=hemi)
        if ncsnr_p.exists():
            snr = read_mgh_vector(ncsnr_p)
            if snr.size != mask.size:
                raise FileFormatError(f"{ncsnr_p} has {snr.size} vertices; the labels have {mask.size}")
            df["ncsnr"] = snr[mask]
        frames.append(df)
        index[hemi] = vert
    if any("ncsnr" not in f for f in frames):  # ncsnr missing for a hemisphere: no ceiling at all
        frames = [f.drop(columns="ncsnr", errors="ignore") for f in frames]
    return pd.concat(frames, ignore_index=True), index


def _grid_shape(path: Path) -> tuple[int, int, int]:
    if path.suffix in (".hdf5", ".mat"):
        with _open_h5(path) as f:
            return tuple(int(s) for s in f["betas"].shape[1:][::-1])
    import nibabel as nib

    return tuple(int(s) for s in nib.load(str(path)).shape[:3])


def _surface_size(path: Path) -> int:
    if path.suffix == ".hdf5":
        with _open_h5(path) as f:
            return int(f["betas"].shape[1])
    import nibabel as nib

    return int(nib.load(str(path)).shape[0])


def _volume_hemisphere(root, subject, space, files, ijk, shape) -> np.ndarray:
    """'lh' / 'rh' per voxel from the ``lh.<roi>.nii.gz`` / ``rh.<roi>.nii.gz`` files (-1 = not that hemisphere's cortex)."""
    import nibabel as nib

    out = np.full(ijk.shape[0], "", dtype=object)
    for f in files:
        for hemi in ("lh", "rh"):
            p = _label_path(root, subject, space, f, hemi)
            if p.exists():
                lab = np.asarray(nib.load(str(p)).dataobj)
                if lab.shape == shape:
                    inside = lab[ijk[:, 0], ijk[:, 1], ijk[:, 2]] >= 0
                    out[inside & (out == "")] = hemi
    return out.astype(str)


def _splits(split, stim_ids, shared, ids_per_trial, sessions, n_trials, subject) -> dict[str, np.ndarray]:
    if split == "shared1000":
        return {"train": stim_ids[~shared], "test": stim_ids[shared]}
    last = max(sessions)
    if last < 4:
        raise InputError(f"the Algonauts split holds out the last 3 sessions; only sessions up to {last} are loaded")
    sess_of_trial = np.repeat(np.asarray(sessions), n_trials)
    early = sess_of_trial <= last - 3
    train = np.unique(ids_per_trial[early])
    late_only = np.setdiff1d(np.unique(ids_per_trial[~early]), train)
    shared_ids = stim_ids[shared]
    test = np.setdiff1d(late_only, shared_ids)
    if subject in _ALGONAUTS_SHARED_SUBJECTS:
        ids_late, counts = np.unique(ids_per_trial[~early], return_counts=True)
        full = ids_late[(counts >= 3) & np.isin(ids_late, shared_ids) & np.isin(ids_late, late_only)]
        test = np.union1d(test, full)
    return {"train": train, "test": test}


def _read_stim_info(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, index_col=0, usecols=lambda c: c in ("Unnamed: 0", "cocoId", "cocoSplit", "cropBox", "nsdId", "shared1000") or c == "")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FileFormatError(f"cannot read {path}: {exc}") from exc


# ------------------------------------------------------------------------------------------ check
def check(root=None, subject: int | None = None) -> pd.DataFrame:
    """What a local NSD copy holds, per subject and space (see :mod:`brainlid.data.cards`).

    Rows: shared files (expdesign, stim info, image brick), then per subject and space the
    session files (each opened cheaply: shape and truncation), ncsnr, ROI label files and ctabs.
    """
    card = get_card(CARD)
    root = card.root(root, must_exist=False)
    rows: list[dict] = []

    def add(subj, space, item, path, reader=None):
        status, detail = probe(path, reader)
        rows.append({"subject": subj, "space": space, "item": item, "status": status, "detail": detail})

    if not root.is_dir():
        rows.append({"subject": None, "space": "", "item": "root", "status": "missing", "detail": str(root)})
        return check_frame(rows)
    add(None, "", "nsd_expdesign.mat", card.file(root, "expdesign"), lambda p: f"{read_expdesign(p)['masterordering'].size} trials")
    add(None, "", "nsd_stim_info_merged.csv", card.file(root, "stim_info"))
    add(None, "", "nsd_stimuli.hdf5", card.file(root, "stimuli"), _probe_brick)
    subjects = [_check_subject(subject)] if subject is not None else [
        s for s in SUBJECTS if (root / "nsddata_betas" / "ppdata" / f"subj{s:02d}").is_dir() or (root / "nsddata" / "ppdata" / f"subj{s:02d}").is_dir()]
    beta = BETA_VERSIONS[0]
    for s in subjects:
        for space in SPACES:
            sess = find_sessions(root, s, space, beta)
            betas_dir = card.file(root, "betas_dir", subject=s, space=space, beta=beta)
            if not sess:
                rows.append({"subject": s, "space": space, "item": f"{beta} sessions", "status": "missing", "detail": str(betas_dir)})
                continue
            for n, fs in sess.items():
                for hemi, p in fs.items():
                    add(s, space, p.name, p, _probe_session)
            for gap in (g for g in range(1, max(sess) + 1) if g not in sess):
                rows.append({"subject": s, "space": space, "item": f"session {gap:02d}", "status": "missing",
                             "detail": f"sessions present: {_ranges(list(sess))}"})
            if space in VOLUME_SPACES:
                add(s, space, "ncsnr.nii.gz", card.file(root, "ncsnr_nifti", subject=s, space=space, beta=beta), _probe_nifti)
            else:
                for hemi in ("lh", "rh"):
                    add(s, space, f"{hemi}.ncsnr.mgh", card.file(root, "ncsnr_surf", subject=s, space=space, beta=beta, hemi=hemi), _probe_nifti)
            for roifile in ROI_FILES[:7]:
                hemis = [""] if space in VOLUME_SPACES else ["lh", "rh"]
                for hemi in hemis:
                    p = _label_path(root, s, space, roifile, hemi)
                    add(s, space, f"roi {p.name}", p, _probe_nifti)
                if roifile != "nsdgeneral":
                    cp = _ctab_path(root, s, space, roifile)
                    add(s, space, f"ctab {cp.name}", cp, lambda p: f"{len(read_ctab(p)) - 1} labels")
    return check_frame(rows)


def _probe_brick(p: Path) -> str:
    import h5py

    with h5py.File(p, "r") as f:
        return f"imgBrick {f['imgBrick'].shape} {f['imgBrick'].dtype}"


def _probe_session(p: Path) -> str:
    if p.suffix in (".hdf5", ".mat"):
        with _open_h5(p) as f:
            _check_storage(f["betas"], p)
            return f"betas {f['betas'].shape} {f['betas'].dtype}"
    import nibabel as nib

    img = nib.load(str(p))
    if p.suffix == ".mgh":
        expected = 284 + int(np.prod(img.shape)) * img.get_data_dtype().itemsize
        if p.stat().st_size < expected:
            raise FileFormatError(f"truncated: {p.stat().st_size} bytes < {expected}")
    return f"{tuple(int(s) for s in img.shape)} {img.get_data_dtype()}"


def _probe_nifti(p: Path) -> str:
    import nibabel as nib

    img = nib.load(str(p))
    return f"{tuple(int(s) for s in img.shape)} {img.get_data_dtype()}"


def summarize(df: pd.DataFrame) -> list[str]:
    """One line per subject: sessions per space, ncsnr, ROI files present (from :func:`check`'s table)."""
    lines = []
    shared = df[df["subject"].isna()]
    miss = shared[shared["status"] != "present"]["item"].tolist()
    if "root" in miss:
        return [f"root missing: {shared['detail'].iloc[0]}"]
    if miss:
        lines.append("shared files not usable: " + ", ".join(miss) + ("  (nsd_expdesign.mat is required)" if "nsd_expdesign.mat" in miss else ""))
    for s, sdf in df[df["subject"].notna()].groupby("subject"):
        parts = []
        for space, g in sdf.groupby("space", sort=False):
            sess = g[g["item"].str.contains("betas_session") & (g["status"] == "present")]["item"]
            if sess.empty:
                continue
            n = len({re.search(r"session(\d+)", x).group(1) for x in sess})
            bad = int(((g["status"] != "present") & g["item"].str.contains("session")).sum())
            nc = g[g["item"].str.contains("ncsnr")]
            rois = sorted({re.sub(r"^roi (lh\.|rh\.)?|\.(nii\.gz|mgz)$", "", x) for x in g[g["item"].str.startswith("roi ") & (g["status"] == "present")]["item"]})
            txt = f"{space} {n} sessions" + (f" ({bad} missing/unreadable)" if bad else "")
            txt += ", ncsnr " + ("present" if len(nc) and (nc["status"] == "present").all() else "missing")
            txt += ", ROIs " + (", ".join(rois) if rois else "none")
            parts.append(txt)
        lines.append(f"subject {int(s)}: " + ("; ".join(parts) if parts else "no betas"))
    return lines
