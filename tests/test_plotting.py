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
    fig = plotting._figure()
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
