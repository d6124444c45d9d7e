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
# # 4. Time-resolved EEG — encoding and RSA over time on THINGS-EEG2
#
# fMRI tells *where* a representation lives; EEG tells *when*. THINGS-EEG2 (Gifford et al., 2022)
# recorded 63-channel EEG from 10 people viewing 16,540 training images (4 repetitions) and 200
# test images (80 repetitions) in rapid serial presentation. The preprocessed release gives, per
# image and repetition, 17 occipito-parietal channels × 100 time points (−200 to 800 ms at 100 Hz).
#
# At every time point we can ask the two questions of tutorial 1:
#
# * **encoding** — fit a ridge regression from model features to each channel's voltage, on the
#   training images, and correlate predictions with the measured test responses (r per channel and
#   time point, averaged over channels);
# * **RSA** — build the representational dissimilarity matrix (RDM) of the test images from the
#   17-channel pattern at that time and correlate it (Spearman) with the model's RDM.
#
# The **noise ceiling** is time-resolved too: split the test repetitions into two halves, correlate
# the half-averages, and correct to the full number of repetitions with Spearman–Brown. Before
# stimulus onset there is nothing to explain, so the ceiling there should be close to zero (the
# value is printed below; with few repetitions it is noisy, not exactly zero).
#
# **Data.** With a local copy under `$BRAINLID_DATA/things_eeg2` (preprocessed data + images) the
# tutorial uses sub-01. Otherwise brainlid's fixture writer produces a small **synthetic** copy in the
# exact release format: each channel's response is a sum of three temporal profiles (peaks at 100,
# 170 and 300 ms) times random read-outs of a known pixel feature map, plus noise with per-channel
# SNR. Those profiles are what the score curves below should recover — a check of the method, not a
# finding about vision. The model is one of the demo's digit networks on the synthetic data; on
# real data set `BRAINLID_TUTORIAL_MODEL` (default `torchvision:resnet18`).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import _common

OUT = _common.output_dir("tutorial04")
pd.set_option("display.width", 160)
root = _common.dataset_root("things_eeg2", "a THINGS-EEG2-format copy (1 subject, 17 channels)")
SYNTHETIC = root is None
if SYNTHETIC:
    from brainlid.data.fixtures import write_things_eeg2

    root = write_things_eeg2(OUT / "things_eeg2_synthetic", raw=False, n_train_concepts=40, n_train_per_concept=4,
                             n_test=100, n_train_reps=4, n_test_reps=20, n_times=50, sfreq=50.0, seed=0)
    zoo = _common.demo_zoo().set_index("model")
    model = os.environ.get("BRAINLID_TUTORIAL_MODEL", zoo.loc["cnn_c16_d2", "spec"])
    layers = ["blocks.0", "blocks.1", "embed"]
else:
    model = os.environ.get("BRAINLID_TUTORIAL_MODEL", "torchvision:resnet18")
    layers = ["layer1", "layer2", "layer3", "layer4", "avgpool"]
print("model:", model)

# %% [markdown]
# ## 1. The data
# `things_eeg2.load` returns a `StimulusSet` (image ids, concepts, files) and a `BrainData` whose
# responses are `(n_images, n_channels, n_times)`, averaged over repetitions, with the split-half
# noise ceiling per channel and time.

# %%
from brainlid.data import things_eeg2

stim_test, eeg_test = things_eeg2.load(root, subject=1, split="test")
print(eeg_test)
times = eeg_test.times
ceiling = np.asarray(eeg_test.noise_ceiling).reshape(eeg_test.n_units, -1)  # (channel, time)
print(f"{eeg_test.n_stimuli} test images, {eeg_test.n_units} channels, {times.size} time points "
      f"from {times[0]*1000:.0f} to {times[-1]*1000:.0f} ms")
print(f"mean split-half ceiling before onset {ceiling[:, times < 0].mean():.3f}, "
      f"maximum {ceiling.mean(0).max():.3f} at {times[ceiling.mean(0).argmax()]*1000:.0f} ms")

# %% [markdown]
# ## 2. Score a model over time
# The built-in benchmarks `things_eeg2.sub-01.posterior.encoding` and `…rsa` (17 posterior
# channels; ridge on the first 100 principal components of a layer's features; fitted on the
# training images, scored on the test images) go through the same `brainlid.score` call as the fMRI
# benchmarks. Every score row gets a `time` column; the layer is still chosen on a validation split
# of the training images, here by the mean score over time.

# %%
import brainlid

benchmarks = ["things_eeg2.sub-01.posterior.encoding", "things_eeg2.sub-01.posterior.rsa"]
scores = brainlid.score({"my_model": model}, benchmarks, layers=layers, data_root=root,
                        baselines=("pixels", "shuffled"), out=OUT / "scores", store=OUT / "results.sqlite",
                        if_exists="replace", extract_kwargs={"progress": False})
test = scores[(scores.split == "test") & scores.selected]
print(test.groupby(["benchmark", "model", "metric"]).agg(layer=("layer", "first"), n_times=("time", "size"),
                                                         peak=("value", "max")).round(3).to_string())

# %% [markdown]
# ## 3. Score against time, with the ceiling band
# `brainlid.plotting.score_vs_time` draws each model's test score over time with its bootstrap
# band and the noise ceiling as a shaded band.

# %%
from brainlid import plotting

fig = plotting.score_vs_time(scores, benchmark=benchmarks[0], metric="encoding_r")
_common.save(fig, OUT, "eeg_encoding_vs_time.png")

