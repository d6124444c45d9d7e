# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Quick start — score a model against NSD and read the score table
#
# The Natural Scenes Dataset (NSD; Allen et al., 2022) recorded 7-tesla fMRI while eight people
# each looked at ~10,000 natural images, three times each. 1,000 of the images were seen by
# everyone: brainlid holds them out as the **test** split. Scoring a model means asking how well
# a linear read-out of its features predicts every voxel's response to images it was not fitted on
# (a voxelwise *encoding model*), compared with how well the brain predicts itself (the *noise
# ceiling*).
#
# **Which data?** With a local NSD copy under `$BRAINLID_DATA/nsd` this tutorial scores it. Without
# one it uses the demo's **synthetic** NSD-format subjects: real NSD files in every detail (the same
# loader reads them), but the "voxels" are random linear read-outs of the digit class and pixel
# principal components of scikit-learn's handwritten digits, plus noise of known size. The
# numbers then test the machinery, not a hypothesis about brains. The model is one of the demo's
# small digit networks (trained once and cached under `$BRAINLID_HOME`). On real data the model is
# `torchvision:resnet18` (its weights must be in torch's cache, or set `BRAINLID_ALLOW_DOWNLOAD=1`);
# set `BRAINLID_TUTORIAL_MODEL` to any other model spec and `BRAINLID_TUTORIAL_LAYERS` to its
# layers (comma-separated).

# %%
import os

import _common

OUT = _common.output_dir("tutorial01")
root = _common.dataset_root("nsd", "two NSD-format subjects (digits as images)")
SYNTHETIC = root is None
if SYNTHETIC:
    root = _common.synthetic_nsd()
    zoo = _common.demo_zoo().set_index("model")
    model = os.environ.get("BRAINLID_TUTORIAL_MODEL", zoo.loc["cnn_c16_d2", "spec"])
    layers = ["blocks.0", "blocks.1", "embed"]
else:
    model = os.environ.get("BRAINLID_TUTORIAL_MODEL", "torchvision:resnet18")
    layers = ["layer1", "layer2", "layer3", "layer4", "avgpool"]
if os.environ.get("BRAINLID_TUTORIAL_LAYERS"):
    layers = os.environ["BRAINLID_TUTORIAL_LAYERS"].split(",")
print("model:", model, "| layers:", ", ".join(layers))

# %% [markdown]
# ## Five lines
# `brainlid.score` takes a model spec (or a `torch.nn.Module`), one or more benchmark ids and the
# layers to try. A benchmark id reads `dataset.subject.roi.metric`: here subject 1, the
# `nsdgeneral` visual-cortex mask, voxelwise encoding. For each layer brainlid extracts features
# (through its on-disk feature cache), reduces them to at most 300 principal components fitted on
# the training images, fits a ridge regression per voxel (regularisation chosen by inner
# cross-validation) and scores the held-out test images. The best layer is chosen on a
# **validation** split of the training images, so the test images never influence the choice.
# Three baselines are scored beside the model: raw pixels, the same architecture with random
# weights, and the model's features with the stimuli shuffled (the zero control).

# %%
import brainlid

scores = brainlid.score({"my_model": model}, "nsd.subj01.nsdgeneral.encoding", layers=layers, data_root=root,
                        out=OUT / "scores", store=OUT / "results.sqlite", if_exists="replace",
                        extract_kwargs={"progress": False})

# %% [markdown]
# ## Reading the score table
# One row per model × layer × metric × split. The columns that matter first:
#
# * `split` — `val` (used only to choose the layer) or `test` (the score you report);
# * `metric` — `encoding_r2` (explained variance, averaged over voxels) and `encoding_r`;
# * `value` with its 95 % bootstrap interval `ci_low`–`ci_high` (resampling test images);
# * `ceiling` — the average noise ceiling of the voxels, the best a perfect model could do given the
#   measurement noise; `normalised` = value / ceiling over voxels whose ceiling exceeds 0.1;
# * `selected` — the layer picked on the validation split.

