"""Validation on real data no one here made (``../shared/realdata``; skipped when absent).

* RSA known answers on Kriegeskorte et al. (2008): the mean human IT RDM ranks the 8 model RDMs as
  published in the realdata README (Spearman to 1e-3), split-session reliabilities, human vs monkey IT
  vs models with the leave-one-subject-out ceiling (cross-checked with rsatoolbox);
* real pretrained CIFAR-10 ResNets (depth 20/32/44/56): top-1 on 20 exact CIFAR-10 test images as
  recorded; layer-wise LID and global dimension (LID against a float64 brute force);
* trained vs untrained (3 seeds) resnet20 RSA against human IT on the 92 images (resized to 32 x 32),
  with the raw-pixel baseline beside them; the depth family's LID against CIFAR accuracy and IT
  alignment — measured and printed (``pytest -s``), asserting only what the data establish.

Measured on this machine (and recorded in the tutorial): hIT LOSO ceiling [0.372, 0.666]; resnet20
layer3 0.302 vs untrained 0.07–0.13 vs pixels 0.11; layer3 IT alignment falls with depth
(0.302, 0.261, 0.253, 0.250) while CIFAR accuracy rises (91.78 … 93.62).
"""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

from brainlid.alignment.ceiling import rdm_session_reliability
from support import REALDATA

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real data folder not found: {REALDATA} (set BRAINLID_REALDATA)")

#: the realdata README's known answers
MODEL_SPEARMAN = {"animacy": 0.588, "monkeyIT": 0.439, "FaceBodyManmadeNatobj": 0.405, "EVA": 0.354, "HMAX": 0.222,
                  "Silhouette": 0.125, "RADON": 0.061, "V1": 0.039}
RELIABILITY = {"BE": 0.28, "KO": 0.10, "SN": 0.38, "TI": 0.12}
TOP1 = {20: 1.00, 32: 0.95, 44: 1.00, 56: 1.00}
CHECKPOINTS = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th", 56: "resnet56-4bfd9763.th"}
LAYERS = ["layer1", "layer2", "layer3"]
SEEDS = range(3)
K_LID = 10


@pytest.fixture(scope="module")
def k92():
    from brainlid.data import k92 as mod

    return mod.load(REALDATA / "k92")


@pytest.fixture(scope="module")
def cifar_samples():
    from PIL import Image

    files = sorted((REALDATA / "cifar10_samples").glob("cifar10_*_*.png"))
    assert len(files) == 20
    labels = np.array([int(re.match(r"cifar10_\d+_(\d)\.png", f.name).group(1)) for f in files])
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return images, labels


@pytest.fixture(scope="module")
def zoo(k92):
    """Pooled layer features on the 92 images for the 4 trained ResNets and 5 untrained resnet20s."""
    from brainlid.features import extract, load_model

    out = {}
    for depth, name in CHECKPOINTS.items():
        h = load_model(f"cifar_resnet:{depth}@{REALDATA / 'cifar_resnets' / name}")
        out[f"resnet{depth}"] = (h, extract(h, k92.stimuli, LAYERS, cache=False, progress=False))
    for seed in SEEDS:
        h = load_model(f"cifar_resnet:20@random:{seed}")
        out[f"resnet20-untrained-{seed}"] = (h, extract(h, k92.stimuli, LAYERS, cache=False, progress=False))
    return out


def _mean_row(df, layer):
    return df[(df.layer == layer) & (df.subject == "mean")].iloc[0]


# ------------------------------------------------------------------------------------------ k92
def test_mean_human_it_ranks_models_as_published(k92):
    import rsatoolbox

    from brainlid.alignment.rsa import compare_rdms

    mean = k92["human.IT"].mean_rdm()
    got = {name: compare_rdms(mean, rdm, method="spearman") for name, rdm in k92.models.items()}
    for name, ref in MODEL_SPEARMAN.items():
        assert got[name] == pytest.approx(ref, abs=1e-3), name
    assert sorted(got, key=got.get, reverse=True) == list(MODEL_SPEARMAN)  # the published order
    # independent reference: rsatoolbox on the same vectors
    ref = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(np.stack(list(k92.models.values())).astype(float)),
                                 rsatoolbox.rdm.RDMs(mean[None].astype(float)), method="spearman").ravel()
    np.testing.assert_allclose(list(got.values()), ref, atol=1e-6)


