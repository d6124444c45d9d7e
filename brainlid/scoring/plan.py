"""The scoring grid as a plan, shared by the serial and the Dask runners.

:func:`plan_grid` decides *what* is scored *where*; it extracts nothing and scores nothing.
The serial :func:`brainlid.scoring.serial.score` and the Dask
:func:`brainlid.scoring.distributed.score_distributed` both walk the same plan, so the grid's
rules live here once:

Model names (:func:`model_name`)
    The keys of a mapping ``name → spec`` when the caller gives one; otherwise the model id of
    :func:`brainlid.features.models.load_model` — the spec with a local weights path shortened to
    the file name, ``nn:module.Class`` for a module object. It is the id the feature provenance
    records (``Features.provenance["model_id"]``). Two models that would share a name are refused.
Layers (:func:`resolve_model_layers`)
    ``layers`` is one list of names / globs / ``re:`` regexes for every model, a mapping from the
    model's key (as given: mapping key, spec string or class name) to such a list, or None (the
    model's top-level child modules, :func:`default_layers`). Selectors are resolved once per model
    to module names in depth order (:func:`brainlid.features.resolve_layers`).
Precomputed features
    A :class:`~brainlid.features.Features` given in place of a spec (features computed in
    any framework, :mod:`brainlid.features.files`) is a model without an architecture: its layers
    are its arrays (``layers`` selects and orders them), it has no random-weights twin, and the
    runners' extraction step is a lookup of its rows by stimulus id (:meth:`Features.for_stimuli`).
Groups per benchmark (:class:`Group`), in this order
    ``pixels`` (once per benchmark, model :data:`~brainlid.scoring.baselines.PIXELS_MODEL`), then
    per model: the model itself (``cache``: its extracted layers), its random-weights twin
    (``random``, when :func:`~brainlid.scoring.baselines.random_weights_spec` allows one; named
    ``<name>@random`` with explicit names, else the twin's spec) and its stimulus-shuffled last
    layer (``shuffled``, ``<name>#shuffled``), as chosen by ``baselines``.
Geometry once (:class:`_Once`)
    LID and global measures of a model are measured by the first group that meets its LID
    stimulus set — keyed by (model name, the LID stimulus ids) — and by no later benchmark that
    shares those ids; never for the shuffled control (permuting rows changes no geometry).
One model–model task per LID set
    With two models or more, the models' last layers are compared once per (LID split, LID
    stimulus ids, model names) (:meth:`BenchPlan.model_model`), on the rows
    ``benchmark = models.<lid stimulus set>.<metric>`` (:func:`mm_benchmark_id`).

The plan keeps only names, specs and layer names; benchmark data are loaded one benchmark at a
time when the plan is iterated (:meth:`GridPlan.__iter__`), so a run holds one benchmark's
responses in memory, as before. Iterating again starts afresh (same flags, same order).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..data.ids import ids_in
from ..errors import InputError
from ..features import Features, layer_selectors, load_model, resolve_layer_names, resolve_layers
from . import baselines as bl
from .baselines import PIXELS_MODEL
from .benchmarks import Benchmark, get_benchmark, load_benchmark_data, load_benchmark_rdms

__all__ = [
    "SOURCES", "ModelPlan", "Group", "BenchPlan", "GridPlan", "plan_grid", "named_models", "model_name",
    "default_layers", "resolve_model_layers", "benchmark_inputs", "lid_ids", "mm_benchmark_id",
    "mm_benchmark_version", "MM_VERSIONS",
]

#: Where a group's features come from: raw pixels, the model's extraction (feature cache), the
#: random-weights twin's extraction, or the model's extraction with rows shuffled across stimuli.
SOURCES = ("pixels", "cache", "random", "shuffled")


# --------------------------------------------------------------------------- models
def named_models(model) -> tuple[dict[str, object], bool]:
    """The runners' ``model`` argument → ``({key: spec or module}, explicit_names)``.

    A mapping keeps its keys (``explicit_names=True``); a spec string, a module or a sequence of
    them is keyed by the spec string, or the module's class name (``explicit_names=False``).
    """
    if isinstance(model, Mapping):
        return {str(k): v for k, v in model.items()}, True
    seq = list(model) if isinstance(model, (list, tuple)) else [model]
    return {(m if isinstance(m, str) else type(m).__name__): m for m in seq}, False


def model_name(key: str, handle_or_spec, explicit_names: bool) -> str:
    """A model's name in the score and geometry tables (module docstring: *Model names*).

    ``handle_or_spec`` is a :class:`~brainlid.features.models.ModelHandle` (no load) or anything
    :func:`~brainlid.features.models.load_model` takes.
    """
    if explicit_names:
        return str(key)
    return str(load_model(handle_or_spec).model_id)


def default_layers(model) -> list[str]:
    """The layers extracted when none are given: the model's top-level child modules.

    Two refinements make the rule work on common architectures: a container that is never called
    itself (``nn.ModuleList`` / ``nn.ModuleDict``, e.g. a list of blocks the forward pass loops
    over) is replaced by its children, recursively; and a model whose only child is a wrapper
    (``self.net = nn.Sequential(...)``) is described by that wrapper's children.

    Returns
    -------
    list of str
        Dotted module names in module order (``["conv1", ..., "layer4", "avgpool", "fc"]`` for a
        torchvision ResNet; ``["gray", "hidden.0", "hidden.1", "embed", "head"]`` for the demo MLP).
    """
    from torch import nn  # heavy: torch (only when the default layers are asked for)

    def expand(prefix: str, module) -> list[str]:
        out = []
        for n, child in module.named_children():
            name = f"{prefix}{n}"
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
                out += expand(name + ".", child)
            else:
                out.append(name)
        return out

    root, prefix = load_model(model).module, ""
    while True:
        children = list(root.named_children())
        if len(children) != 1 or not list(children[0][1].children()):
            break
        prefix, root = f"{prefix}{children[0][0]}.", children[0][1]
    names = expand(prefix, root)
    if not names:
        raise InputError(f"model {getattr(model, 'model_id', model)!r} has no sub-modules; pass layers explicitly")
    return names


def resolve_model_layers(key: str, model, layers) -> list[str]:
    """The module names to extract for one model, in depth order.

    Parameters
    ----------
    key : str
        The model's key as given (mapping key, spec string or class name): the key of a ``layers``
        mapping.
    model : spec, module or ModelHandle
    layers : None, str (comma-separated selectors), sequence of selectors, or mapping key → those
        None or empty: :func:`default_layers`.

    Raises
    ------
    InputError
        A mapping without an entry for ``key``, or a selector that matches no module.
    """
    handle = load_model(model)
    sel = _selectors_of(key, layers)
    return resolve_layers(handle.module, sel if sel else default_layers(handle))


def _selectors_of(key: str, layers):
    """The selectors ``layers`` gives model ``key``: its entry of a mapping (an error when it has none), else ``layers``."""
    if not isinstance(layers, Mapping):
        return layers
    if key not in layers:
        raise InputError(f"the layers mapping has no entry for model {key!r} (it has {sorted(map(str, layers))}); "
                         "give every model's layers, or one list for all")
    return layers[key]


def _resolve_shared(key: str, handle, selectors: list[str], matched: set) -> list[str]:
    """One selection shared by several models: each model takes the selectors that match it.

    A selector may match nothing in some of the models (``"hidden.*,blocks.*"`` for an MLP and a
    CNN); :func:`plan_grid` raises when one matches no model at all. ``matched`` collects the
    selectors that matched here.
    """
    mine, first_error = [], None
    for sel in selectors:
        try:
            resolve_layers(handle.module, [sel])
        except InputError as exc:
            first_error = first_error or exc
            continue
        mine.append(sel)
        matched.add(sel)
    if not mine:
        raise InputError(f"model {key!r} has none of the layers {', '.join(selectors)} ({first_error}); run "
                         f"`brainlid layers {getattr(handle, 'model_id', key)}` to list its layers, or give "
                         "per-model layers as a mapping")
    return resolve_layers(handle.module, mine)


def _features_layers(key: str, feats, layers, shared: list[str] | None, matched: set) -> tuple[str, ...]:
    """The layers of precomputed :class:`~brainlid.features.Features` standing for a model.

    All of them (stored order) when ``layers`` is None; else the selectors (a mapping's entry
    for ``key``), in the order given; with a selection ``shared`` by several models, the
    selectors that match (collected in ``matched``).
    """
    if shared is not None:
        mine = [s for s in shared if _matches(feats.layers, s)]
        matched.update(mine)
        if not mine:
            raise InputError(f"the features {key!r} have none of the layers {', '.join(shared)} (they have "
                             f"{', '.join(feats.layers[:8])})")
        sel = mine
    else:
        sel = _selectors_of(key, layers)
    if not sel:
        return tuple(feats.layers)
    return tuple(resolve_layer_names(feats.layers, sel, given_order=True, what=f"the features {key!r}", unit="layer"))


def _matches(names: list[str], selector: str) -> bool:
    try:
        resolve_layer_names(names, [selector])
    except InputError:
        return False
    return True


@dataclass(frozen=True)
class ModelPlan:
    """One model of the grid: its key as given, its table name, what to extract and its baselines."""

    key: str
    name: str
    spec: object  # spec string or torch module
    layers: tuple[str, ...]  # resolved module names, depth order
    random_spec: str | None = None  # the random-weights twin (None: not requested or not possible)
    random_name: str | None = None


# --------------------------------------------------------------------------- benchmarks
def benchmark_inputs(bench: Benchmark | str, data_root=None):
    """``(stimuli, brain)`` of a benchmark as the runners score it.

    ``brain`` is the :class:`~brainlid.data.BrainData` of a response benchmark
    (:func:`~brainlid.scoring.benchmarks.load_benchmark_data`) or the
    :class:`~brainlid.data.rdms.BrainRDMs` of an RDM benchmark (``kind="rdms"``,
    :func:`~brainlid.scoring.benchmarks.load_benchmark_rdms`, images attached); ``stimuli``
    is the benchmark's StimulusSet restricted to the ids that have brain data.

    Raises
    ------
    InputError
        The benchmark ships no images (score precomputed features with ``score_features``).
    """
    bench = get_benchmark(bench)
    if bench.kind == "rdms":
        brain = load_benchmark_rdms(bench, data_root)
        stimuli = brain.stimuli
    else:
        stimuli, brain = load_benchmark_data(bench, data_root)
    if stimuli is None:
        raise InputError(f"benchmark {bench.id} has no stimulus images: pass features to score_features instead")
    shared = np.sort(stimuli.ids[ids_in(stimuli.ids, brain.stimulus_ids, names=("stimulus set", "brain data"))])
    sub = stimuli if len(stimuli) == shared.size else stimuli.subset(ids=shared)
    return sub, brain


def lid_ids(bench: Benchmark, brain) -> np.ndarray:
    """Sorted ids of the benchmark's LID stimulus set (``bench.lid_stimulus_set``).

    Response benchmarks: the first ``lid_n`` ids (all when None) of the sorted ``lid_split``
    split; RDM benchmarks: every image with a brain RDM row. Raises :class:`InputError` when the
    split has fewer than ``lid_n`` stimuli.
    """
    if bench.kind == "rdms":
        return np.sort(np.asarray(brain.stimulus_ids))
    ids = np.sort(np.asarray(brain.splits[bench.lid_split]))
    if bench.lid_n:
        if ids.size < bench.lid_n:
            raise InputError(f"benchmark {bench.id} measures LID on {bench.lid_n} stimuli but its {bench.lid_split} "
                             f"split has {ids.size}")
        ids = ids[: bench.lid_n]
    return ids


def mm_benchmark_id(stimulus_set: str, metric: str) -> str:
    """The ``benchmark`` column of model–model rows: ``models.<stimulus set>.<metric>``."""
    return f"models.{stimulus_set}.{metric}"


#: ``benchmark_version`` of model–model rows per metric (1 when not listed): ``ridge_r2`` is 2 since its
#: α grid is relative to the features' spectrum (scale-invariant; version-1 values depended on feature scale).
MM_VERSIONS = {"ridge_r2": 2}


def mm_benchmark_version(metric: str) -> int:
    """The ``benchmark_version`` of model–model rows of ``metric`` (:data:`MM_VERSIONS`, else 1)."""
    return MM_VERSIONS.get(metric, 1)


# --------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class Group:
    """One model's layers on one benchmark: a ``(model, benchmark)`` pair of the tables.

    ``layers`` are scored (the best one is selected among them); ``extract_layers`` are what the
    features come from (the model's layers; only the last is scored for ``shuffled``).
    ``base`` is the table name of the model the group derives from (itself for ``cache``, the
    model for ``random`` / ``shuffled``, "" for ``pixels``). ``geometry``: measure the LID and
    global rows of these layers here (first meeting of this model and LID stimulus set).
    """

    model: str
    source: str  # one of SOURCES
    spec: object  # what to extract (None for pixels; the model's spec for shuffled)
    layers: tuple[str, ...]
    extract_layers: tuple[str, ...]
    geometry: bool
    base: str = ""


@dataclass
class BenchPlan:
    """One benchmark of the plan, with its data loaded.

    ``stimuli`` is restricted to ids with brain data (:func:`benchmark_inputs`); ``lid_ids`` the
    LID stimulus ids (:func:`lid_ids`); ``groups`` in scoring order; ``model_model`` whether this
    benchmark runs the model–model task of its LID set on ``mm_layers`` (model name → last layer).
    """

    bench: Benchmark
    stimuli: object
    brain: object
    lid_ids: np.ndarray
    groups: list[Group]
    model_model: bool
    mm_layers: dict[str, str] = field(default_factory=dict)

    def mm_cells(self, metrics: Sequence[str]) -> list[tuple]:
        """Store cells ``("scores", model, layer, benchmark, version)`` of this benchmark's model–model task."""
        return [("scores", n, layer, mm_benchmark_id(self.bench.lid_stimulus_set, m), mm_benchmark_version(m))
                for n, layer in self.mm_layers.items() for m in metrics]


class _Once:
    """Remembers keys: ``first(key)`` is True the first time a key is seen, False after."""

    def __init__(self):
        self.seen: set = set()

    def first(self, key) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@dataclass
class GridPlan:
    """Models × benchmarks and the baselines, resolved; iterate for one :class:`BenchPlan` per benchmark."""

    models: list[ModelPlan]
    benchmarks: list[Benchmark]
    baselines: tuple[str, ...]
    explicit_names: bool
    data_root: object = None

    def __iter__(self) -> Iterator[BenchPlan]:
        geometry, mm = _Once(), _Once()
        for bench in self.benchmarks:
            stimuli, brain = benchmark_inputs(bench, self.data_root)
            ids = lid_ids(bench, brain)
            groups = self.groups(bench, ids, geometry)
            mm_key = (bench.lid_split, tuple(ids.tolist()), tuple(sorted(m.name for m in self.models)))
            run_mm = len(self.models) >= 2 and mm.first(mm_key)
            yield BenchPlan(bench, stimuli, brain, ids, groups, run_mm,
                            {m.name: m.layers[-1] for m in self.models} if run_mm else {})

    def groups(self, bench: Benchmark, ids: np.ndarray, geometry: _Once | None = None) -> list[Group]:
        """The groups of one benchmark whose LID stimulus ids are ``ids``; ``geometry`` carries the
        (model, LID ids) pairs already measured (a fresh one: every group measures geometry)."""
        geometry = geometry if geometry is not None else _Once()
        token = hashlib.sha1(np.ascontiguousarray(ids).tobytes()).hexdigest()

        def geo(name):
            return geometry.first((name, token))

        out: list[Group] = []
        if "pixels" in self.baselines:
            out.append(Group(PIXELS_MODEL, "pixels", None, ("pixels",), ("pixels",), geo(PIXELS_MODEL)))
        for m in self.models:
            out.append(Group(m.name, "cache", m.spec, m.layers, m.layers, geo(m.name), m.name))
            if m.random_spec is not None:
                out.append(Group(m.random_name, "random", m.random_spec, m.layers, m.layers, geo(m.random_name), m.name))
            if "shuffled" in self.baselines:
                out.append(Group(f"{m.name}#shuffled", "shuffled", m.spec, m.layers[-1:], m.layers, False, m.name))
        return out


def plan_grid(
    models,
    benchmarks,
    *,
    layers=None,
    baselines: bool | str | Sequence[str] = True,
    data_root=None,
    allow_download: bool | None = None,
) -> GridPlan:
    """Plan the scoring grid of models × benchmarks (module docstring for the rules).

    Parameters
    ----------
    models : spec, module, Features, a sequence of them, or a mapping name → spec
        As :func:`brainlid.scoring.serial.score` takes them (Features: precomputed features).
    benchmarks : id, Benchmark or a sequence of them
        Unknown ids fail here, before any data are read.
    layers : None, str, sequence of str, or mapping model key → sequence
        See :func:`resolve_model_layers`. One selection given for several models is shared:
        each model takes the selectors that match its modules (``"hidden.*,blocks.*,embed"``
        for an MLP and a CNN), and a selector that matches no model at all is an error.
    baselines : bool or sequence of {"pixels", "random", "shuffled"}
    data_root : path or None
        Where the benchmarks' data are loaded from when the plan is iterated.
    allow_download : bool or None
        Passed to :func:`~brainlid.features.models.load_model` (each model is loaded once here, to
        name it and resolve its layers, and released).

    Returns
    -------
    GridPlan

    Raises
    ------
    InputError
        No model or no benchmark, an unknown baseline, a layers mapping missing a model, an
        unknown layer, or two models that would get the same table name.
    """
    named, explicit = named_models(models)
    benches = [benchmarks] if isinstance(benchmarks, (str, Benchmark)) else list(benchmarks)
    if not benches or not named:
        raise InputError("give at least one model and one benchmark")
    benches = [get_benchmark(b) for b in benches]  # fail early on unknown ids
    want = bl.parse_baselines(baselines)
    plans: list[ModelPlan] = []
    owner: dict[str, str] = {}
    shared = layer_selectors(layers) if layers and not isinstance(layers, Mapping) and len(named) > 1 else None
    matched: set = set()
    for key, spec in named.items():
        if isinstance(spec, Features):  # precomputed features: no model to load, no random-weights twin
            name = key if explicit else str(spec.provenance.get("model_id") or key)
            if name in owner:
                raise InputError(f"models {owner[name]!r} and {key!r} would both be named {name!r} in the tables; "
                                 "give the models as a mapping name → spec")
            owner[name] = key
            plans.append(ModelPlan(key, name, spec, _features_layers(key, spec, layers, shared, matched)))
            continue
        handle = load_model(spec, allow_download=allow_download)
        name = model_name(key, handle, explicit)
        if name in owner:
            raise InputError(f"models {owner[name]!r} and {key!r} would both be named {name!r} in the tables; "
                             "give the models as a mapping name → spec")
        owner[name] = key
        if shared is not None:
            lay = tuple(_resolve_shared(key, handle, shared, matched))
        else:
            lay = tuple(resolve_model_layers(key, handle, layers))
        del handle
        rspec = bl.random_weights_spec(spec) if "random" in want else None
        rname = None if rspec is None else (f"{name}@random" if explicit else rspec)
        plans.append(ModelPlan(key, name, spec, lay, rspec, rname))
    if shared is not None and len(matched) < len(shared):
        bad = next(s for s in shared if s not in matched)
        first = next(iter(named.values()))
        try:  # the single-model message names close matches
            if isinstance(first, Features):
                resolve_layer_names(first.layers, [bad], what="the features", unit="layer")
            resolve_layers(load_model(first, allow_download=allow_download).module, [bad])
        except InputError as exc:
            raise InputError(f"{exc} (nor in any of the other models)") from None
    return GridPlan(plans, benches, want, explicit, data_root)
