"""Deprecated module path: :func:`extract` and its helpers now live on the package face :mod:`brainlid.features`.

The engine is :mod:`brainlid.features.engine`, the :class:`~brainlid.features.Features` type
:mod:`brainlid.features.result`, layer selection :mod:`brainlid.features.layers`, the forward probe
(:func:`~brainlid.features.list_layers`) :mod:`brainlid.features.probe` and stimulus input
:mod:`brainlid.features.inputs`. ``from brainlid.features.extract import X`` still works, with a
``DeprecationWarning`` naming ``brainlid.features``.
"""

from .._deprecate import forward

__getattr__ = forward(__name__, dict.fromkeys(
    ("extract", "Features", "list_layers", "resolve_layers", "resolve_layer_names", "layer_selectors",
     "as_stimulus_set", "LayerInfo", "ForwardError"), "brainlid.features"))
