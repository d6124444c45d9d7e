"""The report as a person sees it: a demo-style report rendered in headless Chromium at 1280 px.

Checks what a reader would notice: nothing wider than the window (no horizontal scrolling), every
image loads and has a caption, no console errors. The screenshot is kept in ``test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainlid import analysis, plotting
from brainlid.scoring.tables import geometry_frame, score_frame
from support import REPO

KS = (5, 10, 20, 50, 100)
GLOBALS = ("participation_ratio", "pca90", "pca95", "pca99", "twonn", "mle_full")
ENC = ("syn.subj01.nsdgeneral.encoding", "syn.subj02.nsdgeneral.encoding")
RSA = "syn.subj01.nsdgeneral.rsa"


def demo_style_tables(seed: int = 0):
    """Scores and geometry shaped like ``brainlid demo``'s: 12 models in 2 families (5 + 7), 3 layers each,
    two encoding subjects and an RSA benchmark, model–model CKA and mutual kNN, six global measures,
    a pixels baseline, every row marked synthetic. Returns ``(scores, geometry, generalization)``."""
    rng = np.random.default_rng(seed)
    models = [f"cnn_c{c}_d{d}" for c, d in ((4, 2), (8, 2), (8, 3), (16, 2), (16, 3))] + [
        f"mlp_w{w}_d{d}" for w, d in ((16, 1), (64, 1), (64, 2), (64, 3), (256, 1), (256, 2), (256, 3))]
    srows, grows = [], []
    lid = rng.uniform(2.5, 4.5, len(models))
    for i, m in enumerate(models + ["baseline:pixels"]):
        base = m.startswith("baseline")
        layers = ["pixels"] if base else ["conv1", "block", "embed"]
        for li, layer in enumerate(layers):
            g = 6.0 if base else lid[i] + 1.5 * (2 - li)
            for k in KS:
                grows.append(dict(model=m, layer=layer, layer_index=li, stimulus_set="syn.test", n=150, estimator="mle",
                                  K=float(k), value=g + 3.0 / k + rng.normal(0, 0.05)))
            for gm, v in zip(GLOBALS, (2 * g, round(1.5 * g), round(2 * g), round(3 * g), g + 1, g - 1)):
                grows.append(dict(model=m, layer=layer, layer_index=li, stimulus_set="syn.test", n=150, estimator=gm,
                                  K=np.nan, value=float(v) + (0 if gm.startswith("pca") else rng.normal(0, 0.2))))
            for bench, metric in [(b, "encoding_r2") for b in ENC] + [(RSA, "rsa_spearman")]:
                subj = bench.split(".")[1]
                v = 0.2 + 0.08 * li + 0.02 * g + rng.normal(0, 0.01)
                for split in ("val", "test"):
                    srows.append(dict(model=m, layer=layer, layer_index=li, benchmark=bench, dataset="syn", subject=subj,
                                      roi="nsdgeneral", metric=metric, split=split, value=v, ci_low=v - 0.03,
                                      ci_high=v + 0.03, ceiling=0.6, normalised=v / 0.6, selected=li == len(layers) - 1,
                                      data_source="synthetic"))
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if i != j:
                for metric in ("cka", "mutual_knn"):
                    srows.append(dict(model=a, layer="embed", layer_index=2, benchmark=f"models.syn.test.{metric}",
                                      dataset="models", roi=b, metric=metric, split="test", data_source="synthetic",
                                      value=0.9 - 0.05 * abs(lid[i] - lid[j]) + rng.normal(0, 0.01)))
    gen = pd.DataFrame({"model": models, "top1": 0.9 - 0.02 * lid + rng.normal(0, 0.01, len(models)),
                        "n_params": rng.integers(600, 90000, len(models)).astype(float)})
    return score_frame(srows), geometry_frame(grows), gen


def comparisons_table() -> pd.DataFrame:
    """A table with the columns of :func:`brainlid.comparison.compare_models` (two rows)."""
    return pd.DataFrame({
        "model_a": ["mlp_w256_d2", "mlp_w256_d2"], "model_b": ["cnn_c16_d2", "cnn_c16_d2"], "benchmark": list(ENC),
        "subject": ["subj01", "subj02"], "metric": "encoding_r2", "time": np.nan, "level": "subject", "n_subjects": 1,
        "n_stimuli": 50, "value_a": [0.48, 0.46], "value_b": [0.43, 0.41], "difference": [0.05, 0.05],
        "ci_low": [0.01, -0.01], "ci_high": [0.09, 0.1], "p_value": [0.012, 0.2], "p_holm": [0.024, 0.2],
        "normalised_difference": [0.08, 0.08], "ci_method": "paired stimulus bootstrap (basic)"})


def native_brain_map(folder: Path) -> Path:
    """A per-voxel map in a subject's own space (sform code 2, NSD-like affine), as the demo draws it."""
    rng = np.random.default_rng(1)
    shape, affine = (10, 12, 8), np.diag([1.8, 1.8, 1.8, 1.0])
    coords = np.argwhere(np.ones(shape, bool))[rng.choice(960, 60, replace=False)]
    return plotting.brain_map(rng.uniform(-0.1, 0.8, 60), coords=coords, affine=affine, shape=shape, threshold=0.05,
                              title="SYNTHETIC subj01, test R², mlp_w256_d2", stem=folder / "brain_map_subj01")


