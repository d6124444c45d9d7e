"""Feature extraction from PyTorch models, with model adapters and a crash-safe feature cache.

* :func:`extract` — pooled layer activations for a stimulus set, cached (:class:`Features`;
  the engine is :mod:`.engine`).
* :func:`load_features` / :func:`read_feature_layers` — precomputed features from any framework
  (an ``extract --out`` folder, ``.npz``, ``.h5``, ``.safetensors``; :mod:`.files`).
* :func:`resolve_layers` / :func:`resolve_layer_names` / :func:`layer_selectors` — layer selection
  by name, glob or ``re:`` regex (:mod:`.layers`); :func:`list_layers` — every module with its
  output shape for one dummy input (:mod:`.probe`).
* :func:`load_model` / :func:`parse_spec` — model spec strings (``module:``, ``entrypoint:``,
  ``torchvision:``, ``timm:``, ``open_clip:``, ``hf:``, ``cifar_resnet:``) → :class:`ModelHandle`
  (:mod:`.models`; the library adapters in :mod:`.adapters`).
* :class:`Preprocess` — declared preprocessing; :mod:`.pooling` — pooling and SRP/PCA reduction;
  :class:`FeatureCache` — the content-addressed cache (:func:`cache_key`, :func:`ids_digest`).

``brainlid.features.extract`` is the function; the module of that name is a deprecated path that
forwards its old names here.
"""

from . import extract  # the deprecated module path, loaded first so that the function below keeps the name
from .cache import (CorruptEntryError, DiskBudgetError, FeatureCache, cache_key, fmt_size, ids_digest, parse_age,
                    parse_size)
from .engine import extract  # noqa: F811
from .files import load_features, read_feature_layers
from .inputs import as_stimulus_set
from .layers import layer_selectors, resolve_layer_names, resolve_layers
from .models import ModelHandle, load_model, parse_spec, weights_digest
from .pooling import Pooling, Reduction, apply_srp, fit_pca, parse_pooling, pool, srp_matrix
from .preprocess import Preprocess, imagenet
from .probe import ForwardError, LayerInfo, list_layers
from .result import Features

__all__ = [
    "extract", "Features", "list_layers", "resolve_layers", "resolve_layer_names", "layer_selectors",
    "as_stimulus_set", "LayerInfo", "ForwardError", "load_model", "parse_spec", "ModelHandle", "weights_digest",
    "Preprocess", "imagenet", "Pooling", "Reduction", "parse_pooling", "pool", "fit_pca", "apply_srp", "srp_matrix",
    "FeatureCache", "CorruptEntryError", "DiskBudgetError", "cache_key", "ids_digest", "fmt_size", "parse_size",
    "parse_age", "load_features", "read_feature_layers",
]
