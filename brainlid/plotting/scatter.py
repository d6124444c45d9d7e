"""Across-model figures: a measure against an alignment target (with its fit), by family, against K, every measure.

* :func:`scatter_fit` — a measure against an alignment target across models, with the OLS fit
  and its 95 % bootstrap band (models resampled);
* :func:`family_scatter` — the same scatter coloured by model family, with one least-squares line
  per family (the within-family relation) and the pooled line (the within/between decomposition);
* :func:`r_vs_k` — r of LID with a target as a function of K (local → global), with the
  max-over-K corrected p-values, and the global measures as horizontal reference lines;
* :func:`measures_forest` — every dimension measure's r with each target and its interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from .._docs import fill_doc
from ..errors import InputError
from .style import _figure, _legend_box, _stats_box, draw_intervals, model_styles, save_figure
from .words import _short, _wrap, describe_measure, describe_target, format_p

@fill_doc
def scatter_fit(x, y, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                stem=None, n_boot: int = 1000, seed: int = 0, annotate: str | None = None, styles: dict | None = None):
    """Scatter of ``y`` against ``x`` across models with the OLS line and a 95 %% bootstrap band.

    The band is the pointwise 2.5–97.5 %% quantiles of the fitted lines over ``n_boot`` resamples
    of the models. ``annotate`` (the statistics) and the legend are placed in corners of the axes
    that cover no point (else outside the axes).

    Parameters
    ----------
    x, y : array-like of shape (n_models,)
        One value per model (e.g. LID and a brain score); at least 2.
    labels : sequence of str of shape (n_models,) or None
        Model names, written beside their points.
    xlabel, ylabel, title : str
        Axis labels and title.
    %(stem)s
    n_boot : int
        Resamples of the models for the band.
    %(seed)s
    annotate : str or None
        Text of the statistics box (e.g. r with its interval and p).
    styles : dict or None
        Model → ``{"color", "marker"}`` (:func:`model_styles`, keyed by ``labels``), to draw each
        model as in the other figures.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise InputError("scatter_fit needs x and y of the same length (>= 2)")
    fig = _figure()
    ax = fig.add_subplot()
    _scatter_models(ax, x, y, labels, styles, default_color="#1f5fa8")
    if x.size >= 3 and np.ptp(x) > 0:
        grid = np.linspace(x.min(), x.max(), 50)
        _ols_line(ax, x, y, grid, color="#c0392b", lw=1.5, label="OLS fit")
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
    _finish_scatter(ax, xlabel, ylabel, title, annotate, legend_kw={"fontsize": 7})
    if stem is not None:
        save_figure(fig, stem)
    return fig


def _scatter_models(ax, x, y, labels, styles, default_color, size: float = 28):
    """One marker per model (its style when known) and its short name beside it."""
    labels = None if labels is None else [str(v) for v in labels]
    if styles and labels is not None:
        for xi, yi, lab in zip(x, y, labels):
            st = styles.get(lab, {"color": default_color, "marker": "o"})
            ax.scatter([xi], [yi], s=size, color=st["color"], marker=st["marker"], zorder=3, edgecolors="k",
                       linewidths=0.3)
    else:
        ax.scatter(x, y, s=size, color=default_color, zorder=3)
    if labels is not None:
        for xi, yi, lab in zip(x, y, labels):
            ax.annotate(_short(lab), (xi, yi), fontsize=6.5, xytext=(3, 3), textcoords="offset points", color="#333")


def _ols_line(ax, x, y, grid, **style):
    """Draw the least-squares line of ``y`` on ``x`` over ``grid`` (x values); returns the Line2D."""
    b, a = np.polyfit(x, y, 1)
    (line,) = ax.plot(grid, a + b * grid, **style)
    return line