enc = test[(test.benchmark == benchmarks[0]) & (test.metric == "encoding_r") & (test.model == "my_model")]
rsa = test[(test.benchmark == benchmarks[1]) & (test.model == "my_model")]
for name, part in (("encoding r", enc), ("RSA", rsa)):
    part = part.sort_values("time")
    pk = part.loc[part.value.idxmax()]
    print(f"my_model {name}: peak {pk.value:.3f} at {pk.time*1000:.0f} ms; mean before onset "
          f"{part[part.time < 0].value.mean():+.3f}")

# %% [markdown]
# ## 4. The same, by hand
# The benchmark path is a thin layer over two functions you can call on any time-resolved data:
# `brain_encoding_scores(features, feature_ids, brain)` (ridge per channel and time; features and
# brain rows are joined by stimulus id, never by row order) and `rsa_timecourse(responses,
# features)` (one RDM per time point). Here with the selected layer's features on the test images
# only — RSA needs no fitting, so it can use them all.

# %%
from brainlid.alignment.rsa import rsa_timecourse
from brainlid.data import match_ids
from brainlid.features import extract

best = rsa.layer.iloc[0]
feats = extract(model, stim_test, [best], progress=False)
i_feat, i_brain = match_ids(feats.stimulus_ids, eeg_test.stimulus_ids)
rsa_by_hand = rsa_timecourse(eeg_test.responses[i_brain], np.asarray(feats[best])[i_feat],
                             rdm_method="correlation", compare="spearman")
bench_rsa = rsa.sort_values("time").value.to_numpy()
print(f"layer {best}: max |by hand − benchmark| over time = {np.max(np.abs(rsa_by_hand - bench_rsa)):.2e}")

# %% [markdown]
# On the synthetic data we also know the features that generated the responses (the fixture's
# pixel feature map). Their RSA time course is what a perfect model would reach on these data —
# an upper reference that is only available because the data are synthetic.

# %%
oracle = None
if SYNTHETIC:
    from brainlid.data.fixtures._model import feature_map

    F = feature_map(np.stack(stim_test.images()), 8, seed=0)  # the writer's seed
    i_f, i_b = match_ids(stim_test.ids, eeg_test.stimulus_ids)
    oracle = rsa_timecourse(eeg_test.responses[i_b], F[i_f], rdm_method="correlation", compare="spearman")
    print(f"generative features: RSA peak {oracle.max():.3f} at {times[oracle.argmax()]*1000:.0f} ms, "
          f"mean before onset {oracle[times < 0].mean():+.3f}")

# %% [markdown]
# ## 5. One figure: encoding and RSA over time
# Left: the encoding r of the selected layer, the pixel baseline and the shuffled control, with the
# ceiling band (√ of the split-half ceiling, the ceiling on the r scale, averaged over channels).
# Right: RSA over time. With the synthetic data the fixture's true temporal profiles are drawn in
# grey (scaled to the plot) — the curves should rise and fall with them.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
ms = times * 1000
for i, (m, g) in enumerate(test[(test.benchmark == benchmarks[0]) & (test.metric == "encoding_r")].groupby("model")):
    g = g.sort_values("time")
    axes[0].plot(g.time * 1000, g.value, color=f"C{i}", label=f"{m} ({g.layer.iloc[0]})")
    axes[0].fill_between(g.time * 1000, g.ci_low, g.ci_high, color=f"C{i}", alpha=0.2, lw=0)
r_ceiling = np.sqrt(np.clip(ceiling, 0, None)).mean(0)
axes[0].fill_between(ms, 0, r_ceiling, color="grey", alpha=0.2, label="noise ceiling (r scale)")
axes[0].set(xlabel="time after image onset (ms)", ylabel="encoding r (mean over channels)", title="encoding")
for i, (m, g) in enumerate(test[test.benchmark == benchmarks[1]].groupby("model")):
    g = g.sort_values("time")
    axes[1].plot(g.time * 1000, g.value, color=f"C{i}", label=m)
    if g.ci_low.notna().all():  # stimulus-bootstrap interval per time point
        axes[1].fill_between(g.time * 1000, g.ci_low, g.ci_high, color=f"C{i}", alpha=0.2, lw=0)
if oracle is not None:
    axes[1].plot(ms, oracle, color="k", lw=1.2, label="generative features (synthetic only)")
axes[1].set(xlabel="time after image onset (ms)", ylabel="Spearman ρ (EEG RDM vs model RDM)", title="RSA")
if SYNTHETIC:
    from brainlid.data.fixtures._things import eeg2_time_courses

    prof = eeg2_time_courses(times).sum(0)
    for ax in axes:
        top = ax.get_ylim()[1]
        ax.plot(ms, prof / prof.max() * top * 0.9, color="k", lw=0.8, ls=":", label="fixture's true time course")
for ax, where in zip(axes, ("upper right", "center right")):
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5, ls="--")
    ax.legend(fontsize=6.5, loc=where, framealpha=0.85)
fig.suptitle("THINGS-EEG2 sub-01" + (" — SYNTHETIC fixture data" if SYNTHETIC else ""), fontsize=10)
fig.tight_layout()
_common.save(fig, OUT, "eeg_time_resolved.png")

# %% [markdown]
# Scores before onset should scatter around zero (there is no stimulus yet); where they do not,
# something leaks — a baseline correction across the epoch, or a join by row order instead of
# stimulus id. The peak time and the pre-onset mean are printed above, from the data.
#
# References: Gifford et al. (2022) NeuroImage 264:119754 (THINGS-EEG2); Grootswagers et al. (2017)
# J Cogn Neurosci (time-resolved decoding/RSA); Cichy et al. (2014) Nat Neurosci (MEG-fMRI fusion).
