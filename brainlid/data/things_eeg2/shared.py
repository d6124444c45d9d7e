"""THINGS-EEG2 pieces both loading paths share: the copy's layout, image lists, channels, the ceiling.

Image condition ``i`` (0-based) of a recording or preprocessed file is the ``i``-th image of the
sorted image list (``image_metadata['train_img_files'][i]``, :func:`image_table`); stimulus ids
are the image file stems. :func:`channel_table` gives one ``units`` row per channel (standard
10-05 positions, ``roi:`` groups); :func:`eeg_noise_ceiling` the split-half (Spearman–Brown)
reliability per channel and time.
"""

from __future__ import annotations

import warnings
from math import comb
from pathlib import Path

import mne
import numpy as np
import pandas as pd

from ...config import data_root
from ...errors import DatasetNotFoundError, FileFormatError, InputError
from .._subjects import bids_subject
from ..cards import get_card
from ..reliability import split_half_reliability
from ..stimuli import FileReader, StimulusSet
from ..things_images import image_ids

__all__ = ["FOLDER", "CARD", "read_npy_dict", "image_table", "load_stimuli", "channel_table", "distinct_half_splits",
           "eeg_noise_ceiling"]


FOLDER = "things_eeg2"


CARD = "things_eeg2"


_META_KEYS = ("train_img_files", "train_img_concepts", "test_img_files", "test_img_concepts")


_IMG_KEYS = {"train": "training_images", "test": "test_images"}


def _root(root) -> Path:
    return data_root(FOLDER, root)


def _num(subject) -> int:
    return int(_sub(subject)[4:])


_sub = bids_subject


def _check_split(split: str, allowed=("train", "test", "both")) -> str:
    if split not in allowed:
        raise InputError(f"split must be one of {', '.join(map(repr, allowed))}, got {split!r}")
    return split


def read_npy_dict(path, root, required=()) -> dict:
    """Read a dataset's own ``np.save``-of-a-dict file (a pickle), only from inside ``root``.

    Parameters
    ----------
    path : path-like
        The ``.npy`` file.
    root : path-like
        The dataset root the user chose; ``path`` must resolve to a file inside it.
    required : sequence of str
        Keys that must be present.

    Raises
    ------
    InputError
        If ``path`` is outside ``root`` (pickles are never read from elsewhere).
    DatasetNotFoundError, FileFormatError
        Missing file; not a dict; missing keys (named, with the file).
    """
    path, root = Path(path), Path(root)
    if not path.exists():
        raise get_card(CARD).not_found(path, "file")
    if not path.resolve().is_relative_to(root.resolve()):
        raise InputError(f"refusing to unpickle {path}: it is not inside the dataset root {root}")
    try:
        obj = np.load(path, allow_pickle=True)  # trusted: THINGS-EEG2's documented np.save'd dict, inside the dataset root
    except (OSError, ValueError, EOFError) as exc:
        raise FileFormatError(f"cannot read {path} as a .npy file: {exc}") from exc
    if not (isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ()):
        raise FileFormatError(f"{path} does not hold a dict (np.save of a dict); got an array of shape {getattr(obj, 'shape', '?')}")
    d = obj.item()
    if not isinstance(d, dict):
        raise FileFormatError(f"{path} holds a {type(d).__name__}, expected a dict")
    missing = [k for k in required if k not in d]
    if missing:
        raise FileFormatError(f"{path} lacks key(s) {missing}; it has {sorted(map(str, d))}")
    return d


def _find_image_metadata(root: Path) -> Path | None:
    for rel in (get_card(CARD).relpath("image_metadata"), "image_metadata.npy", "eeg_dataset/image_metadata.npy", "stimuli/image_metadata.npy"):
        if (root / rel).exists():
            return root / rel
    return None


