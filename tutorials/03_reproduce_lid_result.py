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
# # 3. Reproduce the paper's analysis on a model zoo
#
# Yu et al. (2026) measured, for many vision models, the local intrinsic dimension (LID) of their
# final representation and three kinds of "goodness": **generalization** (held-out accuracy),
# **model–model alignment** (how similar a model's representation is to the other models') and
# **brain alignment** (how well it predicts visual cortex). Their claim: across models, LID at small
# neighbourhood sizes K predicts all three, while global dimension measures do not, and the relation
# survives controlling for model size.
#
# This tutorial runs that analysis end to end with brainlid:
#
# 1. score every model of a zoo on two subjects (encoding models, tutorial 1) and measure each
#    layer's LID K-sweep and global dimensions on the same held-out images;
# 2. correlate, across models, LID at a K **fixed in advance** (K = 20) with each target — Pearson
#    and Spearman r, bootstrap confidence intervals over models, and the **partial correlation
#    controlling for log(number of parameters)** (bigger models might simply be better at
#    everything);
# 3. contrast with the global measures, and look at the **r-vs-K curve** — exploratory, so each K's
#    p-value is corrected for the number of K tried;
# 4. split every correlation into its **within-family** and **between-family** parts: a zoo is made of
#    families (widths and depths of one architecture), and the two parts can disagree in sign.
#
# **Data.** By default: the demo's zoo of 12 small networks trained on scikit-learn's handwritten
# digits (real images; "generalization" is held-out digit accuracy) and its two **synthetic**
# NSD-format subjects, whose voxels are random linear read-outs of digit class and pixel principal
# components plus noise. Nothing about the synthetic voxels was built to favour or disfavour LID,
# so whatever correlation comes out is a property of this toy setup, not evidence for or against
# the paper. With a real NSD copy (`BRAINLID_DATA`), list your models in `BRAINLID_TUTORIAL_MODELS`
# (comma-separated specs, e.g. `timm:resnet18.a1_in1k,timm:convnext_atto.d2_in1k,...`) and optionally
# a timm-style accuracy table in `BRAINLID_TUTORIAL_GENERALIZATION` (`results-imagenet.csv`).

# %%
import os
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import _common

OUT = _common.output_dir("tutorial03")
pd.set_option("display.width", 180)
root = _common.dataset_root("nsd", "two NSD-format subjects (digits as images)")
SYNTHETIC = root is None
if SYNTHETIC:
    root = _common.synthetic_nsd()
    zoo = _common.demo_zoo()
    from brainlid.demo import zoo as zoo_module

    models = dict(zip(zoo.model, zoo.spec))
    layers = {m: zoo_module.layers_of(m) for m in models}
    generalization = pd.DataFrame({"model": zoo.model, "top1": zoo.test_acc, "n_params": zoo.params})
else:
    specs = [s.strip() for s in os.environ.get("BRAINLID_TUTORIAL_MODELS", "").split(",") if s.strip()]
    if len(specs) < 3:
        print("On real data, set BRAINLID_TUTORIAL_MODELS to at least 3 comma-separated model specs "
              "(and optionally BRAINLID_TUTORIAL_GENERALIZATION to an accuracy CSV).")
        sys.exit(0)
    models = {s: s for s in specs}
    layers = None  # each model's top-level modules
    generalization = os.environ.get("BRAINLID_TUTORIAL_GENERALIZATION")
benchmarks = ["nsd.subj01.nsdgeneral.encoding", "nsd.subj02.nsdgeneral.encoding"]
print(f"{len(models)} models x {len(benchmarks)} benchmarks")

# %% [markdown]
# ## 1. Score the zoo
# One call. With several models `brainlid.score` also measures model–model alignment on each
# benchmark's LID stimulus set (the held-out test images): mutual k-nearest-neighbour overlap
# (Huh et al., 2024) and linear CKA. The control baselines (pixels, random weights, shuffled) are
# left out here to save time — tutorial 1 shows them; the analysis would exclude them anyway.

# %%
import brainlid

res = brainlid.score(models, benchmarks, layers=layers, data_root=root, baselines=False,
                     mm_metrics=("mutual_knn", "cka"), out=OUT / "scores", store=OUT / "results.sqlite",
                     if_exists="replace", extract_kwargs={"progress": False}, batch_size=256, return_result=True)
scores, geometry = res.scores, res.geometry
print(f"{len(scores)} score rows, {len(geometry)} geometry rows")
print(geometry[geometry.model == geometry.model.iloc[0]].pivot_table(
    index="layer", columns=["estimator", "K"], values="value").round(2).iloc[:, :8].to_string())

