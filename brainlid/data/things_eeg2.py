"""THINGS-EEG2 (Gifford et al. 2022): time-resolved EEG responses to THINGS images.

Layout (``root`` = the project directory of the dataset, DATASETS.md §4.2)::

    eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_training.npy   dict, (16540, 4, 17, 100) float64
    eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_test.npy       dict, (200, 80, 17, 100) float64
    eeg_dataset/source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-train_part-ZZ_eeg.{vhdr,vmrk,eeg}
    eeg_dataset/source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-test_eeg.{vhdr,vmrk,eeg}
    eeg_dataset/source_data/sub-XX/ses-YY/beh/sub-XX_ses-YY_task-train_part-ZZ_beh.mat  (and task-test)
    image_set/training_images/00001_aardvark/aardvark_01b.jpg ...
    image_set/test_images/00001_aircraft_carrier/aircraft_carrier_06s.jpg ...
    image_set/image_metadata.npy                                          dict of the sorted image lists

The preprocessed files are ``np.save`` of a dict (a pickle): they are read only from inside the
dataset root the user chose (a published, documented format), never from anywhere else.
Image condition ``i`` (0-based) of a file is the ``i``-th image of the sorted image list
(``image_metadata['train_img_files'][i]``); stimulus ids are the image file stems
(``aardvark_01b``), shared with THINGS-fMRI and THINGS images (:func:`~brainlid.data.things_images.image_id`).

Output: :class:`~brainlid.data.BrainData` with axes ``(stimulus, channel, time)`` (repetitions
averaged) or ``(stimulus, rep, channel, time)`` (kept), ``times`` in seconds, one ``units`` row per
channel (name, type, standard 10-05 position in metres, ``roi:`` groups ``occipital``,
``parietal``, ``parieto-occipital``, ``posterior``) and a per-channel, per-time noise ceiling: the
split-half reliability across repetitions with the Spearman–Brown correction
(:func:`brainlid.data.reliability.split_half_reliability`), clipped at 0 (METHODS §6).

The raw path (:func:`load_raw`) reads the BrainVision recordings with MNE and follows the
authors' recipe (``gifale95/eeg_encoding`` ``02_eeg_preprocessing``): occipital/parietal channels
(``^O *|^P *``), epochs −0.2…0.8 s around each image onset, baseline correction on −0.2…0 s,
resampling of the epochs to 100 Hz, optional multivariate noise normalisation (MVNN) per
session, and sorting of the repetitions by image condition.

Reference: Gifford, Dwivedi, Roig & Cichy (2022), "A large and rich EEG dataset for modeling
human visual object recognition", NeuroImage 264:119754.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import data_root
from ..errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError
from ._subjects import bids_subject
from .provenance import detect_data_source
from .reliability import split_half_reliability
from .brain import BrainData
from .cards import Loaded, check_frame, get_card, probe
from .stimuli import FileReader, StimulusSet
from .things_images import count_concept_folders, image_ids

__all__ = [
    "FOLDER",
    "CARD",
    "load",
    "load_brain",
    "load_raw",
    "load_stimuli",
    "image_table",
    "read_npy_dict",
    "read_beh_events",
    "epoch_recording",
    "mvnn_whitener",
    "eeg_noise_ceiling",
    "distinct_half_splits",
    "channel_table",
    "check",
]

FOLDER = "things_eeg2"
CARD = "things_eeg2"
_PREP_FILES = {"train": "preprocessed_eeg_training.npy", "test": "preprocessed_eeg_test.npy"}
_PREP_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
_META_KEYS = ("train_img_files", "train_img_concepts", "test_img_files", "test_img_concepts")
_IMG_KEYS = {"train": "training_images", "test": "test_images"}
DEFAULT_PICKS = r"^O *|^P *"
TARGET_CODE = 99999


# --------------------------------------------------------------------------- small helpers
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
        import mne

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


# --------------------------------------------------------------------------- noise ceiling, averaging
def distinct_half_splits(n_reps: int) -> int:
    """Number of distinct ways to split ``n_reps`` repetitions into two halves of ``⌊n/2⌋`` (unordered).

    ``C(n, n/2) / 2`` for even n (3 for THINGS-EEG2's 4 training repetitions), ``C(n, ⌊n/2⌋) · ⌈n/2⌉ / 2``
    when one repetition is left out for odd n; at least 1.
    """
    from math import comb

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


# --------------------------------------------------------------------------- preprocessed files
def _validate_prep(d: dict, path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    data = d["preprocessed_eeg_data"]
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.dtype.kind not in "fiu":
        raise FileFormatError(
            f"{path}: preprocessed_eeg_data must be a numeric array (image, rep, channel, time); "
            f"got {type(data).__name__} {getattr(data, 'shape', '')}"
        )
    ch_names = [str(c) for c in np.asarray(d["ch_names"]).ravel()]
    times = np.asarray(d["times"], dtype=np.float64).ravel()
    if len(ch_names) != data.shape[2]:
        raise FileFormatError(f"{path}: {len(ch_names)} ch_names but preprocessed_eeg_data has {data.shape[2]} channels (axis 2 of {data.shape})")
    if times.size != data.shape[3]:
        raise FileFormatError(f"{path}: {times.size} times but preprocessed_eeg_data has {data.shape[3]} samples (axis 3 of {data.shape})")
    if not np.all(np.isfinite(times)) or (times.size > 1 and np.any(np.diff(times) <= 0)):
        raise FileFormatError(f"{path}: times must be finite and increasing")
    return data, ch_names, times


def _times_in_seconds(times: np.ndarray) -> tuple[np.ndarray, str]:
    """THINGS-EEG2 stores seconds (−0.2…0.79); a copy in milliseconds is converted."""
    if np.nanmax(np.abs(times)) > 20:
        return times / 1000.0, "ms"
    return times, "s"


def _load_prep_split(r: Path, sub: str, split: str, prep_dir, average_reps: bool, noise_ceiling: bool, nc_splits: int, seed):
    if prep_dir is None:
        path = get_card(CARD).file(r, f"preprocessed_{split}", subject=int(sub[4:]))
    else:
        path = r / prep_dir / sub / _PREP_FILES[split]
    d = read_npy_dict(path, r, required=_PREP_KEYS)
    data, ch_names, times = _validate_prep(d, path)
    table = image_table(r, split)
    if len(table) != data.shape[0]:
        raise StimulusMismatchError(
            f"{path} has {data.shape[0]} image conditions but the {split} image list has {len(table)} images "
            f"({'image_metadata.npy' if _find_image_metadata(r) else 'image folders'} under {r})"
        )
    nc = None
    if noise_ceiling and data.shape[1] >= 2:
        nc = eeg_noise_ceiling(data, n_splits=nc_splits, seed=seed)
    if average_reps:
        resp, n_reps = _mean_reps(data)
    else:
        resp = data.astype(np.float32)
        n_reps = np.sum(~np.all(np.isnan(resp), axis=(2, 3)), axis=1)
    del d, data
    return resp, n_reps, nc, ch_names, times, table, path


def load(root=None, subject=1, split: str = "train", average_reps: bool = True, **options):
    """Load one THINGS-EEG2 subject: ``Loaded(stimuli, brain)``, unpacking as ``stimuli, brain = load(...)``.

    ``brain`` is :func:`load_brain`'s :class:`BrainData` (all options are passed on, e.g.
    ``source="raw"``, ``noise_ceiling=False``); ``stimuli`` is a :class:`StimulusSet` with the same
    ids in the same order (metadata ``file``, ``concept``, ``concept_things``, ``split``, ``path``)
    that reads the images from ``image_set/`` when they are present (reader ``None`` otherwise).
    """
    brain = load_brain(root, subject, split, average_reps, **options)
    return Loaded(_stimuli_for(_root(root), brain), brain)


def _stimuli_for(r: Path, brain: BrainData) -> StimulusSet:
    tables = []
    for s in ("train", "test"):
        if s in brain.splits:
            t = image_table(r, s)
            t["split"] = s
            tables.append(t)
    table = pd.concat(tables, ignore_index=True).set_index("stimulus_id").loc[brain.stimulus_ids].reset_index()
    reader = FileReader([r / p for p in table["path"]]) if (table["path"] != "").all() else None
    return StimulusSet(ids=table["stimulus_id"].to_numpy(), metadata=table.drop(columns="stimulus_id"), reader=reader, name=f"things_eeg2-{brain.subject}-{'+'.join(brain.splits)}")


def load_brain(
    root=None,
    subject=1,
    split: str = "train",
    average_reps: bool = True,
    *,
    source: str = "preprocessed",
    preprocessed_dir: str | None = None,
    noise_ceiling: bool = True,
    nc_splits: int | None = None,
    seed: int | None = 0,
    **raw_options,
) -> BrainData:
    """One THINGS-EEG2 subject as time-resolved :class:`BrainData` (what :func:`load` wraps).

    Parameters
    ----------
    root : path-like or None
        The dataset's project directory (holding ``eeg_dataset/`` and ``image_set/``). Default
        ``$BRAINLID_DATA/things_eeg2``, else ``~/brainlid_data/things_eeg2``.
    subject : int or str
        1..10 or ``"sub-01"``.
    split : {"train", "test", "both"}
        Training images (16,540 × 4 repetitions), test images (200 × 80) or both (averaged
        only; ids of both, ``splits`` ``{"train", "test"}``).
    average_reps : bool
        ``(stimulus, channel, time)`` averaged over repetitions, or ``(stimulus, rep, channel, time)``.
    source : {"preprocessed", "raw"}
        The published preprocessed ``.npy`` files, or the BrainVision recordings through
        :func:`load_raw` (``raw_options`` are passed on: ``mvnn``, ``sfreq``, ``tmin``, ``tmax``, ...).
    preprocessed_dir : str or None
        Folder of the ``sub-XX/`` folders relative to ``root`` (default: the card's
        ``eeg_dataset/preprocessed_data``), e.g. a 250 Hz re-preprocessing with 63 channels;
        shapes are read from the files, never assumed.
    noise_ceiling : bool
        Compute the split-half (Spearman–Brown) reliability per channel and time. With
        ``split="both"`` it is the test split's (the split scores are computed on).
    nc_splits, seed
        Number of random split-halves (default ``min(10, distinct splits)``, see
        :func:`eeg_noise_ceiling`) and their seed.

    Returns
    -------
    BrainData
        ``dataset="things_eeg2"``, ``space="eeg"``, ``times`` in seconds, ``units`` from
        :func:`channel_table`, ``n_reps`` per image, ``splits`` named after the split(s).

    Notes
    -----
    Memory: the dict's array is read once (1× the file); repetitions are averaged chunk by chunk
    into the float32 output and the ceiling is computed on small (channel, time) blocks, so the
    extra peak stays below 1.3× the file size (``python -m benchmarks things``).
    """
    _check_split(split)
    if source == "raw":
        if split == "both":
            raise InputError("source='raw' loads one split at a time: use split='train' or 'test'")
        return load_raw(root, subject, split, average_reps, noise_ceiling=noise_ceiling, nc_splits=nc_splits, seed=seed, **raw_options)
    if source != "preprocessed":
        raise InputError(f"source must be 'preprocessed' or 'raw', got {source!r}")
    if raw_options:
        raise InputError(f"unexpected option(s) for source='preprocessed': {sorted(raw_options)}")
    if split == "both" and not average_reps:
        raise InputError("split='both' needs average_reps=True (80 test vs 4 training repetitions would be NaN-padded to 80)")
    r = _root(root)
    sub = _sub(subject)
    prep_dir = preprocessed_dir
    splits = ["train", "test"] if split == "both" else [split]
    parts = [_load_prep_split(r, sub, s, prep_dir, average_reps, noise_ceiling, nc_splits, seed) for s in splits]
    ch0, t0 = parts[0][3], parts[0][4]
    for p in parts[1:]:
        if p[3] != ch0 or p[4].shape != t0.shape or not np.allclose(p[4], t0):
            raise FileFormatError(f"{p[6]} has different channels or times than {parts[0][6]}")
    times, time_unit = _times_in_seconds(t0)
    if len(parts) == 1:
        resp, n_reps, nc, table = parts[0][0], parts[0][1], parts[0][2], parts[0][5]
    else:
        resp = np.concatenate([p[0] for p in parts])
        n_reps = np.concatenate([p[1] for p in parts])
        nc = parts[-1][2]
        table = pd.concat([p[5] for p in parts], ignore_index=True)
    split_ids = {s: p[5]["stimulus_id"].to_numpy() for s, p in zip(splits, parts)}
    return BrainData(
        responses=resp,
        stimulus_ids=table["stimulus_id"].to_numpy(),
        units=channel_table(ch0),
        times=times,
        noise_ceiling=nc,
        n_reps=n_reps,
        splits=split_ids,
        subject=sub,
        dataset="things_eeg2",
        space="eeg",
        has_reps=not average_reps,
        meta={
            "source": "preprocessed",
            "data_source": detect_data_source(r),
            "files": [str(p[6].relative_to(r)) for p in parts],
            "split": split,
            "times_unit_in_file": time_unit,
            "noise_ceiling": ("split-half Spearman-Brown r_sb clipped at 0" + (" (test split)" if split == "both" else "")) if nc is not None else None,
            "nc_splits": nc_splits,
            "concepts": table["concept"].tolist(),
        },
    )


# --------------------------------------------------------------------------- raw BrainVision path
def read_beh_events(path) -> np.ndarray:
    """Image condition numbers of one recording, in presentation order, from its ``beh.mat``.

    ``loadmat(path)['data']`` is a 1×1 struct with fields ``paradigm_info, subject_info, images``;
    ``images`` is a 1×N struct array whose ``tot_img_number`` field is the condition (1-based;
    ``0`` marks a target trial). Returns int64 ``(N,)``.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"THINGS-EEG2 behavioural file not found: {path} (it gives the image of every EEG event)")
    try:
        mat = loadmat(path)
        data = mat["data"][0][0]
        images = data["images"] if "images" in (data.dtype.names or ()) else data[2]
        values = np.ravel(images["tot_img_number"])
        return np.asarray([int(np.ravel(v)[0]) for v in values], dtype=np.int64)
    except (KeyError, IndexError, ValueError, TypeError, NotImplementedError) as exc:
        raise FileFormatError(f"{path}: cannot read data.images.tot_img_number ({type(exc).__name__}: {exc})") from exc