def image_table(root=None, split: str = "train") -> pd.DataFrame:
    """The images of one split in condition order (row ``i`` = image condition ``i + 1``).

    Read from ``image_metadata.npy`` when present, else from the sorted image folders
    (``image_set/training_images/NNNNN_<concept>/<file>.jpg``). Columns: ``stimulus_id`` (file stem),
    ``file``, ``concept`` (folder, e.g. ``00001_aardvark``), ``concept_things`` (when known) and
    ``path`` (relative to ``root``, empty when the image files are absent).
    """
    _check_split(split, ("train", "test"))
    r = _root(root)
    meta_path = _find_image_metadata(r)
    img_dir = get_card(CARD).file(r, _IMG_KEYS[split])
    if meta_path is not None:
        meta = read_npy_dict(meta_path, r, required=_META_KEYS)
        files = [str(f) for f in np.asarray(meta[f"{split}_img_files"]).ravel()]
        concepts = [str(c) for c in np.asarray(meta[f"{split}_img_concepts"]).ravel()]
        if len(files) != len(concepts):
            raise FileFormatError(f"{meta_path}: {len(files)} {split}_img_files but {len(concepts)} {split}_img_concepts")
        things = meta.get(f"{split}_img_concepts_THINGS")
        things = [str(c) for c in np.asarray(things).ravel()] if things is not None else [""] * len(files)
        folder = get_card(CARD).relpath(_IMG_KEYS[split])
        paths = [f"{folder}/{c}/{f}" for c, f in zip(concepts, files)]
        paths = [p if (r / p).exists() else "" for p in paths]
    elif img_dir.is_dir():
        found = sorted(p for p in img_dir.glob("*/*") if p.is_file())
        if not found:
            raise DatasetNotFoundError(f"no images under {img_dir}")
        files = [p.name for p in found]
        concepts = [p.parent.name for p in found]
        things = [""] * len(files)
        paths = [str(p.relative_to(r)).replace("\\", "/") for p in found]
    else:
        raise get_card(CARD).not_found(get_card(CARD).file(r, "image_metadata"), "image list", extra=f"(nor the image folder {img_dir})")
    return pd.DataFrame(
        {"stimulus_id": image_ids(files), "file": files, "concept": concepts, "concept_things": things, "path": paths}
    )


def load_stimuli(root=None, split: str = "train") -> StimulusSet:
    """The THINGS-EEG2 images of ``split`` as a :class:`StimulusSet` (ids = file stems, condition order)."""
    r = _root(root)
    table = image_table(r, split)
    if (table["path"] == "").any():
        missing = table.loc[table["path"] == "", "file"].tolist()
        raise DatasetNotFoundError(
            f"{len(missing)} THINGS-EEG2 {split} image file(s) missing under {get_card(CARD).file(r, _IMG_KEYS[split])}, e.g. {missing[:3]}"
        )
    return StimulusSet(
        ids=table["stimulus_id"].to_numpy(),
        metadata=table.drop(columns="stimulus_id"),
        reader=FileReader([r / p for p in table["path"]]),
        name=f"things_eeg2-{split}",
    )


def channel_table(ch_names) -> pd.DataFrame:
    """One row per EEG channel: ``channel``, ``ch_type``, standard 10-05 position ``x, y, z`` (m) and ROI groups.

    Positions come from MNE's built-in 10-05 template montage (``colin27_1005``, formerly
    ``standard_1005``; NaN for names it lacks).
    ROI columns: ``roi:occipital`` (O*, I*), ``roi:parieto-occipital`` (PO*), ``roi:parietal``
    (P* but not PO*), ``roi:posterior`` (any of them).
    """
    names = [str(c) for c in ch_names]
    pos = np.full((len(names), 3), np.nan)
    try:
        builtin = mne.channels.get_builtin_montages()
        name = next((m for m in ("colin27_1005", "standard_1005") if m in builtin), None)
        ch_pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"] if name else {}
        lower = {k.lower(): v for k, v in ch_pos.items()}
        for i, n in enumerate(names):
            if n.lower() in lower:
                pos[i] = lower[n.lower()]
    except ImportError:  # pragma: no cover - mne is a core dependency
        pass
    up = [n.upper() for n in names]
    occ = np.array([u.startswith("O") or u.startswith("I") for u in up])
    po = np.array([u.startswith("PO") for u in up])
    par = np.array([u.startswith("P") and not u.startswith("PO") for u in up])
    return pd.DataFrame(
        {
            "channel": names,
            "ch_type": "eeg",
            "x": pos[:, 0],
            "y": pos[:, 1],
            "z": pos[:, 2],
            "roi:occipital": occ,
            "roi:parieto-occipital": po,
            "roi:parietal": par,
            "roi:posterior": occ | po | par,
        }
    )


