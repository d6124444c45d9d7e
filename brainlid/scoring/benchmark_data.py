"""Dataset adapters of the built-in benchmarks: ``loader(root) -> (StimulusSet or None, BrainData)``.

Each ``*_loader(...)`` returns the function a :class:`~brainlid.scoring.benchmarks.Benchmark` calls to
read its data (``bench.loader(root)``): it calls the dataset's loader (:mod:`brainlid.data`), names the
dataset copy the benchmark needs when it is missing, and puts the benchmark's splits and repetitions where
the scoring cell expects them. :func:`rdm_loader` returns published brain RDMs
(:class:`~brainlid.data.rdms.BrainRDMs`) with their images. The registry of benchmarks that use these
adapters is :mod:`brainlid.scoring.benchmarks`.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import replace
from typing import Mapping

import numpy as np
import pandas as pd

from ..data import BrainData, StimulusSet, algonauts, nsd, things_eeg2, things_fmri
from ..data.provenance import data_source_of
from ..data.stimuli import FileReader
from ..errors import DatasetNotFoundError, InputError

__all__ = ["REPS_META_KEY", "ALGONAUTS2023_TEST_FRACTION", "unpack_loaded", "hash_split", "nsd_loader",
           "things_eeg2_loader", "things_fmri_loader", "algonauts2023_loader", "rdm_loader"]

#: ``BrainData.meta`` key of the repetition-level responses that :func:`load_benchmark_data` keeps for
#: RSA benchmarks (a BrainData with ``has_reps``; the split-half RDM ceiling of the runner uses it).
REPS_META_KEY = "responses_with_reps"

#: Fraction of the Algonauts 2023 training images held out as the test split (the challenge's
#: test responses are not public), chosen by :func:`hash_split`.
ALGONAUTS2023_TEST_FRACTION = 0.2


def unpack_loaded(out):
    """Accept ``(stimuli, brain)``, ``(brain, stimuli)`` or an object with ``.stimuli``/``.brain``."""
    if isinstance(out, BrainData):
        return None, out
    if isinstance(out, (tuple, list)) and len(out) == 2:
        a, b = out
        if isinstance(a, BrainData):
            a, b = b, a
        if isinstance(b, BrainData) and (a is None or isinstance(a, StimulusSet)):
            return a, b
    for sa, ba in (("stimuli", "brain"), ("stimuli", "data")):
        if hasattr(out, sa) and hasattr(out, ba):
            return getattr(out, sa), getattr(out, ba)
    raise InputError(f"a benchmark loader must return (StimulusSet, BrainData); got {type(out).__name__}")


def hash_split(ids, fraction: float, salt: str = "") -> np.ndarray:
    """Boolean mask: is each stimulus id in the held-out part?

    ``blake2b(salt + str(id))`` (8 bytes, big-endian) ``/ 2**64 < fraction``: a stimulus's split
    depends on its id alone — not on which other stimuli a copy holds, the NumPy version or a
    random stream — so the split is the same on every machine and for every subset of the data.
    """
    if not 0 < fraction < 1:
        raise InputError(f"fraction must be in (0, 1), got {fraction}")
    out = np.empty(len(ids), dtype=bool)
    for i, x in enumerate(np.asarray(ids).tolist()):
        h = hashlib.blake2b(f"{salt}{x}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "big") / 2.0**64 < fraction
    return out


def nsd_loader(subject: str, space: str, roi: str, keep_reps: bool = False):
    """Loader of one NSD subject's ROI (``subject`` ``"subj01"`` …, ``space`` e.g. ``"func1pt8mm"``): the
    repetitions averaged, or kept (``keep_reps``, RSA benchmarks; :func:`brainlid.data.nsd.load`)."""

    def load(root=None):
        # keep_reps (RSA): one read with repetitions; load_benchmark_data's average_reps() equals the loader's
        # own average bit for bit (float32 sum in repetition order / n_reps), so the scores do not change
        try:
            out = nsd.load(root=root, subject=int(subject[4:]), space=space, roi=roi, average_reps=not keep_reps)
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(f"benchmark nsd.{subject}.{roi}.* needs NSD {subject} ({space}): {exc}") from exc
        return unpack_loaded(out)

    return load


def things_eeg2_loader(subject: int, roi: str, keep_reps: bool = False):
    """THINGS-EEG2 train + test; with ``keep_reps`` the test split's repetitions (the scored stimuli;
    80 per image) are kept in ``meta[REPS_META_KEY]`` (the train split's are not, to save memory)."""

    def load(root=None):
        try:
            parts = [unpack_loaded(things_eeg2.load(root=root, subject=subject, split=sp)) for sp in ("train", "test")]
            # the loader's own average is kept bit for bit; the repetitions are a second read (no ceiling)
            te_reps = (unpack_loaded(things_eeg2.load(root=root, subject=subject, split="test", average_reps=False,
                                                      noise_ceiling=False))[1] if keep_reps else None)
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"benchmark things_eeg2.sub-{subject:02d}.{roi} needs THINGS-EEG2 sub-{subject:02d} (train and test "
                f"preprocessed data) — fetch it as described in datasets/things_eeg2.toml: {exc}"
            ) from exc
        (s_tr, b_tr), (s_te, b_te) = parts
        brain = BrainData(
            np.concatenate([b_tr.responses, b_te.responses]), np.concatenate([b_tr.stimulus_ids, b_te.stimulus_ids]),
            units=b_te.units, times=b_te.times, noise_ceiling=b_te.noise_ceiling,  # the ceiling of the scored (test) data
            splits={"train": b_tr.stimulus_ids, "test": b_te.stimulus_ids}, subject=b_te.subject,
            dataset=b_te.dataset, space=b_te.space, meta={"train": b_tr.meta, "test": b_te.meta,
                                                          "data_source": data_source_of(b_te),
                                                          **({REPS_META_KEY: te_reps} if te_reps is not None else {})},
        )
        stimuli = None
        if s_tr is not None and s_te is not None and s_tr.has_images and s_te.has_images:
            paths = list(getattr(s_tr.reader, "paths", [])) + list(getattr(s_te.reader, "paths", []))
            if len(paths) == brain.n_stimuli:
                stimuli = StimulusSet(brain.stimulus_ids, pd.concat([s_tr.metadata, s_te.metadata], ignore_index=True),
                                      FileReader(paths), name="things_eeg2")
        return stimuli, brain

    return load


