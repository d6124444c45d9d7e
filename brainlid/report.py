"""One self-contained HTML report per analysis: tables and figures in a single file.

Figures are embedded as base64 PNG ``data:`` URIs, the style sheet is inline, there is no
script and no external reference, so the file can be mailed or archived as is. Every string
that comes from data (model names, benchmark ids, notes, table cells) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ._atomic import atomic_write_text
from ._version import __version__

__all__ = ["html_table", "embed_png", "render_report", "analysis_report", "data_source_banners", "comparison_section"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f4f6f8}td.s{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:520px;border:1px solid #eee}figcaption{font-size:.8em;color:#555;max-width:520px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em;margin:1em 0}
.meta{color:#666;font-size:.85em}
.banner{background:#fdecea;border:2px solid #c62828;color:#7f1d1d;font-weight:600;padding:.6em 1em;margin:1em 0}
"""


def _fmt(v) -> str:
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return ""
        a = abs(float(v))
        return f"{v:.3g}" if (a and (a < 1e-3 or a >= 1e5)) else f"{v:.3f}"
    return str(v)


def html_table(df: pd.DataFrame, max_rows: int = 200, columns: Iterable[str] | None = None) -> str:
    """A DataFrame as an HTML table; every header and cell escaped; numbers to 3 decimals."""
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    if len(df) == 0:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for rec in df.head(max_rows).itertuples(index=False):
        cells = []
        for v in rec:
            cls = ' class="s"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='meta'>… {len(df) - max_rows} more rows in the CSV</p>" if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def embed_png(path: str | os.PathLike, caption: str = "") -> str:
    """A ``<figure>`` with the PNG embedded as a base64 data URI (escaped caption)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = html.escape(caption)
    return f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>'


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
    """The HTML document. ``sections`` are ``(heading, html_body)``; headings, title, banners and notes are
    escaped here, bodies must already be safe (built with :func:`html_table` / :func:`embed_png` / escaped text).
    ``banners`` (e.g. :func:`data_source_banners`) are shown first, in red."""
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
                                         "ci_method", "warning"])
    body += "".join(embed_png(p, name) for name, p in figures.items()
                    if str(name).startswith("families:") and Path(p).exists())
    return ("Model families: pooled, within and between", body)


def comparison_section(comparisons: pd.DataFrame) -> tuple[str, str]:
    """The paired model comparisons (:func:`brainlid.comparison.compare_models`) as a report section."""
    intro = _p(
        "Paired comparisons A − B: both models were scored on the same test stimuli, and the same stimulus "
        "resamples are applied to both, so the interval is that of the difference itself (two overlapping "
        "intervals of the separate scores do not mean 'no difference'). Intervals: basic bootstrap; p: two-sided, "
        "from the bootstrap distribution of the difference; p_holm: Holm-adjusted over the rows of each metric and "
        "level. Group rows average over subjects seen on the same stimuli and resample subjects and stimuli "
        "together, with the dual-bootstrap variance correction of Schütt et al. (2023).")
    cols = ["model_a", "model_b", "benchmark", "subject", "metric", "time", "level", "n_subjects", "n_stimuli", "value_a",
            "value_b", "difference", "ci_low", "ci_high", "p_value", "p_holm", "normalised_difference", "ci_method"]
    df = comparisons
    if len(df) and "time" in df and df["time"].isna().all():
        cols.remove("time")
    return ("Model comparisons (paired)", intro + html_table(df, columns=cols))


def analysis_report(res, path, *, figures: Mapping[str, Path] | None = None, title: str = "brainlid analysis",
                    notes: Iterable[str] | None = None, extra_sections: list[tuple[str, str]] | None = None,
                    scores: pd.DataFrame | None = None, comparisons: pd.DataFrame | None = None) -> Path:
    """Write the report of an :class:`~brainlid.analysis.AnalysisResult` to ``path`` (atomically).

    ``comparisons``: a table of :func:`brainlid.comparison.compare_models` (or several concatenated),
    shown as a section of its own (:func:`comparison_section`).

    The data source of every benchmark is shown as a banner when it is not real
    (:func:`data_source_banners`, from ``scores`` or else ``res.settings["data_sources"]``, a
    mapping benchmark → source).
    """
    figures = dict(figures or {})
    s = res.settings
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
                     + html_table(head, columns=cols)))
    sections.append(_families_section(res, figures))
    corr = res.correlations
    glob = corr[corr["kind"] == "global"] if len(corr) else corr
    sections.append(("Global dimension measures (the contrast)", html_table(glob, columns=cols + ["warning"])))
    pair = corr[corr["kind"] == "pairwise"] if len(corr) else corr
    if len(pair):
        sections.append(("Pairwise: |difference in dimension| against model–model alignment",
                         _p("One value per pair of models. Pairs share models, so a t-test over pairs would inflate "
                            "false positives; p-values come from a Mantel permutation of model labels (within "
                            "families when there are families).")
                         + html_table(pair, columns=["target", "measure", "scope", "n_models", "n_pairs", "pearson_r",
                                                     "pearson_p", "spearman_r", "spearman_p", "p_method", "warning"])))
    sections.append(("r against K (exploratory)",
                     _p("p_corrected: max-|r| permutation test, corrected for the number of K tried; each scope "
                        "permutes as its test does (pooled: family means and within families; within: within "
                        "families; between: family means).")
                     + html_table(res.k_curve)))
    figs = "".join(embed_png(p, name) for name, p in figures.items()
                   if Path(p).exists() and not str(name).startswith("families:"))
    sections.append(("Figures", figs or _p("(no figures)")))
    sections.append(("Models", html_table(res.models)))
    if len(res.baselines):
        sections.append(("Baselines (controls, not in the correlations)", html_table(res.baselines)))
    if comparisons is not None:
        sections.append(comparison_section(comparisons))
    for heading, body in extra_sections or []:
        sections.append((heading, body))
    banners = data_source_banners(scores, res.settings.get("data_sources"))
    doc = render_report(title, sections, notes=notes or (), meta=meta, banners=banners)
    path = Path(path)
    atomic_write_text(path, doc)
    return path
