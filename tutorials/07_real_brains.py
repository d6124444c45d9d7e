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
# # Real brains, real models — RSA and LID on the 92 images with a CIFAR ResNet depth family
#
# Synthetic fixtures prove that code does what we think; only real data prove that what we think is
# right. This tutorial uses small, real, public material:
#
# * **the 92 images of Kriegeskorte et al. (2008)** — faces, bodies, animals, natural and man-made
#   objects — with **human IT** RDMs (fMRI, 4 subjects × 2 sessions), **monkey IT** (674 neurons) and
#   eight model RDMs, as distributed with rsatoolbox's demos;
# * **four pretrained CIFAR-10 ResNets** (depth 20, 32, 44, 56; Idelbayev's checkpoints) — a real
#   scaling family — and 20 exact CIFAR-10 test images.
#
# A *representational dissimilarity matrix* (RDM) holds, for every pair of stimuli, how differently a
# system responds to them (here 1 − Pearson r between response patterns). Representational similarity
# analysis (RSA) compares two systems by correlating their RDMs (Spearman, over the 92·91/2 = 4,186
# pairs), so a brain measured in voxels and a network measured in channels become comparable without
# any fitted mapping. How high can a model score? The **noise ceiling** answers: each subject's RDM is
# compared with the average of the *other* subjects (lower bound) and of *all* subjects (upper bound);
# a model within those bounds explains the brain as well as the brains explain each other.
#
# The *local intrinsic dimension* (LID) of a layer's features is the dimension of the representation
# seen in small k-nearest-neighbour neighbourhoods (Levina–Bickel MLE). brainlid is built around the
# question of whether LID predicts a model's accuracy and its brain alignment; at the end we measure
# it across the depth family — honestly, with four models and no expected answer.

# %%
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _find_realdata() -> Path | None:
    """$BRAINLID_REALDATA when set, else ../shared/realdata beside the repository."""
    env = os.environ.get("BRAINLID_REALDATA")
    if env:
        cands = [Path(env).expanduser()]
    else:
        try:
            here = Path(__file__).resolve().parent
        except NameError:  # running inside Jupyter
            here = Path.cwd()
        cands = [here.parent.parent / "shared" / "realdata", here.parent / "shared" / "realdata"]
    for c in cands:
        if (c / "k92").is_dir() and (c / "cifar_resnets").is_dir():
            return c
    return None


