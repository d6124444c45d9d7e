"""The HTML report: self-contained, escaped."""

from __future__ import annotations

import re

import numpy as np

from brainlid import analysis
from brainlid.report import html_table
from support import synthetic_tables


def test_report_is_self_contained_and_escaped(tmp_path):
    scores, geom, gen, *_ = synthetic_tables(evil_name=True)
    res = analysis.analyze(scores, geom, gen, n_boot=200, n_perm=200, out=tmp_path,
                           notes=["Synthetic data <b>only</b> & not real brains"])
    text = res.files["report"].read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Synthetic data &lt;b&gt;only&lt;/b&gt; &amp; not real brains" in text
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert not re.search(r'(src|href)="(https?:|/|file:)', text)
    assert "<link" not in text


def test_html_table_formats_and_escapes():
    import pandas as pd

    t = html_table(pd.DataFrame({"a&b": ["<x>"], "v": [0.123456], "n": [float("nan")]}))
    assert "a&amp;b" in t and "&lt;x&gt;" in t and "0.123" in t and "nan" not in t


def test_family_section_escapes_names_and_shows_warnings(tmp_path):
    """Family names come from user files: escaped; the decomposition and its warnings are in the report."""
    scores, geom, gen, lid, models = synthetic_tables()
    fams = {m: ("<b>evil</b>" if i % 2 else "plain&co") for i, m in enumerate(models)}
    res = analysis.analyze(scores, geom, gen, families=fams, n_boot=200, n_perm=200, out=tmp_path)
    text = res.files["report"].read_text()
    assert "<b>evil</b>" not in text and "&lt;b&gt;evil&lt;/b&gt;" in text and "plain&amp;co" in text
    assert "Model families: pooled, within and between" in text
    # two families: the between-family r is undefined and the report says so in words
    assert "between-family r undefined: 2 families" in text
    assert "only 2 families" in text


def test_html_table_formats_per_column_and_names_columns_in_words():
    """p-values in one format, other numbers to 3 significant digits, intervals as [low, high], headers in words
    with the raw id as tooltip, columns with one value said once, long tables collapsed."""
    import pandas as pd

    df = pd.DataFrame({"target": ["brain:nsd.subj01.EBA.encoding", "generalization", "model_model:cka"],
                       "pearson_r": [0.24812, -0.0483, 0.5], "pearson_ci_low": [-0.52613, -0.7, float("nan")],
                       "pearson_ci_high": [0.7231, 0.513, float("nan")], "pearson_p": [0.0004, 0.04512, 1.0],
                       "n_params": [9258.0, 85002.0, 690.0], "scope": ["pooled"] * 3, "partial_pearson_r": [float("nan")] * 3})
    t = html_table(df)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", t)
    assert cells[:5] == ["brain:<wbr>nsd.<wbr>subj01.<wbr>EBA.<wbr>encoding", "0.248", "[-0.526, 0.723]", "&lt;0.001", "9,258"]
    assert cells[5:10] == ["generalization", "-0.0483", "[-0.700, 0.513]", "0.045", "85,002"]
    assert cells[10:15] == ["model_model:cka", "0.500", "", "1.000", "690"]
    assert '<th title="pearson_ci_low, pearson_ci_high">Pearson r 95% CI</th>' in t
    assert '<th title="pearson_p">p (Pearson)</th>' in t and '<th title="n_params">parameters</th>' in t
    assert "partial" not in t  # an empty column is not shown
    assert "Same in every row — <span title=\"scope\">scope</span>: pooled." in t and "<th title=\"scope\">" not in t
    long = pd.DataFrame({"K": range(30), "p_corrected": np.linspace(0, 1, 30)})
    folded = html_table(long, summary="the K table")
    assert folded.startswith("<details><summary>Show the K table (30 rows)</summary><table>")
    assert folded.count("<tr>") == 31 and "p* (corrected over K)" in folded


def test_every_figure_has_a_caption_that_says_how_to_read_it(tmp_path):
    """The analysis report puts every figure in a <figure> with alt text and a caption, in the section it belongs to,
    and labels axes in words, not ids."""
    from brainlid.report import figure_caption

    scores, geom, gen, *_ = synthetic_tables()
    res = analysis.analyze(scores, geom, gen, n_boot=100, n_perm=100, out=tmp_path)
    text = res.files["report"].read_text()
    figs = re.findall(r"<figure[^>]*><img alt=\"([^\"]+)\" src=\"data:image/png;base64,[^\"]+\"><figcaption>(.+?)"
                      r"</figcaption></figure>", text)
    assert len(figs) == text.count("<img ") >= 5
    assert all(len(cap) > 80 for _, cap in figs)
    head, rest = text.split("<h2>Model families", 1)
    assert "Scatter: LID (MLE, K = 20) against test encoding R², nsd.subj01.EBA.encoding" in head
    assert "r against K for" in rest.split("<h2>r against K", 1)[1]
    for name in ("scatter:generalization", "families:model_model:cka", "r_vs_k:brain:nsd.subj01.EBA.encoding",
                 "measures:pooled", "layers:nsd.subj01.EBA.encoding", "time:things_eeg2.sub-01.all.encoding",
                 "brain map: m0 on subj01"):
        cap, alt, _ = figure_caption(name, res.settings, scores)
        assert len(cap) > 80 and alt, name
        assert not re.search(r"encoding_r2|lid_mle|mutual_knn|model_model:|rsa_spearman", cap), cap  # ids in words