def _finish_scatter(ax, xlabel, ylabel, title, annotate, legend_kw):
    """Labels, grid, then the legend and the statistics box where they hide no point (nor a label)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_xlim(ax.get_xlim())  # freeze the limits: boxes are placed against the final data positions
    ax.set_ylim(ax.get_ylim())
    labels = list(ax.texts)
    leg = _legend_box(ax, labels, **legend_kw) if ax.get_legend_handles_labels()[0] else None
    if annotate:
        _stats_box(ax, annotate, [leg] if leg is not None else [], soft=labels)


@fill_doc
def family_scatter(x, y, families, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                   stem=None, annotate: str | None = None):
    """Scatter of ``y`` against ``x`` coloured by family: per-family OLS lines, family means and the pooled line.

    Each family with two or more models (and x not constant) gets its own least-squares line over
    its x range (the within-family relation); a hollow square marks each family's mean (the
    between-family relation); the black dashed line is the pooled fit over all models. When the
    family lines slope one way and the pooled line the other, the pooled correlation is carried
    by differences between families (Simpson's paradox). Models of a family share its hue and
    differ in marker (:func:`model_styles`, when ``labels`` name the models).

    Parameters
    ----------
    x, y : array-like of shape (n_models,)
        One value per model; at least 2.
    families : array-like of shape (n_models,)
        Family of each model.
    labels : sequence of str of shape (n_models,) or None
        Model names, written beside their points.
    xlabel, ylabel, title : str
        Axis labels and title (default title: how to read the figure).
    %(stem)s
    annotate : str or None
        Text of the statistics box (e.g. the pooled, within and between r).

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fam = np.asarray(families, dtype=object).astype(str)
    if x.shape != y.shape or fam.shape != x.shape or x.size < 2:
        raise InputError("family_scatter needs x, y and families of the same length (>= 2)")
    names = list(dict.fromkeys(fam))
    ids = [str(v) for v in labels] if labels is not None else [f"#{i}" for i in range(x.size)]
    styles = model_styles(ids, dict(zip(ids, fam)))
    family_styles = model_styles(names)
    hue = {f: family_styles[f]["color"] for f in names}  # the family's own (unshaded) hue
    fig = _figure(5.6, 4.2)
    ax = fig.add_subplot()
    _scatter_models(ax, x, y, ids if labels is not None else None, styles, default_color="#1f5fa8", size=26)
    if labels is None:
        ax.scatter(x, y, s=26, c=[hue[f] for f in fam], zorder=3)
    handles = []
    for f in names:
        sel = fam == f
        c = hue[f]
        handles.append(Line2D([], [], ls="", marker="o", color=c, label=f"{_short(f, 18)} (n={int(sel.sum())})"))
        if sel.sum() >= 2 and np.ptp(x[sel]) > 0:
            _ols_line(ax, x[sel], y[sel], np.linspace(x[sel].min(), x[sel].max(), 20), color=c, lw=1.3)
        if len(names) > 1:
            ax.plot([x[sel].mean()], [y[sel].mean()], "s", ms=8, mfc="none", mec=c, mew=1.5, zorder=4)
    if x.size >= 3 and np.ptp(x) > 0:
        pooled = _ols_line(ax, x, y, np.linspace(x.min(), x.max(), 50), color="k", lw=1.2, ls="--", label="pooled fit")
        handles.append(pooled)
    if len(names) > 1:
        handles.append(Line2D([], [], ls="", marker="s", mfc="none", mec="k", label="family mean"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "coloured by family: a line per family, □ family means, -- pooled fit", fontsize=8.5)
    ax.grid(alpha=0.3)
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    texts = list(ax.texts)
    leg = _legend_box(ax, texts, handles=handles, fontsize=6.5)
    if annotate:
        _stats_box(ax, annotate, [leg], soft=texts)
    if stem is not None:
        save_figure(fig, stem)
    return fig


@fill_doc
def r_vs_k(k_curve: pd.DataFrame, global_r: dict | None = None, *, target: str = "", stem=None,
           k_headline: int | None = None, target_label: str | None = None):
    """Pearson r between LID and a target against K (log axis, ticks at the K measured); corrected p-values as labels.

    The legend sits outside the axes, the ``p*`` labels inside the figure.

    Parameters
    ----------
    k_curve : DataFrame
        Columns ``K, r, p_corrected``, one row per K, of one target
        (:attr:`brainlid.analysis.AnalysisResult.k_curve`).
    global_r : dict or None
        Global measure name → its r with the target, drawn as horizontal lines, each in its own
        colour and dash pattern (any number of measures).
    target : str
        The target (the title when ``target_label`` is None).
    %(stem)s
    k_headline : int or None
        The K fixed in advance, marked with a square.
    target_label : str or None
        The target in words for the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if k_curve is None or len(k_curve) == 0:
        raise InputError("r_vs_k needs at least one K")
    kc = k_curve.sort_values("K")
    ks = kc["K"].to_numpy(dtype=float)
    fig = _figure(6.8, 4.0)
    ax = fig.add_subplot()
    ax.plot(ks, kc["r"], "o-", color="#1f5fa8", label="local LID (MLE) at K", zorder=4)
    n = len(ks)
    for i, (kk, r, p) in enumerate(zip(ks, kc["r"], kc["p_corrected"])):
        below = r > 0.75  # near the top: the label goes under the point
        ha = "left" if (i == 0 and n > 1) else "right" if (i == n - 1 and n > 1) else "center"
        ax.annotate(f"p*={format_p(p)}", (kk, r), fontsize=6.5, xytext=(0, -11 if below else 7),
                    textcoords="offset points", ha=ha, va="center", zorder=5,
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.5})
    if k_headline is not None and (kc["K"] == k_headline).any():
        r0 = float(kc.loc[kc["K"] == k_headline, "r"].iloc[0])
        ax.plot([k_headline], [r0], "s", ms=10, mfc="none", mec="#c0392b", mew=1.5,
                label=f"headline K={k_headline} (fixed in advance)", zorder=5)
    cm = colormaps["tab10"]
    palette = [cm(i) for i in (2, 4, 1, 5, 6, 8, 9, 7)]  # tab10 without the blue and red used above
    dashes = [(4, 2), (1, 1.5), (6, 2, 1, 2), (2, 2), (8, 2), (3, 1, 1, 1, 1, 1)]
    for i, (name, r) in enumerate((global_r or {}).items()):
        ax.axhline(r, lw=1.3, color=palette[i % len(palette)], dashes=dashes[i % len(dashes)],
                   label=f"global: {describe_measure(name)}")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{int(k)}" for k in ks])
    ax.set_xlim(ks.min() / 1.35, ks.max() * 1.35)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("K (number of neighbours)")
    ax.set_ylabel("Pearson r across models")
    ax.set_title(f"r vs K — {target_label or target}\n(exploratory; p* corrected for the number of K)", fontsize=8.5)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig



@fill_doc
def measures_forest(correlations: pd.DataFrame, *, scope: str = "pooled", metric: str | None = None,
                    value: str = "value", stem=None):
    """Every dimension measure's Pearson r with each target, with its 95 %% CI: one panel per target.

    The compact view of the global-measure contrast (the table has a row per measure × target ×
    scope): the headline LID first (filled), the global measures below (hollow); a dashed line at
    r = 0.

    Parameters
    ----------
    correlations : DataFrame
        :attr:`brainlid.analysis.AnalysisResult.correlations`; its rows of kind ``local`` and
        ``global`` at ``scope`` are drawn.
    scope : {"pooled", "within", "between"}
        The scope drawn.
    metric : str or None
        The brain metric of the analysis, for the targets' titles (:func:`describe_target`).
    value : {"value", "normalised"}
        Whether the brain scores were ceiling-normalised (titles only).
    %(stem)s

    Returns
    -------
    matplotlib.figure.Figure
    """
    c = correlations
    if "scope" in c:
        c = c[c["scope"] == scope]
    c = c[c["kind"].isin(["local", "global"])]
    if c.empty:
        raise InputError(f"no local/global correlation rows at scope {scope!r}")
    targets = list(dict.fromkeys(c["target"]))
    measures = list(dict.fromkeys(c.sort_values("kind", key=lambda k: k != "local", kind="stable")["measure"]))
    ncol = min(3, len(targets))
    nrow = -(-len(targets) // ncol)
    fig = _figure(3.3 * ncol + 1.6, 0.32 * len(measures) * nrow + 1.0 * nrow + 0.4)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, squeeze=False)).ravel()
    ypos = {m: i for i, m in enumerate(measures)}
    for ax, t in zip(axes, targets):
        part = c[c["target"] == t]
        y = part["measure"].map(ypos).to_numpy(dtype=float)
        local = (part["kind"] == "local").to_numpy()
        draw_intervals(ax, y, part["pearson_ci_low"], part["pearson_ci_high"], horizontal=True, color="#555",
                       cap=0.2)
        ax.plot(part["pearson_r"][local], y[local], "o", color="#c0392b", ms=6, zorder=4)
        ax.plot(part["pearson_r"][~local], y[~local], "o", mfc="white", mec="#1f5fa8", mew=1.4, ms=6, zorder=4)
        ax.axvline(0, color="k", lw=0.7, ls="--")
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(len(measures) - 0.5, -0.5)
        ax.set_yticks(range(len(measures)))
        ax.set_yticklabels([describe_measure(m) for m in measures], fontsize=6.5)
        ax.set_title(_wrap(describe_target(t, metric, value), 42), fontsize=7)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    for ax in axes[-ncol:]:
        ax.set_xlabel(f"Pearson r across models ({scope}), 95 % CI", fontsize=7)
    fig.suptitle("Each dimension measure against each target: ● headline LID, ○ global measures", fontsize=8.5)
    if stem is not None:
        save_figure(fig, stem)
    return fig
