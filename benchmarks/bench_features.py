"""Feature extraction throughput and feature-cache overhead.

A CNN of four stride-2 3×3 conv blocks (32–64–128–256 channels, two convolutions per block,
1.18 M parameters: :class:`brainlid.models.SmallCNN`) over 2,000 random 64×64 RGB images on CPU,
hooking the four blocks with global-average pooling, batch size 64. Timed interleaved in the
same run (median of 3):

* ``naive loop`` — the common pattern in peer tools: hooks keep each block's full activation,
  after each forward pass the activations are pooled, converted to numpy and appended to lists,
  stacked at the end (``torch.no_grad``);
* ``brainlid (no cache)`` — ``extract(..., cache=False)``;
* ``brainlid (cache, cold)`` — ``extract`` into an empty cache folder: stimulus and weights
  digests, preallocated memmaps, a durable commit (msync + atomic bitmap) per batch, SHA-256 and
  manifest at the end, memory-mapped read-back;
* ``brainlid (cache, hit)`` — the same call again: digests, checksum verification, memmaps.

Run: ``python -m benchmarks features`` (``--quick``: 500 images, one repeat).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def _naive(model, images: np.ndarray, layers, batch_size: int):
    import torch

    acts = {}
    handles = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o.detach())) for name in layers]
    out = {name: [] for name in layers}
    try:
        with torch.no_grad():
            for s in range(0, len(images), batch_size):
                x = torch.from_numpy(images[s : s + batch_size]).permute(0, 3, 1, 2).float().div(255.0)
                model(x)
                for name in layers:
                    out[name].append(acts[name].mean(dim=(2, 3)).cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    return {name: np.vstack(v) for name, v in out.items()}


def main(quick: bool = False) -> None:
    import torch

    from brainlid.data import StimulusSet
    from brainlid.features import extract
    from brainlid.models import small_cnn

    from ._common import print_table, timeit_interleaved

    n, size, batch_size = (500, 64, 64) if quick else (2000, 64, 64)
    repeats = 1 if quick else 3
    torch.manual_seed(0)
    model = small_cnn().eval()
    n_params = sum(p.numel() for p in model.parameters())
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    layers = ["block1", "block2", "block3", "block4"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    runs = {"cold": 0}

    def naive():
        return _naive(model, images, layers, batch_size)

    def no_cache():
        return extract(model, StimulusSet.from_array(images), layers, pooling="avg", batch_size=batch_size, cache=False, progress=False)

    def cache_cold():
        runs["cold"] += 1
        return extract(model, StimulusSet.from_array(images), layers, pooling="avg", batch_size=batch_size, cache=tmp / f"cold{runs['cold']}", progress=False)

    hit_dir = tmp / "hit"

    def cache_hit():
        return extract(model, StimulusSet.from_array(images), layers, pooling="avg", batch_size=batch_size, cache=hit_dir, progress=False)

    try:
        ref = naive()
        got = cache_hit()  # also fills the hit cache
        err = max(float(np.abs(np.asarray(got[k]) - ref[k]).max()) for k in layers)
        times = timeit_interleaved(
            {"naive loop": naive, "brainlid (no cache)": no_cache, "brainlid (cache, cold)": cache_cold, "brainlid (cache, hit)": cache_hit},
            repeats=repeats,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = times["naive loop"]
    rows = [
        {"method": k, "seconds": round(v, 3), "images/s": round(n / v), "time vs naive": f"{v / base:.2f}x"}
        for k, v in times.items()
    ]
    print_table(rows, title=f"feature extraction: SmallCNN ({n_params / 1e6:.2f} M params), {n} images {size}x{size}, 4 blocks, avg pooling, batch {batch_size}, CPU, {torch.get_num_threads()} threads")
    overhead = (times["brainlid (cache, cold)"] - times["brainlid (no cache)"]) / times["brainlid (no cache)"]
    print(f"\ncache overhead (cold cache vs no cache): {100 * overhead:+.1f} % of extraction time")
    print(f"cache hit: {100 * times['brainlid (cache, hit)'] / times['brainlid (no cache)']:.1f} % of extraction time")
    print(f"max |brainlid - naive| = {err:.2e}")


if __name__ == "__main__":  # pragma: no cover
    main()
