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
from .geometry import DEFAULT_K

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


# ----------------------------------------------------------------------------- words and numbers for people
#: Metric ids of the score table in words (axis labels, captions, table headers).
METRIC_WORDS = {
    "encoding_r2": "encoding R²", "encoding_r": "encoding r", "rsa_spearman": "RSA (Spearman ρ)",
    "rsa_pearson": "RSA (Pearson r)", "rsa_kendall_tau_a": "RSA (Kendall τa)", "rsa_cosine": "RSA (cosine)",
    "mutual_knn": "mutual k-NN", "cknna": "CKNNA", "cka": "CKA", "cka_linear": "linear CKA",
    "cka_linear_unbiased": "unbiased linear CKA", "cka_rbf": "RBF CKA", "ridge_r2": "ridge R²",
}

#: Dimension measures (columns of :attr:`AnalysisResult.models`) in words.
MEASURE_WORDS = {
    "participation_ratio": "participation ratio", "pca90": "PCA dimension (90 % variance)",
    "pca95": "PCA dimension (95 % variance)", "pca99": "PCA dimension (99 % variance)",
    "twonn": "TwoNN dimension", "mle_full": "MLE dimension at K = N − 1",
}


def metric_words(metric) -> str:
    """A score-table metric id in words (``encoding_r2`` → ``encoding R²``); unknown ids are returned as given."""
    return METRIC_WORDS.get(str(metric), str(metric))


def describe_measure(measure: str, *, estimator: str = "mle", k: int | None = None) -> str:
    """A dimension measure in words: ``lid`` / ``lid_K20`` / ``lid_mle_K20`` → ``LID (MLE, K = 20)``, globals by name."""
    import re

    m = re.fullmatch(r"(?:\|delta )?lid(?:_([a-z0-9]+))?(?:_K(\d+))?\|?", str(measure))
    if m:
        est = (m.group(1) or estimator).upper()
        kk = m.group(2) or k
        text = f"LID ({est}{f', K = {kk}' if kk is not None else ''})"
    else:
        base = str(measure).removeprefix("|delta ").removesuffix("|")
        text = MEASURE_WORDS.get(base, base)
    return f"|difference in {text}|" if str(measure).startswith("|delta ") else text


def describe_target(target: str, metric: str | None = None, value: str = "value") -> str:
    """An alignment target of the across-model analysis in words, e.g. ``brain:nsd.subj01.EBA.encoding`` →
    ``test encoding R², nsd.subj01.EBA.encoding`` (``metric``: the brain metric the analysis used)."""
    t = str(target)
    norm = " (ceiling-normalised)" if value == "normalised" else ""
    if t == "generalization":
        return "generalization (held-out accuracy)"
    if t.startswith("pairwise:"):
        return f"pairwise {metric_words(t.split(':', 1)[1])} between models"
    if t.startswith("model_model_ref:"):
        return f"{metric_words(t.split(':', 1)[1])} with the reference model"
    if t.startswith("model_model:"):
        return f"mean {metric_words(t.split(':', 1)[1])} with the other models"
    if t.startswith("brain:pooled:"):
        rest = t[len("brain:pooled:"):]
        ds_roi, _, met = rest.rpartition(".")
        return f"test {metric_words(met or metric)}{norm}, mean over subjects, {ds_roi}"
    if t.startswith("brain:"):
        return f"test {metric_words(metric) if metric else 'brain score'}{norm}, {t[len('brain:'):]}"
    return t


def _finite_float(v) -> float | None:
    """``v`` as a float, or None when it is not a number or not finite (the cell is then left empty)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def format_p(p) -> str:
    """A p-value in one format for every table and figure: three decimals, ``<0.001`` below; ``""`` for NaN."""
    p = _finite_float(p)
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_number(v, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (trailing zeros kept: ``0.420``), integers as integers,
    thousands and above rounded to integers, very small/large values in scientific notation; ``""`` for NaN."""
    v = _finite_float(v)
    if v is None:
        return ""
    a = abs(v)
    if v == round(v) and a < 1e15:
        return f"{int(round(v)):,}" if a >= 1e3 else f"{int(round(v))}"
    if a >= 1e5 or a < 10 ** -(digits):
        return f"{v:.{digits - 1}e}"
    if a >= 10 ** (digits - 1):
        return f"{v:.0f}"
    return f"{v:#.{digits}g}".rstrip(".")


