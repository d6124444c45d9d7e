"""Figures: PNG + SVG written, readable, right size; brain maps from volumes and fsaverage5."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainlid import plotting
from brainlid.errors import InputError
from brainlid.scoring.tables import score_frame


def _ok(png):
    assert png.exists() and png.with_suffix(".svg").exists()
    with Image.open(png) as im:
        assert im.size[0] > 200 and im.size[1] > 150
    assert png.with_suffix(".svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_scatter_and_r_vs_k(tmp_path):
    x = np.arange(6.0)
    plotting.scatter_fit(x, -x + np.sin(x), [f"m{i}" for i in range(6)], stem=tmp_path / "sc", n_boot=100)
    _ok(tmp_path / "sc.png")
    kc = pd.DataFrame({"K": [5, 10, 20], "r": [-0.2, -0.5, -0.7], "p_corrected": [0.5, 0.1, 0.01]})
    plotting.r_vs_k(kc, {"participation_ratio": 0.1}, target="t", stem=tmp_path / "rk", k_headline=20)
    _ok(tmp_path / "rk.png")
    with pytest.raises(InputError):
        plotting.r_vs_k(kc.iloc[:0])


def test_score_vs_time_with_ceiling_band(tmp_path):
    t = np.linspace(-0.1, 0.5, 13)
    rows = [dict(model=m, layer="l", benchmark="things_eeg2.sub-01.all.encoding", metric="encoding_r", split="test",
                 time=tt, value=g * np.exp(-((tt - 0.15) / 0.1) ** 2), ci_low=0, ci_high=0.3, ceiling=0.6, selected=True)
            for m, g in (("a", 0.3), ("b", 0.2)) for tt in t]
    fig = plotting.score_vs_time(score_frame(rows), benchmark="things_eeg2.sub-01.all.encoding", stem=tmp_path / "time")
    _ok(tmp_path / "time.png")
    ax = fig.axes[0]
    assert len(ax.collections) >= 3  # two CI bands + the ceiling band


@pytest.mark.parametrize("horizontal", [False, True])
def test_draw_intervals_draws_the_interval_not_value_plus_minus(horizontal):
    """A basic bootstrap interval may lie wholly below the value (errorbar(yerr=...) raised on it): the lines
    span exactly [ci_low, ci_high] at each position; NaN intervals are skipped."""
    fig = plotting.style._figure()
    ax = fig.add_subplot()
    value, low, high = np.array([0.30, 0.10, 0.2]), np.array([0.12, 0.05, np.nan]), np.array([0.25, 0.16, 0.3])
    (ax.barh if horizontal else ax.bar)([0, 1, 2], value)
    lines = plotting.draw_intervals(ax, [0, 1, 2], low, high, horizontal=horizontal, cap=0.1)
    segs = [np.asarray(s) for s in lines.get_segments()]
    assert len(segs) == 6  # 2 intervals × (line + 2 caps)
    for i, (p, lo, hi) in enumerate([(0, 0.12, 0.25), (1, 0.05, 0.16)]):
        want = np.array([[p, lo], [p, hi]])
        np.testing.assert_allclose(segs[3 * i], want[:, ::-1] if horizontal else want)
        cap_lo = np.array([[p - 0.1, lo], [p + 0.1, lo]])
        np.testing.assert_allclose(segs[3 * i + 1], cap_lo[:, ::-1] if horizontal else cap_lo)
    lim = ax.get_xlim() if horizontal else ax.get_ylim()
    assert lim[0] <= 0.05 and lim[1] >= 0.30
    with pytest.raises(InputError, match="one length"):
        plotting.draw_intervals(ax, [0, 1], [0.1], [0.2, 0.3])


def test_brain_map_volume_and_surface(tmp_path):
    import nibabel as nib

    mask = np.zeros((9, 10, 8), dtype=np.int8)
    mask[2:7, 3:8, 2:6] = 1
    img = nib.Nifti1Image(mask, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.array(
        [[1, 0, 0, -18], [0, 1, 0, -20], [0, 0, 1, -16], [0, 0, 0, 1]], dtype=float))
    values = np.linspace(-0.2, 0.6, int(mask.sum()))
    png = plotting.brain_map(values, mask_img=img, title="synthetic R²", stem=tmp_path / "glass")
    _ok(png)
    with pytest.raises(InputError, match="voxels"):
        plotting.brain_map(values[:-1], mask_img=img)
    png = plotting.brain_map(np.random.default_rng(0).normal(size=2 * 10242), surface="fsaverage5",
                             stem=tmp_path / "surf", threshold=1.0)
    _ok(png)


# ----------------------------------------------------------------------------- what was wrong in the report
def _layer_tables():
    """Two models × 3 layers: an encoding benchmark (encoding_r2) and an RSA benchmark (rsa_spearman only)."""
    from brainlid.scoring.tables import geometry_frame

    srows, grows = [], []
    for m, off in (("a", 0.0), ("b", 0.1)):
        for li in range(3):
            grows.append(dict(model=m, layer=f"l{li}", layer_index=li, stimulus_set="s", n=100, estimator="mle", K=20.0,
                              value=5.0 - li + off))
            for bench, metric, v in (("x.s1.r.encoding", "encoding_r2", 0.1 * li + off),
                                     ("x.s1.r.rsa", "rsa_spearman", 0.2 + 0.15 * li + off)):
                srows.append(dict(model=m, layer=f"l{li}", layer_index=li, benchmark=bench, dataset="x", subject="s1",
                                  roi="r", metric=metric, split="test", value=v, selected=li == 2))
    return score_frame(srows), geometry_frame(grows)


def test_layer_profile_of_an_rsa_benchmark_draws_its_rsa_scores():
    """The report passed metric='encoding_r2' for every benchmark: the RSA panel was empty. Each benchmark
    is now drawn in its own metric, and the points are the RSA values of each layer."""
    scores, geom = _layer_tables()
    fig = plotting.layer_profiles(scores, geom, benchmark="x.s1.r.rsa", metric="encoding_r2", models=["a", "b"])
    right = fig.axes[1]
    assert "RSA" in right.get_ylabel() and "encoding" not in right.get_ylabel()
    lines = [ln for ln in right.get_lines() if ln.get_linestyle() == "-"]
    assert len(lines) == 2
    for ln, off in zip(lines, (0.0, 0.1)):
        np.testing.assert_allclose(ln.get_xydata(), [[li, 0.2 + 0.15 * li + off] for li in range(3)])
    # the encoding benchmark still draws the requested metric; layer axes have integer ticks only
    fig = plotting.layer_profiles(scores, geom, benchmark="x.s1.r.encoding", metric="encoding_r2", models=["a", "b"])
    assert "encoding R²" in fig.axes[1].get_ylabel()
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert plotting.benchmark_metric(scores, "x.s1.r.rsa", "encoding_r2") == "rsa_spearman"


def test_r_vs_k_draws_every_global_measure_in_its_own_style_and_keeps_labels_inside():
    """5 colours were zipped with 6 measures: mle_full was never drawn and two lines shared a colour; the
    p* label of the last K was clipped at the figure's edge."""
    from matplotlib.colors import to_hex

    glob = {g: r for g, r in zip(("participation_ratio", "pca90", "pca95", "pca99", "twonn", "mle_full", "extra"),
                                 (0.8, 0.75, 0.7, 0.6, 0.3, 0.85, -0.2))}
    kc = pd.DataFrame({"K": [5, 10, 20, 50, 100], "r": [0.67, 0.59, 0.46, 0.86, 0.99],
                       "p_corrected": [0.2, 0.38, 0.69, 0.0025, 0.0005]})
    fig = plotting.r_vs_k(kc, glob, target="model_model:cka", k_headline=20)
    ax = fig.axes[0]
    hlines = [ln for ln in ax.get_lines() if ln.get_label().startswith("global: ")]
    assert len(hlines) == len(glob)  # one line per measure, mle_full included
    assert sorted(ln.get_ydata()[0] for ln in hlines) == sorted(glob.values())
    styles = {(to_hex(ln.get_color()), tuple(ln.get_dashes()) if hasattr(ln, "get_dashes") else ln.get_linestyle())
              for ln in hlines}
    assert len({to_hex(ln.get_color()) for ln in hlines}) == len(glob)  # distinct colours
    assert len(styles) == len(glob)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = fig.bbox
    labels = [t for t in ax.texts if t.get_text().startswith("p*=")]
    assert len(labels) == 5 and labels[-1].get_text() == "p*=<0.001"
    for t in labels:
        bb = t.get_window_extent(r)
        assert box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1, t.get_text()
    # K ticks are the K measured, written as integers
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20", "50", "100"]