# %% [markdown]
# ## 2. The across-model analysis
# `brainlid.analyze` builds one row per model (its last layer, as the paper uses final
# embeddings): LID at every K, the global measures, and every alignment target — each subject's
# test score, their mean (`brain:pooled:…`), mean model–model alignment, and generalization. The
# number of K, the bootstrap and the permutations are all fixed before looking.

# %%
an = brainlid.analyze(scores, geometry, generalization, k=20, n_boot=1000, n_perm=2000, out=OUT / "analysis",
                      title="tutorial 3 — LID vs alignment across a model zoo",
                      notes=["SYNTHETIC brain data (demo)"] if SYNTHETIC else None)
targets = an.settings["targets"]
print("targets:", targets)
show = ["model", "n_params", "lid", "participation_ratio"] + targets
print(an.models[show].round(3).to_string(index=False))

# %% [markdown]
# ### The headline: LID at K = 20 against each target
# `pearson_ci_low/high` are percentile bootstrap intervals over models; `partial_pearson_r` is the
# correlation that remains after regressing log(parameters) out of both LID and the target.

# %%
head = an.headline()
cols = ["target", "n_models", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p", "spearman_r",
        "partial_pearson_r", "partial_pearson_p"]
print(head[cols].round(3).to_string(index=False))

# %% [markdown]
# What the partial correlation is, written out: residualise both variables on log(parameters) by
# least squares and correlate the residuals. The numbers must match brainlid's.

# %%
target = next(t for t in targets if t.startswith("brain:pooled")) if any(t.startswith("brain:pooled") for t in targets) else targets[0]
m = an.models.dropna(subset=["lid", target, "n_params"])
Z = np.column_stack([np.ones(len(m)), np.log(m.n_params.to_numpy(float))])


def residual(v):
    v = np.asarray(v, float)
    return v - Z @ np.linalg.lstsq(Z, v, rcond=None)[0]


by_hand = np.corrcoef(residual(m.lid), residual(m[target]))[0, 1]
ours = head.set_index("target").loc[target, "partial_pearson_r"]
print(f"{target}: partial r by hand {by_hand:+.4f}, brainlid {ours:+.4f}")

# %% [markdown]
# ### Local vs global
# The paper's contrast: the same correlations for the participation ratio, the PCA dimensions and
# TwoNN. If LID carries information the global measures lack, its row should stand out.

# %%
pooled = an.correlations[an.correlations.scope == "pooled"]  # the within/between rows come in section 4
wide = pooled.pivot_table(index=["kind", "measure"], columns="target", values="pearson_r")
print(wide.round(2).to_string())

# %% [markdown]
# ## 3. The r-vs-K curve
# Pearson r between LID and each target at every K measured. Looking at many K and reporting the
# best is a multiple-comparison trap; brainlid's `p_corrected` comes from a max-|r| permutation test
# over models (the models' targets are shuffled, the maximum |r| over all K is recorded per
# shuffle), so it is the probability of seeing so strong a correlation at *any* K by chance.

# %%
k_pooled = an.k_curve[an.k_curve.scope == "pooled"]
print(k_pooled.round(3).to_string(index=False))
fig, ax = plt.subplots(figsize=(7, 4))
for t, g in k_pooled.groupby("target", sort=False):
    g = g.sort_values("K")
    ax.plot(g.K, g.r, marker="o", label=t.replace("brain:", ""))
ax.axhline(0, color="k", lw=0.6)
ax.axvline(20, color="grey", ls=":", lw=1, label="headline K = 20")
ax.set(xscale="log", xlabel="K (neighbours)", ylabel="Pearson r across models", ylim=(-1.05, 1.05),
       title="LID vs targets across the zoo" + (" (brain targets SYNTHETIC)" if SYNTHETIC else ""))
ax.legend(fontsize=6.5, loc="best")
fig.tight_layout()
_common.save(fig, OUT, "r_vs_k.png")

# %% [markdown]
# And the scatter behind the headline for the pooled brain target, with the least-squares line
# and its bootstrap band (`brainlid.plotting.scatter_fit`; `analyze(out=...)` wrote these for every
# target, plus an HTML report).

# %%
from brainlid import plotting

