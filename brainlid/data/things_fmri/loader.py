"""THINGS-fMRI loader: :func:`load` / :func:`load_brain` from the response table (default) or the
``betas_vol`` NIfTI runs, and :func:`check` of a copy."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import sparse

from ...config import data_root
from ...errors import FileFormatError, InputError, StimulusMismatchError
from ..brain import BrainData
from ..cards import Loaded, check_frame, get_card, probe
from ..ids import positions_of
from ..provenance import detect_data_source
from ..stimuli import FileReader, StimulusSet
from ..things_images import FOLDER as THINGS_FOLDER, image_id, image_ids
from .layout import CARD, _need, _paths, _sub
from .metadata import _voxel_selection, _voxel_table, read_stimulus_metadata
from .store import _buffer_bytes, _Table, response_table_info

__all__ = ["load", "load_brain", "check"]


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
    brain = load_brain(root, subject, roi, average_reps, source, **options)
    stim_path = _paths(root, _sub(subject))["stimuli"]
    stim = read_stimulus_metadata(stim_path) if stim_path.exists() else None
    meta = pd.DataFrame({"n_reps": brain.n_reps})
    if stim is not None:
        first = stim.drop_duplicates("stimulus_id")
        first = first.iloc[positions_of(first["stimulus_id"].to_numpy(), brain.stimulus_ids, where=f"{stim_path.name}",
                                        names=("stimulus metadata", brain.subject), error=StimulusMismatchError)]
        meta = pd.DataFrame({c: first[c].to_numpy() for c in ("stimulus", "concept", "trial_type") if c in first.columns}).assign(n_reps=brain.n_reps)
    reader = None
    tr = data_root(THINGS_FOLDER, images)
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
