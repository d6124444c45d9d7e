"""Across-model analysis on synthetic tables with a planted LID–alignment relation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from brainlid import analysis
from brainlid.analysis.inputs import _match_generalization
from brainlid.errors import InputError
from brainlid.scoring.tables import score_frame
from support import KS, synthetic_tables


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