# ----------------------------------------------------------------------------- styles for many models
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")


def model_styles(models, families=None) -> dict[str, dict]:
    """A colour and a marker per model, distinguishable for 12+ models.

    Models of one family share a hue (``tab10``; ``tab20`` beyond 10 families) and differ in
    marker and shade; without families every model gets its own hue–marker pair.

    Parameters
    ----------
    models : sequence of str
    families : mapping model → family, sequence aligned with ``models``, or None

    Returns
    -------
    dict
        model → ``{"color": RGBA tuple, "marker": str}``.
    """
    from matplotlib import colormaps

    models = [str(m) for m in dict.fromkeys(map(str, models))]
    if families is None:
        fam = {m: m for m in models}
    elif isinstance(families, dict):
        fam = {m: str(families.get(m, m)) for m in models}
    else:
        fam = dict(zip(models, map(str, families)))
    names = list(dict.fromkeys(fam[m] for m in models))
    cm = colormaps["tab10" if len(names) <= 10 else "tab20"]
    out = {}
    if len(names) == len(models):  # no family structure: hue and marker both cycle (distinct up to 60)
        for i, m in enumerate(models):
            out[m] = {"color": cm(i % cm.N), "marker": _MARKERS[i % len(_MARKERS)]}
        return out
    for j, f in enumerate(names):
        members = [m for m in models if fam[m] == f]
        base = np.asarray(cm(j % cm.N))
        shades = np.linspace(-0.35, 0.35, len(members)) if len(members) > 1 else [0.0]
        for i, (m, s) in enumerate(zip(members, shades)):
            rgb = base[:3] * (1 + s) if s < 0 else base[:3] + (1 - base[:3]) * s  # darker … lighter
            out[m] = {"color": (*np.clip(rgb, 0, 1), 1.0), "marker": _MARKERS[i % len(_MARKERS)]}
    return out


