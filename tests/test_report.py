"""The HTML report: self-contained, escaped."""

from __future__ import annotations

import re

from brainlid import analysis
from brainlid.report import html_table

from test_analysis import synthetic_tables  # noqa: E402  (tests/ is on sys.path under pytest's rootdir)


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
