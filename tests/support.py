"""Paths the tests share (importable as ``support``: pytest puts ``tests/`` on ``sys.path`` through its
root ``conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brainlid.scoring.tables import geometry_frame, score_frame

REPO = Path(__file__).resolve().parents[1]
#: the small real datasets (k92, CIFAR ResNets, CIFAR-10 samples): $BRAINLID_REALDATA, else ../shared/realdata
REALDATA = Path(os.environ.get("BRAINLID_REALDATA", REPO.parent / "shared" / "realdata"))

#: the K values of :func:`synthetic_tables`' LID rows
KS = (5, 10, 20, 50)


def synthetic_tables(n_models=8, seed=0, evil_name=False):
    """Score and geometry tables of ``n_models`` models with a planted LID–alignment relation (LID lowers the
    late layer's brain score and the model–model alignment, raises nothing else), a pixels baseline that
    must stay out of every correlation, and a generalization table; returns
    ``(scores, geometry, generalization, lid, models)``."""
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(n_models)]
    if evil_name:
        models[0] = "<script>alert(1)</script>"
    lid = rng.uniform(5, 15, n_models)
    srows, grows = [], []
    for i, m in enumerate(models):
        for li, layer in enumerate(("early", "late")):
            for k in KS:
                grows.append(dict(model=m, layer=layer, layer_index=li, stimulus_set="s.test", n=200, estimator="mle",
                                  K=k, value=lid[i] + (0.1 * k if li else 3) + rng.normal(0, 0.01)))
            for g, v in (("participation_ratio", rng.uniform(2, 9)), ("pca90", rng.integers(3, 30))):
                grows.append(dict(model=m, layer=layer, layer_index=li, stimulus_set="s.test", n=200, estimator=g,
                                  K=np.nan, value=float(v)))
            for subj in ("subj01", "subj02"):
                val = -0.02 * lid[i] + 0.4 + rng.normal(0, 0.01) if li == 1 else 0.05
                for split in ("val", "test"):
                    srows.append(dict(model=m, layer=layer, layer_index=li, benchmark=f"nsd.{subj}.EBA.encoding",
                                      dataset="nsd", subject=subj, roi="EBA", metric="encoding_r2", split=split,
                                      value=val, ceiling=0.5, normalised=val / 0.5, selected=li == 1))
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if i != j:
                srows.append(dict(model=a, layer="late", benchmark="models.s.test.mutual_knn", dataset="models",
                                  roi=b, metric="mutual_knn", split="test", value=1 - 0.03 * (lid[i] + lid[j])))
    # a baseline that must not enter the correlations
    for k in KS:
        grows.append(dict(model="baseline:pixels", layer="pixels", layer_index=0, stimulus_set="s.test", n=200,
                          estimator="mle", K=k, value=40.0))
    srows.append(dict(model="baseline:pixels", layer="pixels", layer_index=0, benchmark="nsd.subj01.EBA.encoding",
                      dataset="nsd", subject="subj01", roi="EBA", metric="encoding_r2", split="test", value=0.9))
    gen = pd.DataFrame({"model": models, "img_size": 8, "top1": 90 - 2 * lid + rng.normal(0, 0.5, n_models),
                        "param_count": [f"{x:.2f}" for x in rng.uniform(0.1, 5, n_models)]})
    return score_frame(srows), geometry_frame(grows), gen, lid, models
