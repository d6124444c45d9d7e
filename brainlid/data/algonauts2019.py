"""Algonauts 2019 training data: fMRI and MEG RDMs for the 92- and 118-image sets.

Layout of a copy (``root``; dataset card ``datasets/algonauts2019.toml``, a card *space*
is an image set)::

    Training_Data/<N>_Image_Set/target_fmri.mat      MATLAB v7.3 (HDF5): EVC_RDMs, IT_RDMs
    Training_Data/<N>_Image_Set/target_meg.mat       MEG_RDMs_early, MEG_RDMs_late
    Training_Data/<N>_Image_Set/<N>images.mat        visual_stimuli (struct array: names, pixels)
    Training_Data/<N>_Image_Set/<N>images/image_NN.jpg   the images, same order (NN 2 or 3 digits)

``EVC_RDMs`` / ``IT_RDMs`` are MATLAB subjects (15) x images x images arrays of 1 - Pearson r
(symmetric, zero diagonal), so h5py sees them as (images, images, subjects); the reader
reverses the axes back. ``MEG_RDMs_early`` (70-90 ms) and ``MEG_RDMs_late`` (140-160 ms) are
per subject (and session: MATLAB subjects x sessions x images x images). **Shapes are read from
the files**, never assumed: 2-D is one RDM, 3-D subjects x n x n, 4-D subjects x sessions x n x n;
either MATLAB version is accepted for every file.

Stimulus ids are the image file stems (``image_01`` …); without the image folder they are built
from the order (``image_{i:02d}`` for fewer than 100 images, else 3 digits), which is the
order of ``visual_stimuli`` and of the RDM rows. Counts that disagree (RDMs vs names vs
pixels vs image files) are errors naming both numbers.

References: Cichy et al. (2019) The Algonauts Project, arXiv:1905.05675; Cichy, Pantazis &
Oliva (2014) Nat Neurosci 17:455; (2016) Cereb Cortex 26:3563.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileFormatError, InputError, StimulusMismatchError
from ._matfile import loadmat, mat_version
from .cards import check_frame, get_card, probe
from .provenance import detect_data_source
from .rdms import BrainRDMs, RDMDataset
from .stimuli import ArrayReader, FileReader, StimulusSet

__all__ = ["CARD", "IMAGE_SETS", "MODALITIES", "VARIABLES", "load", "load_stimuli", "check"]

CARD = "algonauts2019"
IMAGE_SETS = ("92", "118")
MODALITIES = ("fmri", "meg")
#: (file key, {variable: ROI name}) per modality
VARIABLES = {
    "fmri": ("target_fmri", {"EVC_RDMs": "EVC", "IT_RDMs": "IT"}),
    "meg": ("target_meg", {"MEG_RDMs_early": "MEG_early", "MEG_RDMs_late": "MEG_late"}),
}
_IMG_RE = re.compile(r"^image_(\d+)$")
_DISSIM = "1 - pearson"


def _check_args(image_set, modality=None) -> str:
    image_set = str(image_set)
    if image_set not in IMAGE_SETS:
        raise InputError(f"image_set must be one of {', '.join(IMAGE_SETS)}; got {image_set!r}")
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"modality must be one of {', '.join(MODALITIES)}; got {modality!r}")
    return image_set


def _image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and _IMG_RE.match(p.stem) and p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return sorted(files, key=lambda p: int(_IMG_RE.match(p.stem).group(1)))


def _as_uint8(pix: np.ndarray, where: str) -> np.ndarray:
    if pix.dtype == np.uint8:
        return pix
    if pix.dtype.kind not in "uif":
        raise FileFormatError(f"{where}: pixels have dtype {pix.dtype}")
    mx = float(np.max(pix)) if pix.size else 0.0
    scale = 255.0 if (pix.dtype.kind == "f" and mx <= 1.0) else 1.0
    if mx * scale > 255.5 or float(np.min(pix)) < 0:
        raise FileFormatError(f"{where}: pixel values outside 0..255 (max {mx})")
    return np.clip(np.round(pix * scale), 0, 255).astype(np.uint8)


def _visual_stimuli(path: Path) -> tuple[list[str], np.ndarray | None]:
    mat = loadmat(path, ["visual_stimuli"])
    vs = mat["visual_stimuli"]
    entries = [vs] if isinstance(vs, dict) else list(np.asarray(vs, dtype=object).ravel())
    if not entries or not all(isinstance(e, dict) for e in entries):
        raise FileFormatError(f"{path}: visual_stimuli is not a struct array")
    if "names" not in entries[0]:
        raise FileFormatError(f"{path}: visual_stimuli has no 'names' field (fields: {', '.join(entries[0])})")
    if len(entries) == 1 and not isinstance(entries[0]["names"], str):
        # a scalar struct whose fields hold one entry per image (cell of names, 4-D pixels)
        e = entries[0]
        names = [str(np.asarray(x).ravel()[0]) if not isinstance(x, str) else x
                 for x in np.asarray(e["names"], dtype=object).ravel()]
        pix = None
        if "pixels" in e:
            p = np.asarray(e["pixels"])
            if p.ndim != 4:
                raise FileFormatError(f"{path}: visual_stimuli.pixels has shape {p.shape}; expected n x H x W x 3")
            pix = _as_uint8(p, str(path))
        return names, pix
    names = [e["names"] if isinstance(e["names"], str) else str(np.asarray(e["names"]).ravel()[0]) for e in entries]
    pix = None
    if "pixels" in entries[0]:
        arrs = [np.asarray(e["pixels"]) for e in entries]
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise FileFormatError(f"{path}: visual_stimuli pixels have shapes {sorted(shapes)[:3]}; expected equal H x W x 3")
        pix = _as_uint8(np.stack(arrs), str(path))
    return names, pix


def load_stimuli(root: str | os.PathLike | None = None, image_set: str = "92") -> StimulusSet:
    """The image set as a :class:`StimulusSet`.

    Images come from ``<N>images.mat`` (``visual_stimuli.pixels``, exact pixels) when present,
    else from the ``image_NN.jpg`` files. Metadata: ``name`` (``visual_stimuli.names``, when
    present) and ``file`` (the image file name, when present).

    Raises
    ------
    DatasetNotFoundError
        Neither the ``.mat`` file nor the image folder exists.
    StimulusMismatchError
        The names, pixels and image files disagree in number.
    """
    image_set = _check_args(image_set)
    card = get_card(CARD)
    base = card.root(root)
    mat_path = card.file(base, "stimuli_mat", space=image_set)
    folder = card.file(base, "images", space=image_set)
    files = _image_files(folder) if folder.is_dir() else []
    if not mat_path.exists() and not files:
        raise card.not_found(mat_path, "stimulus file (and no image folder)", space=image_set,
                             extra=f"Also looked for {folder}/image_NN.jpg.")
    names, pix = _visual_stimuli(mat_path) if mat_path.exists() else ([], None)
    counts = {}
    if names:
        counts[f"{mat_path.name} names"] = len(names)
    if pix is not None:
        counts[f"{mat_path.name} pixels"] = pix.shape[0]
    if files:
        counts[f"{folder.name}/ image files"] = len(files)
    if len(set(counts.values())) > 1:
        raise StimulusMismatchError(
            f"Algonauts 2019 {image_set}-image set: stimulus counts disagree: "
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
        )
    n = next(iter(counts.values()))
    if files:
        ids = [p.stem for p in files]
    else:
        width = 2 if n < 100 else 3
        ids = [f"image_{i + 1:0{width}d}" for i in range(n)]
    meta = pd.DataFrame({"position": np.arange(n)})
    if names:
        meta["name"] = names
    if files:
        meta["file"] = [p.name for p in files]
    reader = ArrayReader(pix) if pix is not None else FileReader(files)
    return StimulusSet(ids, meta, reader, name=f"algonauts2019-{image_set}")


def _rdm_array(value, path: Path, var: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == object or a.dtype.kind not in "uif":
        raise FileFormatError(f"{path}:{var} is not a numeric array (dtype {a.dtype})")
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = a[:, None]
    elif a.ndim != 4:
        raise FileFormatError(
            f"{path}:{var} has shape {a.shape}; expected images x images, subjects x images x images or "
            f"subjects x sessions x images x images (MATLAB order)"
        )
    if a.shape[-1] != a.shape[-2]:
        raise FileFormatError(
            f"{path}:{var} has shape {a.shape} (MATLAB order): the last two axes are not square. "
            f"If this file was written by h5py/numpy without reversing the axes, its subjects axis is last."
        )
    return a


def load(root: str | os.PathLike | None = None, image_set: str = "92", modality: str = "fmri") -> RDMDataset:
    """Load one image set's fMRI or MEG RDMs with its stimuli.

    Parameters
    ----------
    root : path-like or None
        The Algonauts 2019 folder holding ``Training_Data/`` (default ``$BRAINLID_DATA/algonauts2019``).
    image_set : {"92", "118"}
    modality : {"fmri", "meg"}

    Returns
    -------
    RDMDataset
        ``stimuli`` and ``rdms``: ``{"EVC": BrainRDMs, "IT": BrainRDMs}`` for fMRI,
        ``{"MEG_early": ..., "MEG_late": ...}`` for MEG (subjects x sessions as in the file).
    """
    image_set = _check_args(image_set, modality)
    card = get_card(CARD)
    base = card.root(root)
    key, variables = VARIABLES[modality]
    path = card.require(card.file(base, key, space=image_set), f"{modality} RDM file", space=image_set)
    stimuli = load_stimuli(base, image_set)
    mat = loadmat(path, list(variables))
    version = mat_version(path)
    rdms = {}
    source = detect_data_source(base)
    for var, roi in variables.items():
        a = _rdm_array(mat[var], path, var)
        if a.shape[-1] != len(stimuli):
            raise StimulusMismatchError(
                f"{path}:{var} RDMs are over {a.shape[-1]} stimuli but the {image_set}-image set has "
                f"{len(stimuli)} images"
            )
        rdms[roi] = BrainRDMs.from_square(
            a, stimuli.ids, subjects=[f"sub-{i + 1:02d}" for i in range(a.shape[0])],
            sessions=[f"ses-{i + 1}" for i in range(a.shape[1])], roi=roi,
            dataset=f"algonauts2019-{image_set}", dissimilarity=_DISSIM, stimuli=stimuli,
            info={"modality": modality, "source": f"{path.name}:{var}", "mat_version": version, "data_source": source},
        )
    return RDMDataset(stimuli, rdms, info={"dataset": f"algonauts2019-{image_set}", "modality": modality,
                                           "root": str(base), "citation": "cichy2019algonauts", "data_source": source})


def check(root: str | os.PathLike | None = None, subject=None) -> pd.DataFrame:
    """What of the copy is present and readable, per image set (card space) and file."""
    card = get_card(CARD)
    base = card.root(root, must_exist=False)
    rows = []
    for image_set in IMAGE_SETS:
        for key, variables in (("target_fmri", list(VARIABLES["fmri"][1])), ("target_meg", list(VARIABLES["meg"][1])),
                               ("stimuli_mat", ["visual_stimuli"])):
            def reader(p, variables=variables):
                out = loadmat(p, variables)
                shapes = ", ".join(f"{v} {np.shape(out[v]) if not isinstance(out[v], dict) else 'struct'}" for v in variables)
                return f"MATLAB v{mat_version(p)}: {shapes}"

            status, detail = probe(card.file(base, key, space=image_set), reader)
            rows.append({"subject": None, "space": image_set, "item": key, "status": status, "detail": detail})
        folder = card.file(base, "images", space=image_set)
        files = _image_files(folder) if folder.is_dir() else []
        rows.append({"subject": None, "space": image_set, "item": "images",
                     "status": "present" if files else "missing",
                     "detail": f"{len(files)} image_NN files" if files else str(folder)})
    return check_frame(rows)
