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
# # 2. Local vs global intrinsic dimension
#
# A network layer maps every image to a point in a space of hundreds or thousands of dimensions,
# but the points do not fill that space: they lie near a much lower-dimensional set. How many
# dimensions that set has depends on **the scale you look at**.
#
# * **Global** measures look at the whole cloud at once. The *participation ratio*
#   PR = (Σλᵢ)² / Σλᵢ² of the covariance eigenvalues λ counts how many principal directions carry
#   the variance; *PCA-95* counts the components needed for 95 % of it. A curved, folded surface needs
#   many linear directions even when it is only two-dimensional.
# * **Local** measures look at small neighbourhoods. The Levina–Bickel maximum-likelihood estimator
#   (MLE) at neighbourhood size K uses the distances T₁ ≤ … ≤ T_K from a point to its K nearest
#   neighbours: m̂(x) = [ (1/(K−1)) Σ_{j<K} log(T_K / T_j) ]⁻¹. In a small enough ball any smooth
#   manifold looks flat, and the count of points grows like radius^m, which is what the estimator
#   measures. brainlid's *LID* is the mean of m̂(x) over the stimuli.
#
# The paper brainlid is built around (Yu et al., 2026) claims that **local** dimension, at small K,
# predicts a model's generalization and brain alignment, and that global measures do not. This
# tutorial shows what the two kinds of measure see, how the K-sweep connects them, and three
# pitfalls that silently corrupt LID estimates. Everything here is synthetic point clouds with a
# known answer, plus features of the demo's small digit networks on real (scikit-learn) digit
# images; no brain data are involved, so `BRAINLID_DATA` plays no role.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import _common
from brainlid.geometry import (MADA, MLE, MOM, DuplicatePointsWarning, TwoNN, global_dimension, lid,
                               lid_sweep)

OUT = _common.output_dir("tutorial02")
print("DATA: synthetic point clouds with known dimension, and the demo zoo's features of scikit-learn's digits "
      "(no brain data in this tutorial)")
rng = np.random.default_rng(0)
pd.set_option("display.width", 160)

# %% [markdown]
# ## Two clouds that local and global measures rank in opposite orders
# *Curve*: a **one**-dimensional closed curve wound through 100 dimensions (a random sum of 40
# sinusoids of increasing frequency). *Blob*: a **ten**-dimensional Gaussian, embedded linearly in
# the same 100 dimensions, with a decaying spectrum (standard deviations 1, 0.8, 0.64, …).

# %%
N = 2000


def curve(n, dim=100, n_freq=40):
    t = rng.uniform(0, 2 * np.pi, n)
    freqs = np.arange(1, n_freq + 1)
    phase = rng.uniform(0, 2 * np.pi, (n_freq, dim))
    amp = rng.standard_normal((n_freq, dim)) / np.sqrt(freqs)[:, None]
    return np.einsum("fd,nfd->nd", amp, np.sin(freqs[None, :, None] * t[:, None, None] + phase)).astype(np.float32)


def blob(n, m=10, dim=100):
    Q = np.linalg.qr(rng.standard_normal((dim, m)))[0]
    return ((rng.standard_normal((n, m)) * 0.8 ** np.arange(m)) @ Q.T).astype(np.float32)


clouds = {"curve (true dim 1)": curve(N), "blob (true dim 10)": blob(N)}
rows = []
for name, X in clouds.items():
    g = global_dimension(X)
    rows.append({"cloud": name, "LID K=10": lid(X, k=10), "LID K=20": lid(X, k=20),
                 "participation ratio": g["participation_ratio"], "PCA-95": g["pca95"], "TwoNN": g["twonn"]})
table = pd.DataFrame(rows).set_index("cloud")
print(table.round(2).to_string())

# %% [markdown]
# Read the table: which cloud does each measure call higher-dimensional? Local estimates should see
# the curve's single dimension and the blob's many; the global ones count the linear directions the
# curve winds through. TwoNN (Facco et al., 2017) uses only the two nearest neighbours, so it is local
# in scale although it returns one number for the whole cloud.

# %%
for col in table.columns:
    hi = table[col].idxmax()
    print(f"{col:>20}: higher for {hi}")

# %% [markdown]
# ## The estimators
# brainlid has four pointwise local estimators, all from one exact kNN: the MLE, the method of
# moments (MOM; Amsaleg et al., 2015), the manifold-adaptive MADA (Farahmand et al., 2007) and
# TwoNN restricted to a point's neighbourhood. They follow scikit-dimension's estimator interface
# (`fit`, `dimension_`, `dimension_pw_`). A 5-dimensional cube linearly embedded in 64 dimensions
# has a known answer:

