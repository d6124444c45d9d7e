"""Score a submission: the one entry point shared by ``submit check``, the upload handler and the worker.

* :func:`published_stimulus_ids` — the stimulus ids (in the required order: sorted) a bundle
  must carry for a benchmark: every stimulus of the benchmark's data (train and test);
* :func:`check_bundle` — :func:`~brainlid.leaderboard.bundle.validate_bundle` then
  :func:`brainlid.scoring.score_features` on every benchmark of the bundle; returns a
  :class:`CheckReport` (``status`` ``"scored"`` or ``"rejected"`` with the reason);
* :func:`benchmark_stimulus_set` — those stimuli, with their images, in that order (what
  ``brainlid benchmarks stimuli`` exports);
* :func:`prepare_bundle` — extract (cached) features of a benchmark's stimulus set with
  :func:`brainlid.features.extract`, or take precomputed features (any framework), and write a bundle;
* :func:`fixture_root` — a small NSD-format copy (:func:`brainlid.data.fixtures.write_nsd`)
  for ``submit check``/``prepare`` when the real dataset is absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import cache_dir
from ..data.fixtures import write_nsd
from ..errors import BrainlidError, DatasetNotFoundError, InputError
from ..features import Features, extract
from ..scoring import get_benchmark, load_benchmark_data, score_features
from ..scoring.plan import benchmark_inputs, default_layers
from .bundle import Bundle, BundleError, Limits, validate_bundle, write_bundle
from .schema import public_reason

__all__ = ["published_stimulus_ids", "benchmark_stimulus_set", "check_bundle", "CheckReport", "prepare_bundle", "fixture_root",
           "BenchmarkData"]


class BenchmarkData:
    """Loads each benchmark's (stimuli, BrainData) once per process (thread-safe) from one data root."""

    def __init__(self, root=None, *, fixture_fallback: bool = False):
        self.root = root
        self.fixture_fallback = fixture_fallback
        self.used_fixture: set[str] = set()
        self._cache: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def load(self, bench_id: str):
        """``(stimuli, BrainData)`` of a benchmark (:func:`brainlid.scoring.load_benchmark_data`), loaded once;
        with ``fixture_fallback`` a missing NSD dataset is replaced by :func:`fixture_root`."""
        with self._lock:
            if bench_id not in self._cache:
                try:
                    self._cache[bench_id] = load_benchmark_data(bench_id, self.root)
                except DatasetNotFoundError:
                    if not self.fixture_fallback:
                        raise
                    self._cache[bench_id] = load_benchmark_data(bench_id, fixture_root(bench_id))
                    self.used_fixture.add(bench_id)
            return self._cache[bench_id]

    def ids(self, bench_id: str) -> np.ndarray:
        """The benchmark's :func:`published_stimulus_ids`, ``(n_stimuli,)``."""
        return published_stimulus_ids(self.load(bench_id))


def published_stimulus_ids(loaded) -> np.ndarray:
    """Sorted stimulus ids of a benchmark's data (``(stimuli, brain)`` from ``load_benchmark_data``).

    Only stimuli that have both responses and (when the benchmark ships images) an image.
    """
    stimuli, brain = loaded
    ids = np.asarray(brain.stimulus_ids)
    if stimuli is not None:
        ids = np.intersect1d(ids, np.asarray(stimuli.ids))
    return np.sort(ids)


def benchmark_stimulus_set(bench_id: str, root=None):
    """The stimuli a submission or a features file must cover, in :func:`published_stimulus_ids` order.

    Works for response and RDM benchmarks alike (:func:`brainlid.scoring.plan.benchmark_inputs`):
    the benchmark's :class:`~brainlid.data.stimuli.StimulusSet` with images, restricted to the
    stimuli that have brain data and sorted by id — what ``brainlid benchmarks stimuli`` exports.
    """
    stimuli, brain = benchmark_inputs(bench_id, root)
    return stimuli.subset(ids=published_stimulus_ids((stimuli, brain)))


