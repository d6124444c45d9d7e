"""THINGS-fMRI metadata: the stimulus table (trial → image, split) and the voxel table (ROIs, ceilings)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import FileFormatError, InputError
from ..things_images import image_ids
from .layout import _need

__all__ = ["NON_ROI_COLUMNS", "read_stimulus_metadata", "roi_columns"]


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
