"""Feature extraction from PyTorch models, with model adapters and a crash-safe feature cache.

* :func:`extract` — pooled layer activations for a stimulus set, cached (:class:`Features`).
* :func:`load_features` / :func:`read_feature_layers` — precomputed features from any framework
  (an ``extract --out`` folder, ``.npz``, ``.h5``, ``.safetensors``; :mod:`.files`).
* :func:`list_layers` — every module with its output shape for one dummy input.
* :func:`load_model` — model spec strings (``module:``, ``entrypoint:``, ``torchvision:``,
  ``timm:``, ``open_clip:``, ``hf:``) → :class:`ModelHandle`.
* :class:`Preprocess` — declared preprocessing; :mod:`.pooling` — pooling and SRP/PCA reduction;
  :class:`FeatureCache` — the content-addressed cache.
"""

from .cache import CorruptEntryError, DiskBudgetError, FeatureCache, cache_key
from .extract import Features, ForwardError, LayerInfo, as_stimulus_set, extract, list_layers, resolve_layers
from .files import load_features, read_feature_layers
from .models import ModelHandle, load_model, weights_digest
from .pooling import Pooling, Reduction, parse_pooling, pool
from .preprocess import Preprocess, imagenet

__all__ = [
    "extract", "Features", "list_layers", "resolve_layers", "as_stimulus_set", "LayerInfo", "ForwardError",
    "load_model", "ModelHandle", "weights_digest", "Preprocess", "imagenet", "Pooling", "Reduction",
    "parse_pooling", "pool", "FeatureCache", "CorruptEntryError", "DiskBudgetError", "cache_key",
    "load_features", "read_feature_layers",
]
