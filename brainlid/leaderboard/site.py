"""The board's pages, rendered on the server: shared by the live service and the static build.

* :func:`render_index` — the sortable, filterable table, baselines as reference rows, and an
  LID-vs-score scatter as inline SVG (readable without JavaScript; a small inline script adds
  client-side sorting and filtering);
* :func:`render_entry` — one entry: metadata, scores per benchmark / layer / split / time, the
  LID K-sweep of every layer, plots (:func:`svg_scatter`, :func:`svg_lines`);
* :func:`build_site` — the static site (pages, CSV and JSON).

The rows the pages show, and the CSV/JSON exports, come from :mod:`brainlid.leaderboard.board`
(``board_rows``, ``entry_data``, ``board_csv``, ... were defined here; the old import path still
works, with a DeprecationWarning).

Every string that comes from a submission is passed through :func:`html.escape` (quotes
included) and :func:`~brainlid.leaderboard.schema.visible` (control, bidi and lone-surrogate
characters shown as ``\\uXXXX``) before it reaches a page; URLs are shown as links only with an
http(s) scheme; numbers that cannot be shown are shown as "–". The pages' only inline style and
script are allowed by their SHA-256 in the Content-Security-Policy (:data:`CSP`), never by
``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlencode

from .._atomic import atomic_write_text
from .._deprecate import forward
from .._version import __version__
from . import board
from . import queue as q
from .db import Database
from .schema import safe_float, visible

__all__ = ["render_index", "render_entry", "build_site", "filter_rows", "live_href", "svg_scatter", "svg_lines", "e",
           "CSP", "CSP_HEADER"]

#: Names that moved to :mod:`brainlid.leaderboard.board` (the old path warns).
__getattr__ = forward(__name__, {name: "brainlid.leaderboard.board" for name in (
    "board_rows", "entry_data", "board_csv", "board_json", "json_text", "paginate", "csv_cell", "LID_K",
    "PRIMARY_METRIC", "BOARD_COLUMNS", "PER_PAGE", "MAX_PER_PAGE")})


def e(x) -> str:
    """HTML-escape anything (quotes too), with invisible and direction-changing characters made visible."""
    return html.escape("" if x is None else visible(str(x)), quote=True)


def _num(v) -> float | None:
    """A finite float, or None (missing, NaN, inf, text, or an integer too large for a float)."""
    return safe_float(v)


def _fmt(v, nd: int = 3) -> str:
    f = _num(v)
    return "–" if f is None else f"{f:.{nd}f}"


def _fmt_params(v) -> str:
    f = _num(v)
    if f is None:
        return "–"
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if f >= div:
            return f"{f / div:.1f}{unit}"
    return f"{int(f)}"


# --------------------------------------------------------------------------- SVG
def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _svg_frame(x0, x1, y0, y1, ml, mt, W, H, width, height, x_label, y_label):
    """Data→pixel maps ``sx``, ``sy`` and the opening parts (svg element, plot area) of an inline SVG plot."""

    def sx(v):
        return ml + (v - x0) / (x1 - x0) * W

    def sy(v):
        return mt + (1 - (v - y0) / (y1 - y0)) * H

    parts = [f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{e(y_label)} against {e(x_label)}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{ml}" y="{mt}" width="{W}" height="{H}" fill="#fff" stroke="#999"/>']
    return sx, sy, parts


def svg_scatter(points: list[dict], *, x_label: str, y_label: str, width: int = 560, height: int = 340,
                link: Callable[[str], str] | None = None) -> str:
    """An inline SVG scatter. ``points``: dicts with ``x, y, label, id, kind`` (label escaped here)."""
    pts = [p for p in points if _num(p.get("x")) is not None and _num(p.get("y")) is not None]
    ml, mr, mt, mb = 56, 16, 14, 44
    if not pts:
        return (f'<svg class="plot" width="{width}" height="80" role="img" aria-label="{e(y_label)} vs {e(x_label)}">'
                f'<text x="10" y="40">No scored entries with both {e(x_label)} and {e(y_label)} yet.</text></svg>')
    xs = [float(p["x"]) for p in pts]
    ys = [float(p["y"]) for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys + [0.0]), max(ys + [0.0])
    padx = (x1 - x0) * 0.08 or 1.0
    pady = (y1 - y0) * 0.08 or 0.1
    x0, x1, y0, y1 = x0 - padx, x1 + padx, y0 - pady, y1 + pady
    W, H = width - ml - mr, height - mt - mb

    sx, sy, parts = _svg_frame(x0, x1, y0, y1, ml, mt, W, H, width, height, x_label, y_label)
    for t in _ticks(x0, x1):
        parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{mt + H}" y2="{mt + H + 4}" stroke="#666"/>'
                     f'<text x="{sx(t):.1f}" y="{mt + H + 16}" font-size="11" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{ml - 4}" x2="{ml}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#666"/>'
                     f'<text x="{ml - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    if y0 < 0 < y1:
        parts.append(f'<line x1="{ml}" x2="{ml + W}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#ccc" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{ml + W / 2}" y="{height - 8}" font-size="12" text-anchor="middle">{e(x_label)}</text>'
                 f'<text transform="translate(14 {mt + H / 2}) rotate(-90)" font-size="12" text-anchor="middle">{e(y_label)}</text>')
    for p in pts:
        base = p.get("kind") == "baseline"
        shape = (f'<rect x="{sx(float(p["x"])) - 4:.1f}" y="{sy(float(p["y"])) - 4:.1f}" width="8" height="8" fill="#999"/>'
                 if base else f'<circle cx="{sx(float(p["x"])):.1f}" cy="{sy(float(p["y"])):.1f}" r="5" fill="#1f6fb4" fill-opacity="0.8"/>')
        title = f"<title>{e(p.get('label', ''))}: {e(x_label)} {float(p['x']):.3g}, {e(y_label)} {float(p['y']):.3g}</title>"
        g = f'<g class="pt">{title}{shape}</g>'
        if link and p.get("id"):
            g = f'<a href="{e(link(p["id"]))}">{g}</a>'
        parts.append(g)
    parts.append("</svg>")
    return "".join(parts)


def svg_lines(series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str, width: int = 560,
              height: int = 300, log_x: bool = False) -> str:
    """An inline SVG line plot of named series ``{name: [(x, y), ...]}`` with a legend."""
    colours = ["#1f6fb4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    tx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    allp = [(tx(x), y) for s in series.values() for x, y in s if _num(y) is not None and (not log_x or x > 0)]
    if not allp:
        return '<p class="note">No data to plot.</p>'
    ml, mr, mt, mb = 56, 130, 14, 44
    W, H = width - ml - mr, height - mt - mb
    x0, x1 = min(p[0] for p in allp), max(p[0] for p in allp)
    y0, y1 = min(p[1] for p in allp), max(p[1] for p in allp)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.08 or 0.1
    y0, y1 = y0 - pad, y1 + pad

    sx, sy, parts = _svg_frame(x0, x1, y0, y1, ml, mt, W, H, width, height, x_label, y_label)
    for t in _ticks(x0, x1):
        lab = f"{10 ** t:g}" if log_x else f"{t:g}"
        parts.append(f'<text x="{sx(t):.1f}" y="{mt + H + 16}" font-size="11" text-anchor="middle">{lab}</text>')
    for t in _ticks(y0, y1):
        parts.append(f'<text x="{ml - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    parts.append(f'<text x="{ml + W / 2}" y="{height - 8}" font-size="12" text-anchor="middle">{e(x_label)}</text>'
                 f'<text transform="translate(14 {mt + H / 2}) rotate(-90)" font-size="12" text-anchor="middle">{e(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pp = [(sx(tx(x)), sy(y)) for x, y in pts if _num(y) is not None and (not log_x or x > 0)]
        if not pp:
            continue
        d = " ".join(f"{a:.1f},{b:.1f}" for a, b in pp)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"><title>{e(name)}</title></polyline>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>' for a, b in pp]
        ly = mt + 14 + 16 * i
        parts.append(f'<rect x="{ml + W + 10}" y="{ly - 8}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{ml + W + 24}" y="{ly + 1}" font-size="11">{e(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- pages
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem auto;max-width:1250px;padding:0 1rem;color:#222}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.88rem} th,td{padding:.3rem .45rem;border-bottom:1px solid #e3e3e3;text-align:left}
th{background:#f4f4f4;position:sticky;top:0} th a{color:inherit;text-decoration:none} th button{all:unset;cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.baseline td{color:#666;background:#fafafa;font-style:italic}
.tag{display:inline-block;font-size:.72rem;padding:0 .35rem;border-radius:.6rem;background:#eee;font-style:normal}
.tag.private{background:#fde2c8} .tag.public{background:#dbeafe} .tag.synthetic{background:#fbd5d5;font-weight:600}
.tag.old{background:#fff3bf} nav.pages{margin:.6rem 0;display:flex;gap:.8rem;align-items:center}
form.filters{display:flex;gap:.6rem;flex-wrap:wrap;align-items:end;margin:.8rem 0} label{font-size:.85rem}
.note{color:#666;font-size:.85rem} dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem} dt{font-weight:600}
svg.plot{max-width:100%;height:auto;border:0} .cols{display:flex;gap:2rem;flex-wrap:wrap}
"""

