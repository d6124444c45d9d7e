"""Every figure of an across-model analysis, written to one folder (``brainlid analyze --out``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .profiles import layer_profiles, score_vs_time
from .scatter import family_scatter, measures_forest, r_vs_k, scatter_fit
from .style import model_styles
from .words import _wrap, describe_measure, describe_target, format_p

def analysis_figures(res, folder, *, scores=None, geometry=None) -> dict[str, Path]:
    """All figures of an :class:`~brainlid.analysis.AnalysisResult`, saved as PNG and SVG.

    Names are ``<kind>:<what>``: ``scatter:``/``families:``/``r_vs_k:<target>`` (the headline LID
    against every target, coloured by family, and r against K), ``measures:pooled`` (every
    dimension measure against every target), ``layers:<benchmark>`` (layer profiles, each
    benchmark in its own metric) and ``time:<benchmark>`` (time-resolved benchmarks). Axes are
    labelled in words (:func:`describe_target`), and every model keeps one colour and marker
    (:func:`model_styles`, a family's models share a hue).

    Parameters
    ----------
    res : AnalysisResult
        The analysis (its ``models``, ``correlations``, ``k_curve`` and ``settings``).
    folder : path-like
        Where the figures are written (created when missing).
    scores, geometry : DataFrame or None
        The score and geometry tables, for the layer-profile and time figures (skipped without).

    Returns
    -------
    dict
        Figure name → PNG path.
    """
    folder = Path(folder)
    figs: dict[str, Path] = {}
    models = res.models
    k = res.settings["k"]
    est = res.settings["estimator"]
    metric, value = res.settings.get("metric"), res.settings.get("value", "value")
    corr = res.correlations
    scoped = "scope" in corr
    pooled = corr[corr["scope"] == "pooled"] if scoped and len(corr) else corr
    fam_map = dict(zip(models["model"].astype(str), models["family"].astype(str))) if "family" in models else None
    styles = model_styles(models["model"], fam_map)
    xlabel = describe_measure("lid", estimator=est, k=k)
    for target in res.settings["targets"]:
        row = pooled[(pooled["target"] == target) & pooled["headline"]]
        if row.empty:
            continue
        r = row.iloc[0]
        words = describe_target(target, metric, value)
        ann = (f"Pearson r = {r.pearson_r:.2f} [{r.pearson_ci_low:.2f}, {r.pearson_ci_high:.2f}], p = {format_p(r.pearson_p)}\n"
               f"Spearman ρ = {r.spearman_r:.2f}, p = {format_p(r.spearman_p)}; n = {int(r.n_models)} models")
        m = models[["model", "lid", target]].dropna()
        slug = _slug(target)
        scatter_fit(m["lid"], m[target], m["model"], xlabel=xlabel, ylabel=_wrap(words, 40), title=f"LID vs {target}",
                    annotate=ann, styles=styles, stem=folder / f"scatter_{slug}")
        figs[f"scatter:{target}"] = folder / f"scatter_{slug}.png"
        if fam_map is not None and models["family"].nunique() < len(models):
            dec = corr[(corr["target"] == target) & corr["headline"]].set_index("scope")["pearson_r"] if scoped else {}
            fam_ann = "; ".join(f"{sc} r = {dec[sc]:+.2f}" for sc in ("pooled", "within", "between")
                                if sc in dec and np.isfinite(dec[sc]))
            mf = models[["model", "family", "lid", target]].dropna()
            family_scatter(mf["lid"], mf[target], mf["family"], mf["model"], xlabel=xlabel, ylabel=_wrap(words, 40),
                           annotate=fam_ann, stem=folder / f"families_{slug}")
            figs[f"families:{target}"] = folder / f"families_{slug}.png"
        kc = res.k_curve[res.k_curve["target"] == target]
        if scoped and "scope" in kc:
            kc = kc[kc["scope"] == "pooled"]
        if len(kc):
            glob = {g: float(pooled[(pooled["target"] == target) & (pooled["measure"] == g)]["pearson_r"].iloc[0])
                    for g in pooled[(pooled["target"] == target) & (pooled["kind"] == "global")]["measure"]}
            r_vs_k(kc, glob, target=target, target_label=words, stem=folder / f"r_vs_k_{slug}", k_headline=k)
            figs[f"r_vs_k:{target}"] = folder / f"r_vs_k_{slug}.png"
    if len(corr) and (corr["kind"] == "global").any():
        measures_forest(corr, metric=metric, value=value, stem=folder / "measures_pooled")
        figs["measures:pooled"] = folder / "measures_pooled.png"
    if scores is not None and geometry is not None and len(scores):
        brain = scores[(scores["dataset"] != "models") & (scores["split"] == "test")]
        for bench in sorted(brain["benchmark"].unique())[:4]:
            part = brain[brain["benchmark"] == bench]
            if part["time"].notna().any():
                score_vs_time(scores, benchmark=bench, families=fam_map, stem=folder / f"time_{_slug(bench)}")
                figs[f"time:{bench}"] = folder / f"time_{_slug(bench)}.png"
            elif part["layer"].nunique() > 1 or part["model"].nunique() > 1:
                try:
                    layer_profiles(scores, geometry, benchmark=bench, k=k, estimator=est, metric=metric,
                                   models=list(models["model"]), families=fam_map,
                                   stem=folder / f"layers_{_slug(bench)}")
                    figs[f"layers:{bench}"] = folder / f"layers_{_slug(bench)}.png"
                except InputError:
                    pass
    return figs


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:80]