def _no_marker_under(fig, box) -> bool:
    """No scatter marker of the first axes lies inside ``box``'s drawn bounding box (display pixels)."""
    from matplotlib.collections import PathCollection

    fig.canvas.draw()
    bb = box.get_window_extent(fig.canvas.get_renderer())
    ax = fig.axes[0]
    pts = np.vstack([c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                     if isinstance(c, PathCollection)])
    inside = (pts[:, 0] >= bb.x0) & (pts[:, 0] <= bb.x1) & (pts[:, 1] >= bb.y0) & (pts[:, 1] <= bb.y1)
    return not inside.any()


def _stats_artists(ax, needle):
    """Artists inside the axes that show the statistics text (a Text or an AnchoredText)."""
    from matplotlib.offsetbox import AnchoredText

    return [a for a in ax.get_children() if (isinstance(a, AnchoredText) and needle in a.txt.get_text())
            or (hasattr(a, "get_text") and a is not ax.title and needle in a.get_text())]


@pytest.mark.parametrize("layout", ["lower_left", "corners", "dense"])
def test_statistics_box_and_legend_hide_no_point(layout):
    """The statistics box sat in the lower-left corner and hid a model (11 of 12 visible). Now it and the
    legend go where no marker is — checked on the drawn artists' bounding boxes — or above the axes."""
    rng = np.random.default_rng(0)
    if layout == "lower_left":  # the demo's case: a model in the lower-left corner
        x = np.r_[2.7, 2.9, np.linspace(3.0, 3.9, 10)]
        y = np.r_[0.24, 0.23, np.linspace(0.30, 0.48, 10)]
    elif layout == "corners":
        x = np.r_[0, 0, 1, 1, rng.uniform(0.3, 0.7, 8)]
        y = np.r_[0, 1, 0, 1, rng.uniform(0.3, 0.7, 8)]
    else:  # every corner taken: the box moves outside the axes
        g = np.linspace(0, 1, 9)
        x, y = (a.ravel() for a in np.meshgrid(g, g))
    labels = [f"model_{i}" for i in range(x.size)]
    stats = "Pearson r=0.25 [-0.42, 0.78], p=0.44\nSpearman ρ=-0.06, p=0.84; n=12 models"
    for fig in (plotting.scatter_fit(x, y, labels, annotate=stats, n_boot=50),
                plotting.family_scatter(x, y, ["cnn" if i % 2 else "mlp" for i in range(x.size)], labels,
                                        annotate=stats)):
        ax = fig.axes[0]
        boxes = _stats_artists(ax, "Pearson r=0.25")
        if layout == "dense":
            assert not boxes and "Pearson r=0.25" in ax.get_title()
        else:
            assert len(boxes) == 1 and _no_marker_under(fig, boxes[0])
        leg = ax.get_legend()
        assert leg is not None and _no_marker_under(fig, leg)


