"""brainlid: score AI models against human brain data and explain the scores by the local
intrinsic dimension (LID) of their representations.

The names below are the package's front door; each is imported on first use, so ``import brainlid``
stays fast. The full API lives in the subpackages, one floor of the data flow each: :mod:`brainlid.data`
(loaders, :class:`~brainlid.data.BrainData`, :class:`~brainlid.data.StimulusSet`),
:mod:`brainlid.features`, :mod:`brainlid.geometry`, :mod:`brainlid.alignment`, :mod:`brainlid.scoring`,
:mod:`brainlid.analysis` and :mod:`brainlid.comparison`.

* scoring: :func:`score` (models × benchmarks → a tidy table), :func:`score_features` (features you
  already have), :func:`get_benchmark`, :func:`list_benchmarks`;
* features: :func:`extract`, :func:`load_features`, :func:`load_model`;
* geometry: :func:`lid`, :func:`lid_sweep`, :func:`global_dimension`, :func:`knn`;
* alignment: :func:`encoding_scores`, :func:`rdm`, :func:`compare_rdms`, :func:`mutual_knn`,
  :func:`cknna`, :func:`cka`;
* across models: :func:`analyze`, :func:`compare_models`;
* data: :class:`BrainData`, :class:`StimulusSet`, :func:`match_ids`.
"""

from __future__ import annotations

from ._lazy import lazy_face
from ._version import __version__

_FACE = {
    "score": "brainlid.scoring.serial",
    "score_features": "brainlid.scoring.cell",
    "get_benchmark": "brainlid.scoring.benchmarks",
    "list_benchmarks": "brainlid.scoring.benchmarks",
    "extract": "brainlid.features",
    "load_features": "brainlid.features",
    "load_model": "brainlid.features",
    "lid": "brainlid.geometry",
    "lid_sweep": "brainlid.geometry",
    "global_dimension": "brainlid.geometry",
    "knn": "brainlid.geometry",
    "encoding_scores": "brainlid.alignment.encoding",
    "rdm": "brainlid.alignment.rsa",
    "compare_rdms": "brainlid.alignment.rsa",
    "mutual_knn": "brainlid.alignment.similarity",
    "cknna": "brainlid.alignment.similarity",
    "cka": "brainlid.alignment.similarity",
    "analyze": "brainlid.analysis",
    "compare_models": "brainlid.comparison",
    "BrainData": "brainlid.data",
    "StimulusSet": "brainlid.data",
    "match_ids": "brainlid.data",
}

__all__ = ["__version__", *_FACE]
__getattr__, __dir__ = lazy_face(__name__, _FACE)