# %%
cube = (rng.random((N, 5)) @ rng.standard_normal((5, 64))).astype(np.float32)
est_rows = []
for est in (MLE(n_neighbors=20), MOM(n_neighbors=20), MADA(n_neighbors=20), TwoNN()):
    est.fit(cube)
    est_rows.append({"estimator": type(est).__name__, "dimension (true 5)": est.dimension_})
print(pd.DataFrame(est_rows).round(2).to_string(index=False))

# %% [markdown]
# (Uniform samples of a cube are biased low near its faces and corners — boundary effects are
# part of every estimate on finite data.)
#
# ## The K-sweep: from local to global
# LID is a function of K. At small K it sees the manifold; as K grows the neighbourhoods start to
# span the curvature, and the estimate drifts towards what the global measures see. `lid_sweep`
# computes one kNN at the largest K and every smaller K from it, in a tidy table.

# %%
ks = [5, 10, 20, 50, 100, 200, 500, 1000]
sweeps = pd.concat([lid_sweep(X, ks=ks).assign(cloud=name) for name, X in clouds.items()])
print(sweeps.pivot(index="K", columns="cloud", values="value").round(2).to_string())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for name, g in sweeps.groupby("cloud"):
    axes[0].plot(g.K, g.value, marker="o", label=name)
    axes[0].axhline(table.loc[name, "participation ratio"], ls=":", color=axes[0].lines[-1].get_color())
axes[0].set(xscale="log", xlabel="K (neighbours)", ylabel="LID (MLE, mean)",
            title="K-sweep (dotted: participation ratio)")
axes[0].legend(fontsize=8)

# %% [markdown]
# ## Real features: the demo zoo on digits
# The same sweep on the penultimate layer (`embed`) of four of the demo's trained networks, on the
# 540 test-split digits (real images; the networks were trained on other digits).

# %%
from brainlid.demo import digits_stimuli
from brainlid.features import extract

zoo = _common.demo_zoo().set_index("model")
images, labels, split = digits_stimuli()
test_images = np.ascontiguousarray(images[split == "test"])
picked = ["mlp_w16_d1", "mlp_w256_d2", "cnn_c4_d2", "cnn_c16_d2"]
zoo_rows = []
for m in picked:
    X = extract(zoo.loc[m, "spec"], test_images, ["embed"], progress=False, batch_size=256)["embed"]
    with warnings.catch_warnings(record=True) as caught:  # ReLU features can repeat exactly (see pitfalls)
        warnings.simplefilter("always", DuplicatePointsWarning)
        s = lid_sweep(X, ks=[5, 10, 20, 50, 100, 200])
        g = global_dimension(X)
    axes[1].plot(s.K, s.value, marker="o", label=f"{m} (acc {zoo.loc[m, 'test_acc']:.2f})")
    zoo_rows.append({"model": m, "width": X.shape[1], "test_acc": zoo.loc[m, "test_acc"],
                     "LID K=20": float(s.set_index("K").value[20]), "PR": g["participation_ratio"],
                     "duplicates warned": bool(caught)})
axes[1].set(xscale="log", xlabel="K (neighbours)", ylabel="LID (MLE, mean)", title="demo zoo, layer embed, 540 digits")
axes[1].legend(fontsize=7)
fig.tight_layout()
_common.save(fig, OUT, "k_sweep.png")
zt = pd.DataFrame(zoo_rows)
print(zt.round(3).to_string(index=False))
same = list(zt.sort_values("LID K=20").model) == list(zt.sort_values("PR").model)
print(f"LID at K=20 and the participation ratio order these {len(zt)} networks "
      f"{'the same way' if same else 'differently'} (Spearman r = {zt['LID K=20'].corr(zt['PR'], method='spearman'):+.2f})")

# %% [markdown]
# Whether LID at K = 20 and the participation ratio order these four networks the same way is
# printed above — with four networks it is a description, not a test (tutorial 3 does the
# correlations across all twelve models with confidence intervals).
#
# ## Pitfall 1 — duplicates
# Two identical feature vectors are at distance zero, and log(T_K / 0) is infinite: a naive MLE
# returns inf, NaN or — worse — a plausible-looking wrong number (each duplicated point's estimate
# collapses to 1/∞ = 0 and drags the mean down; compare the two numbers printed below). Duplicates are common in practice (ReLU layers that are all-zero for several
# images, repeated stimuli, quantised features). brainlid removes exact duplicate rows before the
# kNN, estimates on the distinct points and says so with a `DuplicatePointsWarning`; asking for a K
# larger than the number of distinct points is an error, not a silent answer.