def _integer_axis(axis) -> None:
    """Integer ticks only (layer indices, counts)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


# ----------------------------------------------------------------------------- boxes that hide no point
_CORNERS = ("lower left", "lower right", "upper left", "upper right", "center left", "center right",
            "lower center", "upper center")


def _marker_points(ax) -> np.ndarray:
    """Display coordinates ``(n, 2)`` of every marker in ``ax`` (scatter offsets, vertices of marked lines)."""
    from matplotlib.collections import PathCollection

    pts = [c.get_offset_transform().transform(np.asarray(c.get_offsets(), dtype=float))
           for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    pts += [ln.get_transform().transform(np.asarray(ln.get_xydata(), dtype=float))
            for ln in ax.lines if ln.get_marker() not in (None, "None", "", " ") and len(ln.get_xydata())]
    pts = [p[np.all(np.isfinite(p), axis=1)] for p in pts]
    return np.vstack(pts) if pts else np.empty((0, 2))


def _covers(bbox, points: np.ndarray, pad: float) -> bool:
    return bool(np.any((points[:, 0] >= bbox.x0 - pad) & (points[:, 0] <= bbox.x1 + pad)
                       & (points[:, 1] >= bbox.y0 - pad) & (points[:, 1] <= bbox.y1 + pad)))


def place_free(ax, make, avoid=(), *, soft=(), pad_px: float = 5.0):
    """Add the box ``make(loc)`` (a legend or an anchored text) at the first corner of ``ax`` where it
    covers no marker and overlaps none of ``avoid`` (e.g. a legend) nor of ``soft`` (e.g. point labels).

    Tried: every corner against markers, ``avoid`` and ``soft``; then against markers and
    ``avoid`` only. Returns the artist, or None (nothing added) when every corner covers a marker
    or an ``avoid`` box — the caller then puts the box outside the axes.
    """
    fig = ax.figure
    points = None
    for others in (list(avoid) + list(soft), list(avoid)):
        for loc in _CORNERS:
            art = make(loc)
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            if points is None:
                points = _marker_points(ax)
            bb = art.get_window_extent(renderer)
            clash = _covers(bb, points, pad_px) or any(
                bb.overlaps(o.get_window_extent(renderer)) for o in others if o is not art and o.get_visible())
            if not clash:
                return art
            art.remove()
    return None


def _stats_box(ax, text: str, avoid=(), soft=(), fontsize: float = 7.0):
    """The statistics text where no point is (nor a box of ``avoid``): a free corner of the axes, else in the
    title (outside the axes)."""
    from matplotlib.offsetbox import AnchoredText

    def make(loc):
        box = AnchoredText(text, loc=loc, prop={"fontsize": fontsize}, frameon=True, borderpad=0.4, pad=0.3)
        box.patch.set(facecolor="white", alpha=0.85, edgecolor="#bbb")
        return ax.add_artist(box)

    art = place_free(ax, make, avoid, soft=soft)
    if art is None:
        ax.set_title((ax.get_title() + "\n" if ax.get_title() else "") + text, fontsize=fontsize)
    return art


def _legend_box(ax, soft=(), **kw):
    """A legend where no point is (a free corner, avoiding ``soft`` boxes if it can), else outside the axes."""
    art = place_free(ax, lambda loc: ax.legend(loc=loc, **kw), soft=soft)
    if art is None:
        art = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)
    return art


def scatter_fit(x, y, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                stem=None, n_boot: int = 1000, seed: int = 0, annotate: str | None = None, styles: dict | None = None):
    """Scatter of ``y`` against ``x`` across models with the OLS line and a 95 % bootstrap band.

    The band is the pointwise 2.5–97.5 % quantiles of the fitted lines over ``n_boot`` resamples
    of the models. ``annotate`` (the statistics) and the legend are placed in corners of the axes
    that cover no point (else outside the axes). ``styles``: model → ``{"color", "marker"}``
    (:func:`model_styles`, keyed by ``labels``) to draw each model as in the other figures.
    Returns the Figure (saved as PNG+SVG when ``stem`` is given).
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


