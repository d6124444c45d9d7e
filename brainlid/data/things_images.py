"""THINGS images and concept metadata (Hebart et al. 2019): a :class:`StimulusSet` over the image tree.

The THINGS database has 1,854 concepts and 26,107 images (DATASETS.md §7). Layout of a copy
(``root`` = the ``THINGS`` folder)::

    Images/<uniqueID>/<uniqueID>_<NN><letter>.jpg          e.g. Images/dog/dog_12s.jpg
    Metadata/Concept-specific/things_concepts.tsv          1,854 rows (Word, uniqueID, ...)
    Metadata/Concept-specific/unique_id.csv                no header, 1,854 rows
    Metadata/Concept-specific/image_concept_index.csv      no header, 26,107 rows, 1-based concept index
    Metadata/Image-specific/image_paths.csv                no header, 26,107 rows, images/<concept>/<file>.jpg

**Stimulus ids are the image file stems** (``dog_12s``, ``aardvark_01b``): they are unique across
THINGS and are how every THINGS dataset names an image — THINGS-fMRI's ``stimulus`` column
(``dog_12s.jpg``), its ``betas_vol`` conditions (``dog/dog_12s.jpg``), THINGS-EEG2's
``train_img_files`` (``aardvark_01b.jpg``), THINGS-EEG1's Windows paths (``stimuli\\dog\\dog_12s.jpg``)
and THINGS-MEG's ``image_path``. :func:`image_id` maps any of these to the stem, so data from the
three modalities join on the same ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import data_root
from ..errors import DatasetNotFoundError, FileFormatError
from .cards import Loaded, check_frame, get_card, probe
from .stimuli import IMAGE_SUFFIXES, FileReader, StimulusSet

__all__ = ["FOLDER", "CARD", "image_id", "image_ids", "load", "load_concepts", "load_stimuli", "check"]

FOLDER = "things"
CARD = "things_images"
_SUFFIX_RE = re.compile(r"\.(jpe?g|png|bmp|gif|tiff?|webp)$", re.IGNORECASE)


def image_id(name: str) -> str:
    """The stable THINGS image id (the file stem) of any spelling of an image's path.

    ``"dog/dog_12s.jpg"``, ``"images/dog/dog_12s.jpg"``, ``"stimuli\\dog\\dog_12s.jpg"``,
    ``"dog_12s.jpg"`` and ``"dog_12s"`` all give ``"dog_12s"``.
    """
    s = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    return _SUFFIX_RE.sub("", s)


def image_ids(names) -> np.ndarray:
    """:func:`image_id` of each name, as a str array."""
    return np.asarray([image_id(n) for n in names], dtype=str)


def _root(root) -> Path:
    return data_root(FOLDER, root)


def load_concepts(root=None) -> pd.DataFrame:
    """The THINGS concept table, one row per concept in THINGS order (1-based ``concept_index``).

    Reads ``Metadata/Concept-specific/things_concepts.tsv`` (tab-separated, quoted values) when
    present, else ``unique_id.csv`` (one ``uniqueID`` per line, no header). The result always
    has ``concept_index`` (1..1854) and ``uniqueID``.
    """
    r = _root(root)
    card = get_card(CARD)
    tsv, uniq = card.file(r, "concepts"), card.file(r, "unique_id")
    if tsv.exists():
        try:
            df = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"cannot parse THINGS concept table {tsv}: {exc}") from exc
        if "uniqueID" not in df.columns:
            raise FileFormatError(f"{tsv} has no 'uniqueID' column (columns: {', '.join(map(str, df.columns[:12]))})")
    elif uniq.exists():
        df = pd.read_csv(uniq, header=None, names=["uniqueID"], dtype=str, keep_default_na=False)
    else:
        raise get_card(CARD).not_found(tsv, "concept metadata", extra=f"(nor {uniq})")
    df.insert(0, "concept_index", np.arange(1, len(df) + 1, dtype=np.int64))
    return df


def load_stimuli(root=None, concepts=None, name: str = "things") -> StimulusSet:
    """A :class:`StimulusSet` over the THINGS images, ids = file stems.

    Parameters
    ----------
    root : path-like or None
        The ``THINGS`` folder (holding ``Images/`` and ``Metadata/``). Default
        ``$BRAINLID_DATA/things``, else ``~/brainlid_data/things``.
    concepts : list of str or None
        Keep only these concept folders (``uniqueID``), e.g. ``["dog", "aardvark"]``.
    name : str
        The stimulus set's name.

    Returns
    -------
    StimulusSet
        Images sorted by concept folder, then file name. Metadata columns: ``path`` (relative to
        ``root``), ``concept`` (the folder, the THINGS ``uniqueID``), ``concept_index`` (1-based
        THINGS index when the concept metadata is present, else -1) and ``word`` when known.
        Image order follows ``Metadata/Image-specific/image_paths.csv`` when it lists the files.
    """
    r = _root(root)
    card = get_card(CARD)
    images = card.file(r, "images")
    if not images.is_dir():
        raise get_card(CARD).not_found(images, "image folder", extra="Unzip the object_images_*.zip archives there.")
    listed = card.file(r, "image_paths")
    rel: list[str]
    if listed.exists():
        paths_csv = pd.read_csv(listed, header=None, dtype=str)[0].tolist()
        rel = []
        for p in paths_csv:  # "images/<concept>/<file>.jpg" relative to THINGS/, folder capitalised on disk
            parts = p.replace("\\", "/").split("/")
            rel.append("/".join(["Images", *parts[1:]]) if parts[0].lower() == "images" else "/".join(["Images", *parts]))
        present = [p for p in rel if (r / p).exists()]
        rel = present if present else []
    else:
        rel = []
    if not rel:
        rel = sorted(
            str(p.relative_to(r)).replace(os.sep, "/")
            for p in images.glob("*/*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if concepts is not None:
        keep = set(concepts)
        rel = [p for p in rel if p.split("/")[-2] in keep]
    if not rel:
        raise DatasetNotFoundError(f"no THINGS images found under {images}")
    concept = [p.split("/")[-2] for p in rel]
    meta = pd.DataFrame({"path": rel, "concept": concept})
    try:
        cdf = load_concepts(r)
        index = dict(zip(cdf["uniqueID"], cdf["concept_index"]))
        meta["concept_index"] = np.asarray([index.get(c, -1) for c in concept], dtype=np.int64)
        if "Word" in cdf.columns:
            words = dict(zip(cdf["uniqueID"], cdf["Word"]))
            meta["word"] = [words.get(c, "") for c in concept]
    except DatasetNotFoundError:
        meta["concept_index"] = np.full(len(rel), -1, dtype=np.int64)
    ids = image_ids(rel)
    return StimulusSet(ids=ids, metadata=meta, reader=FileReader([r / p for p in rel]), name=name)


def load(root=None, concepts=None):
    """The THINGS images as ``Loaded(stimuli, brain=None)`` (a stimulus-only set; see :func:`load_stimuli`)."""
    return Loaded(load_stimuli(root, concepts=concepts), None)


def count_concept_folders(path, expected: int | None = None) -> str:
    """``check`` detail of an image tree with one folder per concept; an error if there is none."""
    n = sum(1 for q in Path(path).iterdir() if q.is_dir())
    if not n:
        raise FileFormatError(f"no concept folders in {path}")
    return f"{n} concept folders" + (f" (THINGS has {expected:,})" if expected else "")


def check(root=None, subject=None) -> pd.DataFrame:
    """What of the THINGS image set is present: one row per expected item (``subject`` is unused)."""
    card = get_card(CARD)
    r = card.root(root, must_exist=False)
    rows = []

    def all_concepts(p):
        return count_concept_folders(p, expected=1854)

    def count_lines(p):
        return f"{sum(1 for _ in open(p, 'rb'))} lines"

    for key in ("images", "concepts", "unique_id", "image_concept_index", "image_paths"):
        status, detail = probe(card.file(r, key), all_concepts if key == "images" else count_lines)
        rows.append({"subject": None, "space": "images", "item": card.relpath(key), "status": status, "detail": detail})
    return check_frame(rows)
