"""Brain RDMs: datasets published as representational dissimilarity matrices.

Many classic brain datasets (Kriegeskorte et al. 2008's 92 images, the Algonauts
2019 fMRI/MEG RDMs of Cichy et al. 2014/2016) are released as RDMs, not as
responses. :class:`BrainRDMs` holds one ROI's RDMs for every subject and
session, over stimulus ids, in condensed form (the n(n-1)/2 upper-triangle
entries in :func:`scipy.spatial.distance.squareform` order, float32).

Square matrices are validated on the way in (:func:`check_square_rdms`): square,
finite, symmetric and zero on the diagonal, each failure rejected with its
reason and the offending subject/session; the number of stimuli must agree with
the stimulus ids and with the images of an attached :class:`~brainlid.data.StimulusSet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError, StimulusMismatchError
from .condensed import condensed_positions, condensed_subset, n_from_condensed, square_rdm
from .ids import as_ids, positions_of
from .stimuli import StimulusSet

__all__ = [
    "BrainRDMs",
    "RDMDataset",
    "check_square_rdms",
    "condensed_positions",
    "condensed_subset",
    "n_from_condensed",
    "square_rdm",
]

#: relative tolerance (times the largest |dissimilarity|) for symmetry and the zero diagonal
RDM_RTOL = 1e-5


def _where(index: tuple, labels: tuple[Sequence[str] | None, ...] | None) -> str:
    if not index:
        return ""
    parts = []
    for ax, i in enumerate(index):
        lab = labels[ax] if labels is not None and ax < len(labels) and labels[ax] is not None else None
        parts.append(str(lab[i]) if lab is not None else str(i))
    return " (RDM " + ", ".join(parts) + ")"


def check_square_rdms(rdms, name: str = "RDMs", *, rtol: float = RDM_RTOL, labels=None) -> np.ndarray:
    """Validate square RDMs ``(..., n, n)`` and return their condensed form ``(..., n_pairs)`` float32.

    Checks, each failure raised as :class:`~brainlid.errors.InputError` with the reason
    and the first offending RDM (leading-axis indices, or ``labels``):

    * the last two axes are square (``n x n``, n >= 3);
    * every entry is finite;
    * symmetric: ``max |D - D.T| <= rtol * max |D|``;
    * zero diagonal: ``max |diag D| <= rtol * max |D|``.

    The upper triangle is kept (``squareform`` order: (0,1), (0,2), ..., (1,2), ...).

    Parameters
    ----------
    rdms : array of shape (n, n) or (..., n, n)
    name : str
        What the RDMs are called in messages.
    rtol : float
        Relative tolerance of the symmetry and diagonal checks.
    labels : tuple of sequences or None
        Names for the leading axes' positions (e.g. ``(subjects, sessions)``) used in messages.

    Returns
    -------
    condensed : ndarray of shape (..., n(n-1)/2) float32
    """
    a = np.asarray(rdms)
    if a.ndim < 2:
        raise InputError(f"{name} must be square matrices (..., n, n); got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputError(f"{name} must be real numbers; got dtype {a.dtype}")
    n = a.shape[-1]
    if a.shape[-2] != n:
        raise InputError(f"{name} are not square: the last two axes are {a.shape[-2]} x {n} (shape {a.shape})")
    if n < 3:
        raise InputError(f"{name} are over {n} stimuli; at least 3 are needed")
    a = a.astype(np.float64, copy=False)
    lead = a.shape[:-2]
    flat = a.reshape((-1, n, n))
    for k, M in enumerate(flat):
        where = _where(np.unravel_index(k, lead) if lead else (), labels)
        bad = ~np.isfinite(M)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputError(f"{name}{where} have {int(bad.sum())} non-finite entries, e.g. at [{i}, {j}]")
        scale = float(np.abs(M).max())
        tol = rtol * scale
        asym = np.abs(M - M.T)
        if asym.max() > tol:
            i, j = np.unravel_index(int(asym.argmax()), asym.shape)
            raise InputError(
                f"{name}{where} are not symmetric: D[{i}, {j}] = {M[i, j]:.6g} but D[{j}, {i}] = {M[j, i]:.6g} "
                f"(largest asymmetry {asym.max():.3g}, tolerance {tol:.3g})"
            )
        diag = np.abs(np.diag(M))
        if diag.max() > tol:
            i = int(diag.argmax())
            raise InputError(
                f"{name}{where} have a non-zero diagonal: D[{i}, {i}] = {M[i, i]:.6g} "
                f"({int((diag > tol).sum())} of {n} diagonal entries exceed the tolerance {tol:.3g}); "
                f"a stimulus must have zero dissimilarity to itself"
            )
    iu, ju = np.triu_indices(n, 1)
    return np.ascontiguousarray(a[..., iu, ju], dtype=np.float32)


def _labels(values, n: int, prefix: str, what: str) -> list[str]:
    if values is None:
        return [f"{prefix}{i + 1:02d}" for i in range(n)]
    out = [str(v) for v in values]
    if len(out) != n:
        raise InputError(f"{len(out)} {what} names for {n} {what}s")
    if len(set(out)) != n:
        raise InputError(f"{what} names must be unique; got {out}")
    return out


@dataclass
class BrainRDMs:
    """One ROI's RDMs for every subject and session, over stimulus ids.

    Attributes
    ----------
    rdms : ndarray of shape (n_subjects, n_sessions, n_pairs) float32
        Condensed RDMs (``squareform`` order over ``stimulus_ids``). A 1-D input is one RDM
        (1 subject x 1 session), a 2-D input one RDM per subject (1 session each); use
        :meth:`from_square` for square matrices.
    stimulus_ids : ndarray of shape (n_stimuli,)
        The stimuli, in RDM row order; n_pairs = n_stimuli (n_stimuli - 1) / 2.
    subjects, sessions : list of str
        Names of the subject and session axes.
    roi : str
        Brain region or signal the RDMs come from (``"IT"``, ``"EVC"``, ``"MEG_early"``, ...).
    dataset : str
        Dataset name (``"k92"``, ``"algonauts2019-92"``, ...).
    dissimilarity : str
        How the RDMs were computed, e.g. ``"1 - pearson"``.
    stimuli : StimulusSet or None
        The images, when known; their ids must equal ``stimulus_ids`` (same order).
    info : dict
        Free-form provenance (source files, species, citation, ...).
    """

    rdms: np.ndarray
    stimulus_ids: np.ndarray
    subjects: list = None
    sessions: list = None
    roi: str = "unknown"
    dataset: str = "unknown"
    dissimilarity: str = "unknown"
    stimuli: StimulusSet | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        r = np.asarray(self.rdms)
        if r.ndim == 1:
            r = r[None, None]
        elif r.ndim == 2:
            r = r[:, None]
        if r.ndim != 3:
            raise InputError(
                f"BrainRDMs.rdms must be condensed RDMs (n_subjects, n_sessions, n_pairs); got shape {r.shape} "
                f"(use BrainRDMs.from_square for square matrices)"
            )
        if not np.issubdtype(r.dtype, np.number) or np.iscomplexobj(r):
            raise InputError(f"BrainRDMs.rdms must be real numbers; got dtype {r.dtype}")
        r = np.ascontiguousarray(r, dtype=np.float32)
        if not np.isfinite(r).all():
            raise InputError(f"BrainRDMs.rdms have {int((~np.isfinite(r)).sum())} non-finite entries")
        n = n_from_condensed(r.shape[-1])
        self.stimulus_ids = as_ids(self.stimulus_ids)
        if self.stimulus_ids.size != n:
            raise StimulusMismatchError(
                f"the RDMs are over {n} stimuli ({r.shape[-1]} pairs) but {self.stimulus_ids.size} stimulus ids were given"
            )
        if n < 3:
            raise InputError(f"RDMs over {n} stimuli; at least 3 are needed")
        self.rdms = r
        self.subjects = _labels(self.subjects, r.shape[0], "sub-", "subject")
        self.sessions = _labels(self.sessions, r.shape[1], "ses-", "session")
        if self.stimuli is not None:
            if not isinstance(self.stimuli, StimulusSet):
                raise InputError("stimuli must be a brainlid.data.StimulusSet")
            if len(self.stimuli) != n:
                raise StimulusMismatchError(
                    f"the RDMs are over {n} stimuli but the stimulus set {self.stimuli.name!r} has {len(self.stimuli)} "
                    f"images; they must describe the same stimuli"
                )
            if not np.array_equal(self.stimuli.ids, self.stimulus_ids):
                raise StimulusMismatchError(
                    f"the stimulus set {self.stimuli.name!r} has other ids (or another order) than the RDMs, "
                    f"e.g. {list(self.stimuli.ids[:3])} vs {list(self.stimulus_ids[:3])}"
                )

    # construction -------------------------------------------------------------------------------
    @classmethod
    def from_square(cls, rdms, stimulus_ids=None, *, rtol: float = RDM_RTOL, **kwargs) -> "BrainRDMs":
        """Build from square RDMs, validated by :func:`check_square_rdms`.

        Parameters
        ----------
        rdms : array of shape (n, n), (n_subjects, n, n) or (n_subjects, n_sessions, n, n)
        stimulus_ids : array-like of shape (n,) or None
            Defaults to the ids of ``stimuli=`` if given, else ``0 … n-1``.
        **kwargs
            Other :class:`BrainRDMs` fields (subjects, sessions, roi, dataset, ...).
        """
        a = np.asarray(rdms)
        if a.ndim == 2:
            a = a[None, None]
        elif a.ndim == 3:
            a = a[:, None]
        elif a.ndim != 4:
            raise InputError(
                f"square RDMs must be (n, n), (n_subjects, n, n) or (n_subjects, n_sessions, n, n); got shape {a.shape}"
            )
        labels = (kwargs.get("subjects"), kwargs.get("sessions"))
        cond = check_square_rdms(a, f"{kwargs.get('dataset', '')} {kwargs.get('roi', '')} RDMs".strip(), rtol=rtol,
                                 labels=labels)
        if stimulus_ids is None:
            stim = kwargs.get("stimuli")
            stimulus_ids = stim.ids if stim is not None else np.arange(a.shape[-1])
        return cls(cond, stimulus_ids, **kwargs)

    # sizes --------------------------------------------------------------------------------------
    @property
    def n_subjects(self) -> int:
        return int(self.rdms.shape[0])

    @property
    def n_sessions(self) -> int:
        return int(self.rdms.shape[1])

    @property
    def n_stimuli(self) -> int:
        return int(self.stimulus_ids.size)

    @property
    def n_pairs(self) -> int:
        return int(self.rdms.shape[-1])

    # views --------------------------------------------------------------------------------------
    def subject_rdms(self) -> np.ndarray:
        """One RDM per subject, the mean over sessions: ``(n_subjects, n_pairs)`` float32."""
        return self.rdms.mean(axis=1, dtype=np.float64).astype(np.float32)

    def mean_rdm(self) -> np.ndarray:
        """The group RDM: the plain mean of the subject RDMs, ``(n_pairs,)`` float32.

        (For equal session counts this is the mean over every subject x session RDM,
        the group average of Kriegeskorte et al. 2008.)
        """
        return self.rdms.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)

    def square(self, subject: int | str | None = None, session: int | str | None = None) -> np.ndarray:
        """A square ``(n, n)`` RDM: one subject/session, a subject's session mean, or the group mean."""
        if subject is None:
            if session is not None:
                raise InputError("give subject= together with session=")
            return square_rdm(self.mean_rdm())
        s = self._index(subject, self.subjects, "subject")
        if session is None:
            return square_rdm(self.subject_rdms()[s])
        t = self._index(session, self.sessions, "session")
        return square_rdm(self.rdms[s, t])

    @staticmethod
    def _index(key, names: list[str], what: str) -> int:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(names) <= key < len(names):
                raise InputError(f"{what} index {key} out of range ({len(names)} {what}s)")
            return int(key) % len(names)
        if str(key) not in names:
            raise InputError(f"unknown {what} {key!r}; have {names}")
        return names.index(str(key))

    def select(self, stimulus_ids=None, *, subjects=None, sessions=None) -> "BrainRDMs":
        """A new :class:`BrainRDMs` over the given stimulus ids (in that order) and/or subjects/sessions.

        Every requested id must be present (the error names missing ones).
        """
        r, ids, stim = self.rdms, self.stimulus_ids, self.stimuli
        subj, sess = list(self.subjects), list(self.sessions)
        if subjects is not None:
            idx = [self._index(s, self.subjects, "subject") for s in np.atleast_1d(subjects)]
            r, subj = r[idx], [subj[i] for i in idx]
        if sessions is not None:
            idx = [self._index(s, self.sessions, "session") for s in np.atleast_1d(sessions)]
            r, sess = r[:, idx], [sess[i] for i in idx]
        if stimulus_ids is not None:
            want = as_ids(stimulus_ids, "requested stimulus ids")
            pos = positions_of(self.stimulus_ids, want, where=f"the {self.dataset} {self.roi} RDMs", min_overlap=3,
                               names=(self.dataset, "requested"), error=StimulusMismatchError)
            r = r[..., condensed_positions(pos, self.n_stimuli)]
            ids = self.stimulus_ids[pos]
            stim = self.stimuli.subset(positions=pos) if self.stimuli is not None else None
        return BrainRDMs(r, ids, subj, sess, self.roi, self.dataset, self.dissimilarity, stim, dict(self.info))

    def __repr__(self) -> str:
        return (
            f"BrainRDMs({self.dataset!r}, roi={self.roi!r}, {self.n_subjects} subjects x {self.n_sessions} sessions, "
            f"{self.n_stimuli} stimuli, {self.dissimilarity})"
        )


