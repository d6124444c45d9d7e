"""Kriegeskorte et al. (2008): 92 object images with human and monkey IT RDMs.

Reads the three MATLAB v5 files distributed with rsatoolbox's demos
(``demos/92imageData/``; dataset card ``datasets/k92.toml``):

``Kriegeskorte_Neuron2008_supplementalData.mat``
    ``stimuli_92objs`` (1 x 92 struct: ``image`` 175 x 175 x 3 uint8, ``category`` — human
    bodypart 12, human face 12, nonhuman bodypart 12, nonhuman face 12, natural inanimate 23,
    artificial inanimate 21 — and 0/1 flags ``human``, ``face``, ``animal``, ``natural``),
    ``categoryVectors`` 92 x 12 with ``categoryLabels``, and ``RDMs_mIT_hIT_fig1`` (monkey IT from
    674 neurons and human IT from 316 voxels, condensed 1 x 4186 RDMs).
``92_brainRDMs.mat``
    ``RDMs`` (1 x 4 x 2 struct) of 92 x 92 float32 human IT RDMs: subjects BE, KO, SN, TI x sessions 1, 2.
``92_modelRDMs.mat``
    ``Models`` (1 x 8 struct) of 92 x 92 model RDMs: animacy, FaceBodyManmadeNatobj, monkeyIT,
    EVA, HMAX, V1, Silhouette, RADON.

Stimulus ids are ``"k92_01"`` … ``"k92_92"`` (the published image order). Every RDM is
validated (square, symmetric, zero diagonal, 92 stimuli).

Reference: Kriegeskorte, Mur, Ruff, Kiani, Bodurka, Esteky, Tanaka, Bandettini (2008). Matching
categorical object representations in inferior temporal cortex of man and monkey. Neuron 60:1126-1141.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileFormatError, StimulusMismatchError
from ._matfile import loadmat, mat_version
from .cards import check_frame, get_card, probe
from .provenance import detect_data_source
from .rdms import BrainRDMs, RDMDataset, check_square_rdms
from .stimuli import ArrayReader, StimulusSet

__all__ = ["CARD", "N_IMAGES", "SUBJECTS", "MODEL_NAMES", "load", "load_stimuli", "check", "stimulus_ids"]

CARD = "k92"
N_IMAGES = 92
SUBJECTS = ("BE", "KO", "SN", "TI")
MODEL_NAMES = ("animacy", "FaceBodyManmadeNatobj", "monkeyIT", "EVA", "HMAX", "V1", "Silhouette", "RADON")
_DISSIM = "1 - pearson"


def _file(root, key: str) -> Path:
    card = get_card(CARD)
    base = card.root(root)
    return card.require(card.file(base, key), f"{key} file")


def stimulus_ids(n: int = N_IMAGES) -> np.ndarray:
    """``["k92_01", …, "k92_92"]``."""
    return np.array([f"k92_{i + 1:02d}" for i in range(n)])


def _as_list(x) -> list:
    if isinstance(x, dict):
        return [x]
    return list(np.asarray(x, dtype=object).ravel())


def _str(x) -> str:
    if isinstance(x, str):
        return x
    arr = np.asarray(x).ravel()
    return str(arr[0]) if arr.size else ""


def load_stimuli(root: str | os.PathLike | None = None) -> StimulusSet:
    """The 92 images as a :class:`StimulusSet` (175 x 175 x 3 uint8, in memory, ~8 MB).

    Metadata columns: ``category`` (six categories), ``human``, ``face``, ``animal``, ``natural``
    (bool), ``animate`` (bool, from ``categoryVectors``), and one bool column per
    ``categoryLabels`` entry prefixed ``cat_`` (``cat_animate``, ``cat_inanim``, ``cat_human``, ...).
    """
    path = _file(root, "supplemental")
    mat = loadmat(path, ["stimuli_92objs", "categoryVectors", "categoryLabels"])
    objs = _as_list(mat["stimuli_92objs"])
    if len(objs) == 0 or not isinstance(objs[0], dict) or "image" not in objs[0]:
        raise FileFormatError(f"{path}: stimuli_92objs is not a struct array with an 'image' field")
    images = [np.asarray(o["image"]) for o in objs]
    shapes = {im.shape for im in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise FileFormatError(f"{path}: stimuli_92objs images have shapes {sorted(shapes)[:3]}; expected equal (H, W, 3)")
    images = np.stack(images).astype(np.uint8, copy=False)
    n = images.shape[0]
    meta = pd.DataFrame({"category": [_str(o.get("category", "")) for o in objs]})
    for flag in ("human", "face", "animal", "natural"):
        if flag in objs[0]:
            meta[flag] = [bool(np.asarray(o[flag]).ravel()[0]) for o in objs]
    vec = np.asarray(mat["categoryVectors"])
    labels = [_str(x) for x in np.asarray(mat["categoryLabels"], dtype=object).ravel()]
    if vec.shape != (n, len(labels)):
        raise StimulusMismatchError(
            f"{path}: categoryVectors has shape {vec.shape} but there are {n} images and {len(labels)} category labels"
        )
    for j, lab in enumerate(labels):
        meta[f"cat_{lab}"] = vec[:, j].astype(bool)
    if "cat_animate" in meta:
        meta["animate"] = meta["cat_animate"]
    return StimulusSet(stimulus_ids(n), meta, ArrayReader(images), name="k92")


def _fig1(path: Path, ids: np.ndarray) -> dict[str, BrainRDMs]:
    mat = loadmat(path, ["RDMs_mIT_hIT_fig1"])
    out = {}
    for entry in _as_list(mat["RDMs_mIT_hIT_fig1"]):
        name = _str(entry["name"])
        v = np.asarray(entry["RDM"], dtype=np.float64).ravel()
        if v.size != ids.size * (ids.size - 1) // 2:
            raise StimulusMismatchError(
                f"{path}: RDM {name!r} has {v.size} entries; {ids.size} images need {ids.size * (ids.size - 1) // 2}"
            )
        if name.startswith("mIT"):
            key, species, subj = "monkey.IT", "monkey", "monkey"
        else:
            key, species, subj = "human.IT.fig1", "human", "group"
        out[key] = BrainRDMs(v[None, None], ids, [subj], ["all"], roi="IT", dataset="k92", dissimilarity=_DISSIM,
                             info={"species": species, "source": f"{path.name}:RDMs_mIT_hIT_fig1 {name}"})
    if "monkey.IT" not in out:
        raise FileFormatError(f"{path}: RDMs_mIT_hIT_fig1 has no monkey IT ('mIT...') entry")
    return out


def _human_it(path: Path, ids: np.ndarray, stimuli: StimulusSet | None) -> BrainRDMs:
    mat = loadmat(path, ["RDMs"])
    raw = np.asarray(mat["RDMs"], dtype=object)
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.ndim != 2:
        raise FileFormatError(f"{path}: RDMs struct array has shape {raw.shape}; expected subjects x sessions")
    names = [[_str(raw[s, t]["name"]) for t in range(raw.shape[1])] for s in range(raw.shape[0])]
    # names look like "hIT | BE | Session: 1"
    subjects = [nm[0].split("|")[1].strip() if nm[0].count("|") >= 2 else f"sub-{s + 1:02d}" for s, nm in enumerate(names)]
    sessions = [names[0][t].rsplit(":", 1)[-1].strip() if ":" in names[0][t] else str(t + 1) for t in range(raw.shape[1])]
    square = np.stack([np.stack([np.asarray(raw[s, t]["RDM"], dtype=np.float64) for t in range(raw.shape[1])])
                       for s in range(raw.shape[0])])
    if square.shape[-1] != ids.size:
        raise StimulusMismatchError(
            f"{path}: the human IT RDMs are over {square.shape[-1]} stimuli but there are {ids.size} images"
        )
    return BrainRDMs.from_square(square, ids, subjects=subjects, sessions=[f"ses-{x}" for x in sessions], roi="IT",
                                 dataset="k92", dissimilarity=_DISSIM, stimuli=stimuli,
                                 info={"species": "human", "source": path.name, "names": names})


def _models(path: Path, n: int) -> dict[str, np.ndarray]:
    mat = loadmat(path, ["Models"])
    out = {}
    for entry in _as_list(mat["Models"]):
        name = _str(entry["name"])
        M = np.asarray(entry["RDM"]).astype(np.float64)
        if M.shape != (n, n):
            raise StimulusMismatchError(f"{path}: model RDM {name!r} has shape {M.shape}; {n} images need ({n}, {n})")
        out[name] = check_square_rdms(M, f"model RDM {name!r}")
    return out


def load(root: str | os.PathLike | None = None) -> RDMDataset:
    """Load the 92-image dataset.

    Parameters
    ----------
    root : path-like or None
        Folder with the three ``.mat`` files (default ``$BRAINLID_DATA/k92``).

    Returns
    -------
    RDMDataset
        ``stimuli``: the 92 images (:func:`load_stimuli`); ``rdms``: ``"human.IT"``
        (BrainRDMs, 4 subjects x 2 sessions, stimuli attached), ``"monkey.IT"`` (1 x 1, 674 neurons),
        ``"human.IT.fig1"`` (the 316-voxel group RDM of the paper's Fig. 1); ``models``: the 8 model
        RDMs, condensed float32 (4186,), by name.
    """
    stimuli = load_stimuli(root)
    ids = stimuli.ids
    sup = _file(root, "supplemental")
    brain = _file(root, "brain_rdms")
    mod = _file(root, "model_rdms")
    rdms = {"human.IT": _human_it(brain, ids, stimuli)}
    rdms.update(_fig1(sup, ids))
    source = detect_data_source(get_card(CARD).root(root))
    for r in rdms.values():
        r.info["data_source"] = source
    return RDMDataset(stimuli, rdms, _models(mod, ids.size),
                      info={"dataset": "k92", "root": str(sup.parent), "citation": "kriegeskorte2008matching",
                            "data_source": source})


def check(root: str | os.PathLike | None = None, subject=None) -> pd.DataFrame:
    """What of the k92 copy is present and readable: one row per file (``subject`` is empty)."""
    card = get_card(CARD)
    base = card.root(root, must_exist=False)
    wanted = {"supplemental": ["stimuli_92objs", "RDMs_mIT_hIT_fig1"], "brain_rdms": ["RDMs"], "model_rdms": ["Models"]}
    rows = []
    for key, variables in wanted.items():
        path = card.file(base, key)

        def reader(p, variables=variables):
            version = mat_version(p)
            loadmat(p, variables)
            return f"MATLAB v{version}: {', '.join(variables)}"

        status, detail = probe(path, reader)
        rows.append({"subject": None, "space": "rdm", "item": key, "status": status, "detail": detail})
    return check_frame(rows)