_JS = """
(function(){
  var t=document.getElementById('board'); if(!t) return;
  var body=t.tBodies[0];
  function key(td){var v=td.getAttribute('data-v'); if(v===null) v=td.textContent.trim();
    var f=parseFloat(v); return (v!=='' && !isNaN(f) && isFinite(v)) ? f : v.toLowerCase();}
  Array.prototype.forEach.call(t.tHead.rows[0].cells, function(th, i){
    var a=th.querySelector('a'); if(!a) return;
    a.addEventListener('click', function(ev){ev.preventDefault();
      var dir = th.getAttribute('aria-sort')==='descending' ? 1 : -1;
      Array.prototype.forEach.call(t.tHead.rows[0].cells, function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort', dir===1 ? 'ascending' : 'descending');
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(r1,r2){var a=key(r1.cells[i]), b=key(r2.cells[i]);
        var an=(typeof a==='number'), bn=(typeof b==='number');
        if(a==='–'||a==='') return 1; if(b==='–'||b==='') return -1;
        if(an&&bn) return dir*(a-b); return dir*String(a).localeCompare(String(b));});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  var q=document.getElementById('q'), bsel=document.getElementById('benchmark');
  function filt(){var s=(q&&q.value||'').toLowerCase(), b=bsel?bsel.value:'';
    Array.prototype.forEach.call(body.rows, function(r){
      var ok=(!s || r.textContent.toLowerCase().indexOf(s)>=0) && (!b || r.getAttribute('data-benchmark')===b);
      r.style.display = ok ? '' : 'none';});}
  if(q) q.addEventListener('input', filt); if(bsel) bsel.addEventListener('change', filt);
})();
"""