def fixture_root(bench_id: str) -> Path:
    """A small NSD-format dataset under ``$BRAINLID_HOME/cache/leaderboard-fixture/<subject>``.

    Only NSD benchmarks have a fixture; written once (atomically by folder rename).
    """
    bench = get_benchmark(bench_id)
    if bench.dataset != "nsd":
        raise DatasetNotFoundError(f"benchmark {bench_id} needs its dataset ({bench.dataset}); there is no fixture for it")
    subj = int(bench.subject[4:])
    root = cache_dir("leaderboard-fixture") / f"nsd-subj{subj:02d}"
    if not (root / ".complete").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root.parent))
        write_nsd(tmp, subjects=(subj,), spaces=(bench.space,))
        (tmp / ".complete").write_text("ok\n")
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@dataclass
class CheckReport:
    """What the service says about a bundle.

    Attributes
    ----------
    status : {"scored", "rejected"}
    reason : str
        Why it was rejected ("" when scored).
    scores, geometry : DataFrames in the :mod:`brainlid.scoring.tables` schemas (empty when rejected)
    bundle : Bundle or None
    fixture : list of str
        Benchmarks checked on fixture data instead of the real dataset.
    """

    status: str
    reason: str = ""
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    geometry: pd.DataFrame = field(default_factory=pd.DataFrame)
    bundle: Bundle | None = None
    fixture: list[str] = field(default_factory=list)

    def summary(self) -> list[dict]:
        """Test-split rows of the selected layer (what the board shows), as plain dicts."""
        if self.scores.empty:
            return []
        s = self.scores
        s = s[(s["split"] == "test") & s["selected"].astype(bool)]
        cols = ["benchmark", "layer", "metric", "value", "ci_low", "ci_high", "ceiling", "normalised"]
        return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in s[cols].to_dict(orient="records")]


def _validate(path, data: BenchmarkData, limits: Limits | None, require_data: bool = True, load: bool = True,
              sha256: str | None = None) -> Bundle:
    """The one validation of a bundle (upload handler, worker, ``submit check``).

    With ``require_data`` a benchmark whose data are not on this machine is a rejection (the
    server cannot check the stimulus ids or score it), never a scoring attempt; without it
    the ids are not checked against that benchmark.
    """
    def ids(b):
        try:
            return data.ids(b)
        except DatasetNotFoundError:
            if require_data:
                raise BundleError(f"benchmark {b} cannot be checked or scored here: its dataset is not installed "
                                  "on this machine (on a board: ask its operator; with `brainlid submit check`: "
                                  "give --data-root or allow the fixture)") from None
            return None

    return validate_bundle(path, limits=limits, known_benchmark=get_benchmark, published_ids=ids, load=load, sha256=sha256)


