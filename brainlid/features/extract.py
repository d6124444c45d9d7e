"""Layer activations of a PyTorch model for a stimulus set: hooks, batching, pooling, caching.

:func:`extract` is the entry point. For every requested layer it returns a float32 array
``(n_stimuli, n_features)`` in the stimulus set's order, together with the stimulus ids and a
provenance record, as a :class:`Features` mapping. The flow:

1. the model spec is loaded (:func:`brainlid.features.models.load_model`) and layers are
   resolved by exact name, glob (``"blocks.*"``) or regex (``"re:layer\\d+$"``);
2. one cache key per layer (:mod:`brainlid.features.cache`); layers already cached are
   memory-mapped without running the model;
3. otherwise one probe forward pass on the first stimulus gives each layer's output shape, checks
   the model runs on that input (a failure names the innermost module and its input shape), and
   finds where the forward pass can stop early (after the last hooked module fires);
4. the disk and memory needed are estimated and checked against the disk budget;
5. images are read and preprocessed in a ``torch.utils.data.DataLoader`` (whole batches per
   worker item); each batch runs under ``torch.inference_mode`` (bfloat16 by autocast when
   asked); hooks pool each layer's output on the device; rows are written into the cache
   entries and committed durably as batches finish, so a killed run resumes where it stopped;
6. PCA reductions are fitted on the named subset afterwards, from the cached unreduced features.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
from .._progress import progress_wanted
from ..data.ids import as_ids
from ..data.stimuli import StimulusSet
from ..data.stimulus_folder import is_stimulus_folder, read_stimulus_folder
from ..errors import BrainlidError, DatasetNotFoundError, FileFormatError, InputError
from ..io import load_npy
from .cache import (
    CacheEntry,
    CorruptEntryError,
    FeatureCache,
    cache_key,
    ensure_disk_budget,
    fmt_size,
    ids_digest,
)
from .models import ModelHandle, load_model
from .pooling import Pooling, Reduction, apply_srp, fit_pca, parse_pooling, pool, srp_matrix
from .preprocess import Preprocess

__all__ = ["extract", "Features", "list_layers", "resolve_layers", "resolve_layer_names", "as_stimulus_set", "LayerInfo",
           "ForwardError"]

log = logging.getLogger("brainlid.features")

_STORAGE = ("float32", "float16")
_COMPUTE = ("float32", "bfloat16")


class ForwardError(InputError):
    """The model's forward pass failed on the given input (the message names the module and shape)."""


