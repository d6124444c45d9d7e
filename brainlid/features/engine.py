"""The extraction engine: layer activations of a PyTorch model for a stimulus set, batched, pooled, cached.

:func:`extract` is the entry point. For every requested layer it returns a float32 array
``(n_stimuli, n_features)`` in the stimulus set's order, together with the stimulus ids and a
provenance record, as a :class:`~brainlid.features.result.Features` mapping. The flow:

1. the model spec is loaded (:func:`brainlid.features.models.load_model`) and layers are
   resolved by exact name, glob (``"blocks.*"``) or regex (``"re:layer\\d+$"``;
   :mod:`brainlid.features.layers`);
2. one cache key per layer (:mod:`brainlid.features.cache`); layers already cached are
   memory-mapped without running the model;
3. otherwise one probe forward pass on the first stimulus (:mod:`brainlid.features.probe`) gives
   each layer's output shape, checks the model runs on that input (a failure names the innermost
   module and its input shape), and finds where the forward pass can stop early (after the last
   hooked module fires);
4. the disk and memory needed are estimated and checked against the disk budget;
5. images are read and preprocessed in a ``torch.utils.data.DataLoader`` (whole batches per
   worker item; :mod:`brainlid.features.inputs`); each batch runs under ``torch.inference_mode``
   (bfloat16 by autocast when asked); hooks pool each layer's output on the device; rows are
   written into the cache entries and committed durably as batches finish, so a killed run
   resumes where it stopped;
6. PCA reductions are fitted on the named subset afterwards, from the cached unreduced features.

torch is imported inside the functions that run the model (heavy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _version
from .._progress import Stage, console, progress_wanted
from ..data.stimuli import StimulusSet
from ..errors import InputError
from .cache import CacheEntry, CorruptEntryError, FeatureCache, cache_key, ensure_disk_budget, fmt_size, ids_digest
from .inputs import _BatchDataset, _Failure, as_stimulus_set
from .layers import _pattern_hits, resolve_layers
from .models import ModelHandle, load_model
from .pooling import Pooling, Reduction, apply_srp, fit_pca, parse_pooling, pool, srp_matrix
from .preprocess import Preprocess
from .probe import ForwardError, _first_tensor, _forward_probe, _param_device
from .result import Features

__all__ = ["extract"]

log = logging.getLogger("brainlid.features")

_STORAGE = ("float32", "float16")
_COMPUTE = ("float32", "bfloat16")


class _Stop(Exception):
    """Raised by the last hook to end the forward pass early."""


def _resolve_device(device):
    import torch  # heavy: torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but torch sees no CUDA device")
    return dev


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
            console().print(f"[dim]{msg}[/dim]", soft_wrap=True, highlight=False)

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
    import torch  # heavy: torch
    from torch.utils.data import DataLoader  # heavy: torch

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
    bar = Stage(f"{model_id}", total=sum(min(n, (b + 1) * batch_size) - b * batch_size for b in pending),
                enabled=progress and progress_wanted(), unit="img", transient=False)  # the bar only on a terminal outside CI; the estimate line always
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