def check_bundle(
    path: str | os.PathLike,
    *,
    data: BenchmarkData | None = None,
    root=None,
    limits: Limits | None = None,
    score: bool = True,
    require_data: bool = True,
    sha256: str | None = None,
) -> CheckReport:
    """Validate a bundle and score it on each of its benchmarks — what the service does.

    Parameters
    ----------
    path : the bundle zip
    data : :class:`BenchmarkData` or None
        Benchmark data loader (built from ``root`` when None).
    limits : :class:`~brainlid.leaderboard.bundle.Limits`
    score : bool
        False: validate only (the upload handler's check; the worker runs the same validation
        again before scoring).
    require_data : bool
        A benchmark whose dataset is missing here is a rejection (the service: never a scoring
        attempt); ``submit check`` passes a ``data`` with ``fixture_fallback=True`` instead.
        False: validate without the dataset (ids unchecked; scoring then raises).
    sha256 : str or None
        The file's SHA-256 when the caller computed it already (hashed once, where the bytes
        arrive); None: hashed by :func:`~brainlid.leaderboard.bundle.validate_bundle`.

    Returns
    -------
    CheckReport — never raises on a bad bundle (the reason is in the report, with server
    paths removed by :func:`~brainlid.leaderboard.schema.public_reason`); raises on
    server-side problems met while scoring.
    """
    data = data or BenchmarkData(root)
    try:
        bundle = _validate(path, data, limits, require_data, load=score, sha256=sha256)  # the upload check keeps no arrays
    except BundleError as exc:
        return CheckReport("rejected", public_reason(exc))
    if not score:
        return CheckReport("valid", bundle=bundle, fixture=sorted(data.used_fixture))
    all_s, all_g = [], []
    model = bundle.model_name
    for b in bundle.benchmarks:
        _, brain = data.load(b)  # DatasetNotFoundError propagates: a server problem, not the submitter's
        try:
            feats = {k: np.asarray(v, dtype=np.float32) for k, v in bundle.features.items()}
            s, g = score_features(feats, bundle.stimulus_ids, b, brain, model=model,
                                  feature_cache_key={k: bundle.manifest["layers"][i]["sha256"] for i, k in enumerate(feats)})
        except InputError as exc:
            return CheckReport("rejected", public_reason(f"benchmark {b}: {exc}"), bundle=bundle,
                               fixture=sorted(data.used_fixture))
        all_s.append(s)
        all_g.append(g)
    return CheckReport("scored", scores=pd.concat(all_s, ignore_index=True), geometry=pd.concat(all_g, ignore_index=True),
                       bundle=bundle, fixture=sorted(data.used_fixture))


def prepare_bundle(
    model,
    benchmarks: str | Sequence[str],
    out: str | os.PathLike,
    *,
    layers: Sequence[str] | None = None,
    metadata: dict | None = None,
    root=None,
    fixture: bool = False,
    pooling: str = "avg",
    batch_size: int = 64,
    fmt: str = "npy",
    extract_kwargs: dict | None = None,
    note=None,
) -> Path:
    """Extract a model's features for the benchmarks' published stimulus set and write a bundle.

    Every benchmark of one bundle must share the same published stimulus set (e.g. all ROIs of
    one NSD subject). ``fixture=True`` falls back to fixture data when the dataset is absent.
    ``model`` may be precomputed :class:`~brainlid.features.Features` (any framework,
    :func:`brainlid.features.load_features`): their rows for the published ids are taken
    (missing ids are an error, extra ids are dropped and ``note`` is called with a sentence), and
    ``metadata["model_name"]`` should name them.
    """
    benches = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    if not benches:
        raise InputError("give at least one benchmark")
    for b in benches:
        get_benchmark(b)
    data = BenchmarkData(root, fixture_fallback=fixture)
    stimuli, _ = data.load(benches[0])
    ids = data.ids(benches[0])
    for b in benches[1:]:
        if not np.array_equal(data.ids(b).astype(str), ids.astype(str)):
            raise InputError(f"benchmarks {benches[0]} and {b} have different stimulus sets; prepare one bundle per stimulus set")
    if isinstance(model, Features):  # precomputed: no images needed, no extraction
        feats = model.for_stimuli(ids, layers, what=f"benchmark {benches[0]}", note=note)
    else:
        if stimuli is None:
            raise InputError(f"benchmark {benches[0]} ships no stimulus images to extract features from")
        lay = list(layers) if layers else default_layers(model)
        feats = extract(model, stimuli.subset(ids=ids), layers=lay, pooling=pooling, batch_size=batch_size,
                        **dict(extract_kwargs or {}))
    names = list(getattr(feats, "layers", None) or list(feats.keys()))
    fids = np.asarray(feats.stimulus_ids)
    order = np.argsort(fids)
    if not np.array_equal(fids[order].astype(str), ids.astype(str)):
        raise BrainlidError("extracted features do not cover the benchmark's stimulus set")
    arrays = {str(k): np.asarray(feats[k], dtype=np.float32)[order] for k in names}
    md = dict(metadata or {})
    default = model.provenance.get("model_id") if isinstance(model, Features) else None
    md.setdefault("model_name", default or (model if isinstance(model, str) else type(model).__name__))
    return write_bundle(out, arrays, ids, benches, md, fmt=fmt)