def distinct_half_splits(n_reps: int) -> int:
    """Number of distinct ways to split ``n_reps`` repetitions into two halves of ``⌊n/2⌋`` (unordered).

    ``C(n, n/2) / 2`` for even n (3 for THINGS-EEG2's 4 training repetitions), ``C(n, ⌊n/2⌋) · ⌈n/2⌉ / 2``
    when one repetition is left out for odd n; at least 1.
    """
    n = int(n_reps)
    if n < 2:
        return 1
    h = n // 2
    ways = comb(n, h) * comb(n - h, h)
    return max(1, ways // 2)


def eeg_noise_ceiling(responses: np.ndarray, n_splits: int | None = None, seed: int | None = 0, chunk_bytes: int = 32_000_000) -> np.ndarray:
    """Split-half reliability (Spearman–Brown) per channel and time, as a fraction in [0, 1].

    Parameters
    ----------
    responses : ndarray of shape (n_stimuli, n_reps, n_channels, n_times)
        Repeated presentations (NaN-padded ragged repetitions allowed).
    n_splits : int or None
        Random split-halves averaged. ``None``: ``min(10, distinct_half_splits(n_reps))`` — with
        THINGS-EEG2's 4 training repetitions only 3 distinct splits exist, so more cost time and
        add nothing.
    seed : int or None
        Seed of the splits.
    chunk_bytes : int
        The input is processed in (channel, time) blocks of at most about this many bytes, so
        the temporary memory stays a small fraction of the input (the full THINGS-EEG2 training
        file is 0.9 GB).

    Returns
    -------
    nc : ndarray of shape (n_channels, n_times) float32
        ``max(r_sb, 0)`` with ``r_sb = k r_half / (1 + (k − 1) r_half)`` computed by
        :func:`brainlid.data.reliability.split_half_reliability` (k = n/⌊n/2⌋: 2 for the even
        repetition counts of THINGS-EEG2, 3 for a copy with 3), the reliability of the mean of all
        repetitions — the average the loader returns and encoding scores (METHODS §6: NC = r_sb).
    """
    x = responses
    if x.ndim != 4:
        raise InputError(f"responses must have shape (stimulus, rep, channel, time), got {x.shape}")
    n_s, n_r, n_c, n_t = x.shape
    if n_splits is None:
        n_splits = min(10, distinct_half_splits(n_r))
    per_time = max(1, n_s * n_r * x.itemsize)
    t_step = int(max(1, min(n_t, chunk_bytes // per_time)))
    c_step = int(max(1, chunk_bytes // (per_time * t_step))) if t_step == n_t else 1
    out = np.empty((n_c, n_t), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for c0 in range(0, n_c, c_step):
            for t0 in range(0, n_t, t_step):
                block = x[:, :, c0 : c0 + c_step, t0 : t0 + t_step]
                out[c0 : c0 + c_step, t0 : t0 + t_step] = split_half_reliability(block, rep_axis=1, n_splits=n_splits, seed=seed)
    return np.clip(out, 0.0, 1.0)


def _mean_reps(x: np.ndarray, chunk_bytes: int = 32_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Average axis 1 of ``x`` (stimulus, rep, ...) into a new float32 array, chunk by chunk over stimuli.

    Temporary memory is bounded by ``chunk_bytes`` (no full-size float64 temporary). Missing
    (all-NaN) repetitions are ignored. Returns ``(mean, n_reps)``.
    """
    n_s, n_r = x.shape[:2]
    out = np.empty((n_s,) + x.shape[2:], dtype=np.float32)
    n_reps = np.empty(n_s, dtype=np.int64)
    per = max(1, int(np.prod(x.shape[1:])) * x.itemsize)
    step = int(max(1, chunk_bytes // per))
    other = tuple(range(2, x.ndim))
    for s0 in range(0, n_s, step):
        blk = x[s0 : s0 + step]
        finite = ~np.all(np.isnan(blk), axis=other) if other else ~np.isnan(blk)
        n_reps[s0 : s0 + step] = finite.sum(axis=1)
        if finite.all():
            out[s0 : s0 + step] = blk.mean(axis=1)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[s0 : s0 + step] = np.nanmean(blk, axis=1)
    return out, n_reps
