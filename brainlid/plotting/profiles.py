"""Per-model curves: LID and brain score across layers, and EEG/MEG scores across time."""

from __future__ import annotations

import pandas as pd

from .._docs import fill_doc
from ..errors import InputError
from ..geometry import DEFAULT_K
from .style import _figure, _integer_axis, model_styles, save_figure
from .words import _short, benchmark_metric, metric_words

@fill_doc
def layer_profiles(scores: pd.DataFrame, geometry: pd.DataFrame, *, benchmark: str, k: int = DEFAULT_K, estimator: str = "mle",
                   metric: str | None = None, models=None, families=None, stem=None):
    """LID (at K) and test brain score against layer depth, one line per model.

    Parameters
    ----------
    %(scores)s
    geometry : DataFrame
        Geometry table, one row per (model, layer, stimulus set, estimator, K) with ``value``.
    benchmark : str
        The benchmark whose test scores are drawn.
    k : int
        The K (number of neighbours) of the LID drawn (default :data:`brainlid.geometry.DEFAULT_K`).
    estimator : str
        The LID estimator (``"mle"``: Levina–Bickel).
    metric : str or None
        The brain metric to draw; when None or when the benchmark has no rows of it, the
        benchmark's own metric (:func:`benchmark_metric`: an RSA benchmark draws its RSA score).
    models : sequence of str or None
        Models to draw (default: every model with both scores and LID).
    %(families)s
    %(stem)s

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: LID and the test score against the layer index; a star marks the layer
        chosen on the validation split.
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


@fill_doc
def score_vs_time(scores: pd.DataFrame, *, benchmark: str, metric: str | None = None, models=None, families=None,
                  stem=None):
    """Score against time (EEG/MEG) per model: line, bootstrap CI band, and the noise-ceiling band.

    The ceiling band is shaded from 0 up to the ceiling curve, drawn from the ``ceiling`` column
    of the same rows; the selected layer's rows are drawn when rows are marked ``selected``.

    Parameters
    ----------
    %(scores)s
    benchmark : str
        A time-resolved benchmark (rows with a ``time``, in seconds from stimulus onset).
    metric : str or None
        The metric drawn (default ``encoding_r`` when present, else the first).
    models : sequence of str or None
        Models to draw (default: all).
    %(families)s
    %(stem)s

    Returns
    -------
    matplotlib.figure.Figure
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