_SORT_KEYS = {"model": "model", "team": "team", "benchmark": "benchmark", "dataset": "dataset", "roi": "roi",
              "test": "test_set", "layer": "layer", "score": "value", "norm": "normalised", "r2": "r2", "lid": "lid",
              "params": "parameters", "date": "submitted"}


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


#: The pages' Content-Security-Policy: nothing but the page's own inline style and script (by hash), images
#: from the page itself, forms to the board; the live service adds ``frame-ancestors 'none'`` (a header-only
#: directive) — see :data:`CSP_HEADER`.
CSP = (f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'")
CSP_HEADER = CSP + "; frame-ancestors 'none'"


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" '
            f'content="{e(CSP)}"><title>{e(title)}</title><style>{_CSS}</style></head>'
            f'<body>{body}<footer class="note"><p>brainlid {e(__version__)} — scores are computed by the server from '
            f'submitted features; no submitted code runs and no score is self-reported.</p></footer></body></html>')


def filter_rows(rows: list[dict], *, benchmark: str = "", text: str = "", sort: str = "", desc: bool = True) -> list[dict]:
    """Server-side filtering and sorting (the no-JavaScript path of the page)."""
    if benchmark:
        rows = [r for r in rows if r["benchmark"] == benchmark]
    if text:
        t = text.lower()
        rows = [r for r in rows if any(t in str(r.get(k, "")).lower() for k in ("model", "team", "benchmark", "dataset", "roi", "layer"))]
    col = _SORT_KEYS.get(sort)
    if col:
        present = [r for r in rows if r.get(col) not in (None, "")]
        absent = [r for r in rows if r.get(col) in (None, "")]
        num = all(isinstance(r[col], (int, float)) for r in present)
        present.sort(key=lambda r: r[col] if num else str(r[col]).lower(), reverse=desc)
        rows = present + absent
    return rows


