"""Pooling of layer outputs and reduction of features to a fixed size.

Pooling (per layer, applied to the hooked output on the compute device)
    Layout convention: a 2-D output is ``(B, C)``; a 3-D output is a token sequence
    ``(B, T, C)`` (transformers); a 4-D or higher output is channels-first
    ``(B, C, *spatial)`` (CNNs).

    ============== ==================================================================
    ``"none"``     flatten everything but the batch axis: ``(B, prod(rest))``
    ``"avg"``      global average: over spatial axes (``(B, C)``), over tokens for 3-D
    ``"max"``      global maximum, same axes as ``"avg"``
    ``"cls"``      first token of a ``(B, T, C)`` output: ``x[:, 0, :]``
    ``"tokens"``   mean over tokens of ``(B, T, C)`` *excluding* the first (CLS) token
    ``"adaptive:s"`` adaptive average pooling of ``(B, C, H, W)`` to ``s × s``, flattened
                   channel-major to ``(B, C·s·s)`` (``torch.nn.functional.adaptive_avg_pool2d``)
    ============== ==================================================================

Reduction (optional, after pooling)
    ``"srp:k"``  seeded sparse random projection to ``k`` dimensions (Li, Hastie & Church
                 2006, "Very sparse random projections"): ``R`` is ``(d, k)`` with entries
                 ``±sqrt(s / k)`` with probability ``1 / (2s)`` each and 0 otherwise,
                 ``s = sqrt(d)``; ``E[‖xR‖²] = ‖x‖²``. Applied batch by batch (streaming).
    ``"pca:k"``  PCA to ``k`` components fitted on a named subset of stimuli (``fit_ids``,
                 default all), then applied to every stimulus; needs the unreduced features
                 first (cached in their own entry).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Pooling", "Reduction", "parse_pooling", "pool", "srp_matrix", "apply_srp", "fit_pca", "POOLING_KINDS"]

POOLING_KINDS = ("none", "avg", "max", "cls", "tokens", "adaptive")
_ALIASES = {"flatten": "none", "mean": "avg", "gap": "avg", "average": "avg", "gmp": "max", "mean_tokens": "tokens", "token_mean": "tokens"}


@dataclass(frozen=True)
class Pooling:
    """A pooling mode: ``kind`` in :data:`POOLING_KINDS`; ``size`` for ``"adaptive"``."""

    kind: str = "avg"
    size: int | None = None

    def __post_init__(self):
        if self.kind not in POOLING_KINDS:
            raise InputError(f"unknown pooling {self.kind!r}; choose one of none, avg, max, cls, tokens, adaptive:S")
        if self.kind == "adaptive":
            if self.size is None or int(self.size) < 1:
                raise InputError("adaptive pooling needs a positive output size, e.g. 'adaptive:2'")
            object.__setattr__(self, "size", int(self.size))
        elif self.size is not None:
            raise InputError(f"pooling {self.kind!r} takes no size")

    def __str__(self) -> str:
        return f"adaptive:{self.size}" if self.kind == "adaptive" else self.kind


def parse_pooling(spec) -> Pooling:
    """``"avg"``, ``"max"``, ``"none"``, ``"cls"``, ``"tokens"``, ``"adaptive:4"`` (or a :class:`Pooling`)."""
    if isinstance(spec, Pooling):
        return spec
    if not isinstance(spec, str):
        raise InputError(f"pooling must be a string such as 'avg' or 'adaptive:2', got {spec!r}")
    s = spec.strip().lower()
    m = re.fullmatch(r"(?:adaptive|adaptive_avg|avg)[:_]?(\d+)(?:x\1)?", s)
    if m:
        return Pooling("adaptive", int(m.group(1)))
    return Pooling(_ALIASES.get(s, s))


def pool(x, pooling: Pooling, layer: str = "?"):
    """Pool one layer's output ``x`` (torch tensor, batch first) to ``(B, n_features)``.

    See the module docstring for the layout convention and the modes.
    """
    import torch.nn.functional as F  # heavy: torch

    b = x.shape[0]
    k = pooling.kind
    if x.ndim == 1:
        x = x[:, None]
    if k == "none":
        return x.reshape(b, -1)
    if x.ndim == 2:
        if k in ("avg", "max"):
            return x
        raise InputError(f"pooling {pooling} needs a token or spatial output, but layer {layer!r} outputs shape {tuple(x.shape)}")
    if x.ndim == 3:  # (B, T, C) tokens
        if k == "avg":
            return x.mean(dim=1)
        if k == "max":
            return x.amax(dim=1)
        if k == "cls":
            return x[:, 0, :]
        if k == "tokens":
            if x.shape[1] < 2:
                raise InputError(f"pooling 'tokens' averages tokens after the first, but layer {layer!r} has {x.shape[1]} token(s)")
            return x[:, 1:, :].mean(dim=1)
        raise InputError(f"pooling {pooling} needs a (B, C, H, W) output, but layer {layer!r} outputs (B, T, C) {tuple(x.shape)}")
    dims = tuple(range(2, x.ndim))
    if k == "avg":
        return x.mean(dim=dims)
    if k == "max":
        return x.amax(dim=dims)
    if k == "adaptive":
        if x.ndim != 4:
            raise InputError(f"adaptive pooling needs a (B, C, H, W) output, layer {layer!r} outputs {tuple(x.shape)}")
        return F.adaptive_avg_pool2d(x, pooling.size).reshape(b, -1)
    raise InputError(f"pooling {pooling} needs a (B, T, C) token output, but layer {layer!r} outputs {tuple(x.shape)}")


def pooled_size(shape: tuple[int, ...], pooling: Pooling) -> int:
    """Number of features after pooling an output of ``shape`` (batch axis included)."""
    import torch  # heavy: torch

    return int(pool(torch.zeros((1,) + tuple(shape[1:]), device="meta"), pooling).shape[1])


# reduction -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reduction:
    """Reduce pooled features to ``n_components`` by ``method`` ``"srp"`` or ``"pca"``.

    Parameters
    ----------
    method : {"srp", "pca"}
    n_components : int
    seed : int
        Seed of the projection (SRP) or of randomised PCA.
    fit_ids : sequence of ids or None
        PCA only: the stimuli the PCA is fitted on (default all); a named subset such as a
        training split. Their digest is part of the cache key.
    fit_name : str
        A human name for ``fit_ids`` recorded in provenance (e.g. ``"train"``).
    """

    method: str
    n_components: int
    seed: int = 0
    fit_ids: tuple | None = field(default=None, compare=True)
    fit_name: str = "all"

    def __post_init__(self):
        if self.method not in ("srp", "pca"):
            raise InputError(f"unknown reduction {self.method!r}; choose 'srp' or 'pca'")
        if int(self.n_components) < 1:
            raise InputError(f"n_components must be >= 1, got {self.n_components}")
        object.__setattr__(self, "n_components", int(self.n_components))
        if self.fit_ids is not None:
            if self.method != "pca":
                raise InputError("fit_ids applies to PCA only")
            ids = np.asarray(self.fit_ids)
            object.__setattr__(self, "fit_ids", tuple(ids.tolist()))
            if self.fit_name == "all":
                object.__setattr__(self, "fit_name", f"{len(ids)} ids")

    @classmethod
    def parse(cls, spec) -> "Reduction | None":
        """``None``, a :class:`Reduction`, or a string ``"srp:512"`` / ``"pca:100"`` (optional ``":seed"``)."""
        if spec is None or isinstance(spec, Reduction):
            return spec
        m = re.fullmatch(r"\s*(srp|pca)\s*:\s*(\d+)\s*(?::\s*(\d+))?\s*", str(spec).lower())
        if not m:
            raise InputError(f"reduction must look like 'srp:512' or 'pca:100[:seed]', got {spec!r}")
        return cls(m.group(1), int(m.group(2)), int(m.group(3) or 0))

    def to_dict(self) -> dict:
        """The reduction as a JSON-able dict (method, components, seed; PCA also its fit set's name and ids digest), as cache keys use it."""
        d = {"method": self.method, "n_components": self.n_components, "seed": self.seed}
        if self.method == "pca":
            d["fit_name"] = self.fit_name
            d["fit_ids_digest"] = None if self.fit_ids is None else hashlib.sha256("\x1f".join(map(str, self.fit_ids)).encode()).hexdigest()
        return d

    def __str__(self) -> str:
        return f"{self.method}:{self.n_components}"


def srp_matrix(n_features: int, n_components: int, seed: int = 0):
    """The ``(n_features, n_components)`` very sparse random projection matrix (scipy CSC, float32).

    Density ``1/sqrt(d)``; non-zeros ``±sqrt(sqrt(d) / k)`` (Li et al. 2006), so squared norms
    are preserved in expectation. Deterministic given ``seed`` (numpy ``default_rng``).
    Memory: about ``k·sqrt(d)`` non-zeros (e.g. 12 M for d = 1e6, k = 12 288).
    """
    import scipy.sparse as sp  # heavy: scipy.sparse, only for SRP (alignment imports this module at CLI start-up)

    d, k = int(n_features), int(n_components)
    if d < 1 or k < 1:
        raise InputError(f"SRP needs n_features >= 1 and n_components >= 1, got {d}, {k}")
    rng = np.random.default_rng(seed)
    density = 1.0 / np.sqrt(d)
    s = 1.0 / density
    counts = rng.binomial(d, density, size=k)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.empty(indptr[-1], dtype=np.int64)
    for j in range(k):  # k sorted draws without replacement per column
        indices[indptr[j] : indptr[j + 1]] = np.sort(rng.choice(d, size=counts[j], replace=False))
    signs = rng.integers(0, 2, size=indptr[-1]) * 2 - 1
    data = (signs * np.sqrt(s / k)).astype(np.float32)
    return sp.csc_matrix((data, indices, indptr), shape=(d, k))


def apply_srp(X: np.ndarray, R) -> np.ndarray:
    """``X @ R`` for dense ``X (n, d)`` float32 and the sparse ``R (d, k)`` → ``(n, k)`` float32."""
    if X.shape[1] != R.shape[0]:
        raise InputError(f"SRP matrix expects {R.shape[0]} features, got {X.shape[1]}")
    return np.ascontiguousarray((R.T @ X.T).T, dtype=np.float32)


def fit_pca(X_fit: np.ndarray, n_components: int, seed: int = 0):
    """Fit PCA on ``X_fit (n_fit, d)``; returns ``(mean (d,), components (k, d))`` float32.

    Projection of ``X`` is ``(X - mean) @ components.T``. Uses scikit-learn's PCA
    (exact SVD for small problems, randomised with ``random_state=seed`` for large ones).
    """
    from sklearn.decomposition import PCA  # heavy: scikit-learn, not at CLI start-up

    n, d = X_fit.shape
    if n_components > min(n, d):
        raise InputError(f"PCA to {n_components} components needs at least that many fit stimuli and features; have {n} stimuli, {d} features")
    pca = PCA(n_components=n_components, random_state=seed, svd_solver="auto")
    pca.fit(np.asarray(X_fit, dtype=np.float32))
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