# %%
import pandas as pd

pd.set_option("display.width", 160)
test = scores[(scores.split == "test") & (scores.metric == "encoding_r2")]
cols = ["model", "layer", "value", "ci_low", "ci_high", "ceiling", "normalised", "selected", "n_units", "n_stimuli"]
print(test[cols].round(3).to_string(index=False))

# %% [markdown]
# The headline number of a model on a benchmark is its **selected** layer's test score. Put it beside
# the baselines: a model is only interesting where it beats raw pixels and its own untrained twin,
# and the shuffled control must sit at zero (or below: a read-out of unrelated features predicts
# held-out data worse than their mean). On the synthetic subjects the pixel baseline is strong by
# construction — the generator's features include the pixels' principal components — so beating it
# is a real test even here.

# %%
headline = test[test.selected].set_index("model")[["layer", "value", "ci_low", "ci_high", "normalised"]]
print(headline.round(3).to_string())
mine = headline.loc["my_model"]
print(f"\nmy_model: layer {mine.layer}, test R² {mine.value:.3f} [{mine.ci_low:.3f}, {mine.ci_high:.3f}], "
      f"{mine.normalised:.0%} of the explainable variance")
for base in headline.index.drop("my_model"):
    b = headline.loc[base]
    verdict = "above" if mine.ci_low > b.ci_high else ("below" if mine.ci_high < b.ci_low else "overlapping")
    print(f"  vs {base:<40} R² {b.value:+.3f}: intervals {verdict}")

# %% [markdown]
# Overlapping intervals are a warning sign, not a test: to decide whether two models differ on the
# same images, resample the images jointly for both (`brainlid.alignment.uncertainty.paired_bootstrap_test`).
#
# ## A figure: every layer, every baseline
# Test R² of each layer of each model, with the bootstrap interval, and the noise-ceiling level.

# %%
import matplotlib.pyplot as plt
import numpy as np

from brainlid.plotting import draw_intervals

fig, ax = plt.subplots(figsize=(7.5, 3.8))
ticks, labels, x0 = [], [], 0
for i, (name, g) in enumerate(test.groupby("model", sort=False)):
    g = g.sort_values("layer_index")
    x = x0 + np.arange(len(g))
    ax.bar(x, g.value, color=f"C{i}", label=name)
    # the interval itself: a basic bootstrap interval need not contain the bar's value (no value ± yerr)
    draw_intervals(ax, x, g.ci_low, g.ci_high, cap=0.2)
    ticks += list(x)
    labels += list(g.layer)
    x0 += len(g) + 1
ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=7)
ax.axhline(test.ceiling.mean(), color="k", ls="--", lw=1, label="mean noise ceiling")
ax.axhline(0, color="grey", lw=0.5)
ax.set_ylabel("test encoding R² (mean over voxels)")
ax.set_title("nsd.subj01.nsdgeneral.encoding" + (" — SYNTHETIC subject" if SYNTHETIC else ""))
ax.set_ylim(top=max(test.ceiling.mean(), test.ci_high.max()) * 1.3)
ax.legend(fontsize=7, loc="upper center", ncol=3)
fig.tight_layout()
_common.save(fig, OUT, "quick_start_scores.png")

# %% [markdown]
# The tables were also written as Parquet and CSV (`scores.parquet`, `geometry.parquet` in the
# output folder) and into a results store (SQLite) that `brainlid analyze` reads. The geometry
# table holds each layer's local intrinsic dimension at several neighbourhood sizes K and its
# global dimensions, measured on the test images — the subject of the next two tutorials.
# The command line does the same:
#
# ```bash
# brainlid score --model torchvision:resnet18 --benchmark nsd.subj01.nsdgeneral.encoding \
#     --layers layer1,layer2,layer3,layer4,avgpool --out results/
# ```
