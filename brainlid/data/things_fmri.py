"""THINGS-fMRI (THINGS-data, Hebart et al. 2023): single-trial fMRI responses to THINGS images.

Layout (``root`` = the ``THINGS-fMRI`` folder, or its ``derivatives`` folder; DATASETS.md §3.3)::

    derivatives/betas_csv/sub-XX_ResponseData.h5       pandas HDFStore, fixed format, key "ResponseData":
                                                       rows = voxels (sub-01: 211,339), columns
                                                       ['voxel_id', 0, 1, ..., 9839] (one per trial)
    derivatives/betas_csv/sub-XX_StimulusMetadata.csv  row i <-> trial column i (catch trials excluded):
                                                       trial_type (train|test), session, run, subject_id,
                                                       trial_id, stimulus (dog_12s.jpg), concept
    derivatives/betas_csv/sub-XX_VoxelMetadata.csv     row i <-> table row i: voxel_id, voxel_x/y/z,
                                                       nc_singletrial, nc_testset (percent), pRF fields,
                                                       0/1 ROI columns (names may contain newlines)
    derivatives/betas_vol/sub-XX/ses-thingsNN/sub-XX_ses-thingsNN_run-RR_betas.nii.gz     (X, Y, Z, 92)
    derivatives/betas_vol/sub-XX/ses-thingsNN/sub-XX_ses-thingsNN_run-RR_conditions.tsv  incl. catch trials
    derivatives/brainmasks/sub-XX_space-T1w_brainmask.nii.gz   mask voxels in C order <-> table rows

Memory: sub-01's table is 211,339 voxels × 9,840 trials (16.6 GB as float64). The loader never
reads it whole: it opens the pandas store's arrays with h5py (``ResponseData/block{i}_values``,
stored transposed as (n_voxels, n_items), with the column labels in ``block{i}_items``) and reads
only the rows of the selected voxels, in batches of bounded size, averaging or sorting them straight
into the float32 output. Extra memory is the batch buffer (``chunk_bytes``, default 64 MB) — at
most 2× the output for any ROI of a realistic size (``python -m benchmarks things``).

Stimulus ids are the image file stems (``dog_12s``), shared with THINGS-EEG2 and THINGS images.
Splits: ``train`` (8,640 images, one presentation each) and ``test`` (100 images × 12
presentations), from ``trial_type``. Noise ceilings come from the voxel metadata (percent → fraction).

Reference: Hebart, Contier, Teichmann et al. (2023), "THINGS-data, a multimodal collection of
large-scale datasets for investigating object representations in human brain and behavior", eLife
12:e82580.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import FileFormatError, InputError, StimulusMismatchError
from ._subjects import bids_subject
from .provenance import detect_data_source
from .brain import BrainData
from .cards import Loaded, check_frame, get_card, probe
from .stimuli import FileReader, StimulusSet
from .things_images import image_id, image_ids

__all__ = [
    "FOLDER",
    "CARD",
    "NON_ROI_COLUMNS",
    "load",
    "load_brain",
    "read_response_rows",
    "response_table_info",
    "read_stimulus_metadata",
    "roi_columns",
    "check",
]

FOLDER = "things_fmri"
CARD = "things_fmri"
KEY = "ResponseData"
NON_ROI_COLUMNS = (
    "voxel_id",
    "subject_id",
    "voxel_x",
    "voxel_y",
    "voxel_z",
    "nc_singletrial",
    "nc_testset",
    "splithalf_uncorrected",
    "splithalf_corrected",
    "prf-eccentricity",
    "prf-polarangle",
    "prf-rsquared",
    "prf-size",
)


# --------------------------------------------------------------------------- paths
_sub = bids_subject


def _paths(root, sub: str) -> dict[str, Path]:
    card = get_card(CARD)
    r = card.root(root)
    n = int(sub[4:])
    return {
        "root": r,
        "table": card.file(r, "response_table", subject=n),
        "stimuli": card.file(r, "stimulus_metadata", subject=n),
        "voxels": card.file(r, "voxel_metadata", subject=n),
        "betas_vol": card.file(r, "betas_vol_dir", subject=n),
        "mask": card.file(r, "brainmask", subject=n),
    }


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise get_card(CARD).not_found(path, what)
    return path


# --------------------------------------------------------------------------- the pandas HDF store, read with h5py
class _LabelUnpickler(pickle.Unpickler):
    """Unpickles pandas' pickled column labels (a numpy object array) and nothing else.

    Only the numpy globals needed to rebuild an ndarray are allowed (Python docs, "Restricting
    Globals"); any other global in the stream raises, so no code from the file can run.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in column labels")