# %%
Xd = np.concatenate([cube[:500], cube[:100]])  # 100 rows repeated
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", DuplicatePointsWarning)
    d_lid = lid(Xd, k=20)
print(f"LID with 100 duplicated rows: {d_lid:.2f} (on the 500 distinct rows: {lid(cube[:500], k=20):.2f})")
print("warning:", caught[0].message if caught else "none")


def naive_mle(X, k):
    """Levina–Bickel MLE written the obvious way (float64, no duplicate handling)."""
    X = X.astype(np.float64)
    d2 = (X**2).sum(1)[:, None] + (X**2).sum(1)[None, :] - 2 * X @ X.T
    np.fill_diagonal(d2, np.inf)
    T = np.sqrt(np.clip(np.sort(d2, axis=1)[:, :k], 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 / np.mean(np.log(T[:, -1:] / T[:, :-1]), axis=1)))


print(f"naive MLE on the same rows: {naive_mle(Xd, 20):.2f}")

# %% [markdown]
# ## Pitfall 2 — sample size
# The MLE counts how neighbours thin out with distance; with few points the K-th neighbour is far
# away and curvature and boundaries leak in, and in high dimension the estimate is biased **low**.
# The same 10-dimensional Gaussian (isotropic, embedded in 100 dimensions) at growing N:

# %%
iso = lambda n: (rng.standard_normal((n, 10)) @ np.linalg.qr(rng.standard_normal((100, 10)))[0].T).astype(np.float32)
size_rows = [{"N": n, "LID K=20": lid(iso(n), k=20)} for n in (100, 300, 1000, 3000)]
print(pd.DataFrame(size_rows).round(2).to_string(index=False))
print("(true dimension 10)")

# %% [markdown]
# So compare LID values only at the same N and K — brainlid's benchmarks fix the stimulus set
# (and its size) on which LID is measured, and store N and K in every geometry row.
#
# ## Pitfall 3 — floating-point precision
# Networks produce float32 features, often with a large common offset (post-ReLU activations are
# all positive). The fast way to get distances, ‖a‖² + ‖b‖² − 2a·b, subtracts large, nearly equal
# numbers; in float32 the nearest-neighbour distances — exactly the ones the MLE takes logs of —
# are lost in rounding. brainlid computes candidates with float32 matrix products and then
# recomputes the distances of the candidate neighbours exactly in float64.

# %%
small = cube[:1000] * 1e-3 + 10.0  # the same 5-d cube, small spread, large offset, float32


def naive_mle_float32(X, k):
    X = X.astype(np.float32)
    sq = (X * X).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * X @ X.T  # float32 throughout
    np.fill_diagonal(d2, np.inf)
    T = np.sqrt(np.clip(np.sort(d2, axis=1)[:, :k], 1e-30, None)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 / np.mean(np.log(T[:, -1:] / T[:, :-1]), axis=1)))


print(f"brainlid lid():                   {lid(small, k=20):.2f}")
print(f"float64 brute force:              {naive_mle(small, 20):.2f}")
f32 = naive_mle_float32(small, 20)
print(f"float32 ‖a‖²+‖b‖²−2a·b distances: {f32:.2f}" + ("" if np.isfinite(f32) else "  (neighbour distances rounded to 0: log(T/0))"))

# %% [markdown]
# ## Why the claim is about local dimension
# The two clouds above are the whole argument in miniature: "dimension" is not one quantity. A
# representation can wind through many linear directions (high PR) while being locally
# low-dimensional, or be locally rich inside a few dominant directions. A model's generalization
# depends on how its representation organises *nearby* stimuli — which images a read-out can
# separate with a small amount of data — and that is what small-K LID measures; global measures
# mostly report how the variance is spread. That is why brainlid reports the LID K-sweep *and* the
# global measures for every layer, fixes a headline K (20) before looking at results, and treats the
# r-vs-K curve as exploratory (tutorial 3): if the paper is right, the correlation with brain
# alignment should be strongest at small K and fade as LID approaches the global measures.
#
# References: Levina & Bickel (2004) NeurIPS; MacKay & Ghahramani (2005) comment; Facco et al.
# (2017) Sci Rep 7:12140; Amsaleg et al. (2015) KDD; Farahmand et al. (2007) ICML; Gao et al.
# (2017) "A theory of multineuronal dimensionality" (participation ratio); Yu et al. (2026).