def family_scatter(x, y, families, labels=None, *, xlabel: str = "LID", ylabel: str = "alignment", title: str = "",
                   stem=None, annotate: str | None = None):
    """Scatter of ``y`` against ``x`` coloured by family: per-family OLS lines, family means and the pooled line.

    Each family with two or more models (and x not constant) gets its own least-squares line over
    its x range (the within-family relation); a hollow square marks each family's mean (the
    between-family relation); the black dashed line is the pooled fit over all models. When the
    family lines slope one way and the pooled line the other, the pooled correlation is carried
    by differences between families (Simpson's paradox). Models of a family share its hue and
    differ in marker (:func:`model_styles`, when ``labels`` name the models).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fam = np.asarray(families, dtype=object).astype(str)
    if x.shape != y.shape or fam.shape != x.shape or x.size < 2:
        raise InputError("family_scatter needs x, y and families of the same length (>= 2)")
    from matplotlib.lines import Line2D

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


def r_vs_k(k_curve: pd.DataFrame, global_r: dict | None = None, *, target: str = "", stem=None,
           k_headline: int | None = None, target_label: str | None = None):
    """Pearson r between LID and a target against K (log axis, ticks at the K measured); corrected p-values as labels.

    ``k_curve`` has columns ``K, r, p_corrected`` (one target); ``global_r`` maps a global measure
    name to its r, drawn as horizontal lines, each in its own colour and dash pattern (any number
    of measures). The legend sits outside the axes, the ``p*`` labels inside the figure.
    ``target_label``: the target in words for the title (default ``target``).
    """
    if k_curve is None or len(k_curve) == 0:
        raise InputError("r_vs_k needs at least one K")
    from matplotlib import colormaps
    from matplotlib.ticker import FixedLocator, NullLocator

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


#: Preference among several metrics of one benchmark (its primary metric first).
_PRIMARY_METRICS = ("encoding_r2", "encoding_r", "rsa_spearman", "rsa_pearson", "rsa_kendall_tau_a", "rsa_cosine")


def benchmark_metric(scores: pd.DataFrame, benchmark: str, prefer: str | None = None) -> str | None:
    """The metric a benchmark's test rows carry: ``prefer`` when it has rows of it, else its primary metric
    (encoding R², then r, then the RSA comparisons, then the most frequent); None without test rows."""
    s = scores[(scores["benchmark"] == benchmark) & (scores["split"] == "test")]
    have = s["metric"].astype(str).value_counts()
    if have.empty:
        return None
    if prefer is not None and prefer in have.index:
        return prefer
    return next((m for m in _PRIMARY_METRICS if m in have.index), have.index[0])


def layer_profiles(scores: pd.DataFrame, geometry: pd.DataFrame, *, benchmark: str, k: int = DEFAULT_K, estimator: str = "mle",
                   metric: str | None = None, models=None, families=None, stem=None):
    """LID (at K) and test brain score against layer depth, one line per model.

    ``metric``: the brain metric to draw; when None or when the benchmark has no rows of it, the
    benchmark's own metric (:func:`benchmark_metric`: an RSA benchmark draws its RSA score).
    ``families``: model → family, so that a family's models share a hue (:func:`model_styles`).
    """
    metric = benchmark_metric(scores, benchmark, metric) or metric
    s = scores[(scores["benchmark"] == benchmark) & (scores["split"] == "test") & (scores["metric"] == metric)]
    g = geometry[(geometry["estimator"] == estimator) & (geometry["K"] == k)]
    models = list(models) if models is not None else sorted(set(s["model"]) & set(g["model"]))
    models = [m for m in models if m in set(s["model"]) | set(g["model"])]
    if not models or s.empty:
        raise InputError(f"no model has both scores on {benchmark} ({metric}) and {estimator} LID at K={k}")
    fig = _figure(9.0, 3.8)
    a1, a2 = fig.subplots(1, 2)
    styles = model_styles(models, families)
    for m in models:
        st = styles[m]
        gm = g[g["model"] == m].groupby("layer_index", as_index=False)["value"].mean()
        sm = s[s["model"] == m].groupby("layer_index", as_index=False)["value"].mean()
        a1.plot(gm["layer_index"], gm["value"], "-", marker=st["marker"], color=st["color"], ms=4, lw=1,
                label=_short(m))
        a2.plot(sm["layer_index"], sm["value"], "-", marker=st["marker"], color=st["color"], ms=4, lw=1)
        sel = s[(s["model"] == m) & s["selected"].fillna(False).astype(bool)]
        if len(sel):
            a2.plot(sel["layer_index"].astype(float), sel["value"], "*", ms=11, color=st["color"], mec="k", mew=0.4)
    a1.set_ylabel(f"LID ({estimator.upper()}, K = {k})")
    a2.set_ylabel(f"test {metric_words(metric)}")
    a2.set_title("★ = layer chosen on the validation split", fontsize=7.5)
    for a in (a1, a2):
        a.set_xlabel("layer (0 = first scored layer)")
        _integer_axis(a.xaxis)
        a.grid(alpha=0.3)
    fig.legend(*a1.get_legend_handles_labels(), loc="outside right upper", fontsize=6.5,
               ncol=1 if len(models) <= 16 else 2)
    fig.suptitle(f"Layer profiles — {benchmark}", fontsize=9)
    if stem is not None:
        save_figure(fig, stem)
    return fig


def score_vs_time(scores: pd.DataFrame, *, benchmark: str, metric: str | None = None, models=None, families=None,
                  stem=None):
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
    styles = model_styles(models, families)
    for m in models:
        c = styles[m]["color"]
        part = s[s["model"] == m].groupby("time", as_index=False)[["value", "ci_low", "ci_high", "ceiling"]].mean()
        ax.plot(part["time"], part["value"], color=c, lw=1.3, label=_short(m), marker=styles[m]["marker"], ms=3,
                markevery=max(1, len(part) // 8))
        if part["ci_low"].notna().any():
            ax.fill_between(part["time"], part["ci_low"], part["ci_high"], color=c, alpha=0.15, lw=0)
    ceil = s.groupby("time")["ceiling"].mean()
    if ceil.notna().any():
        ax.fill_between(ceil.index, 0, ceil.to_numpy(), color="#95a5a6", alpha=0.2, lw=0, label="noise ceiling")
        ax.plot(ceil.index, ceil.to_numpy(), color="#7f8c8d", lw=0.8, ls="--")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6, ls=":")
    ax.set_xlabel("time from stimulus onset (s)")
    ax.set_ylabel(f"test {metric_words(metric)}")
    ax.set_title(benchmark, fontsize=9)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    if stem is not None:
        save_figure(fig, stem)
    return fig


#: NIfTI sform/qform code of MNI-152 space (NIfTI-1 header: 1 scanner, 2 aligned anatomy, 3 Talairach, 4 MNI-152).
NIFTI_MNI_CODE = 4


def volume_space(img=None, space: str | None = None) -> str:
    """``"mni"`` or ``"native"``: whether a volume may be drawn on a standard (MNI) brain.

    ``space`` (a dataset's declared space, e.g. ``BrainData.space``) decides when given: MNI when
    it names MNI (``"MNI152NLin2009cAsym"``, ``"mni"``), native otherwise (NSD's ``func1pt8mm`` is
    the subject's own functional space). Else the NIfTI header of ``img`` decides: MNI only when
    its sform or qform code says MNI-152 (4). Without either, ``"native"``: a volume is never put
    on a template it was not registered to.
    """
    if space is not None and str(space).strip():
        return "mni" if "mni" in str(space).lower() else "native"
    if img is not None and hasattr(img, "header"):
        h = img.header
        codes = {int(h.get_sform(coded=True)[1] or 0), int(h.get_qform(coded=True)[1] or 0)}
        return "mni" if NIFTI_MNI_CODE in codes else "native"
    return "native"


def _native_projections(fig, data: np.ndarray, affine: np.ndarray, title: str, threshold: float | None):
    """Maximum-|value| projections of a volume through its own voxel grid (three views, mm from the voxel size)."""
    from matplotlib.colors import TwoSlopeNorm

    vox = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    d = np.where(np.isfinite(data), data, 0.0)
    if threshold is not None:
        d = np.where(np.abs(d) >= threshold, d, 0.0)
    vmax = float(np.nanmax(np.abs(d))) or 1.0
    views = (("sagittal (along i)", 0, (1, 2)), ("coronal (along j)", 1, (0, 2)), ("axial (along k)", 2, (0, 1)))
    axes = fig.subplots(1, 3)
    im = None
    for ax, (name, along, (h, v)) in zip(axes, views):
        idx = np.expand_dims(np.abs(d).argmax(axis=along), along)
        proj = np.take_along_axis(d, idx, axis=along).squeeze(along)  # signed value of the largest |value|
        proj = np.where(proj == 0, np.nan, proj)
        im = ax.imshow(proj.T, origin="lower", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax),
                       extent=(0, proj.shape[0] * vox[h], 0, proj.shape[1] * vox[v]), interpolation="nearest")
        ax.set_title(name, fontsize=7.5)
        ax.set_xlabel(f"voxel axis {'ijk'[h]} (mm)", fontsize=7)
        ax.set_ylabel(f"voxel axis {'ijk'[v]} (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_facecolor("#f2f2f2")
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.suptitle((title + "\n" if title else "") + "subject-native space (not MNI): largest |value| along each "
                 "voxel axis, no template outline", fontsize=8)


def brain_map(values, *, mask_img=None, coords=None, affine=None, shape=None, surface: str | None = None,
              title: str = "", stem=None, threshold: float | None = None, space: str | None = None):
    """Per-unit scores as a brain map.

    Volumes: give ``mask_img`` (a NIfTI whose non-zero voxels are the units, in C order of the
    array — how brainlid's NSD loader orders voxels) or ``coords`` (``(n_units, 3)`` voxel
    indices) with ``affine`` and ``shape``. Drawn on nilearn's MNI glass brain only when the data
    are in MNI space (:func:`volume_space`: the declared ``space``, else the NIfTI header's
    sform/qform code); data in a subject's native space (NSD ``func1pt8mm``, or anything not
    declared MNI) are drawn as maximum projections through their own voxel grid, titled so.
    Surfaces: ``surface="fsaverage5"`` with ``values`` of length 2 × 10242 (left then right
    hemisphere); drawn with nilearn's ``plot_surf_stat_map`` on nilearn's bundled fsaverage5
    mesh (no download).

    Returns the path of the PNG (an SVG is written beside it) when ``stem`` is given, else the
    nilearn display object (glass brain) or the Figure.
    """
    from .errors import require

    nib = require("nibabel", "core")
    plotting = require("nilearn.plotting", "core", "brain maps")
    v = np.asarray(values, dtype=np.float32).ravel()
    if surface is None:
        header_img = None
        if mask_img is not None:
            mask_img = nib.load(mask_img) if isinstance(mask_img, (str, os.PathLike)) else mask_img
            mask = np.asarray(mask_img.dataobj) != 0
            if mask.sum() != v.size:
                raise InputError(f"mask has {int(mask.sum())} voxels but {v.size} values were given")
            data = np.zeros(mask.shape, dtype=np.float32)
            data[mask] = v
            img = nib.Nifti1Image(data, mask_img.affine)
            header_img = mask_img
        else:
            if coords is None or affine is None or shape is None:
                raise InputError("brain_map needs mask_img, or coords with affine and shape, or surface=")
            c = np.asarray(coords, dtype=int)
            if c.shape != (v.size, 3):
                raise InputError(f"coords must have shape ({v.size}, 3), got {c.shape}")
            data = np.zeros(tuple(shape), dtype=np.float32)
            data[c[:, 0], c[:, 1], c[:, 2]] = v
            img = nib.Nifti1Image(data, np.asarray(affine, dtype=float))
        if volume_space(header_img, space) == "mni":
            fig = _figure(7.0, 2.8, layout=None)
            display = plotting.plot_glass_brain(img, figure=fig, title=title or None, colorbar=True, plot_abs=False,
                                                threshold=threshold if threshold is not None else "auto",
                                                cmap="cold_hot")
        else:
            fig = _figure(8.0, 3.0)
            _native_projections(fig, data, img.affine, title, threshold)
            display = fig
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


def measures_forest(correlations: pd.DataFrame, *, scope: str = "pooled", metric: str | None = None,
                    value: str = "value", stem=None):
    """Every dimension measure's Pearson r with each target, with its 95 % CI: one panel per target.

    The compact view of the global-measure contrast (the table has a row per measure × target ×
    scope): the headline LID first (filled), the global measures below (hollow); a dashed line at
    r = 0. Rows of ``correlations`` (:attr:`AnalysisResult.correlations`) of kind ``local`` and
    ``global`` at ``scope``.
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


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def analysis_figures(res, folder, *, scores=None, geometry=None) -> dict[str, Path]:
    """All figures of an :class:`~brainlid.analysis.AnalysisResult`; returns name → PNG path.

    Names are ``<kind>:<what>``: ``scatter:``/``families:``/``r_vs_k:<target>`` (the headline LID
    against every target, coloured by family, and r against K), ``measures:pooled`` (every
    dimension measure against every target), ``layers:<benchmark>`` (layer profiles, each
    benchmark in its own metric) and ``time:<benchmark>`` (time-resolved benchmarks). Axes are
    labelled in words (:func:`describe_target`), and every model keeps one colour and marker
    (:func:`model_styles`, a family's models share a hue).
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
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:80]
