"""The demo's model zoo: small PyTorch networks trained on scikit-learn's digits.

Every model reads a ``(B, 3, 16, 16)`` image in [0, 1] (the digits upsampled ×2 and repeated to
RGB, exactly what brainlid's extraction path feeds it), averages the colour channels and pools
2×2 back to the digits' 8×8 grid, and ends with a layer named ``embed`` (the penultimate
representation) before a linear ``head``.

* ``mlp_w{W}_d{D}[_n{N}]`` — D hidden layers of width W (``hidden.0`` …; the last is ``embed``);
* ``cnn_c{C}_d{D}[_n{N}]`` — D blocks conv3×3(C·2^i) → ReLU → max-pool 2 (``blocks.0`` …), then
  flatten and a linear layer of width 2C + ReLU (``embed``).

``_n{N}``: trained on only the first N training images (different training-set sizes).
Training: Adam (lr 5e-3, weight decay 1e-4), batch 128, ``epochs`` epochs, cross-entropy, fixed
seed per model (``torch.manual_seed(seed)``, deterministic CPU kernels). Each model is a
zero-argument factory here, so its spec is ``entrypoint:brainlid.demo.zoo:<name>@<weights>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["ZOO", "ZooEntry", "INPUT_SIZE", "build", "layers_of", "train_model", "n_params"]

INPUT_SIZE = (3, 16, 16)  # what every zoo model reads (declared for `brainlid layers`' dummy input)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # "mlp" | "cnn"
    width: int
    depth: int
    n_train: int | None = None  # None: the whole training split
    epochs: int = 30


ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("mlp_w16_d1", "mlp", 16, 1),
    ZooEntry("mlp_w64_d1", "mlp", 64, 1),
    ZooEntry("mlp_w256_d1", "mlp", 256, 1),
    ZooEntry("mlp_w64_d2", "mlp", 64, 2),
    ZooEntry("mlp_w64_d3", "mlp", 64, 3),
    ZooEntry("mlp_w256_d2_n100", "mlp", 256, 2, n_train=100),
    ZooEntry("mlp_w256_d2", "mlp", 256, 2),
    ZooEntry("cnn_c4_d2", "cnn", 4, 2, epochs=25),
    ZooEntry("cnn_c8_d2", "cnn", 8, 2, epochs=25),
    ZooEntry("cnn_c16_d2", "cnn", 16, 2, epochs=25),
    ZooEntry("cnn_c16_d2_n100", "cnn", 16, 2, n_train=100, epochs=25),
    ZooEntry("cnn_c8_d3", "cnn", 8, 3, epochs=25),
)


def _torch_classes():
    # heavy: torch (~3 s); ZOO and layers_of are read without it
    import torch
    from torch import nn

    class Gray(nn.Module):
        """(B, 3, 16, 16) → (B, 1, 8, 8): mean over colour channels, 2×2 average pooling (the digits' own grid)."""

        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), 2)

    class MLP(nn.Module):
        def __init__(self, width: int, depth: int, n_classes: int = 10, n_in: int = 64):
            super().__init__()
            self.gray = Gray()
            layers, d = [], n_in
            for _ in range(depth):
                layers.append(nn.Sequential(nn.Linear(d, width), nn.ReLU()))
                d = width
            self.hidden = nn.ModuleList(layers[:-1])
            self.embed = layers[-1]
            self.head = nn.Linear(width, n_classes)

        def forward(self, x):
            x = torch.flatten(self.gray(x), 1)
            for layer in self.hidden:
                x = layer(x)
            return self.head(self.embed(x))

    class CNN(nn.Module):
        def __init__(self, channels: int, depth: int, n_classes: int = 10):
            super().__init__()
            self.gray = Gray()
            blocks, c_in = [], 1
            for i in range(depth):
                c = channels * 2**i
                blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
                c_in = c
            self.blocks = nn.ModuleList(blocks)
            side = 8 // 2**depth
            self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, 2 * channels), nn.ReLU())
            self.head = nn.Linear(2 * channels, n_classes)

        def forward(self, x):
            x = self.gray(x)
            for b in self.blocks:
                x = b(x)
            return self.head(self.embed(x))

    return MLP, CNN


_CLASSES = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _torch_classes()
    return _CLASSES


def _entry(name: str) -> ZooEntry:
    for e in ZOO:
        if e.name == name:
            return e
    m = re.fullmatch(r"(mlp|cnn)_[wc](\d+)_d(\d+)(?:_n(\d+))?", name)
    if not m:
        raise KeyError(name)
    return ZooEntry(name, m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)) if m.group(4) else None)


def build(name: str):
    """A fresh (untrained) network for zoo entry ``name``."""
    MLP, CNN = _classes()
    e = _entry(name)
    return MLP(e.width, e.depth) if e.kind == "mlp" else CNN(e.width, e.depth)


def layers_of(name: str) -> list[str]:
    """The layers extracted for the demo, shallow to deep; the last is ``embed``."""
    e = _entry(name)
    if e.kind == "mlp":
        return [f"hidden.{i}" for i in range(e.depth - 1)] + ["embed"]
    return [f"blocks.{i}" for i in range(e.depth)] + ["embed"]


def n_params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def train_model(name: str, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                seed: int = 0):
    """Train zoo entry ``name`` on ``X_train (n, 3, 16, 16)`` float32 in [0, 1]; returns (module, history).

    The weights of the epoch with the best validation accuracy are kept (ties: the earliest).
    """
    # heavy: torch, as in _torch_classes
    import torch
    from torch import nn

    e = _entry(name)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(name)
    n = X_train.shape[0] if e.n_train is None else min(e.n_train, X_train.shape[0])
    Xt = torch.from_numpy(np.ascontiguousarray(X_train[:n], dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y_train[:n], dtype=np.int64))
    Xv = torch.from_numpy(np.ascontiguousarray(X_val, dtype=np.float32))
    yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state, history = -1.0, None, []
    for _epoch in range(e.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            idx = perm[i: i + 128]
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(Xv).argmax(1) == yv).float().mean())
        history.append(acc)
        if acc > best:
            best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def _make_factory(name: str):
    def factory():
        return build(name)

    factory.__name__ = name
    factory.__qualname__ = name
    factory.__doc__ = f"Zoo entry {name} (untrained; load weights with the spec's @path)."
    return factory


for _e in ZOO:
    globals()[_e.name] = _make_factory(_e.name)
del _e
