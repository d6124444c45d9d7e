"""NSD ROIs: label files and ctabs of a copy → ROI names → the units (voxels or vertices) to load.

Names are resolved through the ctab files of the copy (the published codes of
:data:`KNOWN_LABELS` when a ctab is missing): label names (``V1v``, ``hV4``, ``EBA``, ``FFA-1``, ...),
unions ``V1``/``V2``/``V3``, whole files (``nsdgeneral``, ``floc-faces``, ...) and qualified
``"<file>:<label>"`` names (e.g. ``"Kastner2015:V1v"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ...errors import FileFormatError, InputError
from .._mat import read_ctab, read_mgh_vector
from ..cards import get_card
from .design import CARD, VOLUME_SPACES, _check_space, _check_subject
from .readers import _grid_shape, _surface_size

__all__ = ["ROI_FILES", "ROI_UNIONS", "KNOWN_LABELS", "available_rois"]


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


def _volume_hemisphere(root, subject, space, files, ijk, shape) -> np.ndarray:
    """'lh' / 'rh' per voxel from the ``lh.<roi>.nii.gz`` / ``rh.<roi>.nii.gz`` files (-1 = not that hemisphere's cortex)."""
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
