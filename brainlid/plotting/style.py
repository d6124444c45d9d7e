"""Shared figure machinery: an off-screen figure, saving, intervals, model styles, boxes placed where no point is.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``'s global state, so importing brainlid does not change the user's backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnchoredText
from matplotlib.ticker import MaxNLocator

from .._atomic import atomic_path
from ..errors import InputError

_DPI = 110


def _figure(w: float = 5.0, h: float = 4.0, layout: str | None = "constrained"):
    fig = Figure(figsize=(w, h), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, stem: str | os.PathLike) -> Path:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomically).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    stem : path-like
        Path without the suffix; missing folders are created.

    Returns
    -------
    pathlib.Path
        The PNG path.
    """
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
    axis.set_major_locator(MaxNLocator(integer=True))


# ----------------------------------------------------------------------------- boxes that hide no point
_CORNERS = ("lower left", "lower right", "upper left", "upper right", "center left", "center right",
            "lower center", "upper center")


def _marker_points(ax) -> np.ndarray:
    """Display coordinates ``(n, 2)`` of every marker in ``ax`` (scatter offsets, vertices of marked lines)."""
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
    """Add a box (a legend or an anchored text) at the first corner of ``ax`` where it hides nothing.

    Tried: every corner against markers, ``avoid`` and ``soft``; then against markers and
    ``avoid`` only.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    make : callable
        ``make(loc)`` adds the box at the matplotlib location string ``loc`` and returns the artist.
    avoid : sequence of artists
        Boxes the new box must not overlap (e.g. a legend).
    soft : sequence of artists
        Boxes to avoid when a corner allows it (e.g. point labels).
    pad_px : float
        Margin around markers, in pixels.

    Returns
    -------
    matplotlib.artist.Artist or None
        The artist, or None (nothing added) when every corner covers a marker or an ``avoid``
        box — the caller then puts the box outside the axes.
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