def _synthetic_tag(source) -> str:
    """The label of rows scored on synthetic data ("" otherwise)."""
    return (' <span class="tag synthetic" title="scored on synthetic (fixture) data, not the real benchmark data">'
            'synthetic</span>') if source == "synthetic" else ""


def _version_tag(version, current) -> str:
    """The benchmark version a row was scored under, marked "old" when the benchmark has a newer version."""
    if _num(version) is None:
        return ""
    old = _num(current) is not None and int(version) < int(current)
    tip = (f"scored under benchmark version {int(version)}; the benchmark is now version {int(current)}" if old
           else f"benchmark version {int(version)}")
    return f' <span class="tag{" old" if old else ""}" title="{e(tip)}">v{int(version)}{" (old)" if old else ""}</span>'


def live_href(**params) -> str:
    """A relative link to the live board with the given query parameters (empty ones left out)."""
    return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})


def render_index(rows: list[dict], *, title: str = "brainlid leaderboard", live: bool = True,
                 link: Callable[[str], str] = lambda i: f"/entries/{i}", benchmarks: Iterable[str] | None = None,
                 benchmark: str = "", text: str = "", sort: str = "", desc: bool = True, csv_href: str = "/leaderboard.csv",
                 page: int = 1, per_page: int = board.PER_PAGE, page_href: Callable[[int], str] | None = None) -> str:
    """The leaderboard page (table, filters, scatter). ``live``: sort/filter/page links go to the server.

    Shows page ``page`` (1-based) of ``per_page`` rows of the filtered, sorted rows, with links
    to the other pages (``page_href(n)``; live default: the same query with ``page=n``). The
    scatter plots the rows of this page.
    """
    all_benches = sorted(set(benchmarks or []) | {r["benchmark"] for r in rows})
    matching = filter_rows(rows, benchmark=benchmark, text=text, sort=sort, desc=desc)
    shown, page, pages = board.paginate(matching, page, per_page)
    if page_href is None:
        def page_href(n):
            return live_href(sort=sort, desc=("" if desc else "0") if sort else "", benchmark=benchmark, q=text,
                              page=n if n > 1 else "", per_page=per_page if per_page != board.PER_PAGE else "")
    nav = ""
    if pages > 1:
        prev = f'<a rel="prev" href="{e(page_href(page - 1))}">← previous</a>' if page > 1 else "<span>← previous</span>"
        nxt = f'<a rel="next" href="{e(page_href(page + 1))}">next →</a>' if page < pages else "<span>next →</span>"
        nav = (f'<nav class="pages" aria-label="pages">{prev}<span>page {page} of {pages}</span>{nxt}'
               f'<a href="{e(page_href(1))}">first</a><a href="{e(page_href(pages))}">last</a></nav>')
    opts = "".join(f'<option value="{e(b)}"{" selected" if b == benchmark else ""}>{e(b)}</option>' for b in all_benches)
    form = (f'<form class="filters" method="get" action="{"/" if live else "index.html"}">'
            f'<label>Benchmark<br><select id="benchmark" name="benchmark"><option value="">all</option>{opts}</select></label>'
            f'<label>Search<br><input id="q" name="q" value="{e(text)}" placeholder="model, team, ROI…"></label>'
            + ('<button type="submit">Filter</button>' if live else "") + "</form>")
    heads = [("model", "Model"), ("team", "Team"), ("benchmark", "Benchmark"), ("dataset", "Dataset"), ("roi", "ROI"),
             ("test", "Test set"), ("layer", "Layer"), ("score", "Score"), (None, "95% CI"), ("norm", "Normalised"),
             ("r2", "R²"), ("lid", "LID"), ("params", "Params"), ("date", "Date")]
    ths = []
    for key, label in heads:
        if key is None:
            ths.append(f"<th>{label}</th>")
            continue
        nd = "0" if (sort == key and desc) else "1"
        href = e(live_href(sort=key, desc=nd, benchmark=benchmark, q=text, per_page=per_page if per_page != board.PER_PAGE else ""))
        aria = f' aria-sort="{"descending" if desc else "ascending"}"' if sort == key else ""
        ths.append(f'<th data-key="{key}"{aria}><a href="{href if live else "#"}">{label}</a></th>')
    trs = []
    for r in shown:
        base = r["kind"] == "baseline"
        name = (f'<a href="{e(link(r["entry_id"]))}">{e(r["model"])}</a>' + (' <span class="tag">baseline</span>' if base else "")
                + _synthetic_tag(r.get("data_source")))
        ci = f'{_fmt(r["ci_low"])} – {_fmt(r["ci_high"])}' if _num(r["ci_low"]) is not None else "–"
        tag = f'<span class="tag {e(r["test_set"])}">{e(r["test_set"])}-test</span>'
        lid_t = f' title="MLE, K={r["lid_k"]:g}"' if r.get("lid_k") is not None else ""
        trs.append(
            f'<tr class="{"baseline" if base else "entry"}" data-benchmark="{e(r["benchmark"])}">'
            f"<td>{name}</td><td>{e(r['team'])}</td><td>{e(r['benchmark'])}{_version_tag(r.get('benchmark_version'), r.get('current_version'))}</td><td>{e(r['dataset'])}</td><td>{e(r['roi'])}</td>"
            f"<td>{tag}</td><td>{e(r['layer'])}</td>"
            f'<td class="num" data-v="{_fmt(r["value"], 6)}" title="{e(r["metric"])}">{_fmt(r["value"])}</td>'
            f'<td class="num">{ci}</td><td class="num" data-v="{_fmt(r["normalised"], 6)}">{_fmt(r["normalised"])}</td>'
            f'<td class="num" data-v="{_fmt(r["r2"], 6)}">{_fmt(r["r2"])}</td>'
            f'<td class="num" data-v="{_fmt(r["lid"], 6)}"{lid_t}>{_fmt(r["lid"], 2)}</td>'
            f'<td class="num" data-v="{e(r["parameters"] if r["parameters"] is not None else "")}">{_fmt_params(r["parameters"])}</td>'
            f"<td>{e(r['submitted'])}</td></tr>")
    if not trs:
        trs.append(f'<tr><td colspan="{len(heads)}">No scored entries{" for this filter" if (benchmark or text) else " yet"}.</td></tr>')
    pts = [{"x": r["lid"], "y": r["normalised"] if _num(r["normalised"]) is not None else r["value"],
            "label": f'{r["model"]} · {r["benchmark"]}', "id": r["entry_id"], "kind": r["kind"]} for r in shown]
    use_norm = any(_num(r["normalised"]) is not None for r in shown)
    scatter = svg_scatter(pts, x_label=f"LID (MLE, K≈{board.LID_K:g}) of the selected layer",
                          y_label="ceiling-normalised score" if use_norm else "score", link=link)
    privs = sorted({r["benchmark"] for r in rows if r["test_set"] == "private"})
    body = (f"<h1>{e(title)}</h1><p class='sub'>Models scored against brain data from submitted features. "
            f"Score = held-out Pearson r of the voxelwise encoding model (RSA: Spearman ρ of RDMs), ROI mean over units, "
            f"on the test split; layer chosen on a validation split. "
            f"<span class='tag public'>public-test</span> benchmarks have published test responses (a score could have been "
            f"fitted to them); <span class='tag private'>private-test</span> responses are held only by this server.</p>"
            f"{form}{nav}<table id='board'><thead><tr>{''.join(ths)}</tr></thead><tbody>{''.join(trs)}</tbody></table>{nav}"
            f"<p class='note'>{len(matching)} row(s)" + (f", {len(shown)} on this page" if pages > 1 else "") + ". "
            "<span class='tag synthetic'>synthetic</span>: scored on synthetic (fixture) data, not the real benchmark; "
            "<span class='tag old'>v1 (old)</span>: scored under an older benchmark version (not comparable with the "
            "current version's rows). Grey rows are baselines (raw pixels, random weights, shuffled features). "
            f"<a href=\"{e(csv_href)}\">Download CSV</a>."
            + (f" Private-test benchmarks: {', '.join(e(b) for b in privs)}." if privs else "") + "</p>"
            f"<h2>LID against score</h2>{scatter}<script>{_JS}</script>")
    return _page(title, body)