def _read_labels(ds, path: Path) -> np.ndarray | None:
    """Column labels of one block: plain arrays are read directly; pickled object arrays are
    decoded with :class:`_LabelUnpickler`; ``None`` when they cannot be decoded."""
    try:
        raw = ds[()]
    except (OSError, TypeError):
        return None
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iuf":
        return raw.ravel()
    if isinstance(raw, np.ndarray) and raw.dtype.kind == "S":
        return np.asarray([b.decode("utf-8") for b in raw.ravel()], dtype=object)
    try:
        buf = bytes(np.asarray(raw[0], dtype=np.uint8)) if raw.dtype == object else None
        if buf is None:
            return None
        labels = _LabelUnpickler(io.BytesIO(buf)).load()  # trusted: the store's own pickled column labels; the unpickler admits only numpy's ndarray globals
        return np.asarray(labels, dtype=object).ravel()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError, ImportError):
        return None


class _Table:
    """Where the trial columns and voxel ids of a ``ResponseData`` store live."""

    def __init__(self, path: Path):
        import h5py

        self.path = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"cannot open {path} as HDF5: {exc}") from exc
        try:
            self._parse()
        except BaseException:
            self.file.close()
            raise

    def _parse(self):
        f, path = self.file, self.path
        if KEY not in f:
            raise FileFormatError(f"{path} has no key {KEY!r} (keys: {', '.join(f.keys())})")
        g = f[KEY]
        if "table" in g:
            raise FileFormatError(f"{path}: {KEY} is stored in pandas 'table' format; the THINGS release uses the fixed format")
        if "nblocks" not in g.attrs or "axis1" not in g:
            raise FileFormatError(f"{path}: {KEY} is not a pandas fixed-format DataFrame (no nblocks/axis1)")
        self.n_rows = int(g["axis1"].shape[0])
        trial_blocks, self.voxel_id_block = [], None
        for i in range(int(g.attrs["nblocks"])):
            vals = g[f"block{i}_values"]
            transposed = bool(vals.attrs.get("transposed", 1))
            n_items = vals.shape[1] if transposed else vals.shape[0]
            labels = _read_labels(g[f"block{i}_items"], path) if f"block{i}_items" in g else None
            if labels is not None and len(labels) == 1 and str(labels[0]) == "voxel_id":
                self.voxel_id_block = (vals, transposed)
                continue
            if vals.dtype.kind != "f":
                continue
            if labels is None:
                labels = np.full(n_items, None, dtype=object)
            trial_blocks.append((vals, transposed, labels))
        if not trial_blocks:
            raise FileFormatError(f"{path}: no float block of trial columns in {KEY}")
        if len(trial_blocks) > 1 and any(any(lab is None for lab in b[2]) for b in trial_blocks):
            raise FileFormatError(f"{path}: trial columns are split over several blocks and their labels cannot be read")
        # map trial number -> (block, column)
        self.blocks = []
        labels_all = []
        for b, (vals, transposed, labels) in enumerate(trial_blocks):
            self.blocks.append((vals, transposed))
            labels_all.extend((b, j, lab) for j, lab in enumerate(labels))
        self.n_trials = len(labels_all)
        known = [lab for _, _, lab in labels_all if lab is not None]
        if known:
            try:
                nums = np.asarray([int(lab) for lab in known])
            except (TypeError, ValueError) as exc:
                raise FileFormatError(f"{path}: trial column labels are not integers (e.g. {known[:3]})") from exc
            if len(known) != self.n_trials or np.unique(nums).size != nums.size or nums.min() != 0 or nums.max() != self.n_trials - 1:
                raise FileFormatError(f"{path}: trial columns are not labelled 0..{self.n_trials - 1}")
            order = np.argsort(nums)
        else:
            order = np.arange(self.n_trials)
        self.trial_block = np.asarray([labels_all[k][0] for k in order], dtype=np.int64)
        self.trial_col = np.asarray([labels_all[k][1] for k in order], dtype=np.int64)
        for vals, transposed in self.blocks:
            n = vals.shape[0] if transposed else vals.shape[1]
            if n != self.n_rows:
                raise FileFormatError(f"{path}: a block has {n} rows but axis1 has {self.n_rows}")

    def close(self):
        self.file.close()

    def voxel_ids(self, rows: np.ndarray) -> np.ndarray | None:
        if self.voxel_id_block is None:
            return None
        vals, transposed = self.voxel_id_block
        col = vals[:, 0] if transposed else vals[0, :]
        return np.asarray(col)[rows]

    def iter_rows(self, rows: np.ndarray, chunk_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions in rows, block (b, n_trials) float64)`` for sorted unique ``rows``."""
        if rows.size == 0:
            return
        per_row = 8 * self.n_trials
        step = int(max(1, chunk_bytes // per_row))
        single = len(self.blocks) == 1 and self.blocks[0][1] and np.array_equal(self.trial_col, np.arange(self.n_trials))
        for s0 in range(0, rows.size, step):
            r = rows[s0 : s0 + step]
            pos = np.arange(s0, s0 + r.size)
            if single:
                ds = self.blocks[0][0]
                lo, hi = int(r[0]), int(r[-1]) + 1
                if hi - lo <= 2 * r.size:  # nearly contiguous: one hyperslab, then pick
                    block = ds[lo:hi]
                    block = block[r - lo] if hi - lo != r.size else block
                else:
                    block = ds[r]  # h5py point selection on the row axis (increasing indices)
                yield pos, np.asarray(block, dtype=np.float64)
            else:
                block = np.empty((r.size, self.n_trials), dtype=np.float64)
                for b, (ds, transposed) in enumerate(self.blocks):
                    cols = np.nonzero(self.trial_block == b)[0]
                    part = ds[r] if transposed else ds[:, r].T
                    block[:, cols] = np.asarray(part)[:, self.trial_col[cols]]
                yield pos, block


def response_table_info(path) -> dict:
    """Shape facts of a ``ResponseData.h5`` store without reading its values: ``n_voxels``, ``n_trials``, ``dtype``."""
    t = _Table(_need(Path(path), "response table"))
    try:
        return {"n_voxels": t.n_rows, "n_trials": t.n_trials, "dtype": str(t.blocks[0][0].dtype)}
    finally:
        t.close()


def read_response_rows(path, rows=None, trials=None, chunk_bytes: int = 64_000_000) -> np.ndarray:
    """Selected voxels (rows) × trials of a THINGS-fMRI ``ResponseData.h5``, as float32.

    Parameters
    ----------
    path : path-like
        ``sub-XX_ResponseData.h5``.
    rows : array-like of int or bool mask or None
        Voxel rows to read (default all: mind the memory).
    trials : array-like of int or None
        Trial columns to keep (default all).
    chunk_bytes : int
        Largest float64 read buffer (it is also kept below an eighth of the output's size).

    Returns
    -------
    ndarray of shape (n_rows, n_trials) float32, rows in the order given.
    """
    t = _Table(_need(Path(path), "response table"))
    try:
        rows_arr = _as_rows(rows, t.n_rows)
        trials_arr = np.arange(t.n_trials) if trials is None else np.asarray(trials, dtype=np.int64)
        if trials_arr.size and (trials_arr.min() < 0 or trials_arr.max() >= t.n_trials):
            raise InputError(f"trial indices out of range for {t.n_trials} trials")
        uniq, inverse = np.unique(rows_arr, return_inverse=True)
        out = np.empty((uniq.size, trials_arr.size), dtype=np.float32)
        for pos, block in t.iter_rows(uniq, _buffer_bytes(chunk_bytes, out.nbytes, t.n_trials)):
            out[pos] = block[:, trials_arr]
        return out if np.array_equal(uniq, rows_arr) else out[inverse]
    finally:
        t.close()


def _buffer_bytes(chunk_bytes: int, out_bytes: int, n_trials: int) -> int:
    """Read-buffer size: at most ``chunk_bytes`` and an eighth of the output, at least one row.

    A batch holds at most about three buffers at once (a near-contiguous slice read of up to
    twice the rows, the picked rows, and the averaged or reordered result), so the temporaries
    stay under half the output's size."""
    return int(max(8 * n_trials, min(chunk_bytes, out_bytes // 8)))


def _as_rows(rows, n: int) -> np.ndarray:
    if rows is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InputError(f"row mask has shape {arr.shape}, expected ({n},)")
        return np.nonzero(arr)[0]
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InputError(f"voxel rows out of range for {n} voxels")
    return arr


# --------------------------------------------------------------------------- metadata
def read_stimulus_metadata(path) -> pd.DataFrame:
    """``sub-XX_StimulusMetadata.csv`` with a ``stimulus_id`` column (the image file stem) added."""
    path = _need(Path(path), "stimulus metadata")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise FileFormatError(f"cannot parse {path}: {exc}") from exc
    missing = [c for c in ("trial_type", "stimulus") if c not in df.columns]
    if missing:
        raise FileFormatError(f"{path} lacks column(s) {missing} (columns: {', '.join(map(str, df.columns))})")
    df["trial_type"] = df["trial_type"].astype(str).str.strip().replace({"exp": "train"})
    bad = sorted(set(df["trial_type"]) - {"train", "test"})
    if bad:
        raise FileFormatError(f"{path}: trial_type must be 'train' or 'test', found {bad[:5]}")
    df["stimulus_id"] = image_ids(df["stimulus"].astype(str))
    both = set(df.loc[df.trial_type == "train", "stimulus_id"]) & set(df.loc[df.trial_type == "test", "stimulus_id"])
    if both:
        raise FileFormatError(f"{path}: {len(both)} image(s) are both train and test trials, e.g. {sorted(both)[:3]}")
    return df


def _norm_roi(name: str) -> str:
    """Drop line breaks (and the spaces around them) from an ROI column name: ``'glasser-p9-\\n46v'`` → ``'glasser-p9-46v'``."""
    return re.sub(r"\s*[\r\n]+\s*", "", str(name)).strip()


def roi_columns(voxel_metadata_path) -> dict[str, str]:
    """ROI columns of a ``VoxelMetadata.csv``: ``{clean name: column name in the file}``.

    Clean names drop the line breaks some Glasser names contain (``'glasser-p9-\\n46v'`` →
    ``'glasser-p9-46v'``); other characters are kept (``'LO1 (prf)'``).
    """
    path = _need(Path(voxel_metadata_path), "voxel metadata")
    cols = pd.read_csv(path, nrows=0).columns
    return {_norm_roi(c): c for c in cols if c not in NON_ROI_COLUMNS and not str(c).startswith("Unnamed")}


def _resolve_rois(roi, available: dict[str, str], path: Path) -> list[str]:
    names = [roi] if isinstance(roi, str) else list(roi)
    loose = {re.sub(r"\s+", "", k).lower(): v for k, v in available.items()}
    out = []
    for n in names:
        key = _norm_roi(n)
        if n in available.values():
            out.append(n)
        elif key in available:
            out.append(available[key])
        elif re.sub(r"\s+", "", key).lower() in loose:
            out.append(loose[re.sub(r"\s+", "", key).lower()])
        else:
            raise InputError(f"unknown ROI {n!r} in {path.name}; available: {', '.join(available)}")
    return out


def _voxel_selection(path: Path, roi) -> tuple[np.ndarray, int, dict[str, str]]:
    """Rows of the ROI union (all rows when ``roi`` is None), the number of rows, the ROI columns."""
    available = roi_columns(path)
    if roi is None:
        n = int(sum(len(c) for c in pd.read_csv(path, usecols=[0], chunksize=200_000)))
        return np.arange(n, dtype=np.int64), n, available
    cols = _resolve_rois(roi, available, path)
    m = pd.read_csv(path, usecols=cols)
    mask = (m.fillna(0).to_numpy() > 0).any(axis=1)
    rows = np.nonzero(mask)[0].astype(np.int64)
    if rows.size == 0:
        raise InputError(f"ROI {roi!r} has no voxels in {path}")
    return rows, int(len(m)), available


def _voxel_table(path: Path, rows: np.ndarray, available: dict[str, str]) -> pd.DataFrame:
    """The metadata rows ``rows`` (sorted), read in chunks; ROI columns become boolean ``roi:<clean name>``."""
    keep = []
    start = 0
    for chunk in pd.read_csv(path, chunksize=100_000):
        stop = start + len(chunk)
        sel = rows[(rows >= start) & (rows < stop)] - start
        if sel.size:
            keep.append(chunk.iloc[sel])
        start = stop
    df = pd.concat(keep, ignore_index=True) if keep else pd.DataFrame(columns=pd.read_csv(path, nrows=0).columns)
    units = pd.DataFrame({c: df[c].to_numpy() for c in df.columns if c in NON_ROI_COLUMNS})
    rois = {f"roi:{clean}": (df[col].fillna(0).to_numpy() > 0) for clean, col in available.items()}
    return pd.concat([units, pd.DataFrame(rois)], axis=1)


# --------------------------------------------------------------------------- assembly
def _trial_plan(ids: np.ndarray, types: np.ndarray, split: str | None):
    """Which trials to use and how they map to images (ids in order of first appearance)."""
    use = np.ones(ids.size, dtype=bool) if split is None else types == split
    trials = np.nonzero(use)[0]
    if trials.size == 0:
        raise InputError(f"no {split} trials")
    sub_ids = ids[trials]
    _, first, inverse = np.unique(sub_ids, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    img = rank[inverse]  # image index of each used trial, images ordered by first appearance
    uniq_ids = sub_ids[np.sort(first)]
    counts = np.bincount(img, minlength=uniq_ids.size)
    order = np.argsort(img, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rep = np.empty(trials.size, dtype=np.int64)
    rep[order] = np.arange(trials.size) - np.repeat(starts, counts)
    img_types = np.empty(uniq_ids.size, dtype=object)
    img_types[img] = types[trials]
    return trials, img, rep, uniq_ids, counts, order, starts, img_types


def _assemble(batches, n_units: int, plan, average_reps: bool) -> np.ndarray:
    trials, img, rep, uniq_ids, counts, order, starts, _ = plan
    n_img = uniq_ids.size
    if average_reps:
        from scipy import sparse

        out = np.empty((n_img, n_units), dtype=np.float32)
        n_cols = None
        for pos, block in batches:
            if n_cols is None:  # averaging matrix (all trials × images), 1/count where a trial shows the image
                n_cols = block.shape[1]
                A = sparse.csc_matrix((1.0 / counts[img], (trials, img)), shape=(n_cols, n_img))
            out[:, pos] = (block @ A).T  # (b, n_img): no reordered copy of the block
    else:
        out = np.full((n_img, int(counts.max()), n_units), np.nan, dtype=np.float32)
        for pos, block in batches:
            out[img[:, None], rep[:, None], pos[None, :]] = block[:, trials].T
    return out


def _noise_ceiling(units: pd.DataFrame, which: str, average_reps: bool, split: str | None, path: Path):
    if which is None:
        return None, None
    if which == "auto":
        which = "singletrial" if (not average_reps or split == "train") else "testset"
    col = f"nc_{which}"
    if which not in ("singletrial", "testset"):
        raise InputError(f"noise_ceiling must be 'auto', 'singletrial', 'testset' or None, got {which!r}")
    if col not in units.columns:
        warnings.warn(f"{path.name} has no {col} column; no noise ceiling", RuntimeWarning, stacklevel=3)
        return None, None
    nc = units[col].to_numpy(dtype=np.float64) / 100.0
    return np.clip(nc, 0.0, 1.0).astype(np.float32), col


def load(root=None, subject=1, roi=None, average_reps: bool = True, source: str = "table", *, images=None, **options):
    """Load one THINGS-fMRI subject: ``Loaded(stimuli, brain)``, unpacking as ``stimuli, brain = load(...)``.

    ``brain`` is :func:`load_brain`'s :class:`BrainData` (options passed on: ``split``,
    ``noise_ceiling``, ``chunk_bytes``). ``stimuli`` has the same ids in the same order, metadata
    ``stimulus`` (file name), ``concept``, ``trial_type`` and ``n_reps``; its reader serves the
    THINGS images from ``images`` (the THINGS folder, default the ``things_images`` card's root)
    when they are there, else it is ``None`` (THINGS-fMRI does not ship the images).
    """
    from .things_images import _root as things_root

    brain = load_brain(root, subject, roi, average_reps, source, **options)
    stim_path = _paths(root, _sub(subject))["stimuli"]
    stim = read_stimulus_metadata(stim_path) if stim_path.exists() else None
    meta = pd.DataFrame({"n_reps": brain.n_reps})
    if stim is not None:
        first = stim.drop_duplicates("stimulus_id").set_index("stimulus_id").loc[brain.stimulus_ids]
        meta = pd.DataFrame({c: first[c].to_numpy() for c in ("stimulus", "concept", "trial_type") if c in first.columns}).assign(n_reps=brain.n_reps)
    reader = None
    tr = things_root(images)
    if "concept" in meta.columns:
        paths = [tr / "Images" / c / f for c, f in zip(meta["concept"], meta["stimulus"])]
        if paths and all(p.exists() for p in paths):
            reader = FileReader(paths)
    return Loaded(StimulusSet(brain.stimulus_ids, meta, reader, name=f"things_fmri-{brain.subject}"), brain)


def load_brain(
    root=None,
    subject=1,
    roi=None,
    average_reps: bool = True,
    source: str = "table",
    *,
    split: str | None = None,
    noise_ceiling: str | None = "auto",
    chunk_bytes: int = 64_000_000,
) -> BrainData:
    """One THINGS-fMRI subject's single-trial betas as :class:`BrainData` ``(stimulus[, rep], voxel)`` (what :func:`load` wraps).

    Parameters
    ----------
    root : path-like or None
        The ``THINGS-fMRI`` folder (holding ``derivatives/``). Default ``$BRAINLID_DATA/things_fmri``,
        else ``~/brainlid_data/things_fmri``.
    subject : int or str
        1..3 or ``"sub-01"``.
    roi : str or list of str or None
        ROI column(s) of ``VoxelMetadata.csv`` (union); names may be given without the embedded
        newlines (``"glasser-p9-46v"``), case-insensitively. ``None`` loads every voxel (sub-01:
        211,339 voxels × 8,740 images = 7.4 GB float32). An unknown name lists the available ROIs.
    average_reps : bool
        Average repeated presentations (test images: 12) into ``(stimulus, voxel)``, or keep them
        as ``(stimulus, rep, voxel)`` NaN-padded (train images have 1).
    source : {"table", "betas_vol"}
        The ``betas_csv`` response table (default) or the per-run ``betas_vol`` NIfTI volumes
        (voxels = brainmask voxels in C order, matched to the voxel metadata; catch trials dropped).
    split : {"train", "test"} or None
        Load only these trials (default both; ``splits`` then has both).
    noise_ceiling : {"auto", "singletrial", "testset"} or None
        Which metadata ceiling to attach (percent ÷ 100): ``"auto"`` uses ``nc_testset`` (12
        presentations averaged, the split scores are computed on) for averaged data and
        ``nc_singletrial`` for the train split alone or for kept repetitions.
    chunk_bytes : int
        Largest read buffer for the table (also kept below an eighth of the output's size, so
        the extra memory stays under 2× the output).

    Returns
    -------
    BrainData
        ``dataset="things_fmri"``, ``space="T1w"``; ``units`` has ``voxel_id``, ``voxel_x/y/z``,
        pRF fields, the raw ``nc_*`` percent columns and boolean ``roi:<name>`` columns.
    """
    sub = _sub(subject)
    if split not in (None, "train", "test"):
        raise InputError(f"split must be 'train', 'test' or None, got {split!r}")
    p = _paths(root, sub)
    if source == "table":
        return _load_table(p, sub, roi, average_reps, split, noise_ceiling, chunk_bytes)
    if source == "betas_vol":
        return _load_betas_vol(p, sub, roi, average_reps, split, noise_ceiling)
    raise InputError(f"source must be 'table' or 'betas_vol', got {source!r}")


def _finish(resp, plan, units, nc, nc_col, sub, meta, average_reps) -> BrainData:
    _, _, _, uniq_ids, counts, _, _, img_types = plan
    splits = {s: uniq_ids[img_types == s] for s in ("train", "test") if np.any(img_types == s)}
    meta = dict(meta, noise_ceiling_column=nc_col)
    return BrainData(
        responses=resp,
        stimulus_ids=uniq_ids,
        units=units,
        noise_ceiling=nc,
        n_reps=counts,
        splits=splits,
        subject=sub,
        dataset="things_fmri",
        space="T1w",
        has_reps=not average_reps,
        meta=meta,
    )


def _load_table(p, sub, roi, average_reps, split, which_nc, chunk_bytes) -> BrainData:
    table_path = _need(p["table"], "response table")
    stim = read_stimulus_metadata(p["stimuli"])
    vox_path = _need(p["voxels"], "voxel metadata")
    t = _Table(table_path)
    try:
        if len(stim) != t.n_trials:
            raise StimulusMismatchError(
                f"{p['stimuli'].name} has {len(stim)} rows but {table_path.name} has {t.n_trials} trial columns "
                "(row i of the stimulus metadata describes trial column i)"
            )
        rows, n_meta, available = _voxel_selection(vox_path, roi)
        if n_meta != t.n_rows:
            raise StimulusMismatchError(f"{vox_path.name} has {n_meta} voxel rows but {table_path.name} has {t.n_rows}")
        units = _voxel_table(vox_path, rows, available)
        vid = t.voxel_ids(rows)
        if vid is not None and "voxel_id" in units.columns and not np.array_equal(vid, units["voxel_id"].to_numpy()):
            raise FileFormatError(f"voxel_id of {table_path.name} and {vox_path.name} disagree for the selected rows")
        plan = _trial_plan(stim["stimulus_id"].to_numpy(), stim["trial_type"].to_numpy(), split)
        n_out = plan[3].size * (1 if average_reps else int(plan[4].max()))
        resp = _assemble(t.iter_rows(rows, _buffer_bytes(chunk_bytes, 4 * n_out * rows.size, t.n_trials)), rows.size, plan, average_reps)
    finally:
        t.close()
    nc, nc_col = _noise_ceiling(units, which_nc, average_reps, split, vox_path)
    meta = {"source": "table", "file": table_path.name, "roi": roi, "split": split,
            "data_source": detect_data_source(p["root"])}
    return _finish(resp, plan, units, nc, nc_col, sub, meta, average_reps)


def _read_conditions(path: Path) -> np.ndarray:
    path = _need(path, "betas_vol conditions")
    df = pd.read_csv(path, sep="\t")
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed")])
    if "image_filename" not in df.columns:
        raise FileFormatError(f"{path} has no image_filename column (columns: {list(df.columns)})")
    return df["image_filename"].astype(str).to_numpy()


def _load_betas_vol(p, sub, roi, average_reps, split, which_nc) -> BrainData:
    import nibabel as nib

    mask_img = nib.load(_need(p["mask"], "brain mask"))
    mask = np.asarray(mask_img.dataobj) > 0
    coords = np.nonzero(mask)  # C order = the table's row order (nilearn apply_mask)
    n_mask = coords[0].size
    vox_path = p["voxels"]
    if vox_path.exists():
        rows, n_meta, available = _voxel_selection(vox_path, roi)
        if n_meta != n_mask:
            raise StimulusMismatchError(f"{vox_path.name} has {n_meta} voxel rows but {p['mask'].name} has {n_mask} brain voxels")
        units = _voxel_table(vox_path, rows, available)
    elif roi is not None:
        raise get_card(CARD).not_found(vox_path, "voxel metadata (needed to select an ROI)")
    else:
        rows = np.arange(n_mask)
        units = pd.DataFrame({"voxel_x": coords[0], "voxel_y": coords[1], "voxel_z": coords[2]})
    sel = tuple(c[rows] for c in coords)
    run_files = sorted(_need(p["betas_vol"], "betas_vol folder").glob(f"ses-things*/{sub}_ses-things*_run-*_betas.nii.gz"))
    if not run_files:
        raise get_card(CARD).not_found(p["betas_vol"] / f"ses-thingsNN/{sub}_ses-thingsNN_run-RR_betas.nii.gz", "betas_vol run")
    columns, names, sessions, runs = [], [], [], []
    for f in run_files:
        cond_path = f.with_name(f.name.replace("_betas.nii.gz", "_conditions.tsv"))
        conds = _read_conditions(cond_path)
        img = nib.load(f)
        if img.ndim != 4 or img.shape[:3] != mask.shape or img.shape[3] != conds.size:
            raise FileFormatError(
                f"{f.name} has shape {img.shape}; expected the brain mask grid {mask.shape} and {conds.size} trials ({cond_path.name})"
            )
        vol = np.asanyarray(img.dataobj)
        keep = np.asarray([not image_id(c).lower().startswith("catch") for c in conds])
        columns.append(np.asarray(vol[sel][:, keep], dtype=np.float64))
        del vol
        names.extend(conds[keep])
        m = re.search(r"ses-things(\d+)_run-(\d+)", f.name)
        sessions.extend([int(m.group(1))] * int(keep.sum()))
        runs.extend([int(m.group(2))] * int(keep.sum()))
    block = np.concatenate(columns, axis=1)
    ids = image_ids(names)
    if p["stimuli"].exists():
        stim = read_stimulus_metadata(p["stimuli"])
        types_of = dict(zip(stim["stimulus_id"], stim["trial_type"]))
        unknown = sorted(set(ids) - set(types_of))
        if unknown:
            raise StimulusMismatchError(f"{len(unknown)} betas_vol image(s) are not in {p['stimuli'].name}, e.g. {unknown[:3]}")
        types = np.asarray([types_of[i] for i in ids])
    else:  # test images are the repeated ones
        u, c = np.unique(ids, return_counts=True)
        repeated = set(u[c > 1])
        types = np.asarray(["test" if i in repeated else "train" for i in ids])
    plan = _trial_plan(ids, types, split)
    resp = _assemble([(np.arange(rows.size), block)], rows.size, plan, average_reps)
    nc, nc_col = _noise_ceiling(units, which_nc, average_reps, split, vox_path) if vox_path.exists() else (None, None)
    meta = {"source": "betas_vol", "n_runs": len(run_files), "roi": roi, "split": split,
            "data_source": detect_data_source(p["root"])}
    return _finish(resp, plan, units, nc, nc_col, sub, meta, average_reps)


# --------------------------------------------------------------------------- check
def check(root=None, subject=None) -> pd.DataFrame:
    """What of THINGS-fMRI is present: one row per (subject, item), status present / missing / unreadable."""
    card = get_card(CARD)
    r = card.root(root, must_exist=False)
    subs = [int(_sub(s)[4:]) for s in np.atleast_1d(subject)] if subject is not None else list(card.subjects.get("ids", [1]))

    def table_detail(p):
        info = response_table_info(p)
        return f"{info['n_voxels']} voxels x {info['n_trials']} trials ({info['dtype']})"

    def csv_detail(p):
        return f"{len(pd.read_csv(p, nrows=0).columns)} columns"

    rows = []
    for n in subs:
        for key, reader in (("response_table", table_detail), ("stimulus_metadata", csv_detail), ("voxel_metadata", csv_detail), ("brainmask", None)):
            status, detail = probe(card.file(r, key, subject=n), reader)
            rows.append({"subject": n, "space": "T1w", "item": card.relpath(key, subject=n), "status": status, "detail": detail})
        d = card.file(r, "betas_vol_dir", subject=n)
        n_runs = len(list(d.glob("ses-things*/*_betas.nii.gz"))) if d.is_dir() else 0
        rows.append({"subject": n, "space": "T1w", "item": card.relpath("betas_vol_dir", subject=n) + " (optional)",
                     "status": "present" if n_runs else "missing", "detail": f"{n_runs} runs" if n_runs else str(d)})
    return check_frame(rows)