def epoch_recording(vhdr, beh, *, tmin: float = -0.2, tmax: float = 0.8, sfreq: float | None = 100.0, picks: str | None = DEFAULT_PICKS):
    """Epoch one BrainVision recording the THINGS-EEG2 way.

    Reads ``vhdr`` with :func:`mne.io.read_raw_brainvision`, takes the events from its
    ``Stimulus/...`` markers (the authors drop the first annotation, the "New Segment" marker;
    keeping only stimulus markers is the same when MNE reports that marker, and still right when
    it does not), labels them with the conditions of
    ``beh`` (:func:`read_beh_events`), drops target trials (condition 0), keeps the channels
    matching the regular expression ``picks``, epochs ``tmin…tmax`` s with baseline correction on
    ``tmin…0`` s, and resamples the epochs to ``sfreq`` Hz (``None`` keeps the recording's rate).

    Returns
    -------
    data : ndarray of shape (n_events, n_channels, n_times) float64, volts
    codes : ndarray of shape (n_events,) int64, image conditions (1-based)
    ch_names : list of str
    times : ndarray of shape (n_times,), seconds
    """
    import mne

    vhdr, beh = Path(vhdr), Path(beh)
    if not vhdr.exists():
        raise DatasetNotFoundError(f"THINGS-EEG2 recording not found: {vhdr}")
    try:
        raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
    except (OSError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"cannot read BrainVision recording {vhdr}: {exc}") from exc
    stim = [d for d in np.unique(raw.annotations.description) if str(d).startswith("Stimulus/")]
    try:
        events, _ = mne.events_from_annotations(raw, event_id={d: i + 1 for i, d in enumerate(stim)}, verbose="error") if stim else (None, None)
    except ValueError:
        events = None
    codes = read_beh_events(beh)
    if events is None or len(events) == 0:
        raise FileFormatError(f"{vhdr} has no stimulus events (no 'Stimulus/...' markers in its .vmrk); {beh.name} lists {len(codes)} images")
    events = events.copy()
    if len(events) != len(codes):
        raise FileFormatError(f"{vhdr} has {len(events)} stimulus events, but {beh} lists {len(codes)} images")
    events[:, 2] = codes
    events = events[codes != 0]
    if not len(events):
        raise FileFormatError(f"{vhdr}: every event is a target trial; no image events to epoch")
    if picks:
        idx = mne.pick_channels_regexp(raw.ch_names, picks)
        if len(idx) == 0:
            raise FileFormatError(f"{vhdr}: no channel matches {picks!r} (channels: {raw.ch_names[:10]}...)")
        raw.pick([raw.ch_names[i] for i in idx])
    epochs = mne.Epochs(raw, events, tmin=tmin, tmax=tmax, baseline=(None, 0), preload=True, reject=None, flat=None, verbose="error")
    if len(epochs) < len(events):
        warnings.warn(f"{vhdr}: {len(events) - len(epochs)} event(s) too close to the recording's edges were dropped", RuntimeWarning, stacklevel=2)
    if sfreq is not None and sfreq < raw.info["sfreq"]:
        epochs.resample(sfreq, verbose="error")
    return epochs.get_data(copy=False), epochs.events[:, 2].astype(np.int64), list(epochs.ch_names), epochs.times.copy()