def test_split_session_reliability(k92):
    rel = rdm_session_reliability(k92["human.IT"], "spearman").set_index("subject").r
    for subj, ref in RELIABILITY.items():
        assert rel[subj] == pytest.approx(ref, abs=0.0051), subj  # README gives two decimals


def test_human_vs_monkey_vs_models_with_loso_ceiling(k92):
    import rsatoolbox

    from brainlid.alignment.brain_rdms import score_model_rdms
    from brainlid.alignment.ceiling import rsa_noise_ceiling
    from brainlid.data.rdms import BrainRDMs

    hit = k92["human.IT"]
    subj = hit.subject_rdms()
    lo, hi = rsa_noise_ceiling(subj, method="spearman")
    r_lo, r_hi = rsatoolbox.inference.boot_noise_ceiling(rsatoolbox.rdm.RDMs(subj.astype(float)), method="spearman")
    assert (lo, hi) == (pytest.approx(float(np.mean(r_lo)), abs=1e-6), pytest.approx(float(np.mean(r_hi)), abs=1e-6))
    assert 0 < lo < hi < 1

    candidates = dict(k92.models)
    candidates["monkey IT (674 neurons)"] = k92["monkey.IT"].mean_rdm()
    df = score_model_rdms(candidates, hit)
    per_subject = df[df.subject != "mean"]
    assert len(df) == len(candidates) * 5 and (per_subject.ceiling_lower == lo).all() and (per_subject.ceiling_upper == hi).all()
    assert np.allclose(per_subject.ceiling, np.sqrt(lo * hi))
    mean = df[df.subject == "mean"].set_index("layer")
    group_ceiling = mean.ceiling.iloc[0]
    print("\nhuman IT (mean of 4 subjects) vs candidates, Spearman; LOSO ceiling [%.3f, %.3f]; group-mean ceiling %.3f"
          % (lo, hi, group_ceiling))
    print(mean[["value", "normalised"]].sort_values("value", ascending=False).round(3).to_string())
    # the group-mean RDM is more reliable than one subject's: its ceiling lies above the per-subject bounds
    assert hi < group_ceiling < 1 and (mean.ceiling_method == "group-split-half").all()
    # real-data check of the group ceiling: the mean RDM of two subjects, used as a model of the other two,
    # scores <= 1 after normalising by the other two's own split-half ceiling
    for a, b in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))):
        half = BrainRDMs(subj[list(b)], hit.stimulus_ids, roi="IT", dataset="k92")
        row = score_model_rdms({"other half": subj[list(a)].mean(0)}, half).query("subject == 'mean'").iloc[0]
        assert 0.5 < row.normalised < 1.05, (a, row.normalised)
    # the monkey IT RDM of Fig. 1 is the 'monkeyIT' model RDM
    assert mean.value["monkey IT (674 neurons)"] == pytest.approx(mean.value["monkeyIT"], abs=1e-6)
    # the categorical animacy model reaches the lower bound of the ceiling; the low-level models do not
    assert mean.value["animacy"] > lo
    assert all(mean.value[m] < lo / 2 for m in ("V1", "RADON", "Silhouette"))
    # per-subject scores are noisier than the group mean but agree with it in sign
    per = df[df.subject != "mean"].pivot(index="layer", columns="subject", values="value")
    assert (per.loc["animacy"] > 0.2).all()


# ------------------------------------------------------------------------------------ ResNets
@pytest.mark.parametrize("depth", list(CHECKPOINTS))
def test_resnets_classify_cifar_samples_as_recorded(depth, cifar_samples):
    import torch

    from brainlid.models.cifar_resnet import cifar_preprocess, load_cifar_resnet

    images, labels = cifar_samples
    model = load_cifar_resnet(REALDATA / "cifar_resnets" / CHECKPOINTS[depth], depth=depth)
    with torch.no_grad():
        pred = model(cifar_preprocess(images)).argmax(1).numpy()
    assert (pred == labels).mean() == pytest.approx(TOP1[depth])
    assert 90 < model.checkpoint_info["best_prec1"] < 95


def _brute_lid(X, k):
    """Levina-Bickel MLE, (k-1) normalisation, mean over points, float64 brute force."""
    D = cdist(X.astype(np.float64), X.astype(np.float64))
    np.fill_diagonal(D, np.inf)
    r = np.sort(D, axis=1)[:, :k]
    m = (k - 1) / np.log(r[:, -1:] / r[:, :-1]).sum(axis=1)
    return float(m.mean())


