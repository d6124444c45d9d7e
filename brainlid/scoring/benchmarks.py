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

Built-in benchmarks
-------------------
One table, :data:`BUILTIN_FAMILIES` (one :class:`BenchmarkFamily` per dataset: subjects × ROIs × metrics,
space, ceiling, params, the dataset adapter that fixes the split rule), is the registry's source:
NSD, THINGS-EEG2, THINGS-fMRI, Algonauts 2023 and the RDM benchmarks (k92, Algonauts 2019; their
:data:`RDM_BENCHMARKS` come from the same table). What each dataset's benchmarks mean (splits,
ceilings, LID stimuli) is in :mod:`brainlid.scoring.benchmark_data`, beside its adapter.

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
from .benchmark_data import (  # noqa: F401 (the table's names stay importable from the registry)
    ALGONAUTS2023_ROIS, ALGONAUTS2023_SUBJECTS, ALGONAUTS2023_TEST_FRACTION, BUILTIN_FAMILIES, METRICS, NSD_ROIS,
    NSD_SUBJECTS, RDM_BENCHMARKS, RDM_CEILINGS, REPS_META_KEY, RSA_CEILING, THINGS_EEG2_ROIS, THINGS_FMRI_ROIS,
    THINGS_FMRI_SUBJECTS, BenchmarkFamily, hash_split, unpack_loaded)

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

def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for fam in BUILTIN_FAMILIES:
        for definition in fam.definitions():
            _REGISTRY.setdefault(definition["id"], Benchmark(**definition))


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
        passed directly to :func:`brainlid.scoring.cell.score_features`).
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