def render_entry(data: dict, *, title: str = "brainlid leaderboard", home: str = "/",
                 link: Callable[[str], str] = lambda i: f"/entries/{i}") -> str:
    """One entry's page: metadata, all score rows per benchmark (with their benchmark version and data
    source), LID K-sweeps and plots. ``link``: the address of another entry (a re-scored one)."""
    sub = data["submission"]
    md = sub["metadata"]
    url = md.get("url", "")
    url_html = f'<a href="{e(url)}" rel="nofollow noopener">{e(url)}</a>' if str(url).startswith(("http://", "https://")) else e(url)
    items = [("Model", e(sub["model_name"])), ("Team", e(sub.get("team") or ("reference" if sub["kind"] == "baseline" else ""))),
             ("Status", e(sub["status"]) + (f" — {e(sub['reason'])}" if sub.get("reason") else "")),
             ("Benchmarks", ", ".join(e(b) for b in sub["benchmarks"])), ("Parameters", e(_fmt_params(md.get("parameters")))),
             ("Training data", e(md.get("training_data", ""))), ("Paper / URL", url_html),
             ("Description", e(md.get("description", ""))), ("Submitted", e(sub["created"])),
             ("Bundle SHA-256", f"<code>{e(sub.get('bundle_sha256') or '')}</code>")]
    if sub.get("rescore_of"):
        items.append(("Re-scored from", f'<a href="{e(link(sub["rescore_of"]))}">{e(sub["rescore_of"])}</a> '
                                        "(the same bundle under the current benchmark versions)"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    secs = []
    scores = data["scores"]
    for bench in sorted({s["benchmark"] for s in scores}):
        rows = [s for s in scores if s["benchmark"] == bench]
        priv = data.get("privacy", {}).get(bench, {}).get("test_private")
        trs = "".join(
            f'<tr{" class=baseline" if not r["selected"] else ""}><td>{e(r["layer"])}{" ✓" if r["selected"] else ""}</td>'
            f"<td>{e(r['split'])}</td><td>{e(r['metric'])}</td><td class=num>{'' if _num(r['time']) is None else _fmt(r['time'])}</td>"
            f"<td class=num>{_fmt(r['value'])}</td><td class=num>{_fmt(r['ci_low'])} – {_fmt(r['ci_high'])}</td>"
            f"<td class=num>{_fmt(r['ceiling'])}</td><td class=num>{_fmt(r['normalised'])}</td><td class=num>{e(r['n_units'])}</td></tr>"
            for r in rows)
        metric = "rsa_spearman" if any(str(r["metric"]).startswith("rsa") for r in rows) else "encoding_r"
        series = {}
        for split in ("val", "test"):
            pts = [(float(r["layer_index"] or 0), float(r["value"])) for r in rows
                   if r["split"] == split and r["metric"] == metric and _num(r["value"]) is not None and _num(r["time"]) is None]
            if pts:
                series[split] = sorted(pts)
        plot = svg_lines(series, x_label="layer index", y_label=metric) if series else ""
        tags = _version_tag(rows[0].get("benchmark_version"), q.current_version(bench)) + _synthetic_tag(board.rows_data_source(rows))
        secs.append(f"<h2>{e(bench)} <span class='tag {'private' if priv else 'public'}'>{'private' if priv else 'public'}-test</span>"
                    f"{tags}</h2>"
                    f"<div class='cols'><div>{plot}</div></div>"
                    f"<table><thead><tr><th>Layer (✓ chosen on val)</th><th>Split</th><th>Metric</th><th>Time</th><th>Value</th>"
                    f"<th>95% CI</th><th>Ceiling</th><th>Normalised</th><th>Units</th></tr></thead><tbody>{trs}</tbody></table>")
    geom = data["geometry"]
    if geom:
        sweep: dict[str, list[tuple[float, float]]] = {}
        glob_rows = []
        for g in geom:
            if _num(g["K"]) is not None and g["estimator"] == "mle":
                if _num(g["value"]) is not None:
                    sweep.setdefault(str(g["layer"]), []).append((float(g["K"]), float(g["value"])))
            elif _num(g["K"]) is None:
                glob_rows.append(g)
        plot = svg_lines({k: sorted(v) for k, v in sweep.items()}, x_label="K (neighbours)", y_label="LID (MLE)", log_x=True)
        ks = sorted({k for v in sweep.values() for k, _ in v})
        head = "".join(f"<th>K={k:g}</th>" for k in ks)
        body = "".join(f"<tr><td>{e(layer)}</td>" + "".join(
            f"<td class=num>{_fmt(dict(v).get(k), 2)}</td>" for k in ks) + "</tr>" for layer, v in sweep.items())
        gl = "".join(f"<tr><td>{e(g['layer'])}</td><td>{e(g['estimator'])}</td><td class=num>{_fmt(g['value'], 2)}</td></tr>"
                     for g in glob_rows)
        secs.append(f"<h2>Geometry: LID K-sweep</h2><p class='note'>Measured on {e(geom[0]['stimulus_set'])} "
                    f"({e(geom[0]['n'])} stimuli).</p>{plot}<table><thead><tr><th>Layer</th>{head}</tr></thead><tbody>{body}</tbody></table>"
                    + (f"<h3>Global dimension</h3><table><thead><tr><th>Layer</th><th>Measure</th><th>Value</th></tr></thead>"
                       f"<tbody>{gl}</tbody></table>" if gl else ""))
    body = (f"<p><a href=\"{e(home)}\">← leaderboard</a></p><h1>{e(sub['model_name'])}</h1><dl>{dl}</dl>" + "".join(secs))
    return _page(f"{sub['model_name']} — {title}", body)


def build_site(db: Database, out: str | os.PathLike, *, title: str = "brainlid leaderboard",
               per_page: int = board.PER_PAGE) -> list[Path]:
    """Render the board as a static site: ``index.html`` (then ``index-2.html``, … per :data:`~brainlid.leaderboard.board.PER_PAGE` rows),
    ``entries/<id>.html``, ``leaderboard.csv/.json`` (all rows)."""
    out = Path(out)
    rows = board.board_rows(db)
    written = []

    def page_name(n: int) -> str:
        return "index.html" if n == 1 else f"index-{n}.html"

    n_pages = board.paginate(rows, 1, per_page)[2]
    pages = {page_name(n): render_index(rows, title=title, live=False, link=lambda i: f"entries/{i}.html",
                                        csv_href="leaderboard.csv", page=n, per_page=per_page, page_href=page_name)
             for n in range(1, n_pages + 1)}
    pages["leaderboard.csv"] = board.board_csv(rows)
    pages["leaderboard.json"] = board.board_json(rows)
    for sub in q.list_submissions(db):
        if sub["status"] in ("scored",):
            data = board.entry_data(db, sub["id"])
            pages[f"entries/{sub['id']}.html"] = render_entry(data, title=title, home="../index.html",
                                                             link=lambda i: f"{i}.html")
    for name, text in pages.items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written