@pytest.mark.slow  # shares the zoo fixture: 7 CNN forward passes over the 92 images
def test_layerwise_lid_and_global_dimension(zoo):
    from brainlid.geometry import global_dimension, lid

    rows = []
    for name, (_, feats) in zoo.items():
        if "untrained" in name and not name.endswith("-0"):
            continue
        for layer in LAYERS:
            X = feats[layer]
            value = lid(X, k=K_LID)
            assert value == pytest.approx(_brute_lid(X, K_LID), rel=1e-4)
            g = global_dimension(X)
            assert 1 <= g["participation_ratio"] <= min(X.shape)
            rows.append({"model": name, "layer": layer, "dim": X.shape[1], f"lid_k{K_LID}": value,
                         "participation_ratio": g["participation_ratio"], "pca95": g.get("pca95")})
    table = pd.DataFrame(rows)
    print("\nlayer-wise LID (MLE, k=%d, 92 images) and global dimension" % K_LID)
    print(table.round(2).to_string(index=False))
    assert np.isfinite(table[f"lid_k{K_LID}"]).all() and (table[f"lid_k{K_LID}"] > 0).all()


@pytest.mark.slow  # shares the zoo fixture: 7 CNN forward passes over the 92 images
def test_trained_vs_untrained_vs_pixels_on_human_it(k92, zoo):
    from PIL import Image

    from brainlid.alignment.brain_rdms import score_brain_rdms

    hit = k92["human.IT"]
    scores = {}
    for name, (_, feats) in zoo.items():
        if name.startswith("resnet20"):
            df = score_brain_rdms(feats, None, hit)
            scores[name] = {layer: _mean_row(df, layer).value for layer in LAYERS}
    pix = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in k92.stimuli.images()])
    pixel = _mean_row(score_brain_rdms({"pixels": pix.reshape(92, -1).astype(np.float32)}, k92.stimuli.ids, hit), "pixels")
    table = pd.DataFrame(scores).T
    table.loc["pixels 32x32"] = pixel.value
    print("\nSpearman of model RDMs (1 - Pearson) with the mean human IT RDM; group-mean ceiling %.3f" % pixel.ceiling)
    print(table.round(3).to_string())
    trained = scores["resnet20"]["layer3"]
    untrained = np.array([scores[f"resnet20-untrained-{s}"]["layer3"] for s in SEEDS])
    assert trained > untrained.max() + 0.1  # clearly above every untrained seed
    assert untrained.mean() < 0.2
    assert trained > pixel.value
    lo = score_brain_rdms({"pixels": pix.reshape(92, -1).astype(np.float32)}, k92.stimuli.ids, hit).ceiling_lower.min()
    assert 0 < pixel.value < lo


@pytest.mark.slow  # shares the zoo fixture: 7 CNN forward passes over the 92 images
def test_depth_family_lid_vs_accuracy_and_it(k92, zoo):
    """Report LID of layer3 across depths against CIFAR accuracy and IT alignment (no direction assumed)."""
    from brainlid.alignment.brain_rdms import score_brain_rdms
    from brainlid.geometry import lid

    rows = []
    for depth in CHECKPOINTS:
        h, feats = zoo[f"resnet{depth}"]
        df = score_brain_rdms({"layer3": feats["layer3"]}, feats.stimulus_ids, k92["human.IT"])
        rows.append({"depth": depth, "cifar_top1": h.info["best_prec1"], f"lid_k{K_LID}": lid(feats["layer3"], k=K_LID),
                     "it_rsa": _mean_row(df, "layer3").value, "it_normalised": _mean_row(df, "layer3").normalised})
    t = pd.DataFrame(rows)
    r_acc = spearmanr(t[f"lid_k{K_LID}"], t.cifar_top1)[0]
    r_it = spearmanr(t[f"lid_k{K_LID}"], t.it_rsa)[0]
    print("\ndepth family (layer3, 92 images):")
    print(t.round(3).to_string(index=False))
    print(f"Spearman across the 4 models: LID vs CIFAR top-1 {r_acc:+.2f}, LID vs IT RSA {r_it:+.2f} (n=4: descriptive only)")
    assert list(t.cifar_top1) == sorted(t.cifar_top1)  # the checkpoints' accuracy rises with depth
    assert np.isfinite([r_acc, r_it]).all() or t[f"lid_k{K_LID}"].nunique() < 2
    assert (t.it_rsa > 0.2).all()
