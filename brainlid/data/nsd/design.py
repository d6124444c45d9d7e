"""NSD layout constants and experimental design: subjects, spaces, session files, trials → images, splits.

Position ``k`` of session file ``NN`` is global trial ``g = (NN-1)·T + k``; its image is
``subjectim[subject-1, masterordering[g]-1]`` (both 1-based in ``nsd_expdesign.mat``) and the
stimulus id is that 73k id minus 1 (:func:`trial_ids`). Session files are found from the dataset
card's templates (:func:`find_sessions`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError, StimulusMismatchError
from ..cards import get_card
from ..ids import ids_in

__all__ = ["CARD", "SPACES", "VOLUME_SPACES", "BETA_VERSIONS", "SUBJECTS", "SPLITS", "trial_ids", "find_sessions"]


CARD = "nsd"


SPACES = ("func1pt8mm", "func1mm", "nativesurface", "fsaverage")


VOLUME_SPACES = ("func1pt8mm", "func1mm")


BETA_VERSIONS = ("betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf")


SUBJECTS = tuple(range(1, 9))


SPLITS = ("shared1000", "algonauts")


_ALGONAUTS_SHARED_SUBJECTS = (1, 2, 5, 7)


_SESSION_RE = re.compile(r"^(?:(lh|rh)\.)?betas_session(\d{2})\.(hdf5|nii\.gz|nii|mat|mgh)$")


def _check_subject(subject) -> int:
    try:
        s = int(subject)
    except (TypeError, ValueError) as exc:
        raise InputError(f"NSD subject must be an integer 1-8, got {subject!r}") from exc
    if s != subject or s not in SUBJECTS:
        raise InputError(f"NSD subject {subject!r} out of range: NSD has subjects 1-8")
    return s


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise InputError(f"unknown NSD space {space!r}; spaces: {', '.join(SPACES)}")
    return space


def trial_ids(expdesign: dict, subject: int, sessions: Sequence[int], n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based 73k ids and global trial numbers of every trial of ``sessions`` (session order, then position).

    ``g = (s-1)·n_trials + k``; id = ``subjectim[subject-1, masterordering[g]-1] - 1``.

    Raises
    ------
    StimulusMismatchError
        When the design has fewer trials than the sessions need (expdesign/betas mismatch).
    """
    mo, si = expdesign["masterordering"], expdesign["subjectim"]
    sessions = np.asarray(list(sessions), dtype=np.int64)
    need = int(sessions.max()) * n_trials
    if need > mo.size:
        raise StimulusMismatchError(
            f"expdesign/betas mismatch: session {int(sessions.max())} with {n_trials} trials per session needs "
            f"{need} trials but nsd_expdesign.mat's masterordering has {mo.size}"
        )
    if subject > si.shape[0]:
        raise StimulusMismatchError(f"nsd_expdesign.mat's subjectim has {si.shape[0]} rows; no subject {subject}")
    g = ((sessions[:, None] - 1) * n_trials + np.arange(n_trials)[None, :]).ravel()
    idx10k = mo[g]
    return si[subject - 1, idx10k - 1] - 1, g


def find_sessions(root, subject: int, space: str, beta: str = BETA_VERSIONS[0], fmt: str = "auto") -> dict[int, dict[str, Path]]:
    """Session files present for a subject and space: ``{session: {"": path}}`` for volumes
    (HDF5 preferred over NIfTI unless ``fmt`` says otherwise) and ``{session: {"lh": path, "rh": path}}``
    for surfaces (a session needs both hemispheres to be listed; ``"lh"``/``"rh"`` alone are kept too)."""
    card = get_card(CARD)
    d = card.file(Path(root), "betas_dir", subject=subject, space=space, beta=beta)
    if not d.is_dir():
        return {}
    pref = {"auto": ("hdf5", "mat", "nii.gz", "nii"), "hdf5": ("hdf5", "mat"), "nifti": ("nii.gz", "nii")}[fmt]
    found: dict[int, dict[str, tuple[int, Path]]] = {}
    for p in d.iterdir():
        m = _SESSION_RE.match(p.name)
        if not m:
            continue
        hemi, sess, ext = m.group(1) or "", int(m.group(2)), m.group(3)
        if space in VOLUME_SPACES and (hemi or ext not in pref):
            continue
        if space == "nativesurface" and (not hemi or ext != "hdf5"):
            continue
        if space == "fsaverage" and (not hemi or ext != "mgh"):
            continue
        rank = pref.index(ext) if ext in pref else 0
        slot = found.setdefault(sess, {})
        if hemi not in slot or rank < slot[hemi][0]:
            slot[hemi] = (rank, p)
    return {s: {h: v[1] for h, v in sorted(slots.items())} for s, slots in sorted(found.items())}


def _ranges(vals: Sequence[int]) -> str:
    vals = sorted(vals)
    out, start = [], vals[0]
    for a, b in zip(vals, vals[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def _session_path(card, root, subject, space, beta, session, fmt, hemi) -> Path:
    if space in VOLUME_SPACES:
        key = "betas_nifti" if fmt == "nifti" else "betas_hdf5"
        return card.file(root, key, subject=subject, space=space, beta=beta, session=session)
    key = "betas_surf_hdf5" if space == "nativesurface" else "betas_fsavg_mgh"
    return card.file(root, key, subject=subject, beta=beta, session=session, hemi=hemi)


def _occurrence(pos: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements had the same value (0 for the first)."""
    order = np.argsort(pos, kind="stable")
    sp = pos[order]
    starts = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, sp.size]))
    out = np.empty_like(pos)
    out[order] = np.arange(sp.size) - run_start
    return out


def _splits(split, stim_ids, shared, ids_per_trial, sessions, n_trials, subject) -> dict[str, np.ndarray]:
    if split == "shared1000":
        return {"train": stim_ids[~shared], "test": stim_ids[shared]}
    last = max(sessions)
    if last < 4:
        raise InputError(f"the Algonauts split holds out the last 3 sessions; only sessions up to {last} are loaded")
    sess_of_trial = np.repeat(np.asarray(sessions), n_trials)
    early = sess_of_trial <= last - 3
    train = np.unique(ids_per_trial[early])
    late_only = np.setdiff1d(np.unique(ids_per_trial[~early]), train)
    shared_ids = stim_ids[shared]
    test = np.setdiff1d(late_only, shared_ids)
    if subject in _ALGONAUTS_SHARED_SUBJECTS:
        ids_late, counts = np.unique(ids_per_trial[~early], return_counts=True)
        full = ids_late[(counts >= 3) & ids_in(ids_late, shared_ids) & ids_in(ids_late, late_only)]
        test = np.union1d(test, full)
    return {"train": train, "test": test}
