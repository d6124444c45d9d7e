"""Built-in architectures, importable as ``entrypoint:brainlid.models:<factory>`` model specs.

* :func:`small_cnn` / :class:`SmallCNN` — four stride-2 3×3 conv blocks (32–64–128–256 channels,
  two convolutions per block, ~1.2 M parameters), used by the feature benchmark and tests.

Other architectures (e.g. ``cifar_resnet``) live in their own submodules.
"""

from __future__ import annotations

import torch.nn as nn

from .cifar_resnet import cifar_resnet, load_cifar_resnet

__all__ = ["small_cnn", "SmallCNN", "cifar_resnet", "load_cifar_resnet"]


class SmallCNN(nn.Module):
    """Four conv blocks, each ``Conv3x3(stride 2) → BN → ReLU → Conv3x3 → BN → ReLU``, then a linear head.

    Input ``(B, in_channels, H, W)``; block ``i`` (``block1`` … ``block4``) outputs
    ``(B, widths[i-1], ceil(H / 2^i), ceil(W / 2^i))``. With the default widths (32, 64, 128, 256)
    and 3 input channels the network has 1,175,786 parameters.
    """

    def __init__(self, in_channels: int = 3, widths=(32, 64, 128, 256), n_classes: int = 10):
        super().__init__()
        chans = [in_channels, *widths]
        self.n_blocks = len(widths)
        for i in range(self.n_blocks):
            c_in, c_out = chans[i], chans[i + 1]
            self.add_module(
                f"block{i + 1}",
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                    nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                ),
            )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[-1], n_classes)

    def forward(self, x):
        for i in range(self.n_blocks):
            x = getattr(self, f"block{i + 1}")(x)
        return self.head(self.pool(x).flatten(1))


def small_cnn(in_channels: int = 3, widths=(32, 64, 128, 256), n_classes: int = 10) -> SmallCNN:
    """A :class:`SmallCNN` with PyTorch's default initialisation (seed it for reproducible weights)."""
    return SmallCNN(in_channels, widths, n_classes)