def things_fmri_loader(subject: int, roi: str, keep_reps: bool = False):
    """Loader of one THINGS-fMRI subject's ROI (:func:`brainlid.data.things_fmri.load`); with ``keep_reps`` the
    repetitions too, in ``meta[REPS_META_KEY]``."""

    def load(root=None):
        try:
            stimuli, brain = unpack_loaded(things_fmri.load(root=root, subject=subject, roi=roi))
            if keep_reps:  # second read: the averaged data and their nc_testset ceiling stay the loader's
                _, reps = unpack_loaded(things_fmri.load(root=root, subject=subject, roi=roi, average_reps=False))
                brain = replace(brain, meta={**brain.meta, REPS_META_KEY: reps})
            return stimuli, brain
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"benchmark things_fmri.sub-{subject:02d}.{roi}.* needs THINGS-fMRI sub-{subject:02d} (betas_csv "
                f"table and metadata; datasets/things_fmri.toml): {exc}"
            ) from exc

    return load


def algonauts2023_loader(subject: int, roi: str):
    """Loader of one Algonauts 2023 subject (``roi``: ``all``, a hemisphere ``lh``/``rh`` or an ROI label), the
    test split the :data:`ALGONAUTS2023_TEST_FRACTION` of the training images chosen by :func:`hash_split`."""

    def load(root=None):
        hemi = {"all": "both", "lh": "lh", "rh": "rh"}.get(roi, "both")
        try:
            stimuli, brain = unpack_loaded(algonauts.load(root=root, subject=subject, hemisphere=hemi,
                                                          roi=None if roi in ("all", "lh", "rh") else roi))
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"benchmark algonauts2023.subj{subject:02d}.{roi}.encoding needs Algonauts 2023 subject {subject} "
                f"(datasets/algonauts2023.toml): {exc}"
            ) from exc
        ids = np.asarray(brain.stimulus_ids)
        test = hash_split(ids, ALGONAUTS2023_TEST_FRACTION, salt="algonauts2023:")
        units = brain.units
        if roi in ("lh", "rh"):  # the hemisphere is the benchmark's "ROI": a column load_benchmark_data selects on
            units = units.assign(**{f"roi:{roi}": True})
        return stimuli, replace(brain, units=units, splits={"train": np.sort(ids[~test]), "test": np.sort(ids[test])})

    return load


def rdm_loader(module: str, kwargs: Mapping, key: str):
    """Loader of published brain RDMs: ``importlib.import_module(module).load(root, **kwargs)[key]``
    (a :class:`~brainlid.data.rdms.RDMDataset` entry), with the dataset's images attached when the RDMs
    come without them (k92's monkey IT: same ids, same order)."""

    def load(root=None):
        ds = importlib.import_module(module).load(root, **kwargs)
        rdms = ds[key]
        if rdms.stimuli is None:
            rdms = replace(rdms, stimuli=ds.stimuli)
        return rdms

    return load
