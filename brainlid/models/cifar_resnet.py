"""CIFAR-10 ResNets (He et al. 2016, §4.2): depth 6n+2 = 20, 32, 44, 56, 110, ...

The small ResNets He et al. trained on CIFAR-10, in the layout of the widely
used pretrained checkpoints of Idelbayev's ``pytorch_resnet_cifar10``
(``resnet20-12fca82f.th`` ...), so those files load into it unchanged
(:func:`load_cifar_resnet`).

Architecture (input ``(B, 3, 32, 32)`` float32, normalised per channel with
:data:`CIFAR_MEAN` / :data:`CIFAR_STD`):

* ``conv1`` 3x3, 3 -> 16, ``bn1``, ReLU                       -> (B, 16, 32, 32)
* ``layer1``: n BasicBlocks, 16 channels                      -> (B, 16, 32, 32)
* ``layer2``: n BasicBlocks, 32 channels, first has stride 2  -> (B, 32, 16, 16)
* ``layer3``: n BasicBlocks, 64 channels, first has stride 2  -> (B, 64, 8, 8)
* global average pool, ``linear`` 64 -> 10                    -> (B, 10) logits

with n = (depth - 2) / 6. A BasicBlock is conv3x3-BN-ReLU-conv3x3-BN, plus the
shortcut, then ReLU. Where the shape changes the shortcut is parameter-free
("option A"): ``x[:, :, ::2, ::2]`` zero-padded with ``planes // 4`` channels on
each side. Convolutions have no bias. Weights of a fresh model are Kaiming-normal
(conv, linear), BN weight 1 and bias 0, seeded by ``seed``.

References
----------
He, Zhang, Ren, Sun (2016). Deep residual learning for image recognition. CVPR.
Idelbayev, Y. Proper ResNet implementation for CIFAR10/CIFAR100 in PyTorch.
https://github.com/akamaster/pytorch_resnet_cifar10
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._deprecate import forward
from ..errors import DatasetNotFoundError, FileFormatError, InputError
from ..io import torch_load_tensors

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CIFAR10_CLASSES",
    "cifar_resnet",
    "load_cifar_resnet",
    "cifar_preprocess",
    "resnet_layer_names",
]

# the spec backend moved up to the features floor, which builds model handles (models/ imports nothing from features/)
__getattr__ = forward(__name__, {"model_from_spec": "brainlid.features.models:cifar_resnet_handle"})

#: per-channel input normalisation the pretrained checkpoints were trained with
CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _blocks_per_stage(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise InputError(f"CIFAR ResNet depth must be an integer, got {depth!r}")
    depth = int(depth)
    if depth < 8 or (depth - 2) % 6 != 0:
        raise InputError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}")
    return (depth - 2) // 6


def _build_classes():
    # the classes stay nested: their source text is hashed into the code digest
    # (brainlid.features.handle.code_digest), so moving them would change users' feature-cache keys
    class _PadShortcut(nn.Module):
        """Option-A shortcut: subsample by 2 and zero-pad ``pad`` channels on each side."""

        def __init__(self, pad: int):
            super().__init__()
            self.pad = pad

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)

    class BasicBlock(nn.Module):
        def __init__(self, in_planes: int, planes: int, stride: int = 1):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            if stride != 1 or in_planes != planes:
                self.shortcut = _PadShortcut(planes // 4)
            else:
                self.shortcut = nn.Identity()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class CifarResNet(nn.Module):
        """ResNet-(6n+2) for 32x32 images; see :mod:`brainlid.models.cifar_resnet`."""

        def __init__(self, depth: int, num_classes: int = 10):
            super().__init__()
            n = _blocks_per_stage(depth)
            self.depth = int(depth)
            self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            planes_in = 16
            stages = []
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(n):
                    blocks.append(BasicBlock(planes_in, planes, stride if i == 0 else 1))
                    planes_in = planes
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.linear = nn.Linear(64, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = torch.flatten(self.pool(out), 1)
            return self.linear(out)

    return BasicBlock, CifarResNet


_CLASSES = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_classes()
    return _CLASSES


def cifar_resnet(depth: int = 20, *, seed: int | None = 0, num_classes: int = 10):
    """A CIFAR ResNet of the given depth with fresh (untrained) weights.

    Parameters
    ----------
    depth : int
        6n + 2 (20, 32, 44, 56, 110, ...); n BasicBlocks per stage.
    seed : int or None
        Seed of the Kaiming-normal initialisation (reproducible untrained models);
        ``None`` uses torch's global generator.
    num_classes : int
        Outputs of the final ``linear`` layer.

    Returns
    -------
    torch.nn.Module
        In eval mode. Module names: ``conv1``, ``bn1``, ``layer{1,2,3}.{i}`` (BasicBlocks with
        ``conv1, bn1, conv2, bn2``), ``pool``, ``linear``.
    """

    _blocks_per_stage(depth)
    _, CifarResNet = _classes()
    gen_state = None
    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(int(seed))
    try:
        model = CifarResNet(int(depth), num_classes=num_classes)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    return model.eval()


def _depth_from_state(state: dict) -> int:
    """Depth implied by the BasicBlock keys in a state dict (``layer1.<i>.conv1.weight``)."""
    idx = [int(m.group(1)) for k in state if (m := re.match(r"layer1\.(\d+)\.conv1\.weight$", k))]
    if not idx:
        raise FileFormatError("the checkpoint has no 'layer1.<i>.conv1.weight' keys: not a CIFAR ResNet state dict")
    return 6 * (max(idx) + 1) + 2


def load_cifar_resnet(path: str | os.PathLike, depth: int | None = None):
    """Load a pretrained CIFAR ResNet checkpoint (Idelbayev's format) safely.

    The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``
    (no arbitrary unpickling; GPU-saved tensors land on the CPU). Accepted contents:
    ``{"state_dict": ..., ...}`` or a bare state dict; keys may carry the
    ``module.`` prefix of ``nn.DataParallel``, which is stripped.

    Parameters
    ----------
    path : path-like
        The checkpoint (e.g. ``resnet20-12fca82f.th``).
    depth : int or None
        Expected depth; ``None`` infers it from the keys. A mismatch is an error.

    Returns
    -------
    torch.nn.Module in eval mode. ``model.checkpoint_info`` holds the other entries of
    the checkpoint (e.g. ``best_prec1``) and the path.

    Raises
    ------
    DatasetNotFoundError, FileFormatError
        Missing file; unreadable file; keys or shapes that do not fit the architecture.
    """

    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"CIFAR ResNet checkpoint not found: {path}")
    try:
        ckpt = torch_load_tensors(path)
    except FileFormatError as exc:  # its message starts with the path
        raise FileFormatError(f"cannot read a torch checkpoint (weights_only=True) from {exc}") from exc
    except Exception as exc:  # zip errors and the like
        raise FileFormatError(f"cannot read {path} as a torch checkpoint (weights_only=True): {exc}".splitlines()[0]) from exc
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        state, info = ckpt["state_dict"], {k: v for k, v in ckpt.items() if k != "state_dict"}
    elif isinstance(ckpt, dict):
        state, info = ckpt, {}
    else:
        raise FileFormatError(f"{path}: expected a dict (a state dict or {{'state_dict': ...}}), got {type(ckpt).__name__}")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FileFormatError(f"{path}: the state dict holds non-tensor values")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    found = _depth_from_state(state)
    if depth is not None and int(depth) != found:
        raise FileFormatError(f"{path} holds a ResNet-{found}, but depth {depth} was requested")
    num_classes = int(state["linear.weight"].shape[0]) if "linear.weight" in state else 10
    model = cifar_resnet(found, seed=None, num_classes=num_classes)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise FileFormatError(f"{path} does not fit a CIFAR ResNet-{found}: {exc}") from exc
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise FileFormatError(
            f"{path} does not fit a CIFAR ResNet-{found}: missing keys {missing[:5]}, "
            f"unexpected keys {list(result.unexpected_keys)[:5]}"
        )
    info = {k: (v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v) for k, v in info.items()}
    info["path"] = str(path)
    model.checkpoint_info = info
    return model.eval()


def cifar_preprocess(images, size: int = 32):
    """Images -> a normalised float32 batch ``(n, 3, size, size)`` for a CIFAR ResNet.

    Parameters
    ----------
    images : array (n, H, W, 3) uint8 (0-255) or float (0-1), or a list of (H, W, 3) arrays
        RGB images. Images of another size are resized to ``size`` x ``size`` with
        bilinear interpolation and antialiasing (Pillow-equivalent; ``torch.nn.functional.interpolate``).
    size : int
        Output side in pixels (32 for CIFAR).

    Returns
    -------
    torch.Tensor of shape (n, 3, size, size) float32, ``(x / 255 - mean) / std`` per channel.
    """

    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no images given")
        shapes = {np.asarray(im).shape for im in images}
        if len(shapes) == 1:
            arr = np.stack([np.asarray(im) for im in images])
        else:  # resize one at a time
            return torch.cat([cifar_preprocess(np.asarray(im)[None], size) for im in images])
    else:
        arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise InputError(f"images must be (n, H, W, 3) RGB; got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float32)
    if arr.dtype == np.uint8:
        x = x / 255.0
    elif arr.dtype.kind == "f" and (float(x.max()) > 1.0 + 1e-6 or float(x.min()) < -1e-6):
        raise InputError("float images must be scaled to [0, 1]; pass uint8 for 0-255 data")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def resnet_layer_names(depth: int) -> list[str]:
    """Names of the modules worth reading features from: stem, every block, pool, logits.

    ``["bn1", "layer1.0", ..., "layer3.<n-1>", "layer1", "layer2", "layer3", "pool", "linear"]`` —
    ``layerK`` is the same tensor as its last block.
    """
    n = _blocks_per_stage(depth)
    blocks = [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(n)]
    return ["bn1", *blocks, "layer1", "layer2", "layer3", "pool", "linear"]
