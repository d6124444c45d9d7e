"""Versioned benchmark definitions, the registry, and user benchmarks.

A **benchmark** fixes everything that makes two scores comparable: the dataset, subject(s),
space, ROI, metric, the train/test split, the noise ceiling, and the stimulus set on which the
models' LID is measured (the MLE's bias depends on N, so LIDs are only comparable on the same
stimuli). Its ``version`` is stored in every score row; change a definition ⇒ bump the version.

Id scheme
---------
``<dataset>.<subject>.<roi>.<metric>``, e.g. ``nsd.subj01.EBA.encoding``:

* ``dataset`` — dataset card name (``nsd``, ``things_eeg2``, ``custom`` ...);
* ``subject`` — ``subj01`` … ``subj08`` for NSD (``all`` for pooled benchmarks);
* ``roi`` — an ROI name of the dataset (NSD: ``nsdgeneral``, ``V1v`` … ``hV4``, ``EBA``,
  ``FBA-1``, ``FFA-1``, ``PPA`` ...); ``all`` means every unit;
* ``metric`` — ``encoding`` (voxelwise ridge, held-out R² and r, ceiling-normalised) or ``rsa``
  (correlation-distance RDMs compared by Spearman's rho).

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

Versions
--------
Version 2 (every built-in benchmark; issue 14) changed what the scores mean, so its rows are never
mixed with version-1 rows (the store keys cells on the version and reads the newest version by
default): encoding fits are invariant to the scale of features and responses (α grid relative to
the training features' spectrum) and encoding ``normalised`` is the ratio of the ROI means of value
and ceiling; encoding intervals resample test stimuli (they were over units); single-subject RSA
``normalised`` is disattenuated at the half level and Spearman–Brown steps up by the repetitions
actually scored; RDM benchmarks' group-mean rows get a ceiling of their own. Version 1 is the
definition before those changes. ``CHANGELOG.md`` lists the changes and why.

User benchmarks
---------------
:func:`benchmark_from_braindata` turns any :class:`~brainlid.data.BrainData` (e.g. a lab's own
``BrainData.from_arrays``) with its stimuli into a registered benchmark.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..data import BrainData
from .._docs import fill_doc
from ..errors import InputError
from ..geometry import DEFAULT_KS
from .benchmark_data import (ALGONAUTS2023_TEST_FRACTION, REPS_META_KEY, algonauts2023_loader, hash_split, nsd_loader,
                             rdm_loader, things_eeg2_loader, things_fmri_loader, unpack_loaded)

__all__ = [
    "Benchmark",
    "UnknownBenchmarkError",
    "register_benchmark",
    "unregister_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "benchmark_from_braindata",
    "load_benchmark_data",
    "load_benchmark_rdms",
    "DEFAULT_PARAMS",
    "NSD_ROIS",
    "hash_split",
    "RSA_CEILING",
    "RDM_CEILINGS",
    "RDM_BENCHMARKS",
    "BenchmarkFamily",
    "BUILTIN_FAMILIES",
    "REPS_META_KEY",
]


class UnknownBenchmarkError(InputError):
    """A benchmark id that is not registered (the message lists close ones)."""


#: ``ceiling`` of single-subject RSA benchmarks and ``ceiling_method`` of their rows (when the data keep
#: repetitions): √r_sb of the subject's RDM, normalised disattenuated at the half level (runner).
RSA_CEILING = "rdm-split-half-disattenuated"
#: ``ceiling_method`` values of RDM-benchmark rows: per subject √(upper·lower) of the LOSO bounds, group mean
#: split-half over subjects (:mod:`brainlid.alignment.brain_rdms`); the benchmarks' ``ceiling`` lists both.
RDM_CEILINGS = ("loso-geometric-mean", "group-split-half")

#: Defaults of every benchmark's scoring parameters (overridable per benchmark).
DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType(
    {
        "pca": 300,  # PCA components fitted on the fit split (None: no PCA)
        # ridge α grid RELATIVE to the mean eigenvalue of the fit features' Gram (scale-invariant fits)
        "alphas": tuple(float(a) for a in np.logspace(-4, 4, 9)),
        "cv": 5,  # inner CV folds for alpha
        "val_fraction": 0.2,  # fraction of the train split held out to choose the best layer
        "ceiling_floor": 0.1,
        "rdm_method": "correlation",
        "rdm_compare": "spearman",
        "n_boot": 1000,  # bootstrap over the evaluated stimuli for the CI of the encoding ROI mean
        "rsa_n_boot": 200,  # bootstrap over stimuli for the CI of RSA scores (cost ~ n_times × n_stimuli² each)
        "lid_ks": DEFAULT_KS,
        "lid_estimators": ("mle",),
        "seed": 0,
    }
)

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
KINDS = ("responses", "rdms")
_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-+]+\.[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark definition.

    Attributes
    ----------
    id : str
        ``dataset.subject.roi.metric``.
    dataset, subject, space, roi, metric : str
        What is scored. ``subject`` is one subject id (``subj01``) or ``all``.
    split : str
        Name of the held-out split in ``BrainData.splits`` (train is every other stimulus of
        the ``"train"`` split).
    ceiling : str
        The ``ceiling_method`` its rows carry (one vocabulary; :attr:`ceiling_methods` splits a
        list): encoding ``"ncsnr"`` (the loader's per-unit ceiling, NSD), ``"split-half"``
        (reliability of repetitions), ``"data"`` (whatever ``BrainData.noise_ceiling`` holds);
        single-subject RSA :data:`RSA_CEILING` ``"rdm-split-half-disattenuated"`` (√r_sb of the
        subject's RDM, :func:`brainlid.alignment.ceiling.rdm_split_half`); RDM benchmarks
        ``"loso-geometric-mean, group-split-half"`` (:data:`RDM_CEILINGS`: per-subject rows, then
        the group-mean rows); ``"none"``. (Version-1 definitions said ``"rdm-split-half"`` and
        ``"loso"``; the label changed in version 2 with the ceilings themselves.)
    version : int
        Bumped whenever anything here changes; stored in every row.
    lid_split : str
        The split whose stimuli LID is measured on (default the test split).
    lid_n : int or None
        Number of those stimuli (the first ``lid_n`` by sorted id; None: all).
    params : mapping
        Scoring parameters (see :data:`DEFAULT_PARAMS`).
    description : str
    loader : callable or None
        ``loader(root) -> (StimulusSet or None, BrainData)``; for user benchmarks it returns
        the registered objects. For ``kind="rdms"`` it returns a
        :class:`~brainlid.data.rdms.BrainRDMs` with its stimuli attached.
    kind : {"responses", "rdms"}
        ``"responses"``: the data are responses (:class:`~brainlid.data.BrainData`), scored by
        encoding or RSA on held-out stimuli; ``"rdms"``: the data are published brain RDMs,
        scored by :mod:`brainlid.scoring.cell.rdms` (split-half layer selection).
    stimulus_set : str or None
        Name of the LID stimulus set when it is a whole published set (``"k92"``); default
        ``<dataset>.<subject>.<lid_split>``.
    """

    id: str
    dataset: str
    subject: str
    space: str
    roi: str
    metric: str
    split: str = "test"
    ceiling: str = "data"
    version: int = 1
    lid_split: str = "test"
    lid_n: int | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    description: str = ""
    loader: Callable | None = field(default=None, compare=False, repr=False)
    kind: str = "responses"
    stimulus_set: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"benchmark kind must be one of {KINDS}, got {self.kind!r}")
        if not _ID_RE.match(self.id):
            raise InputError(f"benchmark id {self.id!r} does not follow the scheme dataset.subject.roi.metric")
        if self.metric not in METRICS:
            raise InputError(f"benchmark metric must be one of {METRICS}, got {self.metric!r}")
        merged = dict(DEFAULT_PARAMS)
        unknown = set(self.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise InputError(f"unknown benchmark parameter(s) {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
        merged.update(self.params)
        object.__setattr__(self, "params", MappingProxyType(merged))

    @property
    def ceiling_methods(self) -> tuple[str, ...]:
        """The ``ceiling_method`` values this benchmark's rows can carry (``ceiling`` split at commas)."""
        return tuple(c.strip() for c in self.ceiling.split(","))

    @property
    def lid_stimulus_set(self) -> str:
        """Name of the stimulus set LID is measured on, e.g. ``nsd.subj01.test`` (or ``k92``)."""
        if self.stimulus_set:
            return self.stimulus_set
        return f"{self.dataset}.{self.subject}.{self.lid_split}" + (f"[{self.lid_n}]" if self.lid_n else "")

    def describe(self) -> dict:
        """A flat dict for listings (no loader)."""
        return {
            "id": self.id, "dataset": self.dataset, "subject": self.subject, "space": self.space,
            "roi": self.roi, "metric": self.metric, "split": self.split, "ceiling": self.ceiling,
            "version": self.version, "lid_stimulus_set": self.lid_stimulus_set,
            "lid_n": self.lid_n if self.lid_n else "all", "kind": self.kind, "description": self.description,
        }


_REGISTRY: dict[str, Benchmark] = {}
_BUILTINS_LOADED = False

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

    def benchmarks(self):
        """The family's :class:`Benchmark` definitions (subjects, then ROIs, then metrics)."""
        for (subject, arg), roi, metric in itertools.product(self.subjects, self.rois, self.metrics):
            yield Benchmark(
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


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for fam in BUILTIN_FAMILIES:
        for bench in fam.benchmarks():
            _REGISTRY.setdefault(bench.id, bench)


def register_benchmark(bench: Benchmark, *, overwrite: bool = False) -> Benchmark:
    """Add a benchmark to the registry (error if the id exists, unless ``overwrite``)."""
    _load_builtins()
    if bench.id in _REGISTRY and not overwrite and _REGISTRY[bench.id] != bench:
        raise InputError(f"a benchmark {bench.id!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[bench.id] = bench
    return bench


def unregister_benchmark(bid: str) -> None:
    """Remove a registered benchmark (no error if absent)."""
    _REGISTRY.pop(bid, None)


def get_benchmark(bid: str | Benchmark) -> Benchmark:
    """Look a benchmark up by id; an unknown id raises :class:`UnknownBenchmarkError` listing close ids."""
    if isinstance(bid, Benchmark):
        return bid
    _load_builtins()
    try:
        return _REGISTRY[bid]
    except KeyError:
        close = difflib.get_close_matches(str(bid), list(_REGISTRY), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `brainlid benchmarks list` to see them"
        raise UnknownBenchmarkError(f"unknown benchmark {bid!r}{hint}") from None


def list_benchmarks(dataset: str | None = None):
    """All registered benchmarks (optionally of one dataset) as a DataFrame sorted by id."""
    _load_builtins()
    rows = [b.describe() for b in _REGISTRY.values() if dataset is None or b.dataset == dataset]
    if dataset is not None and not rows:
        known = sorted({b.dataset for b in _REGISTRY.values()})
        raise InputError(f"no benchmarks for dataset {dataset!r}; datasets with benchmarks: {', '.join(known)}")
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)


def benchmark_from_braindata(
    name: str,
    brain,
    stimuli=None,
    *,
    metric: str = "encoding",
    roi: str | None = None,
    test_split: str = "test",
    test_fraction: float = 0.2,
    version: int = 1,
    register: bool = True,
    overwrite: bool = False,
    **params,
) -> Benchmark:
    """Build (and by default register) a benchmark from any :class:`~brainlid.data.BrainData`.

    Parameters
    ----------
    name : str
        Prefix ``dataset.subject``-style or a full id. A name without dots becomes
        ``custom.<subject>.<roi or all>.<metric>`` with ``custom`` replaced by ``name``.
    brain : BrainData
        The responses (any dataset, e.g. ``BrainData.from_arrays``).
    stimuli : StimulusSet or None
        The images (needed to extract features with a model; not needed when features are
        passed directly to :func:`brainlid.scoring.runner.score_features`).
    metric : {"encoding", "rsa"}
    roi : str or None
        Restrict to a ``roi:<NAME>`` unit column (None: all units).
    test_split : str
        Name of the held-out split. When ``brain`` has no ``"train"``/``test_split`` splits,
        a seeded ``test_fraction`` of the stimuli becomes the test split and the rest train.
    **params
        Overrides of :data:`DEFAULT_PARAMS`.
    """
    if not isinstance(brain, BrainData):
        raise InputError(f"benchmark_from_braindata needs a BrainData, got {type(brain).__name__}")
    if roi is not None and roi not in brain.rois:
        raise InputError(f"unknown ROI {roi!r}; the data have: {', '.join(brain.rois) or 'none'}")
    if "train" not in brain.splits or test_split not in brain.splits:
        if not 0 < test_fraction < 1:
            raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(params.get("seed", DEFAULT_PARAMS["seed"]))
        ids = np.sort(brain.stimulus_ids)
        n_test = max(3, int(round(test_fraction * ids.size)))
        test = np.sort(rng.choice(ids, size=n_test, replace=False))
        train = np.setdiff1d(ids, test)
        brain = replace(brain, splits={**brain.splits, "train": train, test_split: test})
    subject = brain.subject or "sub-01"
    bid = name if name.count(".") == 3 else f"{name}.{subject}.{roi or 'all'}.{metric}"
    has_nc = brain.noise_ceiling is not None
    bench = Benchmark(
        id=bid, dataset=brain.dataset or "custom", subject=subject, space=brain.space, roi=roi or "all",
        metric=metric, split=test_split, version=version,
        ceiling=(RSA_CEILING if brain.has_reps or REPS_META_KEY in (brain.meta or {}) else "none") if metric == "rsa"
        else ("data" if has_nc else "none"),
        description=f"user benchmark from BrainData ({brain.n_stimuli} stimuli × {brain.n_units} units)",
        params=params, loader=lambda root=None: (stimuli, brain),
    )
    if register:
        register_benchmark(bench, overwrite=overwrite)
    return bench


def load_benchmark_data(bench: Benchmark | str, root=None):
    """Load a benchmark's (StimulusSet or None, BrainData), restricted to its ROI.

    Raises
    ------
    DatasetNotFoundError
        The data root lacks what the benchmark needs (the message names what to fetch).
    InputError
        The data lack the benchmark's splits or ROI.
    """
    bench = get_benchmark(bench)
    if bench.loader is None:
        raise InputError(f"benchmark {bench.id} has no loader")
    if bench.kind == "rdms":
        raise InputError(f"benchmark {bench.id} is scored from published brain RDMs, not responses: load it with "
                         "brainlid.scoring.benchmarks.load_benchmark_rdms")
    stimuli, brain = unpack_loaded(bench.loader(root))
    reps = brain if brain.has_reps else brain.meta.get(REPS_META_KEY)
    if bench.roi != "all" and f"roi:{bench.roi}" in brain.units.columns:
        brain = brain.select(roi=bench.roi)
        if reps is not None and reps is not brain:
            reps = reps.select(roi=bench.roi)
    elif bench.roi != "all" and brain.rois:
        raise InputError(f"benchmark {bench.id}: ROI {bench.roi!r} not in the data (has {', '.join(brain.rois)})")
    for s in ("train", bench.split):
        if s not in brain.splits:
            raise InputError(f"benchmark {bench.id}: the data have no {s!r} split (have: {', '.join(brain.splits) or 'none'})")
    if brain.has_reps:
        reps = brain
        brain = brain.average_reps()
    # RSA benchmarks keep the repetition-level responses for the split-half RDM ceiling (runner)
    meta = {k: v for k, v in brain.meta.items() if k != REPS_META_KEY}
    if reps is not None and bench.metric == "rsa":
        meta[REPS_META_KEY] = reps
    if REPS_META_KEY in meta or REPS_META_KEY in brain.meta:
        brain = replace(brain, meta=meta)
    return stimuli, brain


@fill_doc
def load_benchmark_rdms(bench: Benchmark | str, root=None):
    """The :class:`~brainlid.data.rdms.BrainRDMs` of an RDM benchmark (``kind="rdms"``), with the images attached.

    Parameters
    ----------
    bench : Benchmark or str
        E.g. ``"k92.human.IT.rsa"`` (:data:`RDM_BENCHMARKS`) or a registered benchmark of kind ``"rdms"``.
    %(root)s
        For k92, the folder with the three ``.mat`` files.

    Returns
    -------
    BrainRDMs
        Brain RDMs that come without images (k92's monkey IT) get the dataset's images (same ids, same order).
        Score a model with ``brainlid.alignment.brain_rdms.score_brain_rdms(features, None, rdms)``.

    Raises
    ------
    UnknownBenchmarkError
        An id that is not registered (the message lists close ones).
    InputError
        A benchmark that is not an RDM benchmark.
    """
    bench = get_benchmark(bench)
    if bench.kind != "rdms" or bench.loader is None:
        raise InputError(f"benchmark {bench.id} is not an RDM benchmark (those are {', '.join(RDM_BENCHMARKS)})")
    return bench.loader(root)