# ---------------------------------------------------------------------------------------------
# Features container
# ---------------------------------------------------------------------------------------------
class Features(Mapping):
    """Layer name → ``(n_stimuli, n_features)`` array, rows in the order of :attr:`stimulus_ids`.

    Arrays read from the cache are read-only memory maps. :attr:`provenance` records model id,
    weights digest, preprocessing, pooling and reduction per layer, cache keys and the brainlid
    version.
    """

    def __init__(self, arrays: dict, stimulus_ids, provenance: dict | None = None):
        self._arrays = dict(arrays)
        self.stimulus_ids = np.asarray(stimulus_ids)
        self.provenance = provenance or {}
        for name, a in self._arrays.items():
            if a.shape[0] != self.stimulus_ids.size:
                raise InputError(f"layer {name!r} has {a.shape[0]} rows for {self.stimulus_ids.size} stimulus ids")

    def __getitem__(self, layer):
        return self._arrays[layer]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    @property
    def layers(self) -> list[str]:
        return list(self._arrays)

    def __repr__(self):
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._arrays.items())
        return f"Features(n={self.stimulus_ids.size}, {shapes})"

    def save(self, out_dir) -> Path:
        """Write ``<layer>.npy`` per layer, ``stimulus_ids.npy`` and ``manifest.json`` to ``out_dir`` (atomically per file)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, arr in self._arrays.items():
            fname = _safe_filename(name) + ".npy"
            with atomic_path(out / fname) as tmp:
                np.save(tmp, np.ascontiguousarray(arr), allow_pickle=False)
            files[name] = fname
        with atomic_path(out / "stimulus_ids.npy") as tmp:
            np.save(tmp, self.stimulus_ids, allow_pickle=False)
        man = {"format": "brainlid-features-v1", "layers": files, "stimulus_ids": "stimulus_ids.npy", "n_stimuli": int(self.stimulus_ids.size),
               "shapes": {k: list(v.shape) for k, v in self._arrays.items()}, "provenance": self.provenance}
        atomic_write_text(out / "manifest.json", json.dumps(man, indent=1, default=str))
        return out

    @classmethod
    def load(cls, folder, mmap: bool = True) -> "Features":
        """Read a folder written by :meth:`save` (arrays memory-mapped when ``mmap``)."""
        folder = Path(folder)
        try:
            man = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"no manifest.json in {folder}; not a brainlid features folder") from exc
        except ValueError as exc:
            raise FileFormatError(f"unreadable manifest in {folder}: {exc}") from exc
        ids = load_npy(folder / man["stimulus_ids"])
        arrays = {k: load_npy(folder / f, mmap_mode="r" if mmap else None) for k, f in man["layers"].items()}
        return cls(arrays, ids, man.get("provenance", {}))

    def for_stimuli(self, ids, layers=None, *, what: str = "the stimulus set", note=None) -> "Features":
        """These features' rows for the stimuli ``ids``, in that order (precomputed features as a model).

        Parameters
        ----------
        ids : array-like (n,)
            The stimulus ids wanted (e.g. a benchmark's stimulus set).
        layers : None, str or sequence of str
            Layers to keep (names, globs, ``re:``), in the order given (:func:`resolve_layer_names`);
            None: all, in stored order.
        what : str
            Names the wanted set in messages.
        note : callable or None
            Called with one sentence when the features have ids beyond ``ids`` (they are ignored).

        Raises
        ------
        InputError
            Ids of another kind (strings vs integers) or missing ids (the message names a few).
        """
        want = as_ids(ids, f"{what} ids")
        have = as_ids(self.stimulus_ids, "feature stimulus ids")
        if (want.dtype.kind == "U") != (have.dtype.kind == "U"):
            kinds = {True: "strings", False: "integers"}
            raise InputError(f"the features' stimulus ids are {kinds[have.dtype.kind == 'U']} but {what}'s are "
                             f"{kinds[want.dtype.kind == 'U']} (e.g. {want[0]!r}); save the ids {what} uses")
        order = np.argsort(have)
        pos = np.clip(np.searchsorted(have, want, sorter=order), 0, have.size - 1)
        rows = order[pos]
        found = have[rows] == want
        if not found.all():
            missing = want[~found]
            raise InputError(f"the features lack {missing.size} of the {want.size} stimulus ids of {what}, e.g. "
                             f"{missing[:5].tolist()}; compute features for every stimulus of the set "
                             "(`brainlid benchmarks stimuli` exports it)")
        if have.size > want.size and note is not None:
            note(f"{have.size - want.size} stimulus id(s) of the features are not in {what} and are ignored")
        names = self.layers if layers is None else resolve_layer_names(self.layers, layers, given_order=True,
                                                                         what="the features", unit="layer")
        keys = (self.provenance.get("cache_keys") or {})
        prov = {**self.provenance, "cache_keys": {k: keys.get(k) for k in names}}
        return Features({k: self._arrays[k][rows] for k in names}, want, prov)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "output"


# ---------------------------------------------------------------------------------------------
# stimuli
# ---------------------------------------------------------------------------------------------
def as_stimulus_set(source) -> StimulusSet:
    """A :class:`StimulusSet` from a stimulus set, an image folder, ``file.h5:key``, a ``.npy`` file or an array.

    Arrays are ``(n, H, W)`` or ``(n, H, W, C)``; ``.npy`` files are memory-mapped with
    ``allow_pickle=False``; ids default to ``0 … n-1`` (file stems for folders). A folder written by
    ``brainlid benchmarks stimuli`` (``stimulus_ids.npy`` beside ``00000.png`` …) keeps the
    benchmark's ids (:func:`brainlid.data.stimulus_folder.read_stimulus_folder`).
    """
    if isinstance(source, StimulusSet):
        if not source.has_images:
            raise InputError(f"stimulus set {source.name!r} has no images to extract features from")
        return source
    if isinstance(source, np.ndarray):
        return StimulusSet.from_array(source)
    if isinstance(source, (str, Path)):
        text = str(source)
        m = re.fullmatch(r"(.+\.(?:h5|hdf5|hdf)):([^:]+)", text)
        if m:
            return StimulusSet.from_hdf5(m.group(1), m.group(2), name=Path(m.group(1)).stem)
        p = Path(text).expanduser()
        if p.is_dir():
            return read_stimulus_folder(p) if is_stimulus_folder(p) else StimulusSet.from_folder(p)
        if p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            import h5py

            if not p.is_file():
                raise DatasetNotFoundError(f"HDF5 file not found: {p}")
            with h5py.File(p, "r") as f:
                keys = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
            raise InputError(f"name the image dataset inside {p}: use {p}:KEY with KEY one of {', '.join(keys) or '(none)'}")
        if p.suffix.lower() == ".npy":
            if not p.is_file():
                raise DatasetNotFoundError(f"stimulus array not found: {p}")
            return StimulusSet.from_array(load_npy(p, mmap_mode="r"), name=p.stem)
        if not p.exists():
            raise DatasetNotFoundError(f"stimulus source not found: {p}")
        raise InputError(f"cannot read stimuli from {p}: give an image folder, FILE.h5:KEY or a .npy array")
    raise InputError(f"stimuli must be a StimulusSet, an image folder, 'file.h5:key', a .npy path or an array; got {type(source).__name__}")


class _BatchDataset:
    """Item ``b`` = the preprocessed images of batch ``b`` stacked to ``(B, C, H, W)`` float32.

    Picklable (for DataLoader workers) as long as the reader is. Read errors are returned as a
    :class:`_Failure` and re-raised in the main process with their original message.
    """

    def __init__(self, reader, preprocess: Preprocess, n: int, batch_size: int):
        self.reader, self.preprocess, self.n, self.batch_size = reader, preprocess, n, batch_size

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, b):
        import torch

        start, stop = b * self.batch_size, min(self.n, (b + 1) * self.batch_size)
        try:
            imgs = self.reader.read_many(np.arange(start, stop))
            xs = [self.preprocess(im) for im in imgs]
            shapes = {tuple(x.shape) for x in xs}
            if len(shapes) > 1:
                raise InputError(f"images {start}..{stop - 1} have different sizes after preprocessing {sorted(shapes)[:3]}; declare resize/crop in the preprocessing")
            return b, torch.stack(xs)
        except Exception as exc:  # carried to the main process whole
            return b, _Failure(type(exc), str(exc), start, stop)


@dataclass
class _Failure:
    exc_type: type
    message: str
    start: int
    stop: int

    def raise_(self):
        if issubclass(self.exc_type, BrainlidError):
            raise self.exc_type(self.message)
        raise FileFormatError(f"reading/preprocessing stimuli {self.start}..{self.stop - 1} failed: {self.exc_type.__name__}: {self.message}")


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
def _module_names(module) -> list[str]:
    return [n for n, _ in module.named_modules() if n]


def layer_selectors(layers) -> list[str]:
    """Layer selectors as a list: a string is split at commas (blanks dropped); None gives ``[]``."""
    if isinstance(layers, str):
        return [t for t in (t.strip() for t in layers.split(",")) if t]
    return [str(t) for t in (layers or [])]


def resolve_layers(module, layers) -> list[str]:
    """Resolve layer selectors to module names, in the model's module order.

    Each selector is an exact module name, a glob (``"features.*"``, ``"blocks.[0-3]"``; ``*`` and
    ``?`` do not cross dots, ``**`` does) or a regex prefixed ``"re:"`` and searched anywhere in
    the name (``"re:layer\\d$"``); a string may hold several separated by commas. An unknown
    name raises :class:`~brainlid.errors.InputError` listing close matches.
    """
    names = _module_names(module)
    if not names:
        raise InputError("the model has no sub-modules to hook")
    if not layer_selectors(layers):
        raise InputError("no layers requested; run list_layers(model) / `brainlid layers MODEL` to see them")
    return resolve_layer_names(names, layers)


def resolve_layer_names(names, layers, *, given_order: bool = False, what: str = "the model",
                        unit: str = "module") -> list[str]:
    """Resolve layer selectors (names, globs, ``re:`` regexes; see :func:`resolve_layers`) against ``names``.

    Parameters
    ----------
    names : sequence of str
        The available layer names, in their source's order.
    layers : str or sequence of str
    given_order : bool
        False: the chosen names in ``names`` order (a model's depth order); True: in the order of
        the selectors (a glob's hits in ``names`` order at its place) — precomputed features,
        whose files may not keep the layers' order.
    what, unit : str
        How messages name the source ("the model", "the features") and its entries.

    Returns
    -------
    list of str — without repeats.
    """
    names = list(names)
    layers = layer_selectors(layers)
    if not layers:
        raise InputError(f"no layers requested from {what}")
    chosen: dict[str, None] = {}
    index = {n: i for i, n in enumerate(names)}
    for sel in layers:
        sel = str(sel)
        if sel in index:
            hits = [sel]
        elif sel.startswith("re:"):
            try:
                rx = re.compile(sel[3:])
            except re.error as exc:
                raise InputError(f"bad layer regex {sel!r}: {exc}") from exc
            hits = [n for n in names if rx.search(n)]
        elif any(c in sel for c in "*?["):
            rx = _glob_regex(sel)
            hits = [n for n in names if rx.fullmatch(n)]
        else:
            close = difflib.get_close_matches(sel, names, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; {what} has {len(names)} {unit}s, e.g. {', '.join(names[:6])}"
            raise InputError(f"unknown layer {sel!r}{hint}")
        if not hits:
            raise InputError(f"layer pattern {sel!r} matches no {unit}; {what} has e.g. {', '.join(names[:8])}")
        chosen.update(dict.fromkeys(hits))
    return list(chosen) if given_order else sorted(chosen, key=index.__getitem__)


def _glob_regex(pattern: str) -> "re.Pattern":
    """Glob over dotted module names: ``*`` and ``?`` stay within one name part, ``**`` crosses dots."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise InputError(f"unclosed '[' in layer pattern {pattern!r}")
            body = pattern[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if "last_hidden_state" in out and isinstance(out["last_hidden_state"], torch.Tensor):
            return out["last_hidden_state"]
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


@dataclass
class LayerInfo:
    """A module of a model: its name, type, output shape for one input (``None`` if not called) and call count."""

    name: str
    type: str
    output_shape: tuple | None
    n_params: int
    calls: int


class _Stop(Exception):
    """Raised by the last hook to end the forward pass early."""


def _forward_probe(module, x, names: list[str] | None = None):
    """Run ``module(x)`` once with hooks on every module.

    Returns ``(shapes, order, calls, outputs)``: the output shape of each module's *last* call,
    the sequence of wanted module names in the order their forward finished, the number of
    calls per module, and (a copy of) the last output of each wanted module. On failure raises :class:`ForwardError`
    naming the innermost module that was running and its input shape.
    """
    import torch

    stack: list[tuple[str, str, str]] = []
    shapes: dict[str, tuple] = {}
    calls: dict[str, int] = {}
    order: list[str] = []
    outputs: dict[str, object] = {}
    handles = []
    wanted = set(names) if names is not None else None

    def shape_of(args):
        t = _first_tensor(list(args)) if args else None
        return tuple(t.shape) if t is not None else None

    for name, m in module.named_modules():
        if not name:
            continue

        def pre(mod, args, name=name):
            stack.append((name, type(mod).__name__, shape_of(args)))

        def post(mod, args, out, name=name):
            if stack:
                stack.pop()
            t = _first_tensor(out)
            shapes[name] = tuple(t.shape) if t is not None else None
            calls[name] = calls.get(name, 0) + 1
            if wanted is None or name in wanted:
                order.append(name)
                if wanted is not None and t is not None:
                    outputs[name] = t.detach().clone()

        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    failure = None
    try:
        with torch.inference_mode():
            module(x)
    except Exception as exc:
        where = f" in layer {stack[-1][0]!r} ({stack[-1][1]}) with input shape {stack[-1][2]}" if stack else ""
        failure = ForwardError(f"the model's forward pass failed on input of shape {tuple(x.shape)}{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        failure.__cause__ = exc
    finally:
        for h in handles:
            h.remove()
    if failure is not None:
        raise failure
    return shapes, order, calls, outputs


def list_layers(model, input_shape=None) -> list[LayerInfo]:
    """Every named module with its output shape for one dummy input of ``input_shape`` ``(C, H, W)``.

    ``model`` is a spec string, a :class:`~brainlid.features.models.ModelHandle` or an
    ``nn.Module``; ``input_shape`` defaults to the model's declared input size, else
    ``(3, 224, 224)``. Modules not called in the forward pass have ``output_shape=None``.
    """
    import torch

    handle = load_model(model)
    module = handle.module
    shape = tuple(int(s) for s in (input_shape or handle.input_size or (3, 224, 224)))
    was_training = module.training
    module.eval()
    try:
        x = torch.zeros((1,) + shape, device=_param_device(module))
        shapes, _, calls, _ = _forward_probe(module, x)
    finally:
        module.train(was_training)
    out = []
    for name, m in module.named_modules():
        if name:
            out.append(LayerInfo(name, type(m).__name__, shapes.get(name), sum(p.numel() for p in m.parameters(recurse=True)), calls.get(name, 0)))
    return out


def _param_device(module):
    import torch

    for p in module.parameters():
        return p.device
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------
def _resolve_device(device):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but torch sees no CUDA device")
    return dev


def _pattern_hits(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return _glob_regex(pattern).fullmatch(name) is not None


def _pooling_for(layers: list[str], pooling) -> dict[str, Pooling]:
    if isinstance(pooling, Mapping):
        out = {}
        default = pooling.get("default", pooling.get("*", "avg"))
        for layer in layers:
            spec = pooling.get(layer)
            if spec is None:
                for pat, p in pooling.items():
                    if pat not in ("default", "*") and _pattern_hits(pat, layer):
                        spec = p
                        break
            out[layer] = parse_pooling(spec if spec is not None else default)
        unknown = [k for k in pooling if k not in ("default", "*") and k not in layers and not any(_pattern_hits(k, layer) for layer in layers)]
        if unknown:
            raise InputError(f"pooling given for layer(s) not requested: {', '.join(unknown)}")
        return out
    p = parse_pooling(pooling)
    return {layer: p for layer in layers}


@dataclass
class _Target:
    """One array being filled: a layer's pooled (optionally SRP-reduced) features."""

    layer: str
    pooling: Pooling
    srp: Reduction | None
    key: str | None
    entry: CacheEntry | None
    array: np.ndarray | None = None
    done: np.ndarray | None = None
    R: object = None  # SRP matrix
    array_cols: int = 0


def extract(
    model,
    stimuli,
    layers,
    *,
    pooling="avg",
    batch_size: int = 64,
    device="auto",
    dtype: str = "float32",
    preprocess="auto",
    reduce=None,
    cache=True,
    storage_dtype: str = "float32",
    num_workers: int = 0,
    progress: bool = True,
    max_disk=None,
    verify: bool = True,
    allow_download: bool | None = None,
    channels_last: bool = True,
    commit_every: float | None = None,
) -> Features:
    """Extract pooled layer activations of ``model`` for every stimulus.

    Parameters
    ----------
    model : str or torch.nn.Module or ModelHandle or Features
        A model spec (see :mod:`brainlid.features.models`) or a module. Precomputed
        :class:`Features` (e.g. from another framework, :mod:`brainlid.features.files`) stand for a
        model: their rows for the stimuli's ids are returned (:meth:`Features.for_stimuli`), nothing runs.
    stimuli : StimulusSet, path or array
        See :func:`as_stimulus_set` (image folder, ``file.h5:key``, ``.npy``, array).
    layers : str or list of str
        Names, globs or ``re:`` regexes (see :func:`resolve_layers`).
    pooling : str or dict
        One mode for all layers, or ``{layer or glob: mode, "default": mode}``; modes in
        :mod:`brainlid.features.pooling` (``"none"``, ``"avg"``, ``"max"``, ``"cls"``,
        ``"tokens"``, ``"adaptive:S"``).
    batch_size : int
        Images per forward pass.
    device : {"auto", "cpu", "cuda", ...}
        ``"auto"`` uses CUDA when available. The module is moved to this device.
    dtype : {"float32", "bfloat16"}
        Compute precision (bfloat16 through ``torch.autocast``). Part of the cache key.
    preprocess : "auto" or Preprocess or dict or None
        ``"auto"``: the model adapter's preprocessing, else :class:`Preprocess` defaults (scale
        to [0, 1], no resize). ``None`` means the same defaults.
    reduce : None or str or Reduction
        ``"srp:K"`` (streaming, seeded) or ``"pca:K"`` / ``Reduction("pca", K, fit_ids=...)``.
    cache : bool or path or FeatureCache
        ``True`` uses ``$BRAINLID_HOME/cache/features``; a path uses that folder; ``False`` keeps
        everything in memory.
    storage_dtype : {"float32", "float16"}
        dtype stored in the cache and returned.
    num_workers : int
        DataLoader worker processes reading and preprocessing images (0: in this process).
    progress : bool
        Show the disk/memory estimate and a progress bar (images/s, ETA) on stderr; the bar only on
        a terminal outside CI (:func:`brainlid._progress.progress_wanted`).
    max_disk : int or str or None
        Disk budget for new cache entries (``"10GB"``); default free space minus 1 GiB.
    verify : bool
        Check cache entries' SHA-256 before use (a mismatch is recomputed with a warning).
    allow_download : bool or None
        Passed to :func:`~brainlid.features.models.load_model`.
    channels_last : bool
        Feed image batches in ``torch.channels_last`` memory format (faster convolutions on
        CPU with oneDNN, and on recent GPUs). Like the batch size it changes results only at
        float rounding level and is not part of the cache key.
    commit_every : float or None
        Seconds between durable commits of finished batches to the cache (``0``: after every
        batch). ``None`` (default) adapts: commit when the time since the last commit exceeds
        50× a commit's measured cost, so committing costs at most ~2 % of the run. A run that
        fails with an exception always commits what it finished; ``kill -9`` loses at most the
        batches since the last commit.

    Returns
    -------
    Features
        layer → ``(n_stimuli, n_features)`` array (float32, or float16 on request).
    """
    from .. import _version

    if isinstance(model, Features):  # precomputed features: a lookup by stimulus id
        ids = stimuli.ids if isinstance(stimuli, StimulusSet) else as_stimulus_set(stimuli).ids
        return model.for_stimuli(ids, layers, what=f"stimulus set {getattr(stimuli, 'name', 'given')!r}")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    if dtype not in _COMPUTE:
        raise InputError(f"dtype must be one of {_COMPUTE}, got {dtype!r}")
    if storage_dtype not in _STORAGE:
        raise InputError(f"storage_dtype must be one of {_STORAGE}, got {storage_dtype!r}")
    handle = load_model(model, allow_download=allow_download)
    stim = as_stimulus_set(stimuli)
    n = len(stim)
    pre = _resolve_preprocess(preprocess, handle)
    module = handle.module
    names = resolve_layers(module, layers)
    pools = _pooling_for(names, pooling)
    red = Reduction.parse(reduce)
    if red is not None and red.fit_ids is not None:
        fit = np.asarray(red.fit_ids)
        missing = fit[~np.isin(fit.astype(stim.ids.dtype) if stim.ids.dtype.kind == "U" else fit, stim.ids)]
        if missing.size:
            raise InputError(f"PCA fit_ids: {missing.size} id(s) not in stimulus set {stim.name!r}, e.g. {list(missing[:5])}")
    store = _resolve_cache(cache)

    base = {
        "version": _version.__version__, "model_id": handle.model_id, "weights": handle.weights_digest,
        "code": handle.info.get("code_digest"), "preprocess": pre.to_dict(), "compute_dtype": dtype,
        "storage_dtype": storage_dtype, "stimuli_digest": stim.digest, "ids_digest": ids_digest(stim.ids), "n": n,
    }

    def key_for(layer, p: Pooling, r: Reduction | None):
        return cache_key({**base, "layer": layer, "pooling": str(p), "reduction": None if r is None else r.to_dict()})

    results: dict[str, np.ndarray] = {}
    keys: dict[str, str | None] = {}
    targets: list[_Target] = []
    pca_layers: list[str] = []
    for layer in names:
        p = pools[layer]
        k = key_for(layer, p, red) if store is not None else None
        keys[layer] = k
        if store is not None:
            arr = _load_entry(store.entry(k), verify)
            if arr is not None:
                results[layer] = arr
                continue
        if red is not None and red.method == "pca":
            pca_layers.append(layer)
            kk = key_for(layer, p, None) if store is not None else None
            if store is not None:
                arr = _load_entry(store.entry(kk), verify)
                if arr is not None:
                    results[("__raw__", layer)] = arr
                    continue
            targets.append(_Target(layer, p, None, kk, store.entry(kk) if store is not None else None))
        else:
            targets.append(_Target(layer, p, red if red is not None else None, k, store.entry(k) if store is not None else None))

    if targets:
        _compute_targets(handle, stim, pre, targets, batch_size, device, dtype, storage_dtype, num_workers, progress, max_disk, store, base, verify, channels_last, commit_every)
        for t in targets:
            results[("__raw__", t.layer) if t.layer in pca_layers else t.layer] = t.array

    for layer in pca_layers:
        if layer in results:
            continue
        raw = results.pop(("__raw__", layer))
        results[layer] = _apply_pca(raw, stim, red, store, keys[layer], layer, pools[layer], base, storage_dtype, handle)
    results = {layer: results[layer] for layer in names}

    prov = {
        "brainlid_version": _version.__version__, "model_id": handle.model_id, "weights_digest": handle.weights_digest,
        "code_digest": handle.info.get("code_digest"), "preprocess": pre.to_dict(), "preprocess_source": pre.source,
        "pooling": {layer: str(pools[layer]) for layer in names}, "reduction": None if red is None else red.to_dict(),
        "compute_dtype": dtype, "storage_dtype": storage_dtype, "stimuli": {"name": stim.name, "n": n, "digest": stim.digest},
        "cache_keys": keys,
    }
    return Features(results, stim.ids, prov)


def _resolve_preprocess(preprocess, handle: ModelHandle) -> Preprocess:
    if isinstance(preprocess, Preprocess):
        return preprocess
    if isinstance(preprocess, Mapping):
        return Preprocess(**preprocess)
    if preprocess == "auto":
        return handle.preprocess or Preprocess(source="default")
    if preprocess is None:
        return Preprocess(source="default")
    raise InputError(f"preprocess must be 'auto', None, a dict or a Preprocess, got {preprocess!r}")


def _resolve_cache(cache) -> FeatureCache | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        return FeatureCache()
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, (str, Path)):
        return FeatureCache(cache)
    raise InputError(f"cache must be True, False, a folder or a FeatureCache, got {cache!r}")


def _load_entry(entry: CacheEntry, verify: bool, locked: bool = False):
    """The entry's array if complete and intact; a corrupt entry is discarded (with a warning) → None."""
    if not entry.is_complete():
        return None
    try:
        return entry.load(verify=verify)
    except CorruptEntryError as exc:
        warnings.warn(f"{exc}; recomputing it", RuntimeWarning, stacklevel=3)
        if locked:
            entry.discard()
            return None
        with entry.lock():
            if entry.is_complete():
                try:  # another process may have repaired it meanwhile
                    return entry.load(verify=True)
                except CorruptEntryError:
                    entry.discard()
        return None


def _estimate(targets, n, batch_size, raw_shapes, x_shape, module, storage_dtype):
    item = np.dtype(storage_dtype).itemsize
    disk = sum(n * int(t.array_cols) * item for t in targets)
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    act = sum(int(np.prod(s[1:])) for s in raw_shapes.values() if s) * 4
    mem = params + batch_size * (int(np.prod(x_shape[1:])) * 4 + 2 * act) + sum(batch_size * int(t.array_cols) * 4 for t in targets)
    return disk, mem


def _compute_targets(handle, stim, pre, targets, batch_size, device, dtype, storage_dtype, num_workers, progress, max_disk, store, base, verify, channels_last=True, commit_every=None):
    module = handle.module
    dev = _resolve_device(device)
    n = len(stim)
    dataset = _BatchDataset(stim.reader, pre, n, batch_size)
    was_training = module.training
    module.eval()
    if _param_device(module) != dev:
        module.to(dev)
    try:
        # probe: shapes, early-stop point, and a clear error if the model fails on this input
        b0, x0 = _BatchDataset(stim.reader, pre, 1, 1)[0]
        if isinstance(x0, _Failure):
            x0.raise_()
        shapes, order, calls, outputs = _forward_probe(module, x0.to(dev), [t.layer for t in targets])
        for t in targets:
            if t.layer not in outputs:
                raise InputError(f"layer {t.layer!r} is not called in the model's forward pass (or outputs no tensor)")
            d = int(pool(outputs[t.layer].float(), t.pooling, t.layer).shape[1])
            if t.srp is not None:
                if t.srp.n_components > d:
                    warnings.warn(f"SRP to {t.srp.n_components} dims exceeds layer {t.layer!r}'s {d} features", RuntimeWarning, stacklevel=3)
                t.R = srp_matrix(d, t.srp.n_components, t.srp.seed)
                d = t.srp.n_components
            t.array_cols = d
            multi = [k for k, v in calls.items() if v > 1 and k == t.layer]
            if multi:
                warnings.warn(f"layer {t.layer!r} is called {calls[t.layer]} times per forward pass; its last call's output is used", RuntimeWarning, stacklevel=3)

        disk, mem = _estimate(targets, n, batch_size, {t.layer: shapes[t.layer] for t in targets}, tuple(x0.shape), module, storage_dtype)
        msg = f"extracting {len(targets)} layer(s) of {handle.model_id} for {n} stimuli: about {fmt_size(disk)} on disk, {fmt_size(mem)} memory"
        log.info(msg)
        if progress:
            _console().print(f"[dim]{msg}[/dim]", soft_wrap=True, highlight=False)

        lock_stack = contextlib.ExitStack()
        with lock_stack:
            if store is not None:
                for t in sorted(targets, key=lambda t: t.key):
                    lock_stack.enter_context(t.entry.lock())
                # re-check after locking: another process may have completed an entry meanwhile
                for t in targets:
                    arr = _load_entry(t.entry, verify, locked=True)
                    if arr is not None:
                        t.array = arr
                pending_disk = sum(n * t.array_cols * np.dtype(storage_dtype).itemsize for t in targets if t.array is None and not t.entry.data_path.is_file())
                ensure_disk_budget(pending_disk, store.root, max_disk)
                for t in targets:
                    if t.array is None:
                        meta = {**base, "layer": t.layer, "pooling": str(t.pooling), "reduction": None if t.srp is None else t.srp.to_dict(), "n_features": t.array_cols, "key": t.key}
                        t.done = t.entry.open_write((n, t.array_cols), storage_dtype, meta)
            else:
                for t in targets:
                    t.array = np.empty((n, t.array_cols), dtype=storage_dtype)
                    t.done = np.zeros(n, dtype=bool)
            active = [t for t in targets if t.done is not None]
            if active:
                hooked = {t.layer for t in active}
                stop_after = sum(1 for name in order if name in hooked)
                _run_batches(module, dataset, active, dev, dtype, stop_after, batch_size, n, num_workers, progress, handle.model_id, channels_last, commit_every)
                for t in active:
                    if t.entry is not None:
                        t.entry.finalize({**(json.loads(t.entry.meta_path.read_text()) if t.entry.meta_path.is_file() else {}), "created_by": "extract"})
                        t.array = t.entry.load(verify=False)
    finally:
        module.train(was_training)


def _run_batches(module, dataset, targets, dev, dtype, stop_after, batch_size, n, num_workers, progress, model_id, channels_last=True, commit_every=None):
    import torch
    from torch.utils.data import DataLoader

    n_batches = len(dataset)
    pending = [b for b in range(n_batches) if any(not t.done[b * batch_size : (b + 1) * batch_size].all() for t in targets)]
    if not pending:
        return
    by_layer: dict[str, list[_Target]] = {}
    for t in targets:
        by_layer.setdefault(t.layer, []).append(t)
    captured: dict[str, object] = {}
    counter = [0]

    handles = []
    named = dict(module.named_modules())
    for layer in by_layer:
        def hook(mod, args, out, layer=layer, pooling=by_layer[layer][0].pooling):
            t = _first_tensor(out)
            pooled = pool(t.float(), pooling, layer)
            if pooled.data_ptr() == t.data_ptr():  # a view: copy before in-place ops downstream change it
                pooled = pooled.clone()
            captured[layer] = pooled
            counter[0] += 1
            if counter[0] >= stop_after:
                raise _Stop

        handles.append(named[layer].register_forward_hook(hook))

    loader = DataLoader(
        dataset, batch_size=None, sampler=pending, num_workers=int(num_workers),
        pin_memory=dev.type == "cuda", persistent_workers=False, prefetch_factor=2 if num_workers else None,
    )
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()
    bar = _Progress(len(pending) and sum(min(n, (b + 1) * batch_size) - b * batch_size for b in pending), f"{model_id}",
                    enabled=progress and progress_wanted())  # the bar only on a terminal outside CI; the estimate line always
    last_commit, commit_cost, dirty = time.perf_counter(), 0.0, False
    try:
        with bar, torch.inference_mode():
            for b, x in loader:
                if isinstance(x, _Failure):
                    x.raise_()
                start, stop = b * batch_size, min(n, (b + 1) * batch_size)
                captured.clear()
                counter[0] = 0
                x = x.to(dev, non_blocking=True)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                try:
                    with autocast:
                        module(x)
                except _Stop:
                    pass
                except Exception as exc:
                    raise ForwardError(f"forward pass failed on stimuli {start}..{stop - 1} (input {tuple(x.shape)}): {type(exc).__name__}: {exc}") from exc
                for layer, ts in by_layer.items():
                    X = captured[layer].cpu().numpy()
                    for t in ts:
                        Y = apply_srp(X, t.R) if t.R is not None else X
                        if not np.isfinite(Y).all():
                            raise InputError(f"layer {layer!r} produced NaN/inf features for stimuli {start}..{stop - 1}")
                        if t.entry is not None:
                            t.entry.write_rows(start, Y.astype(t.entry._mm.dtype, copy=False))
                        else:
                            t.array[start:stop] = Y
                for t in targets:
                    if t.entry is not None:
                        t.entry.mark(start, stop)
                    t.done[start:stop] = True
                dirty = True
                now = time.perf_counter()
                if now - last_commit >= (50.0 * commit_cost if commit_every is None else commit_every):
                    commit_cost = _persist(targets)
                    last_commit, dirty = time.perf_counter(), False
                bar.advance(stop - start)
        if dirty:
            _persist(targets)
            dirty = False
    finally:
        if dirty:  # failing run: keep the batches already computed
            with contextlib.suppress(Exception):
                _persist(targets)
        for h in handles:
            h.remove()


def _persist(targets) -> float:
    """Commit every cache target's marked rows; returns the seconds it took."""
    t0 = time.perf_counter()
    for t in targets:
        if t.entry is not None:
            t.entry.persist()
    return time.perf_counter() - t0


def _console():
    from rich.console import Console

    return Console(stderr=True)


class _Progress:
    """A rich progress bar (images, images/s, ETA) on stderr, or nothing."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._p = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=_console(), transient=False,
            )
            self._p.__enter__()
            self._task = self._p.add_task(self.label, total=self.total, rate="-")
            self._t0 = time.perf_counter()
            self._done = 0
        return self

    def advance(self, k: int):
        if self.enabled:
            self._done += k
            rate = self._done / max(1e-9, time.perf_counter() - self._t0)
            self._p.update(self._task, advance=k, rate=f"{rate:.0f}")

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False


def _apply_pca(raw, stim, red: Reduction, store, key, layer, pooling, base, storage_dtype, handle):
    """Fit PCA on the named subset's rows of ``raw`` and project every row (in blocks)."""
    fit_pos = np.arange(len(stim)) if red.fit_ids is None else stim.positions_of(np.asarray(red.fit_ids))
    mean, comps = fit_pca(np.asarray(raw[np.sort(fit_pos)], dtype=np.float32), red.n_components, red.seed)
    out = np.empty((raw.shape[0], red.n_components), dtype=storage_dtype)
    for s in range(0, raw.shape[0], 4096):
        block = np.asarray(raw[s : s + 4096], dtype=np.float32) - mean
        out[s : s + block.shape[0]] = block @ comps.T
    if store is None:
        return out
    entry = store.entry(key)
    meta = {**base, "layer": layer, "pooling": str(pooling), "reduction": red.to_dict(), "n_features": red.n_components, "key": key}
    with entry.lock():
        if not entry.is_complete():
            entry.write_complete(out, {**meta, "created_by": "pca"}, meta)
    return entry.load(verify=False)
