"""What a local NSD copy holds: :func:`check` (one row per file, opened cheaply) and :func:`summarize`."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd

from ...errors import FileFormatError
from .._mat import read_ctab, read_expdesign
from ..cards import check_frame, get_card, probe
from .design import BETA_VERSIONS, CARD, SPACES, SUBJECTS, VOLUME_SPACES, _check_subject, _ranges, find_sessions
from .readers import _check_storage, _open_h5
from .rois import ROI_FILES, _ctab_path, _label_path

__all__ = ["check", "summarize"]


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
    with h5py.File(p, "r") as f:
        return f"imgBrick {f['imgBrick'].shape} {f['imgBrick'].dtype}"


def _probe_session(p: Path) -> str:
    if p.suffix in (".hdf5", ".mat"):
        with _open_h5(p) as f:
            _check_storage(f["betas"], p)
            return f"betas {f['betas'].shape} {f['betas'].dtype}"
    img = nib.load(str(p))
    if p.suffix == ".mgh":
        expected = 284 + int(np.prod(img.shape)) * img.get_data_dtype().itemsize
        if p.stat().st_size < expected:
            raise FileFormatError(f"truncated: {p.stat().st_size} bytes < {expected}")
    return f"{tuple(int(s) for s in img.shape)} {img.get_data_dtype()}"


def _probe_nifti(p: Path) -> str:
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