@dataclass
class RDMDataset:
    """What an RDM dataset loader returns: the stimuli, brain RDMs by name, and model RDMs.

    Unpacks as ``stimuli, rdms = dataset`` (like :class:`brainlid.data.cards.Loaded`);
    ``dataset[name]`` is ``dataset.rdms[name]``.

    Attributes
    ----------
    stimuli : StimulusSet
        The images, in the RDMs' stimulus order.
    rdms : dict of str -> BrainRDMs
        Brain RDMs by name, e.g. ``{"human.IT": ..., "monkey.IT": ...}`` (k92) or
        ``{"IT": ..., "EVC": ...}`` (Algonauts 2019 fMRI).
    models : dict of str -> ndarray (n_pairs,) float32
        Model RDMs distributed with the data (condensed, same stimulus order).
    info : dict
        Provenance: dataset name, files read, citation key.
    """

    stimuli: StimulusSet
    rdms: dict
    models: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __iter__(self):
        yield self.stimuli
        yield self.rdms

    def __len__(self) -> int:
        return 2

    def __getitem__(self, key):
        if isinstance(key, int):
            return (self.stimuli, self.rdms)[key]
        if key not in self.rdms:
            raise InputError(f"no brain RDMs called {key!r}; have {', '.join(self.rdms)}")
        return self.rdms[key]

    def __repr__(self) -> str:
        return (f"RDMDataset({self.info.get('dataset', '?')!r}, {len(self.stimuli)} stimuli, "
                f"rdms={list(self.rdms)}, models={list(self.models)})")
