"""Across-model analysis on synthetic tables with a planted LID–alignment relation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from brainlid import analysis
from brainlid.analysis.inputs import _match_generalization
from brainlid.errors import InputError
from brainlid.scoring.tables import geometry_frame, score_frame

KS = (5, 10, 20, 50)


def synthetic_tables(n_models=8, seed=0, evil_name=False):
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


def test_headline_matches_scipy_and_excludes_baselines(tmp_path):
    scores, geom, gen, lid, models = synthetic_tables()
    res = analysis.analyze(scores, geom, gen, k=20, n_boot=300, n_perm=500, out=tmp_path)
    assert res.models["model"].tolist() == models  # the pixels baseline is not among them
    assert res.baselines["model"].tolist() == ["baseline:pixels"]
    head = res.headline().set_index("target")
    m = res.models
    want = st.pearsonr(m["lid"], m["brain:nsd.subj01.EBA.encoding"])
    assert head.loc["brain:nsd.subj01.EBA.encoding", "pearson_r"] == pytest.approx(want[0], abs=1e-9)
    assert head.loc["brain:nsd.subj01.EBA.encoding", "pearson_r"] < -0.9
    # the last layer's LID at K=20 is what was planted
    np.testing.assert_allclose(m["lid"], lid + 2.0, atol=0.05)
    # pooled over subjects, model–model mean, generalization all present
    assert {"brain:pooled:nsd.EBA.encoding_r2", "model_model:mutual_knn", "generalization"} <= set(head.index)
    mm = scores[(scores.dataset == "models") & (scores.model == "m3")]["value"].mean()
    assert m.loc[m.model == "m3", "model_model:mutual_knn"].iloc[0] == pytest.approx(mm)
    assert head.loc["generalization", "pearson_r"] < -0.9
    assert np.isfinite(head.loc["generalization", "partial_pearson_r"])
    # global measures are reported beside the headline
    glob = res.correlations[res.correlations.kind == "global"]
    assert {"participation_ratio", "pca90"} <= set(glob["measure"])
    # r vs K with corrected p
    kc = res.k_curve[(res.k_curve.target == "generalization") & (res.k_curve.scope == "pooled")]
    assert kc["K"].tolist() == list(KS) and (kc["p_corrected"] >= kc["p"] - 0.01).all()
    # files: tables, figures (PNG + SVG), report
    for name in ("models", "correlations", "k_curve", "report"):
        assert res.files[name].exists()
    pngs = [p for k, p in res.files.items() if k.startswith("fig:")]
    assert pngs and all(p.exists() and p.with_suffix(".svg").exists() for p in pngs)


def test_selected_layer_and_reference(tmp_path):
    scores, geom, gen, lid, models = synthetic_tables()
    res = analysis.analyze(scores, geom, None, layer="selected", reference="m0", n_boot=200, n_perm=200)
    assert set(res.models["layer"]) == {"late"}
    assert "model_model_ref:mutual_knn" in res.models
    ref = res.models.set_index("model")["model_model_ref:mutual_knn"]
    assert np.isnan(ref["m0"]) and ref["m1"] == pytest.approx(1 - 0.03 * (lid[1] + lid[0]))
    with pytest.raises(InputError, match="reference model"):
        analysis.analyze(scores, geom, reference="nope", n_boot=200, n_perm=200)


def test_read_generalization_timm_format(tmp_path):
    csv = tmp_path / "results-imagenet.csv"
    csv.write_text(
        "model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation\n"
        "convnext_atto.d2_in1k,288,77.0,23.0,93.7,6.3,3.70,0.95,bicubic\n"
        "convnext_atto.d2_in1k,224,75.7,24.3,92.9,7.1,3.70,0.875,bicubic\n"
        "resnet18.a1_in1k,224,73.2,26.8,91.0,9.0,\"11,690\",0.95,bicubic\n"
    )
    with pytest.warns(RuntimeWarning, match="several rows"):
        g = analysis.read_generalization(csv)
    assert g.set_index("model").loc["convnext_atto.d2_in1k", "top1"] == 77.0
    g = analysis.read_generalization(csv, img_size=224)
    assert g.set_index("model").loc["convnext_atto.d2_in1k", "top1"] == 75.7
    assert g.set_index("model").loc["resnet18.a1_in1k", "n_params"] == pytest.approx(11.69e9)
    matched = _match_generalization(["timm:convnext_atto.d2_in1k", "timm:resnet18.a1_in1k@random", "x"], g)
    assert matched["top1"].tolist()[:2] == [75.7, 73.2] and np.isnan(matched["top1"].iloc[2])
    with pytest.raises(InputError, match="top1"):
        analysis.read_generalization(pd.DataFrame({"model": ["a"], "x": [1]}))


def test_errors():
    scores, geom, *_ = synthetic_tables(n_models=2)
    with pytest.raises(InputError, match="at least 3 models"):
        analysis.analyze(scores, geom, n_boot=200, n_perm=200)
    with pytest.raises(InputError, match="empty"):
        analysis.analyze(score_frame([]), geom)
    scores, geom, *_ = synthetic_tables()
    with pytest.raises(InputError, match="K measured: 10, 20, 5, 50|K measured"):
        analysis.analyze(scores, geom, k=7, n_boot=200, n_perm=200)
