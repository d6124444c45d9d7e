"""Algonauts 2023 challenge data (Gifford et al. 2023), derived from NSD.

Layout and content rules from the shared spec DATASETS.md §2; paths from the dataset card
``datasets/algonauts2023.toml``:

* ``subjAA/training_split/training_fmri/{lh,rh}_training_fmri.npy`` — float32 ``(n_train, n_vertices)``:
  NSD b3 fsaverage betas, z-scored per vertex within session, averaged over repetitions.
* ``training_images/train-IIII_nsd-NNNNN.png`` — row ``IIII-1`` (1-based, 4 digits) of the fMRI,
  ``NNNNN`` the **0-based** NSD id (rows sorted by id). Test images ``test_split/test_images/test-...``
  have no public responses.
* ``roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy`` — fsaverage-length masks; the challenge
  vertices are ``np.flatnonzero(mask != 0)`` (a value 2 marks overlapping ROIs).
* ``roi_masks/{lh,rh}.<cls>_challenge_space.npy`` — label code per challenge vertex;
  ``mapping_<cls>.npy`` — ``{code: name}`` dicts saved with ``np.save`` (a pickle: read with
  ``allow_pickle=True`` **only from inside the dataset root**, after checking the resolved path).

:func:`load` returns the training stimuli and responses (units: challenge vertex index,
fsaverage vertex, hemisphere, ``roi:<NAME>`` columns) and, in ``extra["test_stimuli"]``, the test images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import FileFormatError, InputError, StimulusMismatchError
from ..io import load_npy
from .brain import BrainData
from .cards import Loaded, check_frame, get_card, probe
from .provenance import detect_data_source
from .stimuli import StimulusSet

__all__ = ["load", "check", "summarize", "ROI_CLASSES", "read_mapping", "read_roi_masks", "image_list"]

ROI_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
CARD = "algonauts2023"
SUBJECTS = tuple(range(1, 9))
_NAME_RE = re.compile(r"^(train|test)-(\d{4})_nsd-(\d{5})\.png$")


def _check_subject(subject) -> int:
    if not isinstance(subject, (int, np.integer)) or int(subject) not in SUBJECTS:
        raise InputError(f"Algonauts 2023 subject {subject!r} out of range: subjects are 1-8")
    return int(subject)


def image_list(folder: Path, kind: str) -> tuple[list[Path], np.ndarray]:
    """Sorted image paths and their 0-based NSD ids, checking the 1-based row numbers are 1..n in order."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise FileFormatError(f"no PNG images in {folder}")
    ids, rows = [], []
    for p in paths:
        m = _NAME_RE.match(p.name)
        if not m or m.group(1) != kind:
            raise FileFormatError(f"unexpected image name {p.name} in {folder} (expected {kind}-IIII_nsd-NNNNN.png)")
        rows.append(int(m.group(2)))
        ids.append(int(m.group(3)))
    if rows != list(range(1, len(paths) + 1)):
        raise FileFormatError(f"{folder}: image row numbers are not 1..{len(paths)} in order (missing or extra images?)")
    return paths, np.asarray(ids, dtype=np.int64)