REALDATA = _find_realdata()
OUT = Path(os.environ.get("BRAINLID_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="brainlid-tutorial07-"))
OUT.mkdir(parents=True, exist_ok=True)

if REALDATA is None:
    print(
        "The real data for this tutorial were not found. Put them in one folder and set BRAINLID_REALDATA:\n"
        "  k92/             the three .mat files of rsatoolbox's demos/92imageData/ (or run\n"
        "                   `brainlid datasets fetch k92 --root $BRAINLID_REALDATA/k92 --subject 1 --space rdm`)\n"
        "  cifar_resnets/   resnet20-12fca82f.th, resnet32-d509ac18.th, resnet44-014dd654.th, resnet56-4bfd9763.th\n"
        "                   from github.com/akamaster/pytorch_resnet_cifar10 (pretrained_models/)\n"
        "  cifar10_samples/ the first 20 CIFAR-10 test images as cifar10_<index>_<label>.png\n"
        "                   (the data folder of the foolbox wheel)\n"
        "Nothing else is needed; the tutorial takes under a minute on a CPU."
    )
    sys.exit(0)
print("real data:", REALDATA, "| figures ->", OUT)

# %% [markdown]
# ## 1. The 92 images and the human IT RDMs
# `brainlid.data.k92.load` reads the three MATLAB files into an `RDMDataset`: a `StimulusSet` (ids
# `k92_01` … `k92_92`, categories in the metadata), `BrainRDMs` per ROI (validated: square, symmetric,
# zero diagonal, 92 stimuli), and the model RDMs.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from brainlid.alignment.brain_rdms import score_brain_rdms, score_model_rdms  # noqa: E402
from brainlid.alignment.ceiling import rdm_session_reliability, rsa_noise_ceiling  # noqa: E402
from brainlid.data import k92  # noqa: E402

ds = k92.load(REALDATA / "k92")
hit = ds["human.IT"]
print(ds)
print(hit)
print(ds.stimuli.metadata.category.value_counts().to_string())

# %% [markdown]
# How reliable is one subject's RDM? Correlating each subject's session 1 with session 2 gives the
# split-session reliability: fMRI RDMs of single subjects are noisy (r ≈ 0.1–0.4), which is why the
# group average and the noise ceiling matter.

# %%
print(rdm_session_reliability(hit).round(3).to_string(index=False))
lower, upper = rsa_noise_ceiling(hit.subject_rdms(), method="spearman")
print(f"LOSO noise ceiling of human IT (Spearman): lower {lower:.3f}, upper {upper:.3f}")

# %% [markdown]
# ## 2. Which model RDM explains human IT?
# The eight model RDMs range from categorical (animacy; face/body/man-made/natural) through monkey IT
# to low-level image models (V1, HMAX, silhouette, Radon). `score_model_rdms` compares each with every
# subject and with the group mean, and attaches the ceiling.

# %%
candidates = dict(ds.models)
candidates["monkey IT (674 neurons)"] = ds["monkey.IT"].mean_rdm()
table = score_model_rdms(candidates, hit)
group = table[table.subject == "mean"].set_index("layer").sort_values("value", ascending=False)
print(group[["value", "ceiling", "normalised"]].round(3).to_string())
# The group-mean rows have a ceiling of their own: how well the mean RDM of all subjects could correlate with a
# noise-free mean RDM (split-half over subjects, stepped up to the whole group). The LOSO bounds above are the
# ceiling of *per-subject* scores (they are reported on the per-subject rows, which normalise by √(lower·upper)).
group_ceiling = float(group.ceiling.iloc[0])
print(f"ceiling of the group-mean RDM: {group_ceiling:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
im = axes[0].imshow(hit.square(), cmap="viridis")
axes[0].set_title("human IT, mean RDM (1 − r)")
for edge in np.cumsum(ds.stimuli.metadata.category.value_counts(sort=False).to_numpy())[:-1]:
    axes[0].axhline(edge - 0.5, color="w", lw=0.5)
    axes[0].axvline(edge - 0.5, color="w", lw=0.5)
fig.colorbar(im, ax=axes[0], fraction=0.046)
axes[1].barh(group.index[::-1], group.value[::-1], color="C0")
axes[1].axvline(group_ceiling, color="grey", ls="--", label="ceiling of the group-mean RDM")
axes[1].set_xlabel("Spearman with mean human IT RDM")
axes[1].legend(loc="lower right")
fig.tight_layout()
fig.savefig(OUT / "k92_models_vs_human_it.png", dpi=120)
plt.close(fig)

# %% [markdown]
# The categorical animacy model comes closest to the ceiling of the group-mean RDM (about three quarters of
# it); monkey IT and the face/body/man-made/natural model follow — a brain of another species explains human
# IT better than any of the image-computable models here (EVA, HMAX, V1, silhouette, Radon), and the
# low-level ones barely register.
#
# ## 3. A real model zoo: CIFAR ResNets of depth 20–56
# `cifar_resnet:DEPTH@PATH` is a model spec: brainlid builds the architecture (3×3 conv stem, three
# stages of BasicBlocks with 16/32/64 channels, parameter-free "option A" shortcuts) and loads the
# checkpoint with `torch.load(weights_only=True)`. First, check that the weights are the real ones:
# the 20 CIFAR-10 test images are classified as recorded (100 / 95 / 100 / 100 %).

# %%
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from brainlid.features import extract, load_model  # noqa: E402
from brainlid.geometry import global_dimension, lid  # noqa: E402
from brainlid.models.cifar_resnet import cifar_preprocess  # noqa: E402

CKPT = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th", 56: "resnet56-4bfd9763.th"}
files = sorted((REALDATA / "cifar10_samples").glob("cifar10_*_*.png"))
labels = np.array([int(re.match(r"cifar10_\d+_(\d)", f.stem).group(1)) for f in files])
x = cifar_preprocess(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
handles = {d: load_model(f"cifar_resnet:{d}@{REALDATA / 'cifar_resnets' / name}") for d, name in CKPT.items()}
for d, h in handles.items():
    with torch.no_grad():
        acc = (h.module(x).argmax(1).numpy() == labels).mean()
    print(f"resnet{d}: top-1 on the 20 samples {acc:.0%}; CIFAR-10 test accuracy of the checkpoint {h.info['best_prec1']:.2f}%")

# %% [markdown]
# ## 4. Trained vs untrained vs pixels, layer by layer
# The 92 images are resized to 32×32 (the networks' input size; the model spec declares that
# preprocessing) and the average-pooled outputs of `layer1`, `layer2`, `layer3` are compared with
# human IT. Two baselines always belong beside a model score: the **same architecture untrained**
# (does training matter?) and **raw pixels** (these images sit on uniform backgrounds, so pixel
# similarity already captures shape and size).

# %%
LAYERS = ["layer1", "layer2", "layer3"]
feats = {f"resnet{d}": extract(h, ds.stimuli, LAYERS, progress=False) for d, h in handles.items()}
for seed in (0, 1):
    feats[f"resnet20 untrained (seed {seed})"] = extract(load_model(f"cifar_resnet:20@random:{seed}"), ds.stimuli,
                                                         LAYERS, progress=False)
rsa = {name: score_brain_rdms(f, None, hit).query("subject == 'mean'").set_index("layer").value for name, f in feats.items()}
pix = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in ds.stimuli.images()])
pixel_score = score_brain_rdms({"pixels": pix.reshape(92, -1).astype(np.float32)}, ds.stimuli.ids, hit).query(
    "subject == 'mean'").value.item()
rsa_table = pd.DataFrame(rsa).T
print(rsa_table.round(3).to_string())
print(f"raw pixels (32×32): {pixel_score:.3f}   ceiling of the group-mean RDM {group_ceiling:.3f}")

fig, ax = plt.subplots(figsize=(7, 4))
for name, row in rsa_table.iterrows():
    ax.plot(LAYERS, row.values, marker="o", ls="--" if "untrained" in name else "-", label=name)
ax.axhline(pixel_score, color="k", lw=1, label="pixels 32×32")
ax.axhline(group_ceiling, color="grey", ls="--", label="ceiling of the group-mean RDM")
ax.set_ylabel("Spearman with mean human IT RDM")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(OUT / "resnets_vs_human_it.png", dpi=120)
plt.close(fig)

# %% [markdown]
# Training matters: trained `layer3` is well above the untrained network and above pixels, and the
# score mostly rises from `layer1` to `layer3` *within* each network. Across networks it does not: the deepest, most
# accurate ResNet is not the most IT-like on these 92 images (a network trained on 32×32 CIFAR
# objects is a modest model of human IT; the best layer reaches about 0.4 of the group-mean RDM's ceiling).
#
# ## 5. Local intrinsic dimension across layers and depths
# LID (Levina–Bickel MLE, k = 10 neighbours, mean over the 92 images) and two global measures
# (participation ratio, number of PCs for 95 % variance) of each layer.

# %%
rows = []
for name, f in feats.items():
    for layer in LAYERS:
        g = global_dimension(f[layer])
        rows.append({"model": name, "layer": layer, "LID_k10": lid(f[layer], k=10),
                     "participation_ratio": g["participation_ratio"], "pca95": g["pca95"], "IT_rsa": rsa[name][layer]})
geo = pd.DataFrame(rows)
print(geo.round(2).to_string(index=False))

family = geo[(geo.layer == "layer3") & ~geo.model.str.contains("untrained")].copy()
family["cifar_top1"] = [handles[int(m[6:])].info["best_prec1"] for m in family.model]
print(family[["model", "LID_k10", "cifar_top1", "IT_rsa"]].round(3).to_string(index=False))
r_acc = np.corrcoef(family.LID_k10, family.cifar_top1)[0, 1]
r_it = np.corrcoef(family.LID_k10, family.IT_rsa)[0, 1]
print(f"Pearson r across the 4 depths: LID vs CIFAR accuracy {r_acc:+.2f}, LID vs IT alignment {r_it:+.2f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].scatter(family.LID_k10, family.cifar_top1)
axes[1].scatter(family.LID_k10, family.IT_rsa)
for _, r in family.iterrows():
    axes[0].annotate(r.model, (r.LID_k10, r.cifar_top1), fontsize=8)
    axes[1].annotate(r.model, (r.LID_k10, r.IT_rsa), fontsize=8)
axes[0].set(xlabel="layer3 LID (k=10)", ylabel="CIFAR-10 test accuracy (%)")
axes[1].set(xlabel="layer3 LID (k=10)", ylabel="RSA with human IT")
fig.tight_layout()
fig.savefig(OUT / "lid_vs_accuracy_and_it.png", dpi=120)
plt.close(fig)
print("figures written to", OUT)

# %% [markdown]
# **What came out** (on our machine; run it yourself): in this small family, lower layer3 LID goes
# with *higher* CIFAR accuracy — the direction Yu et al. (2026) report for ImageNet models — but also
# with *lower* IT alignment, the opposite of their brain result. Four models, 92 images and a
# 32×32 input are far too little to decide anything; the point is that the measurement is one
# script, on real brains and real weights, with the baselines and the ceiling beside it. The
# untrained networks are a cautionary tale for dimension measures: their pooled features are
# dominated by one direction (participation ratio ≈ 1) while their LID is a few dimensions.
#
# References: Kriegeskorte et al. (2008) Neuron 60:1126; Nili et al. (2014) PLoS Comput Biol
# 10:e1003553 (RSA toolbox, noise ceiling); He et al. (2016) CVPR; Levina & Bickel (2004) NeurIPS.