def _shrunk_cov(x: np.ndarray) -> np.ndarray:
    """Ledoit–Wolf covariance of ``x`` (n_samples, n_channels) on standardised channels, rescaled.

    The estimator scikit-learn's LDA uses for ``shrinkage='auto'`` (and THINGS-EEG2's MVNN).
    """
    from sklearn.covariance import ledoit_wolf

    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    s, _ = ledoit_wolf((x - x.mean(axis=0)) / sd)
    return sd[:, None] * s * sd[None, :]


def mvnn_whitener(data: np.ndarray, codes: np.ndarray, dim: str = "epochs") -> np.ndarray:
    """Multivariate noise normalisation matrix Σ^(−1/2) of one session (Guggenmos et al. 2018).

    Σ is a shrinkage (Ledoit–Wolf) covariance of the channels, computed per image condition and
    averaged: with ``dim="epochs"`` over time within each epoch (then averaged over the
    condition's epochs), with ``dim="time"`` over the condition's repetitions at each time point
    (then averaged over time). Whitened data are ``Σ^(−1/2) x`` per epoch and time.

    Parameters
    ----------
    data : ndarray of shape (n_epochs, n_channels, n_times)
    codes : ndarray of shape (n_epochs,)
        Image condition of each epoch.
    dim : {"epochs", "time"}

    Returns
    -------
    W : ndarray of shape (n_channels, n_channels), symmetric.
    """
    if dim not in ("epochs", "time"):
        raise InputError(f"mvnn dim must be 'epochs' or 'time', got {dim!r}")
    n_ch = data.shape[1]
    sigmas = []
    for c in np.unique(codes):
        cd = data[codes == c]
        if dim == "epochs":
            sigmas.append(np.mean([_shrunk_cov(e.T) for e in cd], axis=0))
        elif cd.shape[0] >= 2:
            sigmas.append(np.mean([_shrunk_cov(cd[:, :, t]) for t in range(cd.shape[2])], axis=0))
    if not sigmas:
        raise InputError("MVNN over time needs conditions with at least 2 repetitions in the session")
    sigma = np.mean(sigmas, axis=0)
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    floor = max(w.max(), 1e-300) * 1e-12
    w = np.clip(w, floor, None)
    assert v.shape == (n_ch, n_ch)
    return (v * w ** -0.5) @ v.T