def test_model_styles_distinguish_twelve_models_and_keep_family_hues():
    import colorsys

    models = [f"cnn{i}" for i in range(5)] + [f"mlp{i}" for i in range(7)]
    fams = {m: m[:3] for m in models}
    st = plotting.model_styles(models, fams)
    assert len({(s["color"], s["marker"]) for s in st.values()}) == 12
    assert len({s["marker"] for m, s in st.items() if fams[m] == "mlp"}) == 7  # members differ in marker
    hue = {m: round(colorsys.rgb_to_hsv(*st[m]["color"][:3])[0], 2) for m in models}
    assert len({hue[m] for m in models if m.startswith("cnn")}) == 1  # a family shares a hue
    assert {hue[m] for m in models if m.startswith("cnn")} != {hue[m] for m in models if m.startswith("mlp")}
    flat = plotting.model_styles([f"m{i}" for i in range(14)])  # no families: still 14 distinct styles
    assert len({(s["color"], s["marker"]) for s in flat.values()}) == 14


def test_brain_map_uses_the_mni_glass_brain_only_for_mni_data(tmp_path):
    """NSD func1pt8mm volumes are in the subject's own space (sform code 2): drawn as native projections, never
    on the MNI glass brain; a volume whose header says MNI-152 (code 4), or a declared MNI space, gets the glass brain."""
    import nibabel as nib

    mask = np.zeros((9, 10, 8), dtype=np.int8)
    mask[2:7, 3:8, 2:6] = 1
    values = np.linspace(-0.2, 0.6, int(mask.sum()))
    native = nib.Nifti1Image(mask, np.diag([1.8, 1.8, 1.8, 1.0]))
    native.header.set_sform(native.affine, code=2)
    native.header.set_qform(native.affine, code=0)
    mni = nib.Nifti1Image(mask, np.array([[4, 0, 0, -18], [0, 4, 0, -20], [0, 0, 4, -16], [0, 0, 0, 1]], dtype=float))
    mni.header.set_sform(mni.affine, code=4)
    assert plotting.volume_space(native) == "native" and plotting.volume_space(mni) == "mni"
    assert plotting.volume_space(None, "func1pt8mm") == "native" and plotting.volume_space(None, "MNI152NLin2009cAsym") == "mni"
    assert plotting.volume_space(None) == "native"  # coordinates with no declared space: not claimed as MNI
    out = plotting.brain_map(values, mask_img=native, title="t")
    assert "native" in out._suptitle.get_text() and len(out.axes) == 4  # three projections + colour bar
    # the native projection shows the values: the largest |value| along each axis
    sag = out.axes[0].get_images()[0].get_array()
    assert np.nanmax(sag) == pytest.approx(values.max())
    display = plotting.brain_map(values, mask_img=mni, title="t")
    assert type(display).__name__.endswith("Projector")  # nilearn's glass-brain display
    png = plotting.brain_map(values, mask_img=native, stem=tmp_path / "native")
    _ok(png)