def read_mapping(path: Path, root: Path) -> dict[int, str]:
    """``mapping_<cls>.npy``: a dict saved with ``np.save``, read only from inside ``root``."""
    path, root = Path(path), Path(root)
    if not path.resolve().is_relative_to(root.resolve()):
        raise FileFormatError(f"refusing to unpickle {path}: it resolves outside the dataset root {root}")
    try:
        obj = np.load(path, allow_pickle=True).item()  # trusted: the documented mapping_*.npy pickle, only from inside the dataset root
    except (OSError, ValueError, AttributeError, EOFError) as exc:
        raise FileFormatError(f"cannot read ROI name mapping {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise FileFormatError(f"{path} does not hold a dict (got {type(obj).__name__})")
    return {int(k): str(v) for k, v in obj.items()}


def _npy(path: Path, mmap: bool = False) -> np.ndarray:
    return load_npy(path, mmap_mode="r" if mmap else None)  # one-line FileFormatError saying what the file is


def _roi_tables(card, root, subject, hemis) -> tuple[dict[str, tuple[str, int | None]], dict]:
    """ROI name → (class, code or None for the whole class); per-hemisphere label arrays per class."""
    table: dict[str, tuple[str, int | None]] = {}
    labels: dict[str, dict[str, np.ndarray]] = {h: {} for h in hemis}
    for cls in ROI_CLASSES:
        mp = card.file(root, "mapping", subject=subject, roi=cls)
        files = {h: card.file(root, "roi_challenge", subject=subject, roi=cls, hemi=h) for h in hemis}
        if not mp.exists() or not all(p.exists() for p in files.values()):
            continue
        mapping = read_mapping(mp, root)
        for h, p in files.items():
            labels[h][cls] = np.rint(_npy(p)).astype(np.int64)
        table.setdefault(cls, (cls, None))
        for code, name in mapping.items():
            if code > 0:
                table[f"{cls}:{name}"] = (cls, code)
                table.setdefault(name, (cls, code))
    return table, labels


def load(root=None, subject: int = 1, hemisphere: str = "both", roi: str | Sequence[str] | None = None) -> Loaded:
    """Load one subject's Algonauts 2023 training data.

    Parameters
    ----------
    root : path-like or None
        The unpacked challenge folder holding ``subj01/`` …; default
        ``$BRAINLID_DATA/algonauts_2023_challenge_data``.
    subject : int
        1-8.
    hemisphere : {"both", "lh", "rh"}
    roi : str, list of str or None
        ROI names from the ``mapping_*.npy`` files (``V1v``, ``EBA``, ``FFA-1``, ``ventral`` …), whole
        classes (``floc-faces``) or ``"<class>:<name>"``; ``None`` keeps every challenge vertex and adds a
        ``roi:<name>`` column for every label.

    Returns
    -------
    Loaded
        ``stimuli`` (train images; int ids = 0-based NSD ids, ascending; lazy PNG reader; metadata
        ``file``, ``row``), ``brain`` (BrainData ``(stimulus, vertex)`` float32, ``units`` with ``vertex``
        (challenge-space index), ``fsaverage_vertex``, ``hemisphere``, ROI columns; ``n_reps`` unknown
        (the release averages up to 3 repetitions), no noise ceiling unless the copy has
        ``test_split/noise_ceiling``), and ``extra["test_stimuli"]`` (test images, no responses).
    """
    card = get_card(CARD)
    subject = _check_subject(subject)
    if hemisphere not in ("both", "lh", "rh"):
        raise InputError(f"hemisphere must be 'both', 'lh' or 'rh', got {hemisphere!r}")
    hemis = ("lh", "rh") if hemisphere == "both" else (hemisphere,)
    root = card.root(root)
    kw = {"subject": subject}
    subj_dir = root / f"subj{subject:02d}"
    if not subj_dir.is_dir():
        present = sorted(p.name for p in root.glob("subj0[1-8]") if p.is_dir())
        raise card.not_found(subj_dir, f"subject {subject} folder", extra=f"Subjects present: {', '.join(present) or 'none'}.", **kw)

    img_dir = card.require(card.file(root, "train_images", subject=subject), "training image folder", **kw)
    paths, ids = image_list(img_dir, "train")
    if np.any(np.diff(ids) <= 0):
        raise FileFormatError(f"{img_dir}: NSD ids in the file names are not strictly ascending (rows must be sorted by id)")

    table, labels = _roi_tables(card, root, subject, hemis)
    names = None
    if roi is not None:
        names = [roi] if isinstance(roi, str) else list(roi)
        for n in names:
            if n not in table:
                valid = sorted((k for k in table if ":" not in k), key=str.lower)
                raise InputError(f"unknown ROI {n!r} for Algonauts 2023 subject {subject}; valid: {', '.join(valid) or 'none (no roi_masks found)'}")

    blocks, frames = [], []
    for h in hemis:
        fmri_p = card.require(card.file(root, "train_fmri", subject=subject, hemi=h), f"{h} training fMRI", **kw)
        fmri = _npy(fmri_p, mmap=True)
        if fmri.ndim != 2:
            raise FileFormatError(f"{fmri_p} has shape {fmri.shape}, expected (n_images, n_vertices)")
        if fmri.shape[0] != ids.size:
            raise StimulusMismatchError(f"{fmri_p} has {fmri.shape[0]} rows but {img_dir} has {ids.size} images")
        mask_p = card.require(card.file(root, "all_vertices", subject=subject, hemi=h), f"{h} challenge-space mask", **kw)
        fsavg_vertex = np.flatnonzero(_npy(mask_p) != 0)
        if fsavg_vertex.size != fmri.shape[1]:
            raise FileFormatError(f"{mask_p} selects {fsavg_vertex.size} vertices but {fmri_p} has {fmri.shape[1]} columns")
        keep = np.ones(fmri.shape[1], dtype=bool)
        if names is not None:
            keep[:] = False
            for n in names:
                cls, code = table[n]
                keep |= _member(labels[h][cls], code)
        df = pd.DataFrame({"vertex": np.flatnonzero(keep), "fsaverage_vertex": fsavg_vertex[keep], "hemisphere": h})
        for n in names if names is not None else [k for k in table if ":" not in k]:
            cls, code = table[n]
            lab = labels[h][cls]
            if lab.size != fmri.shape[1]:
                raise FileFormatError(f"{h}.{cls}_challenge_space.npy has {lab.size} entries; the fMRI has {fmri.shape[1]} vertices")
            df[f"roi:{n}"] = _member(lab, code)[keep]
        frames.append(df)
        blocks.append(np.asarray(fmri[:, keep], dtype=np.float32))
    units = pd.concat(frames, ignore_index=True)
    responses = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    if not np.all(np.isfinite(responses)):
        raise FileFormatError(f"Algonauts training fMRI of subject {subject} contains NaN/inf")
    meta = {"loader": "brainlid.data.algonauts", "hemisphere": hemisphere, "roi": names,
            "preprocessing": "NSD b3 fsaverage betas, z-scored per session, averaged over repetitions",
            "data_source": detect_data_source(root)}
    brain = BrainData(responses, ids, units=units, splits={"train": ids}, subject=f"subj{subject:02d}",
                      dataset="algonauts2023", space="fsaverage-challenge", meta=meta)
    metadata = pd.DataFrame({"file": [p.name for p in paths], "row": np.arange(ids.size)})
    stimuli = StimulusSet.from_files(paths, ids=ids, metadata=metadata, name=f"algonauts2023-subj{subject:02d}-train")
    extra = {}
    test_dir = card.file(root, "test_images", subject=subject)
    if test_dir.is_dir():
        tpaths, tids = image_list(test_dir, "test")
        extra["test_stimuli"] = StimulusSet.from_files(tpaths, ids=tids, metadata=pd.DataFrame({"file": [p.name for p in tpaths]}),
                                                       name=f"algonauts2023-subj{subject:02d}-test")
    return Loaded(stimuli, brain, extra)


def read_roi_masks(root=None, subject: int = 1, space: str = "fsaverage") -> dict:
    """Every ROI mask of a subject: ``{(hemi, cls): int labels}`` plus ``{cls: {code: name}}`` mappings.

    ``space="fsaverage"`` gives fsaverage-length arrays (zero outside the challenge space);
    ``space="challenge"`` one label per challenge vertex (the loader's ``vertex`` order). Classes whose
    files are missing are left out.
    """
    card = get_card(CARD)
    subject = _check_subject(subject)
    if space not in ("fsaverage", "challenge"):
        raise InputError(f"space must be 'fsaverage' or 'challenge', got {space!r}")
    root = card.root(root)
    key = "roi_fsavg" if space == "fsaverage" else "roi_challenge"
    masks, mappings = {}, {}
    for cls in ROI_CLASSES:
        mp = card.file(root, "mapping", subject=subject, roi=cls)
        files = {h: card.file(root, key, subject=subject, roi=cls, hemi=h) for h in ("lh", "rh")}
        if not mp.exists() or not all(p.exists() for p in files.values()):
            continue
        mappings[cls] = read_mapping(mp, root)
        for h, p in files.items():
            masks[(h, cls)] = np.rint(_npy(p)).astype(np.int64)
    return {"masks": masks, "mappings": mappings}


def _member(lab: np.ndarray, code: int | None) -> np.ndarray:
    return lab > 0 if code is None else lab == code


def check(root=None, subject: int | None = None) -> pd.DataFrame:
    """What a local Algonauts 2023 copy holds, per subject (see :mod:`brainlid.data.cards`)."""
    card = get_card(CARD)
    root = card.root(root, must_exist=False)
    rows: list[dict] = []
    if not root.is_dir():
        return check_frame([{"subject": None, "space": "", "item": "root", "status": "missing", "detail": str(root)}])
    subjects = [_check_subject(subject)] if subject is not None else [s for s in SUBJECTS if (root / f"subj{s:02d}").is_dir()]
    if not subjects:
        rows.append({"subject": None, "space": "", "item": "subjNN folders", "status": "missing", "detail": f"no subj01..subj08 under {root}"})

    def add(s, item, path, reader=None):
        status, detail = probe(path, reader)
        rows.append({"subject": s, "space": "challenge", "item": item, "status": status, "detail": detail})

    for s in subjects:
        add(s, "training_images", card.file(root, "train_images", subject=s), lambda p: f"{len(image_list(p, 'train')[0])} images")
        add(s, "test_images", card.file(root, "test_images", subject=s), lambda p: f"{len(image_list(p, 'test')[0])} images")
        for h in ("lh", "rh"):
            add(s, f"{h}_training_fmri.npy", card.file(root, "train_fmri", subject=s, hemi=h), lambda p: f"{_npy(p, mmap=True).shape}")
            add(s, f"{h}.all-vertices", card.file(root, "all_vertices", subject=s, hemi=h), lambda p: f"{int((_npy(p) != 0).sum())} vertices")
        for cls in ROI_CLASSES:
            add(s, f"mapping_{cls}.npy", card.file(root, "mapping", subject=s, roi=cls), lambda p: f"{len(read_mapping(p, root)) - 1} labels")
            for h in ("lh", "rh"):
                add(s, f"{h}.{cls}_challenge_space", card.file(root, "roi_challenge", subject=s, roi=cls, hemi=h))
    return check_frame(rows)


def summarize(df: pd.DataFrame) -> list[str]:
    """One line per subject: training images and vertices, test images, ROI classes present."""
    lines = []
    for s, g in df[df["subject"].notna()].groupby("subject"):
        ok = dict(zip(g["item"], g["status"] == "present"))
        det = dict(zip(g["item"], g["detail"]))
        train = det["training_images"] if ok.get("training_images") else "no training images"
        fm = [h for h in ("lh", "rh") if ok.get(f"{h}_training_fmri.npy")]
        rois = [c for c in ROI_CLASSES if ok.get(f"mapping_{c}.npy") and ok.get(f"lh.{c}_challenge_space")]
        lines.append(f"subject {int(s)}: {train}, fMRI {'+'.join(fm) or 'missing'}, "
                     f"test {det['test_images'] if ok.get('test_images') else 'missing'}, ROI classes {', '.join(rois) or 'none'}")
    return lines or ["no subjects found"]