def _raw_recordings(r: Path, sub: str, split: str, sessions=None) -> list[tuple[str, list[tuple[Path, Path]]]]:
    card = get_card(CARD)
    n = int(sub[4:])
    base = card.file(r, "source_dir", subject=n)
    if not base.is_dir():
        raise card.not_found(base, "source data folder", subject=n)
    found = sorted(int(m.group(1)) for p in base.glob("ses-*") if p.is_dir() and (m := re.fullmatch(r"ses-(\d+)", p.name)))
    if sessions is not None:
        want = {int(str(x).replace("ses-", "")) for x in sessions}
        found = [x for x in found if x in want]
    out = []
    for ses in found:
        if split == "train":
            pairs, part = [], 1
            while card.file(r, "raw_train", subject=n, session=ses, part=part).exists():
                pairs.append((card.file(r, "raw_train", subject=n, session=ses, part=part), card.file(r, "beh_train", subject=n, session=ses, part=part)))
                part += 1
        else:
            v = card.file(r, "raw_test", subject=n, session=ses)
            pairs = [(v, card.file(r, "beh_test", subject=n, session=ses))] if v.exists() else []
        if pairs:
            out.append((f"ses-{ses:02d}", pairs))
    if not out:
        raise card.not_found(card.file(r, f"raw_{split}", subject=n, session=1, part=1), f"{split} BrainVision recording", subject=n)
    return out


