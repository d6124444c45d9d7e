"""The built-in benchmarks' data: the table they are defined by, and the dataset adapters they load with.

:data:`BUILTIN_FAMILIES` is the table (one :class:`BenchmarkFamily` per dataset: subjects × ROIs × metrics,
space, ceiling, params, adapter); the registry, :mod:`brainlid.scoring.benchmarks`, builds its
:class:`~brainlid.scoring.benchmarks.Benchmark` definitions from it. The adapters return
``loader(root) -> (StimulusSet or None, BrainData)``.

Each ``*_loader(...)`` returns the function a :class:`~brainlid.scoring.benchmarks.Benchmark` calls to
read its data (``bench.loader(root)``): it calls the dataset's loader (:mod:`brainlid.data`), names the
dataset copy the benchmark needs when it is missing, and puts the benchmark's splits and repetitions where
the scoring cell expects them. :func:`rdm_loader` returns published brain RDMs
(:class:`~brainlid.data.rdms.BrainRDMs`) with their images. The registry of benchmarks that use these
adapters is :mod:`brainlid.scoring.benchmarks`.

Built-in THINGS-EEG2 benchmarks (version 2): ``things_eeg2.sub-01 … sub-10`` × ``posterior`` /
``occipital`` channels × ``encoding``/``rsa``, time-resolved (one score per time point); train =
the training images, test = the 200 test images, ceiling = the loader's split-half reliability
of the test data; 100 PCs.

Built-in NSD benchmarks (version 2): test split = the shared images (``sharedix``; the loader's
``"test"`` split), train = the rest; features reduced to ``pca=300`` components fitted on the
fit part of the train split; α per voxel by 5-fold inner CV over ``logspace(-4, 4, 9)`` × the
mean eigenvalue of the fit features' Gram (a relative grid: scale-invariant); the
best layer is chosen on a validation split of 20 % of the train stimuli (seeded, never the test
split); ceiling from ncsnr (METHODS §6) with floor 0.1; LID measured on the test split.

Built-in THINGS-fMRI benchmarks (version 2): ``things_fmri.sub-01 … sub-03`` × ROI columns of
``VoxelMetadata.csv`` (``V1``, ``V2``, ``V3``, ``hV4``, ``IT``, ``l/rFFA``, ``l/rPPA``, ``l/rEBA``,
``l/rOFA``, ``l/rLOC``, ``l/rRSC``) × ``encoding``/``rsa``; train = the 8,640 train images (one
presentation), test = the 100 test images (12 presentations averaged), ceiling = ``nc_testset``
(fraction); best layer on a validation split of the train images; LID on the 100 test images.

Built-in Algonauts 2023 benchmarks (version 2): ``algonauts2023.subj01 … subj08`` × ``all`` (both
hemispheres), ``lh``, ``rh`` or an ROI label of the release (``V1v`` … ``hV4``, ``EBA``, ``FFA-1``,
``PPA``, streams ``early``/``ventral``/``lateral``/``parietal`` ...) × ``encoding``. The challenge's
test responses are not public, so test = the training images whose NSD id falls in the held-out
20 % by :func:`hash_split` (a hash of the id: stable across machines and subsets of the data);
train = the rest; no noise ceiling; LID on the test split.

Built-in RDM benchmarks (``kind="rdms"``, version 2): ``k92.human.IT.rsa``, ``k92.monkey.IT.rsa``,
``algonauts2019.{92,118}.{EVC,IT,MEG_early,MEG_late}.rsa`` — published brain RDMs scored by
:mod:`brainlid.scoring.cell.rdms` (every layer on all images; best layer chosen on one seeded
half of the images and reported on the other half; ceilings: √(upper · lower) of the leave-one-subject-out
bounds on per-subject rows, the split-half-over-subjects reliability (√r_sb) on group-mean rows; LID on all
images, stimulus set
``k92`` / ``algonauts2019.<set>``).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..data import BrainData, StimulusSet, algonauts, nsd, things_eeg2, things_fmri
from ..data.provenance import data_source_of
from ..data.stimuli import FileReader
from ..errors import DatasetNotFoundError, InputError

__all__ = ["REPS_META_KEY", "ALGONAUTS2023_TEST_FRACTION", "unpack_loaded", "hash_split", "nsd_loader",
           "things_eeg2_loader", "things_fmri_loader", "algonauts2023_loader", "rdm_loader", "BenchmarkFamily",
           "BUILTIN_FAMILIES", "RDM_BENCHMARKS", "RSA_CEILING", "RDM_CEILINGS", "NSD_SUBJECTS", "NSD_ROIS", "METRICS"]

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


# ------------------------------------------------------------------------------- the built-in table
#: ``ceiling`` of single-subject RSA benchmarks and ``ceiling_method`` of their rows (when the data keep
#: repetitions): √r_sb of the subject's RDM, normalised disattenuated at the half level (runner).
RSA_CEILING = "rdm-split-half-disattenuated"
#: ``ceiling_method`` values of RDM-benchmark rows: per subject √(upper·lower) of the LOSO bounds, group mean
#: split-half over subjects (:mod:`brainlid.alignment.brain_rdms`); the benchmarks' ``ceiling`` lists both.
RDM_CEILINGS = ("loso-geometric-mean", "group-split-half")

NSD_SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
#: NSD ROIs with built-in benchmarks: prf-visualrois, floc-bodies/faces/places labels and nsdgeneral.
NSD_ROIS = (
    "nsdgeneral",
    "V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4",
    "EBA", "FBA-1", "FBA-2",
    "OFA", "FFA-1", "FFA-2",
    "OPA", "PPA", "RSC",
)
METRICS = ("encoding", "rsa")
THINGS_EEG2_SUBJECTS = tuple(range(1, 11))
THINGS_EEG2_ROIS = ("posterior", "occipital")

THINGS_FMRI_SUBJECTS = (1, 2, 3)
#: THINGS-fMRI ROI columns with built-in benchmarks (VoxelMetadata.csv names; DATASETS.md §3.3)
THINGS_FMRI_ROIS = (
    "V1", "V2", "V3", "hV4", "IT",
    "lFFA", "rFFA", "lPPA", "rPPA", "lEBA", "rEBA", "lOFA", "rOFA", "lLOC", "rLOC", "lRSC", "rRSC",
)
ALGONAUTS2023_SUBJECTS = tuple(range(1, 9))
#: Algonauts 2023 benchmark "ROIs": a hemisphere (``lh``, ``rh``; ``all`` = both) or an ROI label of the release
ALGONAUTS2023_ROIS = ("all", "lh", "rh") + tuple(r for r in NSD_ROIS if r != "nsdgeneral") + (
    "early", "ventral", "lateral", "parietal")
ALGONAUTS2019_ROIS = ("EVC", "IT", "MEG_early", "MEG_late")

_RDM_DESCRIPTION = ("published brain RDMs ({dataset} {subject} {roi}, {n} images); RSA of correlation-distance model "
                    "RDMs, Spearman; every layer on all images (split 'all'), best layer chosen on the pairs within a "
                    "seeded half of the images (val) and reported on the other half (test); ceilings = sqrt(upper x "
                    "lower) of the LOSO bounds per subject, split-half over subjects for the group mean")
_HEMISPHERES = {"all": "both hemispheres", "lh": "left hemisphere", "rh": "right hemisphere"}


@dataclass(frozen=True)
class BenchmarkFamily:
    """One row of the table of built-in benchmarks: a dataset's benchmarks over subjects × ROIs × metrics.

    Every benchmark of a family has the id ``<dataset>.<subject>.<roi>.<metric>``, ``split = "test"`` and
    version 2.

    Attributes
    ----------
    dataset, space : str
    subjects : tuple of (subject id, loader argument)
        The subject slot of the ids (RDM benchmarks: the human/monkey RDM or the image set) and what the
        dataset adapter takes for it.
    rois, metrics : tuple of str
    ceiling : mapping metric → str
        The ``ceiling`` of the family's benchmarks of each metric (:attr:`Benchmark.ceiling`).
    loader : callable ``(loader argument, roi, metric) -> loader(root)``
        The dataset adapter (:mod:`brainlid.scoring.benchmark_data`); it fixes the split rule.
    description : callable ``(subject, roi, metric) -> str``
    params : mapping
        Overrides of :data:`DEFAULT_PARAMS`.
    kind, lid_split : str
        As :class:`Benchmark`.
    stimulus_set : str or None
        The LID stimulus set, ``{subject}`` filled in (None: ``<dataset>.<subject>.<lid_split>``).
    rdm_source : callable ``(subject, roi) -> (module, kwargs, key)`` or None
        RDM benchmarks: where the brain RDMs are (:data:`RDM_BENCHMARKS`).
    """

    dataset: str
    space: str
    subjects: tuple
    rois: tuple
    metrics: tuple
    ceiling: Mapping[str, str]
    loader: Callable
    description: Callable
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "responses"
    lid_split: str = "test"
    stimulus_set: str | None = None
    rdm_source: Callable | None = None

    def definitions(self):
        """The keyword arguments of the family's :class:`~brainlid.scoring.benchmarks.Benchmark` definitions
        (subjects, then ROIs, then metrics)."""
        for (subject, arg), roi, metric in itertools.product(self.subjects, self.rois, self.metrics):
            yield dict(
                id=f"{self.dataset}.{subject}.{roi}.{metric}", dataset=self.dataset, subject=subject, space=self.space,
                roi=roi, metric=metric, split="test", ceiling=self.ceiling[metric], version=2,
                lid_split=self.lid_split, params=dict(self.params),
                description=self.description(subject, roi, metric), loader=self.loader(arg, roi, metric),
                kind=self.kind, stimulus_set=self.stimulus_set.format(subject=subject) if self.stimulus_set else None,
            )


def _k92_source(subject: str, roi: str) -> tuple[str, dict, str]:
    return "brainlid.data.k92", {}, f"{subject}.{roi}"


def _algonauts2019_source(subject: str, roi: str) -> tuple[str, dict, str]:
    return "brainlid.data.algonauts2019", {"image_set": subject, "modality": "meg" if roi.startswith("MEG") else "fmri"}, roi


def _rdm_family(dataset: str, subjects: tuple, rois: tuple, stimulus_set: str, source: Callable) -> BenchmarkFamily:
    return BenchmarkFamily(
        dataset=dataset, space="rdm", subjects=tuple((s, s) for s in subjects), rois=rois, metrics=("rsa",),
        ceiling={"rsa": ", ".join(RDM_CEILINGS)}, loader=lambda s, roi, metric: rdm_loader(*source(s, roi)),
        description=lambda s, roi, metric: _RDM_DESCRIPTION.format(dataset=dataset, subject=s, roi=roi,
                                                                   n=118 if s == "118" else 92),
        params={"rsa_n_boot": 1000}, kind="rdms", lid_split="all", stimulus_set=stimulus_set, rdm_source=source)


#: The built-in benchmarks, one row per dataset (module docstring); the registry is built from it.
BUILTIN_FAMILIES: tuple[BenchmarkFamily, ...] = (
    BenchmarkFamily(
        dataset="nsd", space="func1pt8mm", subjects=tuple((s, s) for s in NSD_SUBJECTS), rois=NSD_ROIS,
        metrics=METRICS, ceiling={"encoding": "ncsnr", "rsa": RSA_CEILING},
        loader=lambda s, roi, metric: nsd_loader(s, "func1pt8mm", roi, keep_reps=metric == "rsa"),
        description=lambda s, roi, metric: (
            f"NSD {s} {roi} ({'voxelwise ridge encoding, R² and r' if metric == 'encoding' else 'RSA, correlation RDMs, Spearman'}); "
            "test = shared images"),
    ),
    BenchmarkFamily(
        dataset="things_eeg2", space="eeg", subjects=tuple((f"sub-{i:02d}", i) for i in THINGS_EEG2_SUBJECTS),
        rois=THINGS_EEG2_ROIS, metrics=METRICS, ceiling={"encoding": "split-half", "rsa": RSA_CEILING},
        loader=lambda i, roi, metric: things_eeg2_loader(i, roi, keep_reps=metric == "rsa"),
        description=lambda s, roi, metric: (
            f"THINGS-EEG2 {s} {roi} channels, time-resolved "
            f"{'encoding (ridge per channel and time)' if metric == 'encoding' else 'RSA'}; "
            "train = training images, test = the 200 test images"),
        params={"pca": 100},
    ),
    BenchmarkFamily(
        dataset="things_fmri", space="T1w", subjects=tuple((f"sub-{i:02d}", i) for i in THINGS_FMRI_SUBJECTS),
        rois=THINGS_FMRI_ROIS, metrics=METRICS, ceiling={"encoding": "data", "rsa": RSA_CEILING},
        loader=lambda i, roi, metric: things_fmri_loader(i, roi, keep_reps=metric == "rsa"),
        description=lambda s, roi, metric: (
            f"THINGS-fMRI {s} {roi} "
            f"({'voxelwise ridge encoding, ceiling nc_testset' if metric == 'encoding' else 'RSA'}); "
            "train = the 8,640 train images, test = the 100 test images (12 presentations averaged)"),
    ),
    BenchmarkFamily(
        dataset="algonauts2023", space="fsaverage-challenge",
        subjects=tuple((f"subj{i:02d}", i) for i in ALGONAUTS2023_SUBJECTS), rois=ALGONAUTS2023_ROIS,
        metrics=("encoding",), ceiling={"encoding": "none"},
        loader=lambda i, roi, metric: algonauts2023_loader(i, roi),
        description=lambda s, roi, metric: (
            f"Algonauts 2023 {s} {_HEMISPHERES.get(roi, f'ROI {roi}')}, vertexwise ridge encoding (no public ceiling); "
            f"test = {ALGONAUTS2023_TEST_FRACTION:.0%} of the training images chosen by a hash "
            "of the NSD id (the challenge's test responses are not public)"),
    ),
    _rdm_family("k92", ("human", "monkey"), ("IT",), "k92", _k92_source),
    _rdm_family("algonauts2019", ("92", "118"), ALGONAUTS2019_ROIS, "algonauts2019.{subject}", _algonauts2019_source),
)

#: RDM benchmark id → (loader module, loader keyword arguments, key in the loaded RDMDataset)
RDM_BENCHMARKS: Mapping[str, tuple[str, dict, str]] = MappingProxyType({
    f"{fam.dataset}.{s}.{roi}.rsa": fam.rdm_source(s, roi)
    for fam in BUILTIN_FAMILIES if fam.rdm_source is not None for s, _ in fam.subjects for roi in fam.rois
})