row = head.set_index("target").loc[target]
fig = plotting.scatter_fit(m.lid, m[target], m.model, xlabel="LID (MLE, K=20), last layer", ylabel=target,
                           annotate=f"r = {row.pearson_r:+.2f} [{row.pearson_ci_low:+.2f}, {row.pearson_ci_high:+.2f}], "
                                    f"partial r = {row.partial_pearson_r:+.2f}")
_common.save(fig, OUT, "lid_vs_brain.png")
print("report:", an.files.get("report"))

# %% [markdown]
# ## 4. Model families: within and between
# The models of a zoo are not independent draws. The demo's zoo has two architecture families (MLPs
# and CNNs); a real one has ConvNeXts of many sizes, ResNets of many depths, and so on. The sign of a
# correlation can differ *within* a family (does a model with a higher LID than its siblings align
# better?) and *between* families (do families with a higher mean LID align better?) — Simpson's
# paradox — and the pooled r then describes neither. `brainlid.analyze` assigns each model a family
# (here by the default rule, the architecture prefix of the model name; pass `families=` a CSV
# `model,family` to choose) and reports every correlation at three scopes. Intervals resample whole
# families and p-values permute within families, family means, or both; below 5 families the
# between-family part cannot be tested (a permutation of 4 family means cannot reach p < 0.05), and
# the warnings say so in words.

# %%
print(an.models.groupby("family")["model"].apply(list).to_string())
dec = an.headline(scope=None)
print(dec[["target", "scope", "n_models", "n_families", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p",
           "p_method"]].round(3).to_string(index=False))
for w in an.warnings(headline_only=True):
    print("warning:", w)

# %% [markdown]
# The scatter behind the decomposition for the same target: one colour per family, each family's own
# least-squares line, the family means (squares) and the pooled line (dashed). Where the family lines
# and the pooled line slope in opposite directions, the pooled correlation is carried by the gap between
# families.

# %%
mf = an.models.dropna(subset=["lid", target])
fig = plotting.family_scatter(mf.lid, mf[target], mf.family, mf.model, xlabel="LID (MLE, K=20), last layer",
                              ylabel=target)
_common.save(fig, OUT, "families.png")
within = dec[(dec.target == target) & (dec.scope == "within")]
if len(within) and np.isfinite(within.pearson_r.iloc[0]):
    print(f"{target}: pooled r = {row.pearson_r:+.2f}, within families r = {within.pearson_r.iloc[0]:+.2f}")

# %% [markdown]
# ## What came out
# The summary below is generated from the numbers above, not written in advance.

# %%
for t, r in head.set_index("target").iterrows():
    ci_excludes_zero = r.pearson_ci_low > 0 or r.pearson_ci_high < 0
    w = dec[(dec.target == t) & (dec.scope == "within")]
    print(f"- LID(K=20) vs {t}: r = {r.pearson_r:+.2f} (95% CI [{r.pearson_ci_low:+.2f}, {r.pearson_ci_high:+.2f}]"
          f"{', excludes 0' if ci_excludes_zero else ', includes 0'}), partial r given log(params) = "
          f"{r.partial_pearson_r:+.2f}" + (f", within families r = {w.pearson_r.iloc[0]:+.2f}" if len(w) else ""))
glob = pooled[(pooled.kind == "global") & (pooled.target == target)]
if len(glob):
    best = glob.loc[glob.pearson_r.abs().idxmax()]
    print(f"- strongest global measure for {target}: {best.measure}, r = {best.pearson_r:+.2f} "
          f"(LID at K=20: {row.pearson_r:+.2f})")
kc = k_pooled[k_pooled.target == target]
if len(kc):
    top = kc.loc[kc.r.abs().idxmax()]
    print(f"- r-vs-K for {target}: largest |r| at K = {int(top.K)} (r = {top.r:+.2f}, corrected p = {top.p_corrected:.3f})")
if SYNTHETIC:
    print("Reminder: the brain targets are SYNTHETIC and the zoo has 12 tiny digit networks; "
          "these numbers test the pipeline, not the paper's claim.")

# %% [markdown]
# With only a dozen models, bootstrap intervals over models are wide, and one partial correlation
# costs a degree of freedom — read the intervals, not only r. On real data the same script, with a
# few dozen ImageNet models and timm's accuracy table, is the paper's analysis; `brainlid analyze
# --store … --generalization results-imagenet.csv` does the same from the command line.
#
# References: Levina & Bickel (2004) NeurIPS; Huh et al. (2024) ICML ("The platonic representation
# hypothesis", mutual kNN); Kornblith et al. (2019) ICML (CKA); Allen et al. (2022) Nat Neurosci
# (NSD); Yu et al. (2026).
