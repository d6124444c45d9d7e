"""One forward pass with hooks on every module: output shapes, call counts and where a model fails.

:func:`list_layers` shows a model's modules with their output shapes for one dummy input; the
extraction engine (:mod:`brainlid.features.engine`) probes the first stimulus the same way before
it runs the whole set. torch is imported inside the functions that run a model (heavy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InputError
from .models import load_model

__all__ = ["ForwardError", "LayerInfo", "list_layers"]


class ForwardError(InputError):
    """The model's forward pass failed on the given input (the message names the module and shape)."""


def _first_tensor(out):
    import torch  # heavy: torch

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



def _forward_probe(module, x, names: list[str] | None = None):
    """Run ``module(x)`` once with hooks on every module.

    Returns ``(shapes, order, calls, outputs)``: the output shape of each module's *last* call,
    the sequence of wanted module names in the order their forward finished, the number of
    calls per module, and (a copy of) the last output of each wanted module. On failure raises :class:`ForwardError`
    naming the innermost module that was running and its input shape.
    """
    import torch  # heavy: torch

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
    import torch  # heavy: torch

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
    import torch  # heavy: torch

    for p in module.parameters():
        return p.device
    return torch.device("cpu")

