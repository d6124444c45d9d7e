"""One self-contained HTML report per analysis: tables and figures in a single file.

Figures are embedded as base64 PNG ``data:`` URIs, the style sheet is inline, there is no
script and no external reference, so the file can be mailed or archived as is. Every string
that comes from data (model names, benchmark ids, notes, table cells) is HTML-escaped.

This module is one topic: the HTML report of an analysis — its tables (headers in words, numbers
formatted per column), its figures with their captions, its sections and the document around them.
"""

from __future__ import annotations

import base64
import html
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ._atomic import atomic_write_text
from ._version import __version__
from .plotting import (MEASURE_WORDS, benchmark_metric, describe_measure, describe_target, format_number, format_p,
                       metric_words)

__all__ = ["html_table", "embed_png", "render_report", "analysis_report", "data_source_banners", "comparison_section",
           "figure_caption", "column_label", "COLUMN_LABELS"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1180px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0;max-width:100%}
th,td{border:1px solid #ddd;padding:.25em .45em;text-align:right;vertical-align:top;overflow-wrap:break-word}
th{background:#f4f6f8;font-weight:600;text-align:center}td.s{text-align:left}td.n{white-space:nowrap}
th[title]{cursor:help;text-decoration:underline dotted #999}
figure{display:inline-block;box-sizing:border-box;width:calc(50% - 1em);margin:.5em;vertical-align:top}
figure.wide{display:block;width:auto;margin:.8em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.8em;color:#444;margin-top:.3em}
details{margin:.6em 0}summary{cursor:pointer;color:#1f5fa8}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em;margin:1em 0}
.meta{color:#666;font-size:.85em}
.banner{background:#fdecea;border:2px solid #c62828;color:#7f1d1d;font-weight:600;padding:.6em 1em;margin:1em 0}
"""

#: Column ids of the report's tables in words (the raw id is kept in the header's tooltip).
COLUMN_LABELS = {
    "target": "target", "measure": "dimension measure", "kind": "kind", "scope": "scope", "n_models": "models",
    "n_families": "families", "df": "df", "pearson_r": "Pearson r", "pearson_p": "p (Pearson)",
    "spearman_r": "Spearman ρ", "spearman_p": "p (Spearman)", "partial_pearson_r": "partial r (log params)",
    "partial_pearson_p": "p (partial r)", "partial_spearman_r": "partial ρ (log params)",
    "partial_spearman_p": "p (partial ρ)", "p_method": "p-value method", "ci_method": "interval method",
    "warning": "warning", "n_pairs": "pairs", "K": "K", "r": "Pearson r", "p": "p (this K)",
    "p_corrected": "p* (corrected over K)", "model": "model", "family": "family", "layer": "layer",
    "n": "stimuli", "n_params": "parameters", "models": "models", "model_a": "model A", "model_b": "model B",
    "benchmark": "benchmark", "subject": "subject", "metric": "metric", "time": "time (s)", "level": "level",
    "n_subjects": "subjects", "n_stimuli": "stimuli", "value_a": "score A", "value_b": "score B",
    "difference": "A − B", "p_value": "p", "p_holm": "p (Holm)", "normalised_difference": "A − B (normalised)",
    "value": "score", "normalised": "normalised score", "ceiling": "ceiling", "pearson": "Pearson r",
    "spearman": "Spearman ρ",
}

#: Above this many rows a table is collapsed into a ``<details>`` element (click to open).
COLLAPSE_ROWS = 24


def column_label(col: str, metric: str | None = None, value: str = "value") -> str:
    """A table column id in words: the fixed vocabulary, dimension measures and alignment targets.

    Parameters
    ----------
    col : str
        A column id (:data:`COLUMN_LABELS`, a dimension measure or an alignment target).
    metric : str or None
        The brain metric of the analysis (for target columns).
    value : {"value", "normalised"}
        Whether brain scores were ceiling-normalised (for target columns).

    Returns
    -------
    str
        The words; unknown ids are returned as given.
    """
    c = str(col)
    if c in COLUMN_LABELS:
        return COLUMN_LABELS[c]
    if c.startswith("lid_K") or c == "lid" or c in MEASURE_WORDS:
        return describe_measure(c)
    if c.startswith(("brain:", "model_model", "generalization")):
        return describe_target(c, metric, value)
    return c


def _is_p(col: str) -> bool:
    c = str(col)
    return c in ("p", "p_value", "p_holm", "p_corrected") or c.endswith("_p")


def _cell_text(v, col: str) -> tuple[str, bool]:
    """(formatted text, is numeric) of one cell: p-values by :func:`format_p`, numbers to 3 significant digits."""
    if v is None or v is pd.NA:
        return "", False
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), False
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (format_p(v) if _is_p(col) else format_number(v)), True
    return str(v), False


def _breakable(text: str) -> str:
    """Escape ``text`` and let long identifiers (``nsd.subj01.EBA.encoding``) wrap after ``. _ :``."""
    out = html.escape(text)
    return re.sub(r"(?<=[._:])(?=[^\s<>&])", "<wbr>", out) if len(text) > 18 else out


def _merge_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Pairs ``X_ci_low``/``X_ci_high`` (and ``ci_low``/``ci_high``) → one column ``X 95% CI`` with ``[low, high]``."""
    out = df.copy()
    for low in [c for c in df.columns if str(c).endswith("ci_low")]:
        high = str(low)[: -len("low")] + "high"
        if high not in df.columns:
            continue
        stem = str(low)[: -len("_ci_low")] if str(low) != "ci_low" else ""
        name = f"{COLUMN_LABELS.get(stem, stem)} 95% CI".strip()
        text = [f"[{format_number(a)}, {format_number(b)}]" if np.isfinite(float(a)) and np.isfinite(float(b)) else ""
                for a, b in zip(pd.to_numeric(df[low], errors="coerce"), pd.to_numeric(df[high], errors="coerce"))]
        pos = list(out.columns).index(low)
        out = out.drop(columns=[low, high])
        out.insert(pos, name, text)
        out.attrs.setdefault("raw", {})[name] = f"{low}, {high}"
    return out


def html_table(df: pd.DataFrame, max_rows: int = 200, columns: Iterable[str] | None = None, *,
               labels: Mapping[str, str] | None = None, collapse: bool | None = None, summary: str = "",
               metric: str | None = None, value: str = "value") -> str:
    """A DataFrame as an HTML table that fits a page: every header and cell escaped.

    * headers in words (:func:`column_label`, or ``labels``) with the raw column id in a tooltip;
    * ``X_ci_low``/``X_ci_high`` merged into one ``[low, high]`` column;
    * p-values in one format (:func:`brainlid.plotting.format_p`), other numbers to 3 significant
      digits (:func:`brainlid.plotting.format_number`);
    * columns with no value dropped; a column with one value in every row (of three or more) is
      said once under the table instead of repeated in each row; long identifiers may wrap;
    * more than :data:`COLLAPSE_ROWS` rows (or ``collapse=True``): inside a ``<details>`` element
      whose ``summary`` says what it holds.

    Parameters
    ----------
    df : DataFrame
        The table.
    max_rows : int
        Rows shown at most (the rest are counted under the table).
    columns : iterable of str or None
        The columns shown, in order (default: all).
    labels : mapping or None
        Column id → header text, before :func:`column_label`.
    collapse : bool or None
        Put the table in a ``<details>`` element (None: when it has more than :data:`COLLAPSE_ROWS` rows).
    summary : str
        The text of the ``<details>`` summary.
    metric, value : str or None, str
        As in :func:`column_label`.

    Returns
    -------
    str
        HTML.
    """
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    if len(df) == 0:
        return "<p><em>(no rows)</em></p>"
    df = df.loc[:, [c for c in df.columns if not (df[c].isna() | (df[c].astype(str) == "")).all()]]
    constant = [c for c in df.columns if len(df) > 2 and df[c].nunique(dropna=False) == 1] if len(df.columns) > 3 else []

    def label(c) -> str:
        return (labels or {}).get(c) or column_label(c, metric, value)

    said = "; ".join(f"<span title=\"{html.escape(str(c))}\">{html.escape(label(c))}"
                     f"</span>: {html.escape(_cell_text(df[c].iloc[0], str(c))[0])}" for c in constant)
    said = f"<p class='meta'>Same in every row — {said}.</p>" if said else ""
    df = _merge_intervals(df.drop(columns=constant))
    raw = df.attrs.get("raw", {})
    head = "".join(
        f"<th title=\"{html.escape(raw.get(c, str(c)))}\">{_breakable(label(c))}</th>"
        for c in df.columns)
    body = []
    for rec in df.head(max_rows).itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, rec):
            text, numeric = _cell_text(v, str(col))
            cls = ' class="n"' if numeric or str(col).endswith("95% CI") else ' class="s"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_breakable(text) if not numeric else html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='meta'>… {len(df) - max_rows} more rows in the CSV</p>" if len(df) > max_rows else ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}{said}"
    if collapse or (collapse is None and len(df) > COLLAPSE_ROWS):
        text = summary or "the table"
        return f"<details><summary>Show {html.escape(text)} ({len(df)} rows)</summary>{table}</details>"
    return table


def embed_png(path: str | os.PathLike, caption: str = "", *, alt: str | None = None, wide: bool = False) -> str:
    """A ``<figure>`` with the PNG embedded as a base64 data URI, its ``alt`` text and a ``<figcaption>`` (escaped).

    Parameters
    ----------
    path : path-like
        The PNG file.
    caption : str
        What the figure shows and how to read it.
    alt : str or None
        Read out when the image cannot be seen (default: the caption).
    wide : bool
        Take the full width of the page.

    Returns
    -------
    str
        HTML.
    """
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = html.escape(caption)
    cls = ' class="wide"' if wide else ""
    return (f'<figure{cls}><img alt="{html.escape(alt if alt is not None else caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>')


def figure_caption(name: str, settings: Mapping | None = None, scores: pd.DataFrame | None = None) -> tuple[str, str, bool]:
    """The caption of a figure of :func:`brainlid.plotting.analysis_figures` from its name (``kind:what``).

    Parameters
    ----------
    name : str
        The figure name (``scatter:<target>``, ``layers:<benchmark>``, ...).
    settings : mapping or None
        :attr:`brainlid.analysis.AnalysisResult.settings` (estimator, K, metric, value).
    scores : DataFrame or None
        The score table, to name each benchmark's metric.

    Returns
    -------
    caption : str
        What the figure shows and how to read it, in words.
    alt : str
        Its alternative text.
    wide : bool
        Whether it takes the full width of the page.
    """
    s = dict(settings or {})
    kind, _, what = str(name).partition(":")
    metric, value = s.get("metric"), s.get("value", "value")
    lid = describe_measure("lid", estimator=s.get("estimator", "mle"), k=s.get("k"))
    target = describe_target(what, metric, value) if what else ""
    if kind == "scatter":
        return (f"{lid} (x) against {target} (y), one point per model (a family's models share a colour and differ "
                f"in marker). Red line: least-squares fit across models; shaded: its 95 % bootstrap band (models "
                f"resampled). The box gives Pearson and Spearman r with family-aware p-values. A line rising to the "
                f"right means models of higher local dimension score higher.", f"Scatter: {lid} against {target}", False)
    if kind == "families":
        return (f"The same models, {lid} against {target}, by family: a family's models share a colour. Coloured "
                f"lines: the fit within each family; hollow squares: family means; dashed black: the pooled fit. "
                f"Family lines sloping against the pooled line mean the pooled r reflects differences between "
                f"families, not within them (Simpson's paradox).", f"Family scatter: {lid} against {target}", False)
    if kind == "r_vs_k":
        return (f"Pearson r across models between LID and {target} for each neighbourhood size K (x, log scale). "
                f"Labels: p* corrected for the number of K tried; red square: the K fixed in advance (the headline "
                f"test); horizontal lines: the r of each global dimension measure (no K). Exploratory except at the "
                f"headline K.", f"r against K for {target}", False)
    if kind == "measures":
        return ("Pearson r (dot) and its 95 % bootstrap interval (bar) of every dimension measure with every target, "
                "pooled over models: red, the headline local LID; hollow blue, the global measures. A bar crossing "
                "the dashed line at 0 is compatible with no relation. The table with every scope is below.",
                "Forest plot of r for every dimension measure and target", True)
    if kind == "layers":
        m = benchmark_metric(scores, what, metric) if scores is not None and len(scores) else metric
        return (f"Left: {lid} of each model's layers in depth order (0 = the first layer scored). Right: the test "
                f"{metric_words(m) if m else 'score'} on {what} of the same layers; stars mark the layer chosen on the "
                f"validation split, whose test score is reported. A family's models share a colour, each model has its "
                f"own marker.", f"Layer profiles on {what}", True)
    if kind == "time":
        return (f"Test score on {what} of each model against time from stimulus onset; shaded: 95 % interval; grey "
                f"band up to the dashed line: the noise ceiling.", f"Score against time on {what}", True)
    if str(name).lower().startswith("brain map"):
        return (f"{name}: the per-voxel test score. Volumes in MNI space are drawn on an MNI glass brain; data in a "
                f"subject's own (native) space, such as NSD's func1pt8mm, as the largest value along each axis of "
                f"the subject's voxel grid with no template outline (the figure's title says which). Red: positive, "
                f"blue: negative; voxels below the threshold are blank.", str(name), True)
    return str(name), str(name), False


def data_source_banners(scores: pd.DataFrame | None = None, sources: Mapping[str, str] | None = None) -> list[str]:
    """Warnings about where the brain data came from, one per kind of non-real source.

    Parameters
    ----------
    scores : DataFrame or None
        Score rows (:data:`brainlid.scoring.tables.SCORE_COLUMNS`); a table without the
        ``data_source`` column counts as ``"unknown"``. Model–model rows (``dataset == "models"``)
        are left out (they carry the source of their stimuli, not of brain data).
    sources : mapping benchmark → data source, optional
        Used when ``scores`` is not given.

    Returns
    -------
    list of str
        ``"SYNTHETIC DATA: …"`` naming the benchmarks scored on generated (fixture) data and
        ``"DATA SOURCE UNKNOWN: …"`` for benchmarks whose data carry no provenance; empty when every
        benchmark was scored on real data.
    """
    if scores is not None and len(scores):
        df = scores[scores["dataset"] != "models"] if "dataset" in scores.columns else scores
        src = df["data_source"].astype(str) if "data_source" in df.columns else pd.Series("unknown", index=df.index)
        pairs = pd.DataFrame({"benchmark": df["benchmark"].astype(str), "source": src.replace("", "unknown")})
    else:
        pairs = pd.DataFrame({"benchmark": list((sources or {}).keys()), "source": list((sources or {}).values())})
    out = []
    texts = {
        "synthetic": "SYNTHETIC DATA — these benchmarks were scored on generated data (a brainlid fixture copy, "
                     "not brain measurements); the numbers test the software, they say nothing about brains: ",
        "unknown": "DATA SOURCE UNKNOWN — these benchmarks' data carry no provenance (user-built data, or rows "
                   "written before brainlid recorded it); check where they came from: ",
    }
    for kind, text in texts.items():
        benches = sorted(set(pairs.loc[pairs["source"] == kind, "benchmark"]))
        if benches:
            shown = ", ".join(benches[:12]) + (f" and {len(benches) - 12} more" if len(benches) > 12 else "")
            out.append(text + shown + ".")
    return out


def render_report(title: str, sections: list[tuple[str, str]], notes: Iterable[str] = (), meta: str = "",
                  banners: Iterable[str] = ()) -> str:
    """The HTML document.

    Parameters
    ----------
    title : str
        Page title (escaped here).
    sections : list of (str, str)
        ``(heading, html_body)``; headings are escaped here, bodies must already be safe (built
        with :func:`html_table` / :func:`embed_png` / escaped text).
    notes : iterable of str
        Notes under the title (escaped here).
    meta : str
        A line of provenance under the title (escaped here).
    banners : iterable of str
        Shown first, in red (e.g. :func:`data_source_banners`; escaped here).

    Returns
    -------
    str
        The HTML document.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(meta)}</p>",
    ]
    for b in banners:
        parts.append(f"<div class='banner'>{html.escape(str(b))}</div>")
    for n in notes:
        parts.append(f"<div class='note'>{html.escape(str(n))}</div>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _figures_html(figures: Mapping[str, Path], kinds: tuple[str, ...] | None, settings: Mapping, scores=None) -> str:
    """The figures whose name starts with one of ``kinds`` (None: all), each with its caption (:func:`figure_caption`)."""
    out = []
    for name, path in figures.items():
        if (kinds is None or str(name).startswith(kinds)) and Path(path).exists():
            cap, alt, wide = figure_caption(name, settings, scores)
            out.append(embed_png(path, cap, alt=alt, wide=wide))
    return "".join(out)


def _families_section(res, figures: Mapping[str, Path]) -> tuple[str, str]:
    """The within/between decomposition: families, warnings in words, the table and family scatters."""
    s = res.settings
    models = res.models
    corr = res.correlations
    intro = _p(
        "A model zoo is not a sample of independent models: widths and depths of one architecture share a "
        "training recipe. Each correlation is therefore also reported within families (every value centred on "
        "its family's mean: does a model with a higher dimension than its siblings align better?) and between "
        "families (the correlation of family means). The two can have opposite signs; then the pooled r "
        "describes neither (Simpson's paradox). Intervals resample whole families (cluster bootstrap; from "
        "5 families) and p-values permute within families (within), family means (between) or both (pooled).")
    if "family" not in models:
        return ("Model families: pooled, within and between", intro + _p("(no family information)"))
    fam = models.groupby("family", sort=False)["model"].agg(["count", lambda m: ", ".join(map(str, m))])
    fam.columns = ["n_models", "models"]
    src = {"file": "the families file", "generalization": "the generalization table's family column",
           "rule": "the rule on model ids (architecture prefix)"}.get(s.get("family_source"), "")
    body = intro + _p(f"{len(fam)} famil{'y' if len(fam) == 1 else 'ies'} of {len(models)} models"
                      + (f", from {src}" if src else "") + ".")
    body += html_table(fam.reset_index())
    warns = res.warnings(headline_only=True) if hasattr(res, "warnings") else []
    body += "".join(f"<div class='note'>{html.escape(w)}</div>" for w in warns) or _p("No warnings.")
    if "scope" in corr:
        dec = res.headline(scope=None)
        body += html_table(dec, columns=["target", "scope", "n_models", "n_families", "df", "pearson_r", "pearson_ci_low",
                                         "pearson_ci_high", "pearson_p", "spearman_r", "spearman_p", "p_method",
                                         "ci_method", "warning"], metric=s.get("metric"), value=s.get("value", "value"),
                           summary="the pooled / within / between table")
    body += _figures_html(figures, ("families:",), s)
    return ("Model families: pooled, within and between", body)


def comparison_section(comparisons: pd.DataFrame) -> tuple[str, str]:
    """The paired model comparisons as a report section.

    Parameters
    ----------
    comparisons : DataFrame
        A table of :func:`brainlid.comparison.compare_models` (or several concatenated).

    Returns
    -------
    (str, str)
        ``(heading, html_body)`` for :func:`render_report`.
    """
    intro = _p(
        "Paired comparisons A − B: both models were scored on the same test stimuli, and the same stimulus "
        "resamples are applied to both, so the interval is that of the difference itself (two overlapping "
        "intervals of the separate scores do not mean 'no difference'). Intervals: basic bootstrap; p: two-sided, "
        "from the bootstrap distribution of the difference; p (Holm): Holm-adjusted over the rows of each metric and "
        "level. Group rows average over subjects seen on the same stimuli and resample subjects and stimuli "
        "together, with the dual-bootstrap variance correction of Schütt et al. (2023).")
    cols = ["model_a", "model_b", "benchmark", "subject", "metric", "time", "level", "n_subjects", "n_stimuli", "value_a",
            "value_b", "difference", "ci_low", "ci_high", "p_value", "p_holm", "normalised_difference", "ci_method"]
    df = comparisons
    if len(df) and "time" in df and df["time"].isna().all():
        cols.remove("time")
    return ("Model comparisons (paired)", intro + html_table(df, columns=cols, summary="the comparisons"))


def _models_tables(m: pd.DataFrame, settings: Mapping, what: str = "model") -> str:
    """A per-model table in two parts that each fit the page: dimension measures, then targets."""
    s = settings
    ident = [c for c in ("model", "family", "layer") if c in m]
    dims = ident + [c for c in m.columns if c == "n" or c.startswith("lid_K")] + [
        c for c in ("participation_ratio", "pca90", "pca95", "pca99", "twonn", "mle_full") if c in m]
    targets = ident[:2] + [c for c in s.get("targets", []) if c in m] + [c for c in ("n_params",) if c in m]
    kw = {"metric": s.get("metric"), "value": s.get("value", "value")}
    return (_p(f"Dimension measures of each {what}'s analysed layer (LID at every K measured; the headline uses "
               f"K = {s.get('k')}), on {s.get('stimulus_set')}.") + html_table(m, columns=dims, **kw)
            + _p(f"Alignment targets and size of each {what}.") + html_table(m, columns=targets, **kw))


def analysis_report(res, path, *, figures: Mapping[str, Path] | None = None, title: str = "brainlid analysis",
                    notes: Iterable[str] | None = None, extra_sections: list[tuple[str, str]] | None = None,
                    scores: pd.DataFrame | None = None, comparisons: pd.DataFrame | None = None) -> Path:
    """Write the report of an :class:`~brainlid.analysis.AnalysisResult` to ``path`` (atomically).

    Each figure sits in the section it belongs to, with a caption that says what it shows and how
    to read it (:func:`figure_caption`); tables have headers in words (raw ids in tooltips),
    numbers formatted per column, and long tables collapse into ``<details>``. The page fits a
    1280-px window without horizontal scrolling.

    ``comparisons``: a table of :func:`brainlid.comparison.compare_models` (or several concatenated),
    shown as a section of its own (:func:`comparison_section`).

    The data source of every benchmark is shown as a banner when it is not real
    (:func:`data_source_banners`, from ``scores`` or else ``res.settings["data_sources"]``, a
    mapping benchmark → source).

    Parameters
    ----------
    res : AnalysisResult
        The analysis.
    path : path-like
        The HTML file written.
    figures : mapping or None
        Figure name → PNG path (:func:`brainlid.plotting.analysis_figures`).
    title : str
        Page title.
    notes : iterable of str or None
        Notes under the title.
    extra_sections : list of (str, str) or None
        More ``(heading, html_body)`` sections, appended.
    scores : DataFrame or None
        The score table (data sources, benchmark metrics).
    comparisons : DataFrame or None
        Paired comparisons, shown as a section of their own.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    figures = dict(figures or {})
    s = res.settings
    kw = {"metric": s.get("metric"), "value": s.get("value", "value")}
    meta = (f"brainlid {__version__} · {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {s['n_models']} models · "
            f"LID: {s['estimator']} at K={s['k']} (fixed in advance) on stimulus set {s['stimulus_set']} · "
            f"layer: {s['layer']} · brain metric: {s.get('metric')} ({s['value']})")
    sections = []
    head = res.headline()
    cols = ["target", "measure", "scope", "n_models", "n_families", "pearson_r", "pearson_ci_low", "pearson_ci_high",
            "pearson_p", "spearman_r", "spearman_p", "partial_pearson_r", "partial_pearson_p", "p_method", "ci_method"]
    sections.append(("Headline: LID at the pre-registered K against each target",
                     _p("Pearson and Spearman correlations pooled over all models, 95% bootstrap CIs and p-values "
                        "that respect the model families (see the next section), and the partial correlation "
                        "controlling for log(parameters) where parameter counts are known. Whatever the sign, this "
                        "is what the data show; nothing was tuned.")
                     + html_table(head, columns=cols, **kw) + _figures_html(figures, ("scatter:",), s)))
    sections.append(_families_section(res, figures))
    corr = res.correlations
    glob = corr[corr["kind"].isin(["local", "global"])] if len(corr) else corr
    sections.append(("Global dimension measures (the contrast)",
                     _p("The headline local LID beside the global dimension measures (participation ratio, PCA "
                        "dimensions, TwoNN, the MLE over all points), each correlated with every target.")
                     + _figures_html(figures, ("measures:",), s)
                     + html_table(glob, columns=[c for c in cols if c not in ("p_method", "ci_method")] + ["warning"],
                                  collapse=True, summary="the table of every measure, target and scope (p-value and "
                                  "interval methods per scope as in the family table)", **kw)))
    pair = corr[corr["kind"] == "pairwise"] if len(corr) else corr
    if len(pair):
        sections.append(("Pairwise: |difference in dimension| against model–model alignment",
                         _p("One value per pair of models. Pairs share models, so a t-test over pairs would inflate "
                            "false positives; p-values come from a Mantel permutation of model labels (within "
                            "families when there are families).")
                         + html_table(pair, columns=["target", "measure", "scope", "n_models", "n_pairs", "pearson_r",
                                                     "pearson_p", "spearman_r", "spearman_p", "p_method", "warning"],
                                      summary="the pairwise table", **kw)))
    sections.append(("r against K (exploratory)",
                     _p("p*: max-|r| permutation test, corrected for the number of K tried; each scope "
                        "permutes as its test does (pooled: family means and within families; within: within "
                        "families; between: family means).")
                     + _figures_html(figures, ("r_vs_k:",), s)
                     + html_table(res.k_curve, summary="the r-against-K table", **kw)))
    shown = ("scatter:", "families:", "measures:", "r_vs_k:")
    rest = {n: p for n, p in figures.items() if not str(n).startswith(shown)}
    sections.append(("Layers, time courses and brain maps",
                     _figures_html(rest, None, s, scores) or _p("(no figures)")))
    sections.append(("Models", _models_tables(res.models, s)))
    if len(res.baselines):
        sections.append(("Baselines (controls, not in the correlations)", _models_tables(res.baselines, s, "baseline")))
    if comparisons is not None:
        sections.append(comparison_section(comparisons))
    for heading, body in extra_sections or []:
        sections.append((heading, body))
    banners = data_source_banners(scores, res.settings.get("data_sources"))
    doc = render_report(title, sections, notes=notes or (), meta=meta, banners=banners)
    path = Path(path)
    atomic_write_text(path, doc)
    return path