def load_raw(
    root=None,
    subject=1,
    split: str = "train",
    average_reps: bool = True,
    *,
    sessions=None,
    mvnn: bool = False,
    mvnn_dim: str = "epochs",
    sfreq: float | None = 100.0,
    tmin: float = -0.2,
    tmax: float = 0.8,
    picks: str | None = DEFAULT_PICKS,
    max_reps: int | None = None,
    noise_ceiling: bool = True,
    nc_splits: int | None = None,
    seed: int | None = 0,
) -> BrainData:
    """Preprocess the raw BrainVision recordings of one subject into the same :class:`BrainData` as :func:`load_brain`.

    Every recording of the split (training parts 01–05 of every session, or the test recording
    of every session) is epoched with :func:`epoch_recording`; with ``mvnn`` each session's
    epochs are whitened with its own :func:`mvnn_whitener` (the authors pool the session's test
    and training covariances; here the loaded split's own epochs are used). Repetitions of each
    image condition are collected in session/recording order; ragged counts are NaN-padded.

    Parameters
    ----------
    root, subject, split, average_reps
        As in :func:`load` (``split`` "train" or "test").
    sessions : list of int or None
        Sessions to use (default all ``ses-*`` folders).
    mvnn, mvnn_dim
        Multivariate noise normalisation per session (off by default).
    sfreq, tmin, tmax, picks
        Epoching options of :func:`epoch_recording` (authors: 100 Hz, −0.2…0.8 s, ``^O *|^P *``).
    max_reps : int or None
        Keep at most this many repetitions per image (the first ones).
    noise_ceiling, nc_splits, seed
        As in :func:`load`.

    Returns
    -------
    BrainData
        Units in volts without MVNN (whitened, arbitrary units with it); ``meta["source"] == "raw"``.
    """
    _check_split(split, ("train", "test"))
    r = _root(root)
    sub = _sub(subject)
    table = image_table(r, split)
    n_cond = len(table)
    data_all, codes_all = [], []
    ch_names = times = None
    for ses, pairs in _raw_recordings(r, sub, split, sessions):
        ses_data, ses_codes = [], []
        for vhdr, beh in pairs:
            d, c, ch, t = epoch_recording(vhdr, beh, tmin=tmin, tmax=tmax, sfreq=sfreq, picks=picks)
            if ch_names is None:
                ch_names, times = ch, t
            elif ch != ch_names or t.shape != times.shape:
                raise FileFormatError(f"{vhdr}: channels or epoch length differ from the first recording ({len(ch)} vs {len(ch_names)} channels)")
            if c.max() > n_cond or c.min() < 1:
                raise StimulusMismatchError(f"{beh} names image conditions up to {c.max()} but the {split} image list has {n_cond} images")
            ses_data.append(d)
            ses_codes.append(c)
        d = np.concatenate(ses_data)
        c = np.concatenate(ses_codes)
        if mvnn:
            W = mvnn_whitener(d, c, dim=mvnn_dim)
            d = np.einsum("dc,nct->ndt", W, d)
        data_all.append(d.astype(np.float32))
        codes_all.append(c)
    data = np.concatenate(data_all)
    codes = np.concatenate(codes_all)
    del data_all
    present = np.unique(codes)
    counts = np.bincount(codes, minlength=n_cond + 1)[present]
    n_rep = int(counts.max()) if max_reps is None else int(min(counts.max(), max_reps))
    reps = np.full((present.size, n_rep) + data.shape[1:], np.nan, dtype=np.float32)
    row = np.searchsorted(present, codes)
    slot = np.zeros(present.size, dtype=np.int64)
    for i in range(codes.size):  # keeps session / recording order of the repetitions
        k = row[i]
        if slot[k] < n_rep:
            reps[k, slot[k]] = data[i]
            slot[k] += 1
    del data
    nc = eeg_noise_ceiling(reps, n_splits=nc_splits, seed=seed) if noise_ceiling and n_rep >= 2 and np.sum(slot >= 2) >= 3 else None
    if average_reps:
        resp, n_reps = _mean_reps(reps)
    else:
        resp, n_reps = reps, slot.copy()
    sel = table.iloc[present - 1].reset_index(drop=True)
    missing = n_cond - present.size
    return BrainData(
        responses=resp,
        stimulus_ids=sel["stimulus_id"].to_numpy(),
        units=channel_table(ch_names),
        times=np.asarray(times, dtype=np.float64),
        noise_ceiling=nc,
        n_reps=n_reps,
        splits={split: sel["stimulus_id"].to_numpy()},
        subject=sub,
        dataset="things_eeg2",
        space="eeg",
        has_reps=not average_reps,
        meta={
            "source": "raw",
            "data_source": detect_data_source(r),
            "split": split,
            "mvnn": bool(mvnn),
            "mvnn_dim": mvnn_dim if mvnn else None,
            "sfreq": sfreq,
            "tmin": tmin,
            "tmax": tmax,
            "picks": picks,
            "units": "whitened (MVNN)" if mvnn else "V",
            "conditions_without_events": int(missing),
            "concepts": sel["concept"].tolist(),
        },
    )


