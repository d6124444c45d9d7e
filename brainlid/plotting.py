"""Figures (matplotlib, drawn off-screen; every figure saved as PNG and SVG).

* :func:`scatter_fit` — a measure against an alignment target across models, with the OLS fit
  and its 95 % bootstrap band (models resampled);
* :func:`family_scatter` — the same scatter coloured by model family, with one least-squares line
  per family (the within-family relation) and the pooled line (the within/between decomposition);
* :func:`r_vs_k` — r of LID with a target as a function of K (local → global), with the
  max-over-K corrected p-values, and the global measures as horizontal reference lines;
* :func:`layer_profiles` — LID and brain score across the layers of each model;
* :func:`score_vs_time` — EEG/MEG score curves with their CI and the noise-ceiling band;
* :func:`brain_map` — per-voxel scores on a glass brain (volumes) or on the fsaverage surface;
* :func:`draw_intervals` — intervals drawn as ``[ci_low, ci_high]`` themselves (a stimulus-bootstrap
  *basic* interval need not contain the point estimate, so never as value ± error).

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``'s global state, so importing brainlid does not change the user's backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = ["scatter_fit", "family_scatter", "r_vs_k", "layer_profiles", "score_vs_time", "brain_map", "analysis_figures",
           "save_figure", "draw_intervals"]

_DPI = 110


def _figure(w: float = 5.0, h: float = 4.0, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, stem: str | os.PathLike) -> Path:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomically); return the PNG path."""
    from ._atomic import atomic_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):
        path = stem.with_name(stem.name + "." + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
    return stem.with_name(stem.name + ".png")


def draw_intervals(ax, positions, low, high, *, horizontal: bool = False, color="k", lw: float = 1.0,
                   cap: float = 0.15, label: str | None = None):
    """Draw intervals ``[low, high]`` as lines with end caps, one per position.

    Use it for ``ci_low``/``ci_high`` instead of ``errorbar(value, yerr=...)``: brainlid's encoding
    intervals are basic stimulus-bootstrap intervals (2·value − upper, 2·value − lower percentile),
    which need not contain ``value`` (matplotlib refuses the negative error lengths that follow).

    Parameters
    ----------
    ax : matplotlib Axes
    positions, low, high : array-like of shape (n,)
        Bar positions (x, or y when ``horizontal``) and the interval bounds in data units; rows
        with a NaN bound are skipped.
    horizontal : bool
        Intervals along x (for ``barh``) instead of along y.
    color, lw, label
        Line style; ``label`` names the collection in a legend.
    cap : float
        Half-length of the end caps, in position units.

    Returns
    -------
    matplotlib.collections.LineCollection
        Three segments per drawn interval: the interval, then its low and high caps.
    """
    from matplotlib.collections import LineCollection

    pos, lo, hi = (np.asarray(a, dtype=float).ravel() for a in (positions, low, high))
    if not pos.shape == lo.shape == hi.shape:
        raise InputError(f"positions, low and high must have one length; got {pos.size}, {lo.size}, {hi.size}")
    keep = np.isfinite(pos) & np.isfinite(lo) & np.isfinite(hi)
    segs = []
    for p, a, b in zip(pos[keep], lo[keep], hi[keep]):
        segs += [[(p, a), (p, b)], [(p - cap, a), (p + cap, a)], [(p - cap, b), (p + cap, b)]]
    if horizontal:
        segs = [[(y, x) for x, y in seg] for seg in segs]
    lines = LineCollection(segs, colors=color, linewidths=lw, label=label, zorder=3)
    ax.add_collection(lines)
    ax.autoscale_view()
    return lines


def _short(name: str, n: int = 22) -> str:
    s = str(name).split("/")[-1]
    s = s.rsplit(":", 1)[-1] if s.count(":") >= 1 else s
    return s if len(s) <= n else s[: n - 1] + "…"


def scatter_fit(x, y, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                stem=None, n_boot: int = 1000, seed: int = 0, annotate: str | None = None):
    """Scatter of ``y`` against ``x`` across models with the OLS line and a 95 % bootstrap band.

    The band is the pointwise 2.5–97.5 % quantiles of the fitted lines over ``n_boot`` resamples
    of the models. Returns the Figure (saved as PNG+SVG when ``stem`` is given).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise InputError("scatter_fit needs x and y of the same length (>= 2)")
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(x, y, s=28, color="#1f5fa8", zorder=3)
    if labels is not None:
        for xi, yi, lab in zip(x, y, labels):
            ax.annotate(_short(lab), (xi, yi), fontsize=6.5, xytext=(3, 3), textcoords="offset points", color="#333")
    if x.size >= 3 and np.ptp(x) > 0:
        grid = np.linspace(x.min(), x.max(), 50)
        b, a = np.polyfit(x, y, 1)
        ax.plot(grid, a + b * grid, color="#c0392b", lw=1.5, label="OLS fit")
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        xb, yb = x[idx], y[idx]
        xc = xb - xb.mean(axis=1, keepdims=True)
        vx = (xc**2).sum(axis=1)
        ok = vx > 0
        if ok.any():
            bb = (xc[ok] * (yb[ok] - yb[ok].mean(axis=1, keepdims=True))).sum(axis=1) / vx[ok]
            aa = yb[ok].mean(axis=1) - bb * xb[ok].mean(axis=1)
            lines = aa[:, None] + bb[:, None] * grid[None, :]
            lo, hi = np.quantile(lines, [0.025, 0.975], axis=0)
            ax.fill_between(grid, lo, hi, color="#c0392b", alpha=0.15, lw=0, label="95% bootstrap CI")
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if annotate:
        ax.text(0.02, 0.02, annotate, transform=ax.transAxes, fontsize=7.5, va="bottom", ha="left",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def family_scatter(x, y, families, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                   stem=None, annotate: str | None = None):
    """Scatter of ``y`` against ``x`` coloured by family: per-family OLS lines, family means and the pooled line.

    Each family with two or more models (and x not constant) gets its own least-squares line over
    its x range (the within-family relation); a hollow square marks each family's mean (the
    between-family relation); the black dashed line is the pooled fit over all models. When the
    family lines slope one way and the pooled line the other, the pooled correlation is carried
    by differences between families (Simpson's paradox).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fam = np.asarray(families, dtype=object).astype(str)
    if x.shape != y.shape or fam.shape != x.shape or x.size < 2:
        raise InputError("family_scatter needs x, y and families of the same length (>= 2)")
    from matplotlib import colormaps

    names = list(dict.fromkeys(fam))
    cm = colormaps["tab10" if len(names) <= 10 else "tab20"]
    fig = _figure(5.6, 4.2)
    ax = fig.add_subplot()
    for i, f in enumerate(names):
        sel = fam == f
        c = cm(i % cm.N)
        ax.scatter(x[sel], y[sel], s=26, color=c, zorder=3, label=f"{_short(f, 18)} (n={int(sel.sum())})")
        if sel.sum() >= 2 and np.ptp(x[sel]) > 0:
            b, a = np.polyfit(x[sel], y[sel], 1)
            g = np.linspace(x[sel].min(), x[sel].max(), 20)
            ax.plot(g, a + b * g, color=c, lw=1.3)
        if len(names) > 1:
            ax.plot([x[sel].mean()], [y[sel].mean()], "s", ms=8, mfc="none", mec=c, mew=1.5, zorder=4)
    if labels is not None:
        for xi, yi, lab in zip(x, y, labels):
            ax.annotate(_short(lab), (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points", color="#444")
    if x.size >= 3 and np.ptp(x) > 0:
        b, a = np.polyfit(x, y, 1)
        g = np.linspace(x.min(), x.max(), 50)
        ax.plot(g, a + b * g, color="k", lw=1.2, ls="--", label="pooled fit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "coloured by family: lines within families, □ family means, -- pooled", fontsize=8.5)
    if annotate:
        ax.text(0.02, 0.02, annotate, transform=ax.transAxes, fontsize=7, va="bottom", ha="left",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.legend(fontsize=6.5, loc="best")
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def r_vs_k(k_curve: pd.DataFrame, global_r: dict | None = None, *, target: str = "", stem=None, k_headline: int | None = None):
    """Pearson r between LID and a target against K (log axis); corrected p-values as labels.

    ``k_curve`` has columns ``K, r, p_corrected`` (one target); ``global_r`` maps a global measure
    name to its r (drawn as horizontal dashed lines).
    """
    if k_curve is None or len(k_curve) == 0:
        raise InputError("r_vs_k needs at least one K")
    kc = k_curve.sort_values("K")
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    ax.plot(kc["K"], kc["r"], "o-", color="#1f5fa8", label="local LID (MLE) at K")
    for kk, r, p in zip(kc["K"], kc["r"], kc["p_corrected"]):
        ax.annotate(f"p*={p:.2g}", (kk, r), fontsize=6, xytext=(0, 5), textcoords="offset points", ha="center")
    if k_headline is not None and (kc["K"] == k_headline).any():
        r0 = float(kc.loc[kc["K"] == k_headline, "r"].iloc[0])
        ax.plot([k_headline], [r0], "s", ms=9, mfc="none", mec="#c0392b", label=f"headline K={k_headline} (fixed in advance)")
    colors = ["#7f8c8d", "#27ae60", "#8e44ad", "#d35400", "#16a085"]
    for (name, r), c in zip((global_r or {}).items(), colors):
        ax.axhline(r, ls="--", lw=1, color=c, label=f"global: {name}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("K (neighbours)")
    ax.set_ylabel("Pearson r across models")
    ax.set_title(f"r vs K — {target}\n(exploratory; p* corrected for the number of K)", fontsize=8.5)
    ax.legend(fontsize=6.5, loc="best")
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def layer_profiles(scores: pd.DataFrame, geometry: pd.DataFrame, *, benchmark: str, k: int = 20, estimator: str = "mle",
                   metric: str = "encoding_r2", models=None, stem=None):
    """LID (at K) and test brain score against layer depth, one line per model."""
    s = scores[(scores["benchmark"] == benchmark) & (scores["split"] == "test") & (scores["metric"] == metric)]
    g = geometry[(geometry["estimator"] == estimator) & (geometry["K"] == k)]
    models = list(models) if models is not None else sorted(set(s["model"]) & set(g["model"]))
    if not models:
        raise InputError(f"no model has both scores on {benchmark} ({metric}) and {estimator} LID at K={k}")
    fig = _figure(8.0, 3.6)
    a1, a2 = fig.subplots(1, 2)
    cmap = _cmap(len(models))
    for i, m in enumerate(models):
        gm = g[g["model"] == m].groupby("layer_index", as_index=False)["value"].mean()
        sm = s[s["model"] == m].groupby("layer_index", as_index=False)["value"].mean()
        a1.plot(gm["layer_index"], gm["value"], "o-", color=cmap[i], ms=3, lw=1, label=_short(m))
        a2.plot(sm["layer_index"], sm["value"], "o-", color=cmap[i], ms=3, lw=1)
        sel = scores[(scores["model"] == m) & (scores["benchmark"] == benchmark) & scores["selected"].astype(bool)
                     & (scores["split"] == "test") & (scores["metric"] == metric)]
        if len(sel):
            a2.plot(sel["layer_index"].astype(float), sel["value"], "*", ms=9, color=cmap[i])
    a1.set_xlabel("layer (depth order)")
    a1.set_ylabel(f"LID ({estimator}, K={k})")
    a2.set_xlabel("layer (depth order)")
    a2.set_ylabel(f"{metric} (test)")
    a2.set_title("★ = layer chosen on the validation split", fontsize=7.5)
    a1.legend(fontsize=5.5, ncol=2)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.suptitle(f"Layer profiles — {benchmark}", fontsize=9)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def score_vs_time(scores: pd.DataFrame, *, benchmark: str, metric: str | None = None, models=None, stem=None):
    """Score against time (EEG/MEG) per model: line, bootstrap CI band, and the noise-ceiling band.

    The ceiling band spans the ceiling ± nothing (the ceiling curve itself shaded from the best
    model's score up to the ceiling), drawn from the ``ceiling`` column of the same rows.
    """
    s = scores[(scores["benchmark"] == benchmark) & (scores["split"] == "test") & scores["time"].notna()]
    if metric is not None:
        s = s[s["metric"] == metric]
    elif len(s):
        metric = "encoding_r" if (s["metric"] == "encoding_r").any() else s["metric"].iloc[0]
        s = s[s["metric"] == metric]
    if s.empty:
        raise InputError(f"no time-resolved test rows for {benchmark}")
    sel = s[s["selected"].astype(bool)]
    s = sel if len(sel) else s
    models = list(models) if models is not None else sorted(s["model"].unique())
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    cmap = _cmap(len(models))
    for i, m in enumerate(models):
        part = s[s["model"] == m].groupby("time", as_index=False)[["value", "ci_low", "ci_high", "ceiling"]].mean()
        ax.plot(part["time"], part["value"], color=cmap[i], lw=1.3, label=_short(m))
        if part["ci_low"].notna().any():
            ax.fill_between(part["time"], part["ci_low"], part["ci_high"], color=cmap[i], alpha=0.15, lw=0)
    ceil = s.groupby("time")["ceiling"].mean()
    if ceil.notna().any():
        ax.fill_between(ceil.index, 0, ceil.to_numpy(), color="#95a5a6", alpha=0.2, lw=0, label="noise ceiling")
        ax.plot(ceil.index, ceil.to_numpy(), color="#7f8c8d", lw=0.8, ls="--")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(metric)
    ax.set_title(benchmark, fontsize=9)
    ax.legend(fontsize=6.5)
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def brain_map(values, *, mask_img=None, coords=None, affine=None, shape=None, surface: str | None = None,
              title: str = "", stem=None, threshold: float | None = None):
    """Per-unit scores as a brain map.

    Volumes: give ``mask_img`` (a NIfTI whose non-zero voxels are the units, in C order of the
    array — how brainlid's NSD loader orders voxels) or ``coords`` (``(n_units, 3)`` voxel
    indices) with ``affine`` and ``shape``; drawn with nilearn's glass brain.
    Surfaces: ``surface="fsaverage5"`` with ``values`` of length 2 × 10242 (left then right
    hemisphere); drawn with nilearn's ``plot_surf_stat_map`` on nilearn's bundled fsaverage5
    mesh (no download).

    Returns the path of the PNG (an SVG is written beside it) when ``stem`` is given, else the
    nilearn display object.
    """
    from .errors import require

    nib = require("nibabel", "core")
    plotting = require("nilearn.plotting", "core", "brain maps")
    v = np.asarray(values, dtype=np.float32).ravel()
    if surface is None:
        if mask_img is not None:
            mask_img = nib.load(mask_img) if isinstance(mask_img, (str, os.PathLike)) else mask_img
            mask = np.asarray(mask_img.dataobj) != 0
            if mask.sum() != v.size:
                raise InputError(f"mask has {int(mask.sum())} voxels but {v.size} values were given")
            data = np.zeros(mask.shape, dtype=np.float32)
            data[mask] = v
            img = nib.Nifti1Image(data, mask_img.affine)
        else:
            if coords is None or affine is None or shape is None:
                raise InputError("brain_map needs mask_img, or coords with affine and shape, or surface=")
            c = np.asarray(coords, dtype=int)
            if c.shape != (v.size, 3):
                raise InputError(f"coords must have shape ({v.size}, 3), got {c.shape}")
            data = np.zeros(tuple(shape), dtype=np.float32)
            data[c[:, 0], c[:, 1], c[:, 2]] = v
            img = nib.Nifti1Image(data, np.asarray(affine, dtype=float))
        fig = _figure(7.0, 2.8, layout=None)
        display = plotting.plot_glass_brain(img, figure=fig, title=title or None, colorbar=True, plot_abs=False,
                                            threshold=threshold if threshold is not None else "auto", cmap="cold_hot")
    else:
        from nilearn import datasets

        if surface != "fsaverage5":
            raise InputError(f"surface must be 'fsaverage5' (bundled with nilearn), got {surface!r}")
        fs = datasets.fetch_surf_fsaverage("fsaverage5")
        n_h = v.size // 2
        if v.size != 2 * 10242:
            raise InputError(f"fsaverage5 maps need 2 × 10242 values (left, right), got {v.size}")
        fig = _figure(7.0, 3.2, layout=None)
        axes = [fig.add_subplot(1, 2, i + 1, projection="3d") for i in range(2)]
        for ax, hemi, vals in zip(axes, ("left", "right"), (v[:n_h], v[n_h:])):
            plotting.plot_surf_stat_map(fs[f"infl_{hemi}"], vals, hemi=hemi, bg_map=fs[f"sulc_{hemi}"], axes=ax,
                                        figure=fig, colorbar=False, threshold=threshold, cmap="cold_hot")
        fig.suptitle(title, fontsize=9)
        display = fig
    if stem is not None:
        return save_figure(fig, stem)
    return display


def _cmap(n: int):
    from matplotlib import colormaps

    cm = colormaps["viridis"]
    return [cm(x) for x in np.linspace(0.05, 0.9, max(n, 1))]


def analysis_figures(res, folder, *, scores=None, geometry=None) -> dict[str, Path]:
    """All figures of an :class:`~brainlid.analysis.AnalysisResult`; returns name → PNG path.

    Scatters of the headline LID against every target (and the best global measure against
    the first brain target), r-vs-K curves per target, layer profiles for each brain benchmark
    and score-vs-time curves for time-resolved benchmarks.
    """
    folder = Path(folder)
    figs: dict[str, Path] = {}
    models = res.models
    k = res.settings["k"]
    corr = res.correlations
    scoped = "scope" in corr
    pooled = corr[corr["scope"] == "pooled"] if scoped and len(corr) else corr
    for i, target in enumerate(res.settings["targets"]):
        row = pooled[(pooled["target"] == target) & pooled["headline"]]
        if row.empty:
            continue
        r = row.iloc[0]
        ann = (f"Pearson r={r.pearson_r:.2f} [{r.pearson_ci_low:.2f}, {r.pearson_ci_high:.2f}], p={r.pearson_p:.2g}\n"
               f"Spearman ρ={r.spearman_r:.2f}, p={r.spearman_p:.2g}; n={int(r.n_models)} models")
        m = models[["model", "lid", target]].dropna()
        slug = _slug(target)
        fig = scatter_fit(m["lid"], m[target], m["model"], xlabel=f"LID ({res.settings['estimator']}, K={k})",
                          ylabel=target, title=f"LID vs {target}", annotate=ann, stem=folder / f"scatter_{slug}")
        figs[f"scatter:{target}"] = folder / f"scatter_{slug}.png"
        if "family" in models and models["family"].nunique() < len(models):
            dec = corr[(corr["target"] == target) & corr["headline"]].set_index("scope")["pearson_r"] if scoped else {}
            ann = "; ".join(f"{sc} r={dec[sc]:+.2f}" for sc in ("pooled", "within", "between")
                            if sc in dec and np.isfinite(dec[sc]))
            mf = models[["model", "family", "lid", target]].dropna()
            family_scatter(mf["lid"], mf[target], mf["family"], mf["model"], xlabel=f"LID ({res.settings['estimator']}, K={k})",
                           ylabel=target, annotate=ann, stem=folder / f"families_{slug}")
            figs[f"families:{target}"] = folder / f"families_{slug}.png"
        kc = res.k_curve[res.k_curve["target"] == target]
        if scoped and "scope" in kc:
            kc = kc[kc["scope"] == "pooled"]
        if len(kc):
            glob = {g: float(pooled[(pooled["target"] == target) & (pooled["measure"] == g)]["pearson_r"].iloc[0])
                    for g in pooled[(pooled["target"] == target) & (pooled["kind"] == "global")]["measure"]}
            r_vs_k(kc, glob, target=target, stem=folder / f"r_vs_k_{slug}", k_headline=k)
            figs[f"r_vs_k:{target}"] = folder / f"r_vs_k_{slug}.png"
        del fig
    if scores is not None and geometry is not None and len(scores):
        brain = scores[(scores["dataset"] != "models") & (scores["split"] == "test")]
        metric = res.settings.get("metric") or "encoding_r2"
        for bench in sorted(brain["benchmark"].unique())[:4]:
            part = brain[brain["benchmark"] == bench]
            if part["time"].notna().any():
                score_vs_time(scores, benchmark=bench, stem=folder / f"time_{_slug(bench)}")
                figs[f"time:{bench}"] = folder / f"time_{_slug(bench)}.png"
            elif part["layer"].nunique() > 1 or part["model"].nunique() > 1:
                try:
                    layer_profiles(scores, geometry, benchmark=bench, k=k, estimator=res.settings["estimator"],
                                   metric=metric, models=[m for m in res.models["model"]], stem=folder / f"layers_{_slug(bench)}")
                    figs[f"layers:{bench}"] = folder / f"layers_{_slug(bench)}.png"
                except InputError:
                    pass
    return figs


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:80]
