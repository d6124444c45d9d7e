"""NSD loader: :func:`load` assembles one subject's single-trial betas, units, splits and ceiling with
the images (the conventions are listed in :mod:`brainlid.data.nsd`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ...errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError
from .._mat import read_expdesign
from ..brain import BrainData
from ..cards import Loaded, get_card
from ..ids import ids_in
from ..provenance import detect_data_source
from ..reliability import nc_from_ncsnr
from ..stimuli import HDF5Reader, StimulusSet
from .design import (
    BETA_VERSIONS,
    CARD,
    SPACES,
    SPLITS,
    VOLUME_SPACES,
    _check_space,
    _check_subject,
    _occurrence,
    _ranges,
    _session_path,
    _splits,
    find_sessions,
    trial_ids,
)
from .readers import _n_trials, _read_session
from .rois import _resolve_rois, _roi_table, _units

__all__ = ["load"]


def load(
    root=None,
    subject: int = 1,
    space: str = "func1pt8mm",
    roi: str | Sequence[str] | None = "nsdgeneral",
    beta: str = "betas_fithrf_GLMdenoise_RR",
    sessions: Iterable[int] | None = None,
    zscore: bool = True,
    average_reps: bool = True,
    split: str = "shared1000",
    hemisphere: str = "both",
    fmt: str = "auto",
    images: bool = True,
) -> Loaded:
    """Load NSD single-trial betas of one subject, paired with their images.

    Parameters
    ----------
    root : path-like or None
        NSD root (the bucket layout: ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``);
        default ``$BRAINLID_DATA/nsd``, else ``~/brainlid_data/nsd``.
    subject : int
        1-8.
    space : {"func1pt8mm", "func1mm", "nativesurface", "fsaverage"}
    roi : str, list of str or None
        ROI name(s) (see the module docstring and :func:`available_rois`); ``None`` keeps every
        voxel of the grid / every vertex (large: mind the memory).
    beta : str
        Beta version folder (``betas_fithrf_GLMdenoise_RR`` recommended).
    sessions : iterable of int or None
        1-based sessions to load; default every session present (a gap is an error).
    zscore : bool
        Z-score each unit within each session (default True).
    average_reps : bool
        Average repetitions (default) or keep them as axis 1 (NaN-padded).
    split : {"shared1000", "algonauts"}
        Which train/test split to put in ``brain.splits``.
    hemisphere : {"both", "lh", "rh"}
        Units of one hemisphere only (volumes: from the ``roi/{lh,rh}.<roi>.nii.gz`` files).
    fmt : {"auto", "hdf5", "nifti"}
        Volume session files to read (auto: HDF5 when present, else NIfTI).
    images : bool
        Attach the lazy ``imgBrick`` reader (requires ``nsd_stimuli.hdf5``).

    Returns
    -------
    Loaded
        ``stimuli, brain = load(...)``. ``stimuli``: :class:`StimulusSet` with int ids (0-based 73k ids,
        ascending), metadata (``n_reps``, ``shared1000`` and, when ``nsd_stim_info_merged.csv`` is present,
        ``cocoId``, ``cocoSplit``, ``cropBox``). ``brain``: :class:`BrainData` with responses
        ``(stimulus, unit)`` or ``(stimulus, rep, unit)`` float32; units with ``i, j, k`` (volumes) or
        ``vertex`` (surfaces), ``hemisphere``, ``ncsnr`` and ``roi:<NAME>`` columns; ``noise_ceiling``
        (fraction); ``n_reps``; ``splits`` ``{"train", "test"}``.

    Raises
    ------
    DatasetNotFoundError
        Root, expdesign, session, ROI or image file missing (named, with how to get it).
    FileFormatError
        A file is truncated or not in the expected format (named).
    StimulusMismatchError
        expdesign and session files disagree (trial counts).
    InputError
        Bad subject, space, ROI name, split, or sessions.
    """
    card = get_card(CARD)
    subject = _check_subject(subject)
    space = _check_space(space)
    if beta not in BETA_VERSIONS:
        raise InputError(f"unknown NSD beta version {beta!r}; versions: {', '.join(BETA_VERSIONS)}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if hemisphere not in ("both", "lh", "rh"):
        raise InputError(f"hemisphere must be 'both', 'lh' or 'rh', got {hemisphere!r}")
    if fmt not in ("auto", "hdf5", "nifti"):
        raise InputError(f"fmt must be 'auto', 'hdf5' or 'nifti', got {fmt!r}")
    root = card.root(root)
    kw = {"subject": subject, "space": space}

    expdesign_p = card.require(card.file(root, "expdesign"), "experimental design", **kw)
    design = read_expdesign(expdesign_p)

    # sessions -------------------------------------------------------------------------------
    found = find_sessions(root, subject, space, beta, fmt)
    hemis = ("lh", "rh") if hemisphere == "both" else (hemisphere,)
    if not found:
        present = [s for s in SPACES if find_sessions(root, subject, s, beta)]
        raise card.not_found(card.file(root, "betas_dir", subject=subject, space=space, beta=beta),
                             f"{space} {beta} session files for subject {subject}",
                             extra=f"This copy has {', '.join(present) if present else 'no'} {beta} sessions for subject {subject}.", **kw)
    if sessions is None:
        wanted = sorted(found)
        gaps = [s for s in range(1, wanted[-1] + 1) if s not in found]
        if gaps:
            raise card.not_found(_session_path(card, root, subject, space, beta, gaps[0], fmt, hemis[0]),
                                 f"session {gaps[0]:02d} file",
                                 extra=f"Sessions present: {_ranges(wanted)}; pass sessions=[...] to load a subset.", **kw)
    else:
        wanted = sorted({int(s) for s in sessions})
        if not wanted or wanted[0] < 1:
            raise InputError(f"sessions must be 1-based session numbers, got {list(sessions)}")
        for s in wanted:
            if s not in found:
                raise card.not_found(_session_path(card, root, subject, space, beta, s, fmt, hemis[0]), f"session {s:02d} file", **kw)
    files = []
    for s in wanted:
        if space in VOLUME_SPACES:
            files.append({"": found[s][""]})
        else:
            miss = [h for h in hemis if h not in found[s]]
            if miss:
                raise card.not_found(_session_path(card, root, subject, space, beta, s, fmt, miss[0]), f"session {s:02d} {miss[0]} file", **kw)
            files.append({h: found[s][h] for h in hemis})
    counts = {(s, h): _n_trials(p) for s, fs in zip(wanted, files) for h, p in fs.items()}
    n_trials = set(counts.values())
    if len(n_trials) != 1:
        raise StimulusMismatchError(f"NSD session files of subject {subject} {space} have different trial counts: "
                                    + ", ".join(f"session {s:02d}{(' ' + h) if h else ''}: {n}" for (s, h), n in counts.items()))
    n_trials = n_trials.pop()
    ids_per_trial, _ = trial_ids(design, subject, wanted, n_trials)

    # units --------------------------------------------------------------------------------------
    fallbacks: list[str] = []
    table = _roi_table(root, subject, space, fallbacks)
    names = _resolve_rois(roi, table, space, subject)
    used_fallback = sorted({table[n].file for n in names or []} & set(fallbacks))
    if used_fallback:
        warnings.warn(f"NSD subject {subject} {space}: no .mgz.ctab for {', '.join(used_fallback)}; using the published "
                      "label codes (DATASETS.md §1.8)", stacklevel=2)
    units, unit_index = _units(root, card, subject, space, hemis, names, table, found[wanted[0]], beta)
    if space in VOLUME_SPACES and hemisphere != "both":
        if not (units["hemisphere"] != "").any():
            raise DatasetNotFoundError(f"hemisphere={hemisphere!r} needs the roi/lh.<roi>.nii.gz and rh.<roi>.nii.gz files of "
                                       f"subject {subject} {space}, which this copy lacks")
        keep = (units["hemisphere"] == hemisphere).to_numpy()
        units = units.loc[keep].reset_index(drop=True)
        unit_index = {"": unit_index[""][keep]}
    if len(units) == 0:
        raise InputError(f"ROI {names} has no {'voxels' if space in VOLUME_SPACES else 'vertices'} in subject {subject} {space}")

    # responses ----------------------------------------------------------------------------------
    stim_ids, trial_pos = np.unique(ids_per_trial, return_inverse=True)
    trial_pos = trial_pos.ravel()
    n_reps = np.bincount(trial_pos, minlength=stim_ids.size)
    rep_of_trial = _occurrence(trial_pos)
    n_units = len(units)
    if average_reps:
        resp = np.zeros((stim_ids.size, n_units), dtype=np.float32)
    else:
        resp = np.full((stim_ids.size, int(n_reps.max()), n_units), np.nan, dtype=np.float32)
    bad = np.zeros(n_units, dtype=bool)
    n_constant = 0
    for si, fs in enumerate(files):
        data = _read_session(space, fs, unit_index)  # (T, n_units) float32
        bad |= np.isnan(data).any(axis=0)
        if zscore:
            n_constant += _zscore_inplace(data)
        sel = slice(si * n_trials, (si + 1) * n_trials)
        pos, reps = trial_pos[sel], rep_of_trial[sel]
        if average_reps:
            for r in np.unique(reps):  # positions are unique within one repetition index
                m = reps == r
                resp[pos[m]] += data[m]
        else:
            resp[pos, reps] = data
        del data
    if average_reps:
        resp /= n_reps[:, None].astype(np.float32)
    meta = {"loader": "brainlid.data.nsd", "beta": beta, "sessions": wanted, "trials_per_session": int(n_trials),
            "zscore": bool(zscore), "split": split, "roi": names, "fmt": fmt, "constant_units": int(n_constant),
            "dropped_nan_units": int(bad.sum()), "labels_without_ctab": used_fallback,
            "data_source": detect_data_source(root)}
    if n_constant:
        warnings.warn(f"NSD subject {subject} {space}: {n_constant} unit-session(s) are constant (voxels outside the "
                      "brain mask are stored as 0) and were set to 0 by the z-scoring", stacklevel=2)
    if bad.any():
        warnings.warn(f"NSD subject {subject} {space}: dropping {int(bad.sum())} unit(s) with NaN betas", stacklevel=2)
        keep = ~bad
        resp = np.ascontiguousarray(resp[..., keep]) if not average_reps else np.ascontiguousarray(resp[:, keep])
        units = units.loc[keep].reset_index(drop=True)

    # splits and ceiling -------------------------------------------------------------------------
    shared = ids_in(stim_ids, design["sharedix"] - 1, names=("loaded", "shared1000"))
    splits = _splits(split, stim_ids, shared, ids_per_trial, wanted, n_trials, subject)
    nc = None
    if "ncsnr" in units:
        scored = ids_in(stim_ids, splits["test"], names=("loaded", "test")) if splits["test"].size else np.ones(stim_ids.size, bool)
        snr = units["ncsnr"].to_numpy(dtype=np.float64)
        nc = np.full(snr.shape, np.nan, dtype=np.float32)
        ok = np.isfinite(snr) & (snr >= 0)
        nc[ok] = nc_from_ncsnr(snr[ok], n_reps[scored])
        meta["noise_ceiling_reps"] = "test split" if splits["test"].size else "all stimuli"
    brain = BrainData(resp, stim_ids, units=units, noise_ceiling=nc, n_reps=n_reps, splits=splits,
                      subject=f"subj{subject:02d}", dataset="nsd", space=space, has_reps=not average_reps, meta=meta)

    # stimuli ------------------------------------------------------------------------------------
    metadata = pd.DataFrame({"nsd_id": stim_ids, "n_reps": n_reps, "shared1000": shared})
    csv_p = card.file(root, "stim_info")
    if csv_p.exists():
        info = _read_stim_info(csv_p)
        if info.shape[0] <= stim_ids.max():
            raise FileFormatError(f"{csv_p} has {info.shape[0]} rows; the design refers to nsd id {stim_ids.max()}")
        for col in ("cocoId", "cocoSplit", "cropBox"):
            if col in info:
                metadata[col] = info[col].to_numpy()[stim_ids]
    reader = None
    if images:
        stim_p = card.require(card.file(root, "stimuli"), "image file (nsd_stimuli.hdf5; pass images=False to load without images)", **kw)
        reader = HDF5Reader(stim_p, "imgBrick", rows=stim_ids, identity="nsd:nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5:imgBrick")
    stimuli = StimulusSet(stim_ids, metadata, reader, name=f"nsd-subj{subject:02d}")
    return Loaded(stimuli, brain)


def _zscore_inplace(data: np.ndarray) -> int:
    """Z-score columns of ``data`` (T, n) in place (float64 statistics, ddof=0); constant columns → 0."""
    mean = data.mean(axis=0, dtype=np.float64)
    var = np.square(data, dtype=np.float64).mean(axis=0) - mean**2  # one pass; recomputed below if unstable
    sd = np.sqrt(np.maximum(var, 0.0))
    unstable = sd < 1e-3 * (np.abs(mean) + 1e-12)
    if np.any(unstable):
        cols = np.flatnonzero(unstable)
        sd[cols] = data[:, cols].astype(np.float64).std(axis=0)
    const = sd == 0  # NaN columns (fsaverage) stay NaN and are dropped by the caller
    data -= mean.astype(np.float32)
    data *= (1.0 / np.where(const, 1.0, sd)).astype(np.float32)
    if const.any():
        data[:, const] = 0.0
    return int(const.sum())


def _read_stim_info(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, index_col=0, usecols=lambda c: c in ("Unnamed: 0", "cocoId", "cocoSplit", "cropBox", "nsdId", "shared1000") or c == "")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise FileFormatError(f"cannot read {path}: {exc}") from exc


# ------------------------------------------------------------------------------------------ check