# --------------------------------------------------------------------------- check
def _npy_detail(path: Path) -> str:
    """Checks the ``.npy`` header (an object array, i.e. a pickled dict) without unpickling."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        version = fmt.read_magic(fh)
        _, _, dtype = fmt.read_array_header_1_0(fh) if version == (1, 0) else fmt.read_array_header_2_0(fh)
        if dtype != np.dtype(object):
            raise FileFormatError(f"{path} is not an np.save of a dict")
    return f"{path.stat().st_size / 1e6:.1f} MB pickled dict"


def check(root=None, subject=None) -> pd.DataFrame:
    """What of THINGS-EEG2 is present: one row per (subject, item), status present / missing / unreadable."""
    card = get_card(CARD)
    r = card.root(root, must_exist=False)
    rows = []

    for key in ("image_metadata", "training_images", "test_images"):
        status, detail = probe(card.file(r, key), count_concept_folders if key.endswith("images") else _npy_detail)
        rows.append({"subject": None, "space": "eeg", "item": card.relpath(key), "status": status, "detail": detail})
    subs = [_num(s) for s in np.atleast_1d(subject)] if subject is not None else list(card.subjects.get("ids", [1]))
    for n in subs:
        for key in ("preprocessed_train", "preprocessed_test"):
            status, detail = probe(card.file(r, key, subject=n), _npy_detail)
            rows.append({"subject": n, "space": "eeg", "item": card.relpath(key, subject=n), "status": status, "detail": detail})
        src = card.file(r, "source_dir", subject=n)
        n_vhdr = len(list(src.glob("ses-*/eeg/*_eeg.vhdr"))) if src.is_dir() else 0
        rows.append({"subject": n, "space": "eeg", "item": card.relpath("source_dir", subject=n) + " (optional raw)",
                     "status": "present" if n_vhdr else "missing", "detail": f"{n_vhdr} BrainVision recordings" if n_vhdr else str(src)})
    return check_frame(rows)
