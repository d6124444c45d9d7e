"""THINGS-EEG2 from the published preprocessed files (``preprocessed_eeg_{training,test}.npy``), and
:func:`check` of a copy.

:func:`load_brain` reads the files (or hands ``source="raw"`` to :func:`~.raw.load_raw`),
averages repetitions chunk by chunk and computes the ceiling; :func:`load` pairs the result
with its images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import FileFormatError, InputError, StimulusMismatchError
from ..brain import BrainData
from ..cards import Loaded, check_frame, get_card, probe
from ..ids import positions_of
from ..provenance import detect_data_source
from ..stimuli import FileReader, StimulusSet
from ..things_images import count_concept_folders
from .raw import load_raw
from .shared import (
    CARD,
    _check_split,
    _find_image_metadata,
    _mean_reps,
    _num,
    _root,
    _sub,
    channel_table,
    eeg_noise_ceiling,
    image_table,
    read_npy_dict,
)

__all__ = ["load", "load_brain", "check"]


_PREP_FILES = {"train": "preprocessed_eeg_training.npy", "test": "preprocessed_eeg_test.npy"}


_PREP_KEYS = ("preprocessed_eeg_data", "ch_names", "times")


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
    table = pd.concat(tables, ignore_index=True)
    pos = positions_of(table["stimulus_id"].to_numpy(), brain.stimulus_ids, where="the THINGS-EEG2 image lists",
                       names=("image list", brain.subject), error=StimulusMismatchError)
    table = table.iloc[pos].reset_index(drop=True)
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