def demo_style_report(out: Path) -> Path:
    """Write the demo-style report (analysis, figures, comparisons, brain map) under ``out``; return its path."""
    from brainlid.report import analysis_report

    scores, geom, gen = demo_style_tables()
    png = native_brain_map(out / "figures")
    res = analysis.analyze(scores, geom, gen, k=20, n_boot=200, n_perm=200, out=out, report=False,
                           extra_figures={"brain map: mlp_w256_d2 on synthetic subj01": png})
    figs = {k[4:]: v for k, v in res.files.items() if k.startswith("fig:")}
    return analysis_report(res, out / "report.html", figures=figs, scores=scores, comparisons=comparisons_table(),
                           title="brainlid demo-style report — SYNTHETIC", notes=["Synthetic data <b>only</b>."])


def test_report_renders_at_1280_px(tmp_path, headless_chrome):
    report = demo_style_report(tmp_path / "analysis")
    text = report.read_text()
    assert text.count("<img ") >= 15 and "<details>" in text
    art = REPO / "test-artifacts"
    art.mkdir(exist_ok=True)
    driver = headless_chrome(1280, 1000, "--hide-scrollbars")
    driver.get(report.as_uri())
    inner = driver.execute_script("return window.innerWidth")
    assert 1200 <= inner <= 1280
    # no horizontal overflow, also with every collapsed table opened
    for opened in (False, True):
        if opened:
            driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        wide = driver.execute_script(
            "return [...document.querySelectorAll('table, figure, img, p, div')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)"
            ".map(e => e.tagName + ': ' + e.textContent.slice(0, 80))")
        assert width <= inner and not wide, (opened, width, wide)
    # every image loaded, has alt text and a non-empty caption in its <figure>
    imgs = driver.execute_script(
        "return [...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt, "
        "i.closest('figure') ? (i.closest('figure').querySelector('figcaption') || {}).textContent || '' : ''])")
    assert len(imgs) >= 15
    for loaded, alt, caption in imgs:
        assert loaded and alt.strip() and len(caption.strip()) > 40, (loaded, alt, caption)
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
    driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = false)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 150, 16000))
    driver.save_screenshot(str(art / "report-1280.png"))
    assert (art / "report-1280.png").stat().st_size > 10_000


def test_demo_style_report_has_every_section_and_no_raw_ids_as_axis_names(tmp_path):
    """Without a browser: the sections a reader expects, the RSA layer profile in its own metric,
    the brain map of native-space data drawn without an MNI template, headers with raw-id tooltips."""
    report = demo_style_report(tmp_path / "analysis")
    text = report.read_text()
    for heading in ("Headline", "Model families", "Global dimension measures", "r against K", "Layers, time courses",
                    "Models", "Baselines", "Model comparisons"):
        assert f"<h2>{heading}" in text, heading
    assert re.search(r'<th title="pearson_ci_low, pearson_ci_high">Pearson r 95% CI</th>', text)
    assert '<th title="p_holm">p (Holm)</th>' in text
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    assert any("RSA (Spearman ρ) on syn.subj01.nsdgeneral.rsa" in c for c in captions)
    assert any(c.startswith("brain map") and "native" in c for c in captions)
